"""Command lines of the matcher: ``bench matcher`` and ``eval-matching --early-exit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slamfront.bench.matcher import bench_matcher
from slamfront.cli import main
from slamfront.types import Features


def test_strongest_keeps_the_highest_scores_in_order() -> None:
    f = Features(
        np.arange(10, dtype=np.float32).reshape(5, 2),
        np.array([0.1, 0.9, 0.5, 0.7, 0.2], np.float32),
        np.zeros((5, 3), np.float32),
        (10, 10),
    )
    np.testing.assert_array_equal(f.strongest(3), [1, 2, 3])  # in their original order
    np.testing.assert_array_equal(f.strongest(9), np.arange(5))
    np.testing.assert_array_equal(f.strongest(None), np.arange(5))
    allowed = np.array([True, False, True, False, True])
    np.testing.assert_array_equal(f.strongest(2, allowed), [2, 4])  # not 1 or 3


@pytest.mark.slow
def test_bench_matcher_command(
    shared_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    out = tmp_path / "bench.json"
    args = ["bench", "matcher", "--presets", "fast,classic", "--runtimes", "torch"]
    args += ["--keypoints", "128", "--frames", "2", "--runs", "20", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "median ms" in printed and "load average" in printed
    data = json.loads(out.read_text())
    rows = {(t["preset"], t["runtime"], t["mode"]): t for t in data["timings"]}
    assert set(rows) == {
        ("fast", "torch", "adaptive"),
        ("fast", "torch", "full"),
        ("classic", "numpy", "full"),
    }
    full = rows[("fast", "torch", "full")]
    assert full["mean_layers"] == 6.0 and full["runs"] == 20 and full["median_ms"] > 0
    assert full["cpu_median_ms"] > 0
    assert full["mean_points_last_layer"] == 256  # 128 per image, nothing pruned
    assert rows[("fast", "torch", "adaptive")]["mean_layers"] < 6.0
    assert rows[("classic", "numpy", "full")]["mean_matches"] > 20


def test_bench_matcher_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "matcher", "--runs", "5"]) == 2
    assert "at least 20" in capsys.readouterr().err
    assert main(["bench", "matcher", "--modes", "fast"]) == 2
    assert "adaptive and/or full" in capsys.readouterr().err


def test_bench_skips_presets_without_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # superpoint weights are never downloaded: the preset is skipped with the reason
    result = bench_matcher(presets=["superpoint"], keypoints=[64], runs=20, frames=2)
    assert result.timings == () and "superpoint" in result.skipped[0]


def test_eval_matching_early_exit_needs_lightglue(
    shared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = shared / "data" / "hpatches" / "v_churchill"
    args = ["eval-matching", f"hpatches:{sequence}", "--config", "classic", "--early-exit", "0.95"]
    assert main(args) == 2
    assert "needs matcher.model=lightglue" in capsys.readouterr().err
