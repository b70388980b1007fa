"""`slamfront eval EST GT`: the command-line face of evaluate_files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slamfront.cli import main
from slamfront.geometry import make_pose, so3_exp
from slamfront.io.trajectory import (
    read_tum_trajectory,
    write_kitti_trajectory,
    write_tum_trajectory,
)
from slamfront.types import Trajectory


def _files(tmp_path: Path) -> tuple[Path, Path]:
    stamps = np.arange(30, dtype=np.int64) * 100_000_000
    gt_poses = np.array(
        [
            make_pose(so3_exp(np.array([0.0, 0.05 * i, 0.0])), np.array([0.1 * i, 0, 0.02 * i * i]))
            for i in range(30)
        ]
    )
    est_poses = gt_poses.copy()
    est_poses[:, :3, 3] *= 0.5  # a monocular run at half scale
    est_poses[::3, 1, 3] += 0.01
    write_tum_trajectory(tmp_path / "gt.tum", Trajectory(stamps, gt_poses))
    write_tum_trajectory(tmp_path / "est.tum", Trajectory(stamps, est_poses))
    return tmp_path / "est.tum", tmp_path / "gt.tum"


def test_eval_prints_ate_and_rpe_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    est, gt = _files(tmp_path)
    out = tmp_path / "result.json"
    assert main(["eval", str(est), str(gt), "--align", "sim3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ATE (Sim(3) aligned, scale 2.0" in printed and "RPE (delta 1 frames" in printed
    result = json.loads(out.read_text())
    assert result["scale"] == pytest.approx(2.0, rel=1e-3)
    assert 0.0 < result["ate_m"]["rmse"] < 0.02 and result["ate_m"]["num"] == 30
    assert main(["eval", str(est), str(gt), "--align", "se3"]) == 0
    assert "SE(3) aligned" in capsys.readouterr().out


def test_eval_kitti_times_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    est, gt = _files(tmp_path)
    kitti = tmp_path / "gt.kitti"
    write_kitti_trajectory(kitti, read_tum_trajectory(gt))
    # without times, KITTI poses are 1 s apart: only the estimate's poses at 0, 1, 2 s pair up
    assert main(["eval", str(est), str(kitti)]) == 0
    assert "paired 3 of 30" in capsys.readouterr().out
    (tmp_path / "times.txt").write_text("".join(f"{0.1 * i:.1f}\n" for i in range(30)))
    args = ["eval", str(est), str(kitti), "--gt-times", str(tmp_path / "times.txt")]
    assert main([*args, "--align", "sim3"]) == 0
    assert "paired 30 of 30" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "missing.tum"), str(gt)]) == 2
    assert "missing.tum: trajectory not found" in capsys.readouterr().err
    assert main(["eval", str(est), str(gt), "--delta", "1.5"]) == 2
    assert "whole number" in capsys.readouterr().err
