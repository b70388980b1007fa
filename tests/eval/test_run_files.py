"""What a run folder tells the evaluation: which files a run wrote, its mode, the order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slamfront.errors import InputError
from slamfront.eval.run_files import (
    check_order,
    choose_alignment,
    evaluate_run,
    is_run_estimate,
    kitti_times_beside,
    run_folder,
    run_is_monocular,
)
from slamfront.geometry import make_pose
from slamfront.io.trajectory import write_tum_trajectory
from slamfront.types import Trajectory


def _folder(tmp_path: Path, stats: object = None, config: str | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    if stats is not None:
        (run / "stats.json").write_text(stats if isinstance(stats, str) else json.dumps(stats))
    if config is not None:
        (run / "config.yaml").write_text(config)
    return run


def test_files_a_run_wrote_are_known_by_name_and_folder(tmp_path: Path) -> None:
    run = _folder(tmp_path, config="preset: fast\n")
    for name in ("trajectory.tum", "trajectory_raw.tum", "trajectory_map2.csv", "trajectory.kitti"):
        assert run_folder(run / name) == run and is_run_estimate(run / name), name
    assert run_folder(run / "groundtruth.tum") == run and not is_run_estimate(
        run / "groundtruth.tum"
    )
    assert run_folder(run / "poses.txt") is None
    assert run_folder(tmp_path / "trajectory.tum") is None  # no stats.json or config.yaml there


def test_order_check(tmp_path: Path) -> None:
    run = _folder(tmp_path, stats={"frames_read": 3, "notes": []})
    check_order(run / "groundtruth.tum", run / "trajectory.tum")
    check_order(tmp_path / "gt.txt", tmp_path / "est.txt")  # files from elsewhere: no opinion
    with pytest.raises(InputError, match="the reference \\(ground truth\\) first"):
        check_order(run / "trajectory.tum", run / "groundtruth.tum")
    with pytest.raises(InputError, match="given as the reference"):
        check_order(run / "trajectory.tum", tmp_path / "groundtruth.txt")


def test_mode_from_stats_then_config(tmp_path: Path) -> None:
    mono_note = {"frames_read": 3, "notes": ["monocular: trajectory scale is arbitrary"]}
    assert run_is_monocular(_folder(tmp_path / "a", mono_note)) is True
    assert run_is_monocular(_folder(tmp_path / "b", {"frames_read": 3, "notes": []})) is False
    metric = {"mode": "mono", "notes": ["monocular-inertial: metric scale measured by the IMU"]}
    assert run_is_monocular(_folder(tmp_path / "g", metric)) is False
    assert run_is_monocular(_folder(tmp_path / "c", {"mode": "stereo", "notes": []})) is False
    assert run_is_monocular(_folder(tmp_path / "d", config="tracker:\n  mode: mono\n")) is True
    assert run_is_monocular(_folder(tmp_path / "e", config="tracker:\n  mode: auto\n")) is None
    broken = _folder(tmp_path / "f", "{not json")
    with pytest.raises(InputError, match=r"stats\.json: cannot read the run's stats"):
        run_is_monocular(broken)
    assert choose_alignment(tmp_path / "a" / "run" / "trajectory.tum").align == "sim3"
    unsure = choose_alignment(tmp_path / "e" / "run" / "trajectory.tum")
    assert unsure.align == "se3" and "does not say the run's mode" in unsure.reason


def test_kitti_times_beside(tmp_path: Path) -> None:
    (tmp_path / "trajectory.kitti").write_text("")
    assert kitti_times_beside(tmp_path / "trajectory.kitti") is None
    (tmp_path / "trajectory_times.txt").write_text("0\n")
    assert kitti_times_beside(tmp_path / "trajectory.kitti") == tmp_path / "trajectory_times.txt"
    assert kitti_times_beside(tmp_path / "trajectory.tum") is None


def test_evaluate_run_needs_ground_truth_and_a_pose(tmp_path: Path) -> None:
    run = _folder(tmp_path, stats={"frames_read": 30, "notes": []})
    stamps = np.arange(30, dtype=np.int64) * 100_000_000
    poses = np.array(
        [make_pose(np.eye(3), np.array([0.1 * i, 0.02 * i * i, 0.0])) for i in range(30)]
    )
    write_tum_trajectory(run / "trajectory.tum", Trajectory(stamps, poses))
    assert evaluate_run(run) is None  # no ground truth
    write_tum_trajectory(run / "groundtruth.tum", Trajectory(stamps, poses))
    result = evaluate_run(run)
    assert result is not None and result.align == "se3" and result.ate_m.rmse < 1e-9
    (run / "trajectory.tum").write_text("# timestamp tx ty tz qx qy qz qw\n")
    assert evaluate_run(run) is None  # no pose tracked
