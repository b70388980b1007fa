"""The extractor benchmark and its command line (timings are printed, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slamfront.bench.extractor import bench_extractor, synthetic_image
from slamfront.cli import main
from slamfront.frontend.runtime.availability import runtime_report


def test_synthetic_image_is_textured_and_deterministic() -> None:
    image = synthetic_image(640, 480)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, synthetic_image(640, 480))
    assert image.std() > 20


def test_bench_covers_every_case_and_reports_skips(shared_weights: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        result = bench_extractor(
            presets=("fast", "classic"),
            runtimes=("torch", "tensorrt"),
            sizes_px=((160, 128), (200, 128)),
            max_keypoints=64,
            runs=3,
            warmup=1,
        )
    trt = runtime_report().probe("tensorrt").usable
    learned = ["torch", "tensorrt"] if trt else ["torch"]
    cases = [(t.preset, t.runtime, t.width_px, t.height_px) for t in result.timings]
    assert cases == [
        *[("fast", r, w, 128) for r in learned for w in (160, 200)],
        ("classic", "opencv", 160, 128),
        ("classic", "opencv", 200, 128),
    ]
    fast = result.timings[0]
    assert fast.keypoints == 64 and fast.stats.runs == 3
    assert fast.stats.min_ms <= fast.stats.median_ms <= fast.stats.p90_ms
    assert fast.cpu_median_ms > 0
    assert any(s.startswith("fast/tensorrt") for s in result.skipped) != trt
    lines = result.lines()
    assert "cores" in lines[1] and any("fast" in line and "torch" in line for line in lines)
    assert json.loads(json.dumps(result.to_dict()))["timings"][0]["median_ms"] > 0


def test_bench_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "extractor", "--presets", "classic", "--sizes", "160x128", "--runs", "20"]
    assert main([*args, "--warmup", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "classic" in printed and "median ms" in printed
    data = json.loads(out.read_text())
    assert data["runs"] == 20 and data["timings"][0]["size_px"] == [160, 128]
    assert main(["bench", "extractor", "--sizes", "160", "--runs", "20"]) == 2
    assert main(["bench", "extractor", "--runs", "5"]) == 2
