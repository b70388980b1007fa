"""ATE / RPE: evo's own saved results reproduced, plus synthetic cases with known answers."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slamfront.errors import InputError
from slamfront.eval.trajectory_metrics import (
    evaluate_files,
    evaluate_trajectories,
    format_evaluation,
    format_length_m,
    three_significant,
)
from slamfront.geometry import make_pose, so3_exp
from slamfront.types import Trajectory

EVO = "data/reference/evo"

# How each saved result was computed, read from its info.json title (evo of Feb 2018,
# `evo_ape kitti GT EST -a` and `evo_rpe kitti GT EST --delta 10 --delta_unit m`).
REPRODUCED = {
    "orb_ape.zip": ("KITTI_00_ORB.txt", "ape"),
    "sptam_ape.zip": ("KITTI_00_SPTAM.txt", "ape"),
    "orb_rpe.zip": ("KITTI_00_ORB.txt", "rpe"),
    "sptam_rpe.zip": ("KITTI_00_SPTAM.txt", "rpe"),
}
# evo_rpe-for-each results of evo's demo, computed on the topics "ORB-SLAM" / "S-PTAM" of
# evo's ROS_example.bag, which is not part of the shared data: not reproducible here.
FROM_BAG = {"orb_rpe-for-each.zip": "ORB-SLAM", "sptam_rpe-for-each.zip": "S-PTAM"}


def _zip(path: Path) -> tuple[dict[str, str], dict[str, float], np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        info = json.loads(archive.read("info.json"))
        stats = json.loads(archive.read("stats.json"))
        errors = np.load(io.BytesIO(archive.read("error_array.npz")))
    return info, stats, errors


def test_every_saved_result_is_accounted_for(shared: Path) -> None:
    names = {p.name for p in (shared / EVO / "res_files").glob("*.zip")}
    assert names == set(REPRODUCED) | set(FROM_BAG)
    for name, topic in FROM_BAG.items():
        info, _, _ = _zip(shared / EVO / "res_files" / name)
        assert info["est_name"] == topic and info["ref_name"] == "groundtruth"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REPRODUCED))
def test_reproduces_evo_saved_results(shared: Path, name: str) -> None:
    estimate, kind = REPRODUCED[name]
    info, stats, errors = _zip(shared / EVO / "res_files" / name)
    assert Path(info["est_name"]).name == estimate
    assert Path(info["ref_name"]).name == "KITTI_00_gt.txt"
    if kind == "ape":
        assert "with SE(3) Umeyama alignment" in info["title"]
        options = {"align": "se3"}
    else:
        assert "delta = 10.0 (m) using consecutive pairs\n(not aligned)" in info["title"]
        options = {
            "align": "none",
            "rpe_delta": 10.0,
            "rpe_delta_unit": "m",
            "rpe_pairs": "evo2018",
        }
    result = evaluate_files(
        reference=shared / EVO / "KITTI_00_gt.txt", estimate=shared / EVO / estimate, **options
    )
    ours = result.ate_m if kind == "ape" else result.rpe_m
    assert ours is not None and ours.unit == "m"
    assert ours.num == errors.size
    for key, value in stats.items():
        assert getattr(ours, key) == pytest.approx(value, abs=1e-6), key
    assert result.num_matched_poses == 4541
    if kind == "ape":
        assert result.scale == 1.0
        assert result.path_length_m == pytest.approx(3724.187, abs=1e-3)
    if name == "orb_ape.zip":  # the figure quoted in issue 2, and how the CLI shows it
        assert result.ate_m.rmse == pytest.approx(1.3034497, abs=1e-6)
        text = format_evaluation(result)
        assert "rmse 1.30 m" in text and "SE(3) aligned" in text and "4541" in text


def test_tum_files_match_evo_association_and_alignment(shared: Path) -> None:
    """fr1/xyz rgbdslam against ground truth, checked against evo's own pipeline."""
    from evo.core import metrics, sync
    from evo.tools import file_interface

    est_path = shared / EVO / "freiburg1_xyz-rgbdslam.txt"
    gt_path = shared / EVO / "freiburg1_xyz-groundtruth.txt"
    gt = file_interface.read_tum_trajectory_file(str(gt_path))
    est = file_interface.read_tum_trajectory_file(str(est_path))
    gt, est = sync.associate_trajectories(gt, est, max_diff=0.02)
    est.align(gt, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((gt, est))
    result = evaluate_files(reference=gt_path, estimate=est_path, align="se3", max_time_diff_s=0.02)
    assert result.num_matched_poses == gt.num_poses == 786
    assert result.ate_m.rmse == pytest.approx(
        ape.get_statistic(metrics.StatisticsType.rmse), abs=1e-9
    )


# ----------------------------------------------------------------------------- synthetic


def _path(count: int = 60) -> Trajectory:
    stamps = np.arange(count, dtype=np.int64) * 50_000_000 + 10**18
    poses = [
        make_pose(
            so3_exp(np.array([0.02 * i, 0.05 * np.sin(0.1 * i), 0.03 * i])),
            np.array([np.cos(0.1 * i) * 3.0, np.sin(0.1 * i) * 2.0, 0.01 * i * i]),
        )
        for i in range(count)
    ]
    return Trajectory(stamps, np.array(poses))


def _moved(traj: Trajectory, world_from_world: np.ndarray, scale: float = 1.0) -> Trajectory:
    poses = traj.world_from_body.copy()
    poses[:, :3, 3] *= scale
    return Trajectory(traj.stamps_ns.copy(), world_from_world @ poses)


def test_rigid_offset_vanishes_with_se3_alignment_only() -> None:
    gt = _path()
    offset = make_pose(so3_exp(np.array([0.1, -0.4, 0.7])), np.array([5.0, -1.0, 2.0]))
    est = _moved(gt, offset)
    aligned = evaluate_trajectories(reference=gt, estimate=est, align="se3")
    assert aligned.ate_m.rmse < 1e-9 and aligned.ate_deg.rmse < 1e-6
    np.testing.assert_allclose(aligned.reference_from_estimate, np.linalg.inv(offset), atol=1e-9)
    raw = evaluate_trajectories(reference=gt, estimate=est, align="none")
    assert raw.ate_m.rmse > 1.0
    # relative errors do not depend on a rigid change of world frame
    assert raw.rpe_m is not None and raw.rpe_m.rmse < 1e-9
    assert raw.rpe_deg is not None and raw.rpe_deg.rmse < 1e-6


def test_sim3_recovers_a_monocular_scale() -> None:
    gt = _path()
    offset = make_pose(so3_exp(np.array([0.0, 0.3, 0.0])), np.array([1.0, 2.0, 3.0]))
    est = _moved(gt, offset, scale=0.25)
    result = evaluate_trajectories(reference=gt, estimate=est, align="sim3")
    assert result.scale == pytest.approx(4.0, rel=1e-9)
    assert result.ate_m.rmse < 1e-9
    assert result.rpe_m is not None and result.rpe_m.rmse < 1e-9  # RPE after the scale fix
    assert evaluate_trajectories(reference=gt, estimate=est, align="se3").ate_m.rmse > 0.5
    assert "Sim(3) aligned, scale 4.0000" in format_evaluation(result)


def test_known_translation_error_statistics() -> None:
    gt = _path(10)
    poses = gt.world_from_body.copy()
    poses[1::2, 0, 3] += 0.3  # every other pose 0.3 m off
    result = evaluate_trajectories(
        reference=gt, estimate=Trajectory(gt.stamps_ns, poses), align="none"
    )
    assert result.ate_m.max == pytest.approx(0.3)
    assert result.ate_m.min == pytest.approx(0.0)
    assert result.ate_m.mean == pytest.approx(0.15)
    assert result.ate_m.rmse == pytest.approx(np.sqrt(0.045))
    assert result.ate_m.sse == pytest.approx(5 * 0.09)
    assert result.ate_m.num == 10
    assert result.rpe_m is not None and result.rpe_m.num == 9


def test_association_by_time_with_tolerance_and_offset() -> None:
    gt = _path(40)
    est = Trajectory(gt.stamps_ns[::2] + 15_000_000, gt.world_from_body[::2])  # 15 ms late
    assert evaluate_trajectories(reference=gt, estimate=est).num_matched_poses == 20
    with pytest.raises(InputError, match=r"no estimate pose lies within 0\.01 s"):
        evaluate_trajectories(reference=gt, estimate=est, max_time_diff_s=0.01)
    shifted = evaluate_trajectories(
        reference=gt, estimate=est, max_time_diff_s=0.001, time_offset_s=-0.015
    )
    assert shifted.num_matched_poses == 20 and shifted.ate_m.rmse < 1e-9


def test_rpe_delta_units_and_pairs() -> None:
    gt = _path(60)
    est = _moved(gt, np.eye(4))
    est.world_from_body[:, :3, 3] += np.random.default_rng(0).normal(0, 0.01, (60, 3))
    frames = evaluate_trajectories(reference=gt, estimate=est, rpe_delta=5)
    assert frames.rpe_m is not None and frames.rpe_m.num == 11  # pairs (0,5), (5,10) ... (50,55)
    every = evaluate_trajectories(reference=gt, estimate=est, rpe_delta=5, rpe_pairs="all")
    assert every.rpe_m is not None and every.rpe_m.num == 55
    metres = evaluate_trajectories(reference=gt, estimate=est, rpe_delta=2.0, rpe_delta_unit="m")
    legacy = evaluate_trajectories(
        reference=gt, estimate=est, rpe_delta=2.0, rpe_delta_unit="m", rpe_pairs="evo2018"
    )
    assert metres.rpe_m is not None and legacy.rpe_m is not None
    assert legacy.rpe_m.num == metres.rpe_m.num - 1
    too_long = evaluate_trajectories(
        reference=gt, estimate=est, rpe_delta=1000.0, rpe_delta_unit="m"
    )
    assert too_long.rpe_m is None and "n/a" in format_evaluation(too_long)


def test_bad_options_and_inputs() -> None:
    gt = _path(10)
    with pytest.raises(InputError, match="align must be one of"):
        evaluate_trajectories(reference=gt, estimate=gt, align="umeyama")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="whole number"):
        evaluate_trajectories(reference=gt, estimate=gt, rpe_delta=1.5)
    with pytest.raises(InputError, match="estimate trajectory is empty"):
        evaluate_trajectories(
            reference=gt, estimate=Trajectory(np.zeros(0, np.int64), np.zeros((0, 4, 4)))
        )
    two = Trajectory(gt.stamps_ns[:2], gt.world_from_body[:2])
    with pytest.raises(InputError, match="se3 alignment needs 3"):
        evaluate_trajectories(reference=gt, estimate=two)


def test_summary_is_json_ready(tmp_path: Path) -> None:
    result = evaluate_trajectories(reference=_path(), estimate=_path())
    text = json.dumps(result.summary())
    back = json.loads(text)
    assert back["ate_m"]["rmse"] < 1e-9 and back["align"] == "se3"
    assert len(back["reference_from_estimate"]) == 4


def test_lengths_print_in_millimetres_to_three_significant_figures() -> None:
    assert format_length_m(0.000264) == "0.264 mm"
    assert format_length_m(0.0134) == "13.4 mm"
    assert format_length_m(0.181) == "181 mm"
    assert format_length_m(0.9996) == "1000 mm"
    assert format_length_m(59.9) == "59.9 m"
    assert format_length_m(3724.187) == "3724 m"
    assert three_significant(0.00123) == "0.00123" and three_significant(0.0) == "0"


def test_orientations_aligned_alone_ignore_positions() -> None:
    gt = _path()
    offset = make_pose(so3_exp(np.array([0.3, -0.2, 0.5])), np.array([1.0, 2.0, 3.0]))
    est = _moved(gt, offset)
    est.world_from_body[:, :3, 3] += np.random.default_rng(1).normal(0, 0.5, (len(gt), 3))
    result = evaluate_trajectories(reference=gt, estimate=est, align="se3")
    # positions this noisy tilt the SE(3) rotation; the orientations alone are exact
    assert result.ate_deg.rmse > 1.0
    assert result.ate_deg_orientations.rmse < 1e-6
    assert result.aligned.estimate_xyz_m.shape == (len(gt), 3)
    assert result.aligned.translation_error_m.max() == pytest.approx(result.ate_m.max)


def test_a_denser_estimate_is_noted_in_the_result() -> None:
    gt = _path(40)
    sparse = Trajectory(gt.stamps_ns[::4], gt.world_from_body[::4])
    swapped = evaluate_trajectories(reference=sparse, estimate=gt)
    assert any("ground truth is usually the denser one" in w for w in swapped.warnings)
    assert not evaluate_trajectories(reference=gt, estimate=sparse).warnings
