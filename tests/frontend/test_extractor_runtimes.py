"""ONNX export and runtime parity: ONNX Runtime must reproduce torch on the shared images.

TensorRT is checked in test_extractor_tensorrt.py (it skips without TensorRT and CUDA).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from slamfront.config import ExtractorConfig, load_config
from slamfront.eval.matching import read_hpatches
from slamfront.frontend.export import (
    GRAPH_VERSION,
    ensure_extractor_onnx,
    export_models,
    extractor_onnx_name,
)
from slamfront.frontend.extractors import LearnedExtractor, build_extractor
from slamfront.frontend.runtime.availability import pick_runtime, runtime_report
from slamfront.types import Features


@pytest.fixture(scope="module")
def weights_env(shared_weights: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        yield


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def _config(preset: str, onnx_dir: Path, **changes: object) -> ExtractorConfig:
    cfg = load_config(preset).extractor
    return dataclasses.replace(cfg, onnx_dir=str(onnx_dir), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fast_pair(weights_env: None, onnx_cache: Path) -> tuple[LearnedExtractor, LearnedExtractor]:
    torch_ext = build_extractor(_config("fast", onnx_cache, runtime="torch"))
    onnx_ext = build_extractor(_config("fast", onnx_cache, runtime="onnxruntime"))
    assert isinstance(torch_ext, LearnedExtractor) and isinstance(onnx_ext, LearnedExtractor)
    assert onnx_ext.runtime == "onnxruntime"
    return torch_ext, onnx_ext


def _assert_same(reference: Features, other: Features, atol: float = 1e-4) -> None:
    """Same keypoints and descriptors within ``atol``.

    Rows are paired by position (runtimes may order equal scores differently). A point may
    only be missing from one side when it is a near-tie: its score within 2e-6 of the score
    range of the k-th score (the top-k cut) or of a neighbour it competed with in NMS.
    """
    from scipy.spatial import cKDTree

    assert reference.image_size == other.image_size
    distance, index = cKDTree(other.keypoints).query(reference.keypoints)
    paired = distance <= atol
    assert paired.mean() > 0.995, f"only {paired.mean():.4f} of the keypoints agree"
    np.testing.assert_allclose(
        other.descriptors[index[paired]], reference.descriptors[paired], atol=atol, rtol=0
    )
    # Scores: probabilities for XFeat, logits up to ~120 for DISK: relative to their range.
    # Float32 through DISK's U-Net sums in another order on each runtime and CPU: up to
    # 5e-6 of the range on an AVX2 machine of this kind (2e-6 on an AVX-512 one).
    close = 1e-5 * max(5.0, float(np.abs(reference.scores).max()))
    np.testing.assert_allclose(
        other.scores[index[paired]], reference.scores[paired], rtol=0, atol=close
    )
    cut = reference.scores.min()
    for i in np.flatnonzero(~paired):
        near = cKDTree(other.keypoints).query_ball_point(reference.keypoints[i], r=2.5)
        score = reference.scores[i]
        tie = abs(score - cut) < close or any(abs(score - other.scores[j]) < close for j in near)
        assert tie, f"keypoint {reference.keypoints[i]} missing from the other runtime"


@pytest.mark.slow
def test_onnxruntime_matches_torch_on_hpatches(
    shared: Path, fast_pair: tuple[LearnedExtractor, LearnedExtractor]
) -> None:
    torch_ext, onnx_ext = fast_pair
    sequence = read_hpatches(shared / "data" / "hpatches" / "v_churchill")[0]
    for image in sequence.images:
        _assert_same(torch_ext(image), onnx_ext(image))
    # A size that is not a multiple of 32 goes through the same host resize on both.
    crop = np.ascontiguousarray(sequence.images[0][:500, :752])
    _assert_same(torch_ext(crop), onnx_ext(crop))


@pytest.mark.slow
def test_disk_onnxruntime_matches_torch(weights_env: None, onnx_cache: Path, shared: Path) -> None:
    """One HPatches image at quarter size: DISK's full-resolution U-Net is slow on a CPU."""
    image = read_hpatches(shared / "data" / "hpatches" / "v_churchill")[0].images[2]
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    torch_ext = build_extractor(_config("accurate", onnx_cache, runtime="torch"))
    onnx_ext = build_extractor(_config("accurate", onnx_cache, runtime="onnxruntime"))
    reference = torch_ext(small)
    assert len(reference) > 300
    _assert_same(reference, onnx_ext(small))


@pytest.mark.slow
def test_export_is_one_file_with_dynamic_size_and_metadata(
    fast_pair: tuple[LearnedExtractor, LearnedExtractor], onnx_cache: Path
) -> None:
    cfg = _config("fast", onnx_cache)
    path = ensure_extractor_onnx(cfg)  # exported by the fixture: reused, not re-exported
    assert path.parent == onnx_cache
    before = path.stat().st_mtime_ns
    assert ensure_extractor_onnx(cfg).stat().st_mtime_ns == before
    assert sorted(p.name for p in onnx_cache.iterdir() if p.name.startswith("xfeat")) == [path.name]
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["slamfront.model"] == "xfeat"
    assert meta["slamfront.graph_version"] == str(GRAPH_VERSION)
    assert meta["slamfront.max_keypoints"] == "2048"  # the fast preset's
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1 and dims[1].dim_value == 1
    assert dims[2].dim_param and dims[3].dim_param  # dynamic height and width
    assert [o.name for o in model.graph.output] == ["keypoints", "scores", "descriptors", "valid"]


def test_cache_key_follows_everything_baked_into_the_graph() -> None:
    cfg = ExtractorConfig()
    names = {
        extractor_onnx_name(c, "ab" * 32)
        for c in (
            cfg,
            dataclasses.replace(cfg, max_keypoints=2048),
            dataclasses.replace(cfg, subpixel=False),
            dataclasses.replace(cfg, detection_threshold=0.1),
            dataclasses.replace(cfg, nms_radius_px=3),
            dataclasses.replace(cfg, border_px=8),
        )
    }
    assert len(names) == 6
    assert extractor_onnx_name(cfg, "cd" * 32) != extractor_onnx_name(cfg, "ab" * 32)


def test_export_models_writes_into_a_folder(
    weights_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring of export_models (the export itself is covered above, once)."""
    import slamfront.frontend.export as export

    written: list[tuple[str, Path | None]] = []

    def fake_export(cfg: ExtractorConfig, path: Path | None = None) -> Path:
        written.append((cfg.model, path))
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"onnx")
        return path

    monkeypatch.setattr(export, "export_extractor", fake_export)
    # LightGlue's graphs: covered by tests/frontend/test_lightglue_onnx.py
    monkeypatch.setattr(export, "_export_matcher", lambda config, out_dir: [])
    exported = export_models(load_config("fast"), tmp_path / "out")
    assert [e.name for e in exported] == ["extractor/xfeat"]
    assert written[0][1] is not None and written[0][1].parent == tmp_path / "out"
    assert written[0][1].name.startswith("xfeat-0f5187fd7bedd26c-k2048-")
    assert exported[0].sha256 == hashlib.sha256(b"onnx").hexdigest()
    assert export_models(load_config("classic"), tmp_path / "orb") == []


def test_auto_picks_onnxruntime_without_tensorrt() -> None:
    report = runtime_report()
    if report.probe("tensorrt").usable:
        pytest.skip("TensorRT is usable here; auto picks it")
    assert report.auto_choice == "onnxruntime"
    assert "TensorRT not usable" in report.reason
    assert pick_runtime("auto") == "onnxruntime"
    assert pick_runtime("torch") == "torch"
    assert "CPUExecutionProvider" in report.onnxruntime_providers
    lines = report.lines()
    assert lines[0].startswith("runtime auto -> onnxruntime")
    assert any(line.strip().startswith("tensorrt") for line in lines)


def test_auto_gives_the_matcher_tensorrt_only_with_torch_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GPU that only pycuda reaches serves the extractor's engines, not the matcher's."""
    from slamfront.frontend.runtime import availability

    def tensorrt_probe(buffers_ok: bool, reason: str) -> availability.RuntimeProbe:
        return availability.RuntimeProbe(
            "tensorrt", buffers_ok, "tensorrt 10.0" if buffers_ok else reason
        )

    cpu = availability.RuntimeProbe("torch", True, "torch")
    no_cuda = availability.RuntimeProbe("torch-cuda", False, "torch sees no CUDA device")
    monkeypatch.setattr(availability, "_probe_torch", lambda: (cpu, no_cuda))
    monkeypatch.setattr(
        availability, "_probe_pycuda", lambda: availability.RuntimeProbe("pycuda", True, "gpu")
    )
    monkeypatch.setattr(availability, "_probe_tensorrt", tensorrt_probe)
    assert runtime_report().auto_choice == "tensorrt"
    matcher_report = runtime_report(tensorrt_needs_torch_cuda=True)
    assert matcher_report.auto_choice == "onnxruntime"
    assert "no torch CUDA device" in matcher_report.reason
