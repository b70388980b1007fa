"""`slamfront eval REF EST`: the command-line face of evaluate_files, reference first."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from slamfront.cli import main
from slamfront.geometry import make_pose, so3_exp
from slamfront.io.trajectory import (
    convert_tum_file,
    read_tum_trajectory,
    write_kitti_trajectory,
    write_tum_trajectory,
)
from slamfront.types import Trajectory


def _poses(count: int = 30) -> np.ndarray:
    return np.array(
        [
            make_pose(so3_exp(np.array([0.0, 0.05 * i, 0.0])), np.array([0.1 * i, 0, 0.02 * i * i]))
            for i in range(count)
        ]
    )


def _files(tmp_path: Path) -> tuple[Path, Path]:
    """(ground truth, a monocular estimate at half scale with some noise)."""
    stamps = np.arange(30, dtype=np.int64) * 100_000_000
    gt_poses = _poses()
    est_poses = gt_poses.copy()
    est_poses[:, :3, 3] *= 0.5  # a monocular run at half scale
    est_poses[::3, 1, 3] += 0.01
    write_tum_trajectory(tmp_path / "gt.tum", Trajectory(stamps, gt_poses))
    write_tum_trajectory(tmp_path / "est.tum", Trajectory(stamps, est_poses))
    return tmp_path / "gt.tum", tmp_path / "est.tum"


def _run_folder(tmp_path: Path, monocular: bool) -> Path:
    """A folder as `slamfront run` leaves it: trajectory, ground truth, stats, config."""
    gt, est = _files(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    gt.replace(run / "groundtruth.tum")
    est.replace(run / "trajectory.tum")
    notes = ["monocular: trajectory scale is arbitrary"] if monocular else []
    (run / "stats.json").write_text(json.dumps({"frames_read": 30, "notes": notes}))
    (run / "config.yaml").write_text("preset: fast\n")
    return run


def test_eval_prints_ate_and_rpe_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, est = _files(tmp_path)
    out = tmp_path / "result.json"
    assert main(["eval", str(gt), str(est), "--align", "sim3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ATE (Sim(3) aligned, scale 2.0" in printed and "RPE (delta 1 frames" in printed
    result = json.loads(out.read_text())
    assert result["scale"] == pytest.approx(2.0, rel=1e-3)
    assert 0.0 < result["ate_m"]["rmse"] < 0.02 and result["ate_m"]["num"] == 30
    assert "aligned" not in result  # the per-pose arrays stay out of the JSON
    # exact orientations: the rotation ATE is the alignment's own error, and said to be
    assert result["rotation_ill_conditioned"] == ("rot*" in printed)
    # millimetres with three significant figures, as the JSON's metres say
    shown = re.search(r"trans +rmse (\d+)\.(\d+) mm", printed)
    assert shown is not None and len(shown[1].lstrip("0") + shown[2]) == 3
    assert float(f"{shown[1]}.{shown[2]}") == pytest.approx(result["ate_m"]["rmse"] * 1e3, rel=6e-3)
    assert main(["eval", str(gt), str(est), "--align", "se3"]) == 0
    assert "SE(3) aligned" in capsys.readouterr().out


def test_a_run_trajectory_given_as_reference_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(tmp_path, monocular=False)
    swapped = ["eval", str(run / "trajectory.tum"), str(run / "groundtruth.tum")]
    assert main(swapped) == 2
    err = capsys.readouterr().err
    assert "is the trajectory `slamfront run` estimated" in err
    assert f"slamfront eval {run / 'groundtruth.tum'} {run / 'trajectory.tum'}" in err
    # on purpose, it runs
    assert main([*swapped, "--no-order-check"]) == 0
    assert "ATE (SE(3) aligned)" in capsys.readouterr().out
    # two runs compared with each other are not a swap
    other = tmp_path / "other"
    other.mkdir()
    (other / "trajectory.tum").write_bytes((run / "trajectory.tum").read_bytes())
    (other / "stats.json").write_text("{}")
    assert main(["eval", str(run / "trajectory.tum"), str(other / "trajectory.tum")]) == 0


def test_a_denser_estimate_is_reported_as_a_likely_swap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, _ = _files(tmp_path)
    dense = read_tum_trajectory(gt)
    sparse = Trajectory(dense.stamps_ns[::5], dense.world_from_body[::5])
    write_tum_trajectory(tmp_path / "sparse.tum", sparse)
    assert main(["eval", str(tmp_path / "sparse.tum"), str(gt), "--align", "se3"]) == 0
    out = capsys.readouterr().out
    assert "warning: the estimate has 30 poses at 10 Hz, the reference 6 at 2 Hz" in out
    assert main(["eval", str(gt), str(tmp_path / "sparse.tum"), "--align", "se3"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_auto_alignment_follows_the_runs_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m").mkdir()
    mono = _run_folder(tmp_path / "m", monocular=True)
    assert main(["eval", str(mono / "groundtruth.tum"), str(mono / "trajectory.tum")]) == 0
    out = capsys.readouterr().out
    assert "alignment Sim(3): the run was monocular" in out and "scale 2.0" in out
    (tmp_path / "r").mkdir()
    metric = _run_folder(tmp_path / "r", monocular=False)
    assert main(["eval", str(metric / "groundtruth.tum"), str(metric / "trajectory.tum")]) == 0
    assert "alignment SE(3): the run was metric" in capsys.readouterr().out
    # a mode written by the run wins over its notes
    (metric / "stats.json").write_text(json.dumps({"frames_read": 30, "mode": "mono"}))
    assert main(["eval", str(metric / "groundtruth.tum"), str(metric / "trajectory.tum")]) == 0
    assert "Sim(3) aligned" in capsys.readouterr().out
    gt, est = _files(tmp_path)
    assert main(["eval", str(gt), str(est)]) == 0
    assert "alignment SE(3): the estimate is not in a run folder" in capsys.readouterr().out


def test_origin_alignment_and_an_ill_conditioned_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a nearly straight 3 m path (3 mm sideways) with 2 cm of noise: the SE(3) rotation about
    # the path is unknowable
    count = 60
    stamps = np.arange(count, dtype=np.int64) * 50_000_000
    truth = np.array(
        [
            make_pose(np.eye(3), np.array([0.05 * i, 0.003 * np.sin(i), 0.003 * np.cos(i)]))
            for i in range(count)
        ]
    )
    rng = np.random.default_rng(3)
    est = truth.copy()
    est[:, :3, 3] += rng.normal(0.0, 0.02, (count, 3))
    write_tum_trajectory(tmp_path / "gt.tum", Trajectory(stamps, truth))
    write_tum_trajectory(tmp_path / "est.tum", Trajectory(stamps, est))
    args = ["eval", str(tmp_path / "gt.tum"), str(tmp_path / "est.tum"), "--json"]
    assert main([*args, str(tmp_path / "se3.json")]) == 0
    out = capsys.readouterr().out
    assert "the path is too short or straight for the SE(3) alignment to fix its rotation" in out
    assert "rot*" in out and "the alignment's rotation is ill-conditioned" in out
    se3 = json.loads((tmp_path / "se3.json").read_text())
    assert se3["rotation_uncertainty_deg"] > 10.0
    # the orientations were exact: aligned alone, they show no error
    assert se3["ate_deg_orientations"]["rmse"] < 1e-6 < se3["ate_deg"]["rmse"]
    assert main([*args, str(tmp_path / "origin.json"), "--align-origin"]) == 0
    out = capsys.readouterr().out
    assert "ATE (origin aligned)" in out and "warning" not in out
    origin = json.loads((tmp_path / "origin.json").read_text())
    assert origin["align_origin"] and origin["ate_deg"]["rmse"] < 1e-6
    assert origin["ate_m"]["min"] < 1e-9  # the first poses coincide
    assert main([*args, str(tmp_path / "x.json"), "--align", "none", "--align-origin"]) == 2
    assert "align_origin is an alignment" in capsys.readouterr().err


def test_plot_is_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, est = _files(tmp_path)
    plot = tmp_path / "plot.png"
    assert main(["eval", str(gt), str(est), "--align", "sim3", "--plot", str(plot)]) == 0
    assert f"plot: {plot}" in capsys.readouterr().out
    data = plot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert not list(tmp_path.glob(".*tmp*"))


def test_eval_kitti_times_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, est = _files(tmp_path)
    kitti = tmp_path / "gt.kitti"
    write_kitti_trajectory(kitti, read_tum_trajectory(gt))
    # without times, KITTI poses are 1 s apart: only the estimate's poses at 0, 1, 2 s pair up
    assert main(["eval", str(kitti), str(est), "--align", "se3"]) == 0
    assert "paired 3 of 30" in capsys.readouterr().out
    (tmp_path / "times.txt").write_text("".join(f"{0.1 * i:.1f}\n" for i in range(30)))
    args = ["eval", str(kitti), str(est), "--ref-times", str(tmp_path / "times.txt")]
    assert main([*args, "--align", "sim3"]) == 0
    assert "paired 30 of 30" in capsys.readouterr().out
    assert main(["eval", str(gt), str(tmp_path / "missing.tum")]) == 2
    assert "missing.tum: trajectory not found" in capsys.readouterr().err
    assert main(["eval", str(gt), str(est), "--delta", "1.5"]) == 2
    assert "whole number" in capsys.readouterr().err


def test_eval_reads_the_formats_a_run_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, est = _files(tmp_path)
    written = convert_tum_file(est, ["kitti", "euroc", "tum"])
    kitti, times, euroc = tmp_path / "est.kitti", tmp_path / "est_times.txt", tmp_path / "est.csv"
    assert written == [kitti, times, euroc]
    expected = read_tum_trajectory(est)
    figures = []
    for path in (est, kitti, euroc):
        # a .kitti file finds its <stem>_times.txt: every pose pairs up by time
        assert main(["eval", str(gt), str(path), "--align", "sim3", "--json", f"{path}.json"]) == 0
        assert "paired 30 of 30" in capsys.readouterr().out
        figures.append(json.loads(Path(f"{path}.json").read_text())["ate_m"]["rmse"])
    assert figures[1] == pytest.approx(figures[0], abs=1e-9)
    assert figures[2] == pytest.approx(figures[0], abs=1e-9)
    assert len(times.read_text().splitlines()) == len(expected)
