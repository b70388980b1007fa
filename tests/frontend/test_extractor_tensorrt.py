"""TensorRT runtime: cache keys and profiles everywhere; the engine itself only with a GPU."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from slamfront.config import ExtractorConfig, load_config
from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.runtime.availability import runtime_report
from slamfront.frontend.runtime.extractor_tensorrt import (
    EngineProfile,
    engine_name,
    engine_profile,
)

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _tensorrt_usable() -> tuple[bool, str]:
    probe = runtime_report().probe("tensorrt")
    return probe.usable, probe.detail


def test_profile_snaps_to_the_stride_grid() -> None:
    cfg = ExtractorConfig(
        tensorrt_min_size_px=(50, 40),
        tensorrt_opt_size_px=(752, 480),
        tensorrt_max_size_px=(1300, 1000),
    )
    profile = engine_profile(cfg, channels=1, stride_px=32)
    assert profile.min_hw == (64, 64)  # rounded up
    assert profile.opt_hw == (480, 736)  # what a 752x480 image becomes
    assert profile.max_hw == (992, 1280)  # rounded down
    assert profile.shape(profile.opt_hw) == (1, 1, 480, 736)
    assert profile.covers(480, 736) and not profile.covers(1024, 736)


def test_engine_cache_key_has_every_part() -> None:
    profile = EngineProfile(1, (64, 64), (480, 640), (1024, 1280))
    other_profile = EngineProfile(1, (64, 64), (480, 640), (1024, 1024))
    base = engine_name("a" * 64, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", profile, fp16=True)
    assert base.endswith(".engine") and " " not in base and "(" not in base
    variants = {
        engine_name("b" * 64, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", profile, fp16=True),
        engine_name("a" * 64, "10.4.0", "NVIDIA Jetson Orin (nvgpu)", profile, fp16=True),
        engine_name("a" * 64, "10.3.0", "NVIDIA RTX 4090", profile, fp16=True),
        engine_name("a" * 64, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", profile, fp16=False),
        engine_name("a" * 64, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", other_profile, fp16=True),
    }
    assert base not in variants and len(variants) == 5


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_without_tensorrt_the_runtime_says_why(shared_weights: Path, tmp_path: Path) -> None:
    from slamfront.frontend.runtime.extractor_tensorrt import TensorRTDetector

    with pytest.raises(RuntimeUnavailableError, match="tensorrt package is not installed"):
        TensorRTDetector(tmp_path / "unused.onnx", ExtractorConfig())


@pytest.mark.slow
def test_tensorrt_matches_torch(shared: Path, shared_weights: Path, tmp_path: Path) -> None:
    """FP16 engine vs the torch reference on the HPatches images (GPU machines only)."""
    usable, why = _tensorrt_usable()
    if not usable:
        pytest.skip(f"TensorRT not usable here: {why}")
    from scipy.spatial import cKDTree

    from slamfront.eval.matching import read_hpatches
    from slamfront.frontend.extractors import build_extractor

    base = dataclasses.replace(
        load_config("fast").extractor,
        onnx_dir=str(tmp_path / "onnx"),
        engine_dir=str(tmp_path / "engines"),
        tensorrt_max_size_px=(1024, 1024),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        reference = build_extractor(dataclasses.replace(base, runtime="torch"))
        engine = build_extractor(dataclasses.replace(base, runtime="tensorrt"))
    for image in read_hpatches(shared / "data" / "hpatches" / "v_churchill")[0].images:
        expected, actual = reference(image), engine(image)
        distance, index = cKDTree(actual.keypoints).query(expected.keypoints)
        close = distance < 0.5
        assert close.mean() > 0.9  # FP16: near-ties at the cut may change
        cosine = np.sum(expected.descriptors[close] * actual.descriptors[index[close]], axis=1)
        assert np.median(cosine) > 0.999 and cosine.min() > 0.98


def test_tensorrt_request_fails_fast_without_it(tmp_path: Path) -> None:
    if _tensorrt_usable()[0]:
        pytest.skip("TensorRT is usable here")
    import slamfront as sf

    with pytest.raises(RuntimeUnavailableError, match="runtime tensorrt is not usable here"):
        sf.load_extractor("fast", runtime="tensorrt", onnx_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing was exported
