"""ONNX cache entries are used only while their content has the hash recorded at export: a
truncated file (a killed export, a full disk) is exported again instead of failing every run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from slamfront.config import load_config
from slamfront.frontend import export
from slamfront.frontend.runtime import lightglue_export
from slamfront.frontend.runtime.cache_digest import digest_path, is_intact, record_digest
from slamfront.frontend.runtime.lightglue_export import GlueGraphs, export_lightglue


def test_digest_detects_truncation_and_missing_records(tmp_path: Path) -> None:
    path = tmp_path / "graph.onnx"
    path.write_bytes(b"\x08\x07" * 1000)
    assert not is_intact(path)  # no hash recorded yet
    record_digest(path)
    assert digest_path(path).name == ".graph.onnx.sha256"
    assert is_intact(path)
    path.write_bytes(path.read_bytes()[:1000])
    assert not is_intact(path)
    digest_path(path).write_text("garbage")
    assert not is_intact(path)
    path.unlink()
    assert not is_intact(path)


def test_a_damaged_lightglue_export_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_export_all(net: object, graphs: GlueGraphs, check: bool) -> None:
        calls.append(graphs.folder)
        for name in ("input", "layer0", "assign0", "layer1", "assign1", "confidence0"):
            (graphs.folder / f"{name}.onnx").write_bytes(name.encode() * 100)

    monkeypatch.setattr(lightglue_export, "_export_all", fake_export_all)
    arch = SimpleNamespace(n_layers=2, input_dim=64, descriptor_dim=96, num_heads=1)
    net = SimpleNamespace(arch=arch)
    folder = tmp_path / "lightglue"
    export_lightglue(net, folder)  # type: ignore[arg-type]
    assert len(calls) == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["sha256"]) == sorted(p.name for p in folder.glob("*.onnx"))
    export_lightglue(net, folder)  # type: ignore[arg-type]
    assert len(calls) == 1  # intact: reused
    layer = folder / "layer1.onnx"
    layer.write_bytes(layer.read_bytes()[:10])  # truncated
    export_lightglue(net, folder)  # type: ignore[arg-type]
    assert len(calls) == 2
    assert layer.read_bytes() == b"layer1" * 100
    del manifest["sha256"]  # an export of an earlier version: no hashes to check
    (folder / "manifest.json").write_text(json.dumps(manifest))
    export_lightglue(net, folder)  # type: ignore[arg-type]
    assert len(calls) == 3


def test_a_damaged_extractor_export_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(load_config("fast").extractor, onnx_dir=str(tmp_path))
    target = tmp_path / "xfeat.onnx"
    monkeypatch.setattr(export, "extractor_onnx_path", lambda _cfg: target)
    exported: list[Path] = []

    def fake_export(_cfg: object, path: Path) -> Path:
        exported.append(path)
        path.write_bytes(b"graph" * 1000)
        record_digest(path)
        return path

    monkeypatch.setattr(export, "export_extractor", fake_export)
    assert export.ensure_extractor_onnx(cfg) == target
    assert export.ensure_extractor_onnx(cfg) == target
    assert len(exported) == 1
    target.write_bytes(target.read_bytes()[:100])  # truncated
    export.ensure_extractor_onnx(cfg)
    assert len(exported) == 2
    digest_path(target).unlink()  # a file cached before hashes were recorded
    export.ensure_extractor_onnx(cfg)
    assert len(exported) == 3


@pytest.mark.slow
def test_a_truncated_extractor_graph_is_rebuilt_and_runs(
    shared_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import onnxruntime as ort

    from slamfront.frontend.runtime.extractor_onnx import OnnxDetector

    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    cfg = dataclasses.replace(
        load_config("fast").extractor, onnx_dir=str(tmp_path), max_keypoints=128
    )
    path = export.ensure_extractor_onnx(cfg)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match=r"INVALID_PROTOBUF|Protobuf parsing failed"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert export.ensure_extractor_onnx(cfg) == path
    assert is_intact(path)
    outputs = OnnxDetector(path)(np.zeros((1, 1, 64, 64), np.float32))
    assert outputs is not None


def test_cached_onnx_networks_run_without_torch(shared_weights: Path) -> None:
    """With the exports cached, a run on ONNX Runtime never imports torch (a second of
    start-up): checked in a child process after this one made sure of the cache."""
    import os
    import subprocess
    import sys

    import slamfront as sf

    sf.load_extractor("fast", runtime="onnxruntime")
    sf.load_matcher("fast", runtime="onnxruntime")
    child = (
        "import sys, numpy as np, slamfront as sf\n"
        "ext = sf.load_extractor('fast', runtime='onnxruntime')\n"
        "matcher = sf.load_matcher('fast', runtime='onnxruntime')\n"
        "rng = np.random.default_rng(0)\n"
        "image = (rng.random((240, 320)) * 255).astype(np.uint8)\n"
        "features = ext(image)\n"
        "matches = matcher(features, features)\n"
        "print(len(features), len(matches), 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "SLAMFRONT_WEIGHTS": str(shared_weights)}
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert int(out[0]) > 100 and int(out[1]) > 0.5 * int(out[0])
    assert out[2] == "False"
