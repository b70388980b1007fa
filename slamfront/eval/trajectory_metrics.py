"""Trajectory accuracy: ATE (absolute pose error) and RPE (relative pose error) via evo.

evo is used as a library: ``evo.core.sync`` associates the estimate with the ground truth by
timestamp, ``PosePath3D.align`` does the Umeyama alignment (SE(3), Sim(3) or none) and
``evo.core.metrics.APE`` / ``RPE`` compute the errors and their statistics. So the figures are
evo's own: ``evo_ape tum GT EST -a`` prints the ATE rmse of ``evaluate_trajectories(EST, GT)``.

Conventions of :func:`evaluate_trajectories`:

- association: each ground-truth pose is paired with the estimate pose nearest in time, within
  ``max_time_diff_s`` (0.02 s by default, as for TUM); unpaired poses are left out;
- alignment of the estimate onto the ground truth uses all paired positions: ``se3`` for metric
  rigs (RGB-D, stereo), ``sim3`` for monocular runs (also corrects the scale), ``none``;
- ATE is APE of the translation part (metres) and of the rotation angle (degrees) after
  alignment;
- RPE is computed on the aligned estimate (alignment does not change it, except the Sim(3)
  scale), between pose pairs ``rpe_delta`` apart in ``rpe_delta_unit`` (frames, m or deg),
  translation part in metres and rotation angle in degrees. ``rpe_pairs``: ``consecutive``
  (evo's default, non-overlapping pairs starting at the first pose), ``all`` (every pose starts
  a pair), or ``evo2018`` — consecutive pairs as evo releases of early 2018 formed them for
  path deltas (the first pair started at the first pose whose travelled path reached the
  delta, so evo 1.38's first pair is dropped); the saved results in evo's test data were
  computed that way.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from slamfront.errors import InputError
from slamfront.io.trajectory import read_trajectory
from slamfront.types import Trajectory

if TYPE_CHECKING:
    from evo.core.metrics import PE
    from evo.core.trajectory import PoseTrajectory3D

Alignment = Literal["se3", "sim3", "none"]
DeltaUnit = Literal["frames", "m", "deg"]
RpePairs = Literal["consecutive", "all", "evo2018"]

ALIGNMENTS: tuple[Alignment, ...] = ("se3", "sim3", "none")


@dataclass(frozen=True)
class ErrorStatistics:
    """Statistics of one error array, as evo computes them (``unit``: 'm' or 'deg')."""

    rmse: float
    mean: float
    median: float
    std: float
    min: float
    max: float
    sse: float
    num: int
    unit: str


@dataclass(frozen=True, eq=False)
class TrajectoryEvaluation:
    """ATE and RPE of an estimated trajectory against ground truth.

    ``ate_m`` / ``ate_deg``: absolute translation (m) / rotation (deg) errors after alignment;
    ``rpe_m`` / ``rpe_deg``: relative errors, None when no pose pair was ``rpe_delta`` apart.
    ``gt_from_estimate`` (4x4) with ``scale``: the alignment, p_gt = scale * R p_est + t
    (rotation and translation in the matrix, scale separate; identity and 1 for 'none').
    ``path_length_m`` and ``duration_s`` describe the paired ground-truth poses.
    """

    ate_m: ErrorStatistics
    ate_deg: ErrorStatistics
    rpe_m: ErrorStatistics | None
    rpe_deg: ErrorStatistics | None
    align: Alignment
    scale: float
    gt_from_estimate: np.ndarray
    num_estimate_poses: int
    num_groundtruth_poses: int
    num_matched_poses: int
    path_length_m: float
    duration_s: float
    max_time_diff_s: float
    rpe_delta: float
    rpe_delta_unit: DeltaUnit
    rpe_pairs: RpePairs

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (the alignment matrix as nested lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ErrorStatistics):
                out[f.name] = dataclasses.asdict(value)
            elif isinstance(value, np.ndarray):
                out[f.name] = value.tolist()
            else:
                out[f.name] = value
        return out


# ----------------------------------------------------------------------------- evo bridge


def _to_evo(trajectory: Trajectory, name: str) -> PoseTrajectory3D:
    from evo.core.trajectory import PoseTrajectory3D

    if len(trajectory) == 0:
        raise InputError(f"{name} trajectory is empty")
    poses = np.asarray(trajectory.world_from_body, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or not np.all(np.isfinite(poses)):
        raise InputError(f"{name} poses must be finite (N, 4, 4), got shape {poses.shape}")
    stamps_s = np.asarray(trajectory.stamps_ns, dtype=np.int64) * 1e-9
    return PoseTrajectory3D(poses_se3=list(poses), timestamps=stamps_s, name=name)


def _statistics(metric: PE, unit: str) -> ErrorStatistics:
    stats = metric.get_all_statistics()
    return ErrorStatistics(
        rmse=float(stats["rmse"]),
        mean=float(stats["mean"]),
        median=float(stats["median"]),
        std=float(stats["std"]),
        min=float(stats["min"]),
        max=float(stats["max"]),
        sse=float(stats["sse"]),
        num=len(metric.error),
        unit=unit,
    )


def _ape(gt: PoseTrajectory3D, est: PoseTrajectory3D, relation: str, unit: str) -> ErrorStatistics:
    from evo.core import metrics

    metric = metrics.APE(metrics.PoseRelation(relation))
    metric.process_data((gt, est))
    return _statistics(metric, unit)


def _rpe(
    gt: PoseTrajectory3D,
    est: PoseTrajectory3D,
    relation: str,
    unit: str,
    delta: float,
    delta_unit: DeltaUnit,
    pairs: RpePairs,
) -> ErrorStatistics | None:
    from evo.core import filters, metrics
    from evo.core.units import Unit

    evo_unit = {"frames": Unit.frames, "m": Unit.meters, "deg": Unit.degrees}[delta_unit]
    metric = metrics.RPE(
        metrics.PoseRelation(relation),
        delta=delta,
        delta_unit=evo_unit,
        all_pairs=pairs == "all",
    )
    try:
        metric.process_data((gt, est))
    except filters.FilterException:
        return None
    if pairs == "evo2018" and delta_unit == "m":
        if len(metric.error) < 2:
            return None
        metric.error = metric.error[1:]
    return _statistics(metric, unit)


# ----------------------------------------------------------------------------- public


def evaluate_trajectories(
    estimate: Trajectory,
    groundtruth: Trajectory,
    align: Alignment = "se3",
    max_time_diff_s: float = 0.02,
    time_offset_s: float = 0.0,
    rpe_delta: float = 1.0,
    rpe_delta_unit: DeltaUnit = "frames",
    rpe_pairs: RpePairs = "consecutive",
) -> TrajectoryEvaluation:
    """ATE and RPE of ``estimate`` (world_from_cam poses) against ``groundtruth``.

    ``time_offset_s`` is added to the estimate's stamps for the association only. Raises
    :class:`~slamfront.errors.InputError` when no stamps pair up, when too few poses pair up
    to align, or on an unknown option.
    """
    from evo.core import sync
    from evo.core.geometry import GeometryException

    if align not in ALIGNMENTS:
        raise InputError(f"align must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
    if rpe_delta_unit not in ("frames", "m", "deg"):
        raise InputError(f"rpe_delta_unit must be frames, m or deg, got {rpe_delta_unit!r}")
    if rpe_pairs not in ("consecutive", "all", "evo2018"):
        raise InputError(f"rpe_pairs must be consecutive, all or evo2018, got {rpe_pairs!r}")
    if not 0 < rpe_delta < math.inf:
        raise InputError(f"rpe_delta must be positive and finite, got {rpe_delta}")
    if not 0 <= max_time_diff_s < math.inf:
        raise InputError(f"max_time_diff_s must be >= 0 and finite, got {max_time_diff_s}")
    if not abs(time_offset_s) < 1e9:
        raise InputError(f"time_offset_s must be finite (under 1e9 s), got {time_offset_s}")
    if rpe_delta_unit == "frames" and float(rpe_delta) != int(rpe_delta):
        raise InputError(f"rpe_delta in frames must be a whole number, got {rpe_delta}")
    gt_all = _to_evo(groundtruth, "ground truth")
    est_all = _to_evo(estimate, "estimate")
    try:
        gt, est = sync.associate_trajectories(
            gt_all, est_all, max_diff=max_time_diff_s, offset_2=time_offset_s
        )
    except sync.SyncException as exc:
        raise InputError(
            f"no estimate pose lies within {max_time_diff_s} s of a ground-truth pose "
            f"(estimate {_span(estimate)}, ground truth {_span(groundtruth)}); KITTI files "
            "without a times file are stamped by line index"
        ) from exc
    matched = gt.num_poses
    minimum = {"se3": 3, "sim3": 3, "none": 1}[align]
    if matched < minimum:
        raise InputError(
            f"only {matched} poses pair up within {max_time_diff_s} s; "
            f"{align} alignment needs {minimum}"
        )
    gt_from_estimate = np.eye(4)
    scale = 1.0
    if align != "none":
        try:
            rotation, translation, scale = est.align(gt, correct_scale=align == "sim3")
        except GeometryException as exc:
            raise InputError(f"{align} alignment failed: {exc}") from exc
        gt_from_estimate[:3, :3] = rotation
        gt_from_estimate[:3, 3] = translation
    rpe_args = (float(rpe_delta), rpe_delta_unit, rpe_pairs)
    return TrajectoryEvaluation(
        ate_m=_ape(gt, est, "translation part", "m"),
        ate_deg=_ape(gt, est, "rotation angle in degrees", "deg"),
        rpe_m=_rpe(gt, est, "translation part", "m", *rpe_args),
        rpe_deg=_rpe(gt, est, "rotation angle in degrees", "deg", *rpe_args),
        align=align,
        scale=float(scale),
        gt_from_estimate=gt_from_estimate,
        num_estimate_poses=len(estimate),
        num_groundtruth_poses=len(groundtruth),
        num_matched_poses=matched,
        path_length_m=float(gt.path_length),
        duration_s=float(gt.timestamps[-1] - gt.timestamps[0]),
        max_time_diff_s=float(max_time_diff_s),
        rpe_delta=float(rpe_delta),
        rpe_delta_unit=rpe_delta_unit,
        rpe_pairs=rpe_pairs,
    )


def evaluate_files(
    estimate_path: str | os.PathLike[str],
    groundtruth_path: str | os.PathLike[str],
    align: Alignment = "se3",
    max_time_diff_s: float = 0.02,
    estimate_times: str | os.PathLike[str] | None = None,
    groundtruth_times: str | os.PathLike[str] | None = None,
    **options: Any,
) -> TrajectoryEvaluation:
    """:func:`evaluate_trajectories` on two files (TUM, KITTI or EuRoC csv, detected).

    ``*_times``: times files for KITTI pose files (else they are stamped by line index).
    Other keyword options go to :func:`evaluate_trajectories`.
    """
    estimate = read_trajectory(estimate_path, times_path=estimate_times)
    groundtruth = read_trajectory(groundtruth_path, times_path=groundtruth_times)
    return evaluate_trajectories(
        estimate, groundtruth, align=align, max_time_diff_s=max_time_diff_s, **options
    )


def format_evaluation(result: TrajectoryEvaluation) -> str:
    """A few lines for a terminal: ATE, RPE, pairing and alignment."""

    def row(name: str, stats: ErrorStatistics | None) -> str:
        if stats is None:
            return f"{name:<10} n/a (no pose pair {_delta(result)} apart)"
        return (
            f"{name:<10} rmse {stats.rmse:.4f}  mean {stats.mean:.4f}  "
            f"median {stats.median:.4f}  std {stats.std:.4f}  min {stats.min:.4f}  "
            f"max {stats.max:.4f} {stats.unit}  ({stats.num})"
        )

    align = {"se3": "SE(3) aligned", "sim3": "Sim(3) aligned", "none": "not aligned"}
    lines = [
        f"ATE ({align[result.align]}"
        + (f", scale {result.scale:.4f}" if result.align == "sim3" else "")
        + ")",
        row("  trans", result.ate_m),
        row("  rot", result.ate_deg),
        f"RPE (delta {_delta(result)}, {result.rpe_pairs} pairs)",
        row("  trans", result.rpe_m),
        row("  rot", result.rpe_deg),
        f"paired {result.num_matched_poses} of {result.num_estimate_poses} estimate / "
        f"{result.num_groundtruth_poses} ground-truth poses within {result.max_time_diff_s} s; "
        f"ground truth over them: {result.path_length_m:.3f} m, {result.duration_s:.2f} s",
    ]
    return "\n".join(lines)


def _delta(result: TrajectoryEvaluation) -> str:
    value = int(result.rpe_delta) if result.rpe_delta_unit == "frames" else result.rpe_delta
    return f"{value:g} {result.rpe_delta_unit}"


def _span(trajectory: Trajectory) -> str:
    if len(trajectory) == 0:
        return "empty"
    first, last = trajectory.stamps_ns[0] * 1e-9, trajectory.stamps_ns[-1] * 1e-9
    return f"{len(trajectory)} poses, {first:.3f}..{last:.3f} s"
