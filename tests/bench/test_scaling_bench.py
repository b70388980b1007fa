"""The resolution-scaling benchmark: one row per size, the detector input capped by the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from slamfront.bench.scaling import bench_scaling, parse_size
from slamfront.errors import ConfigError


def test_parse_size_names_and_dimensions() -> None:
    assert parse_size("KITTI") == ("KITTI", 1241, 376)
    assert parse_size(" 720p") == ("720p", 1280, 720)
    assert parse_size("800x600") == ("800×600", 800, 600)
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size("800-600")


@pytest.mark.slow
def test_scaling_runs_every_size_and_caps_the_detector(shared_weights: Path) -> None:
    result = bench_scaling(
        "fast",
        [("small", 160, 120), ("double", 320, 240)],
        frames=10,
        runs=1,
        warmup_runs=0,
        warmup_frames=2,
        overrides=["extractor.max_area_px=19200"],
    )
    assert [r.name for r in result.rows] == ["small", "double"]
    small, double = result.rows
    assert small.detector_px == (160, 96)  # 120 rows round down to the 32-pixel stride
    assert double.detector_px == (160, 96)  # four times the pixels, scaled to the cap
    for row in result.rows:
        assert row.fps > 0 and row.cpu_ms_per_frame > 0
        assert row.frame.median_ms <= row.frame.p90_ms <= row.frame.max_ms
    table = result.lines()
    assert table[3].startswith("| size |") and len(table) == 5 + len(result.rows)
    assert "| double 320×240 | 77 k | 160×96 |" in table[-1]
