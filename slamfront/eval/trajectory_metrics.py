"""Trajectory accuracy: ATE (absolute pose error) and RPE (relative pose error) via evo.

evo is used as a library: ``evo.core.sync`` associates the estimate with the reference by
timestamp, ``PosePath3D.align`` / ``align_origin`` align it and ``evo.core.metrics.APE`` /
``RPE`` compute the errors and their statistics. So the figures are evo's own:
``evo_ape tum REF EST -a`` prints the ATE rmse of ``evaluate_trajectories(reference=REF,
estimate=EST)``. The reference (ground truth) comes first everywhere, as in evo and the TUM
benchmark scripts; the library takes both by keyword so that they cannot be swapped silently.

Conventions of :func:`evaluate_trajectories`:

- association: each reference pose is paired with the estimate pose nearest in time, within
  ``max_time_diff_s`` (0.02 s by default, as for TUM); unpaired poses are left out;
- alignment of the estimate onto the reference: ``se3`` (Umeyama on all paired positions) for
  metric rigs (RGB-D, stereo), ``sim3`` for monocular runs (also corrects the scale), ``none``;
  ``align_origin`` instead moves the estimate's first pose onto the reference's first pose
  (evo's ``--align_origin``; with ``sim3`` the Umeyama scale is applied first, as evo's
  ``-s --align_origin``);
- ATE is APE of the translation part (metres) and of the rotation angle (degrees) after
  alignment. An Umeyama rotation is determined by how far the positions spread across their
  main direction: on a short or straight path it is not (see
  :attr:`TrajectoryEvaluation.rotation_uncertainty_deg`), and then the rotation error is
  also reported with the orientations aligned alone (``ate_deg_orientations``) and a warning
  says so;
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

ILL_CONDITIONED_DEG = 1.0
"""An Umeyama rotation uncertain by more than this, and by more than half the rotation ATE
(which it then may explain), is reported as ill-conditioned."""
TOO_SHORT_RATIO = 3.0
"""A reference whose positions spread less than this many ATEs is too short to align on."""
DENSER_ESTIMATE_RATIO = 1.5
"""An estimate this many times denser in time than its reference suggests a swapped order."""


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
class AlignedPoses:
    """The paired poses after alignment, for plots: one row per pair.

    ``stamps_s`` (N,) reference stamps; ``reference_xyz_m`` / ``estimate_xyz_m`` (N, 3)
    positions in the reference's world frame; ``translation_error_m`` /
    ``rotation_error_deg`` (N,) the ATE of each pair.
    """

    stamps_s: np.ndarray
    reference_xyz_m: np.ndarray
    estimate_xyz_m: np.ndarray
    translation_error_m: np.ndarray
    rotation_error_deg: np.ndarray


@dataclass(frozen=True, eq=False)
class TrajectoryEvaluation:
    """ATE and RPE of an estimated trajectory against a reference (ground truth).

    ``ate_m`` / ``ate_deg``: absolute translation (m) / rotation (deg) errors after alignment;
    ``ate_deg_orientations``: the rotation errors with the orientations aligned alone (the
    rotation closest to every reference-from-estimate orientation), meaningful where the
    alignment's own rotation is not; ``rpe_m`` / ``rpe_deg``: relative errors, None when no
    pose pair was ``rpe_delta`` apart.
    ``reference_from_estimate`` (4x4) with ``scale``: the alignment, p_ref = scale * R p_est + t
    (rotation and translation in the matrix, scale separate; identity and 1 for 'none').
    ``rotation_uncertainty_deg``: how far the alignment's rotation could turn unnoticed, the
    angle whose tangent is the ATE rmse over the reference positions' spread across their
    main direction (0 without an Umeyama alignment); ``rotation_ill_conditioned``: it is large
    enough to explain much of ``ate_deg``, or the path is too short to align on.
    ``warnings``: what makes the figures doubtful (an ill-conditioned alignment, an order that
    looks swapped), one sentence each.
    ``path_length_m`` and ``duration_s`` describe the paired reference poses.
    """

    ate_m: ErrorStatistics
    ate_deg: ErrorStatistics
    ate_deg_orientations: ErrorStatistics
    rpe_m: ErrorStatistics | None
    rpe_deg: ErrorStatistics | None
    align: Alignment
    align_origin: bool
    scale: float
    reference_from_estimate: np.ndarray
    rotation_uncertainty_deg: float
    rotation_ill_conditioned: bool
    warnings: tuple[str, ...]
    num_reference_poses: int
    num_estimate_poses: int
    num_matched_poses: int
    path_length_m: float
    duration_s: float
    max_time_diff_s: float
    rpe_delta: float
    rpe_delta_unit: DeltaUnit
    rpe_pairs: RpePairs
    aligned: AlignedPoses

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (the alignment matrix as nested lists; the
        per-pose arrays of ``aligned`` are left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, AlignedPoses):
                continue
            if isinstance(value, ErrorStatistics):
                out[f.name] = dataclasses.asdict(value)
            elif isinstance(value, np.ndarray):
                out[f.name] = value.tolist()
            elif isinstance(value, tuple):
                out[f.name] = list(value)
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


def _ape(
    ref: PoseTrajectory3D, est: PoseTrajectory3D, relation: str, unit: str
) -> tuple[ErrorStatistics, np.ndarray]:
    from evo.core import metrics

    metric = metrics.APE(metrics.PoseRelation(relation))
    metric.process_data((ref, est))
    return _statistics(metric, unit), np.asarray(metric.error, dtype=np.float64)


def _rpe(
    ref: PoseTrajectory3D,
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
        metric.process_data((ref, est))
    except filters.FilterException:
        return None
    if pairs == "evo2018" and delta_unit == "m":
        if len(metric.error) < 2:
            return None
        metric.error = metric.error[1:]
    return _statistics(metric, unit)


def _orientation_errors(ref: PoseTrajectory3D, est: PoseTrajectory3D) -> ErrorStatistics:
    """Rotation errors after the one rotation that best maps the estimate's orientations onto
    the reference's (the SO(3) projection of the sum of ref_R est_R^T), positions unused."""
    ref_rot = np.asarray(ref.poses_se3)[:, :3, :3]
    est_rot = np.asarray(est.poses_se3)[:, :3, :3]
    total = np.einsum("nij,nkj->ik", ref_rot, est_rot)
    u, _, vt = np.linalg.svd(total)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    ref_from_est = u @ fix @ vt
    residual = np.einsum("nji,jk,nkl->nil", ref_rot, ref_from_est, est_rot)
    cos = np.clip((np.trace(residual, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    errors = np.degrees(np.arccos(cos))
    return ErrorStatistics(
        rmse=float(np.sqrt(np.mean(errors**2))),
        mean=float(np.mean(errors)),
        median=float(np.median(errors)),
        std=float(np.std(errors)),
        min=float(np.min(errors)),
        max=float(np.max(errors)),
        sse=float(np.sum(errors**2)),
        num=int(errors.size),
        unit="deg",
    )


def _spreads_m(reference_xyz_m: np.ndarray) -> tuple[float, float]:
    """RMS distance of the positions from their centroid, and from their main line."""
    centred = reference_xyz_m - reference_xyz_m.mean(axis=0)
    variances = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(centred)))[::-1]
    variances = np.clip(variances, 0.0, None)
    return float(np.sqrt(variances.sum())), float(np.sqrt(variances[1] + variances[2]))


def _ill_conditioned(
    ate_m: float, ate_deg: float, spread_m: float, uncertainty_deg: float
) -> tuple[bool, str]:
    """Whether an Umeyama alignment's rotation means little, and why ('too short': the
    positions spread about as much as their error; 'too straight': the rotation about the
    path's main direction could explain much of the rotation ATE)."""
    if spread_m < TOO_SHORT_RATIO * ate_m:
        return True, "too short"
    if uncertainty_deg > max(ILL_CONDITIONED_DEG, 0.5 * ate_deg):
        return True, "too short or straight"
    return False, ""


def _alignment_warning(
    ate_m: float, ate_deg: float, spread_m: float, across_m: float, why: str, align: str
) -> str:
    name = {"se3": "SE(3)", "sim3": "Sim(3)"}[align]
    uncertainty_deg = math.degrees(math.atan2(ate_m, across_m))
    return (
        f"the reference positions spread {format_length_m(spread_m)} "
        f"({format_length_m(across_m)} across their main direction) for an ATE of "
        f"{format_length_m(ate_m)}: the path is {why} for the {name} alignment to fix its "
        f"rotation, uncertain by about {three_significant(uncertainty_deg)} deg against a "
        f"rotation ATE of {three_significant(ate_deg)} deg; the rotation ATE is also given "
        "with the orientations aligned alone (rot*); aligning the first poses instead "
        "(--align-origin, evo's --align_origin) does not depend on the path"
    )


def _density_warning(reference: Trajectory, estimate: Trajectory) -> list[str]:
    """A note when the estimate is much denser in time than the reference: ground truth
    usually is the denser one (a motion-capture rate against a camera's), so the two may be
    swapped."""

    def rate_hz(trajectory: Trajectory) -> float:
        span_s = (int(trajectory.stamps_ns[-1]) - int(trajectory.stamps_ns[0])) * 1e-9
        return (len(trajectory) - 1) / span_s if span_s > 0 else 0.0

    ref_hz, est_hz = rate_hz(reference), rate_hz(estimate)
    if len(estimate) > len(reference) and est_hz > DENSER_ESTIMATE_RATIO * ref_hz > 0:
        return [
            f"the estimate has {len(estimate)} poses at {est_hz:.3g} Hz, the reference "
            f"{len(reference)} at {ref_hz:.3g} Hz: ground truth is usually the denser one; "
            "check the order (reference first, as evo and the TUM scripts)"
        ]
    return []


# ----------------------------------------------------------------------------- public


def evaluate_trajectories(
    *,
    reference: Trajectory,
    estimate: Trajectory,
    align: Alignment = "se3",
    align_origin: bool = False,
    max_time_diff_s: float = 0.02,
    time_offset_s: float = 0.0,
    rpe_delta: float = 1.0,
    rpe_delta_unit: DeltaUnit = "frames",
    rpe_pairs: RpePairs = "consecutive",
) -> TrajectoryEvaluation:
    """ATE and RPE of ``estimate`` (world_from_cam poses) against ``reference``.

    ``time_offset_s`` is added to the estimate's stamps for the association only. Raises
    :class:`~slamfront.errors.InputError` when no stamps pair up, when too few poses pair up
    to align, or on an unknown option.
    """
    from evo.core import sync
    from evo.core.geometry import GeometryException

    if align not in ALIGNMENTS:
        raise InputError(f"align must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
    if align_origin and align == "none":
        raise InputError("align_origin is an alignment: give it with align se3 or sim3")
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
    ref_all = _to_evo(reference, "reference")
    est_all = _to_evo(estimate, "estimate")
    try:
        ref, est = sync.associate_trajectories(
            ref_all, est_all, max_diff=max_time_diff_s, offset_2=time_offset_s
        )
    except sync.SyncException as exc:
        raise InputError(
            f"no estimate pose lies within {max_time_diff_s} s of a reference pose "
            f"(estimate {_span(estimate)}, reference {_span(reference)}); KITTI files "
            "without a times file are stamped by line index"
        ) from exc
    matched = ref.num_poses
    minimum = 1 if align == "none" or (align_origin and align == "se3") else 3
    if matched < minimum:
        raise InputError(
            f"only {matched} poses pair up within {max_time_diff_s} s; "
            f"{align} alignment needs {minimum}"
        )
    reference_from_estimate = np.eye(4)
    scale = 1.0
    try:
        if align_origin:
            if align == "sim3":
                _, _, scale = est.align(ref, correct_scale=True, correct_only_scale=True)
            reference_from_estimate = np.asarray(est.align_origin(ref), dtype=np.float64)
        elif align != "none":
            rotation, translation, scale = est.align(ref, correct_scale=align == "sim3")
            reference_from_estimate[:3, :3] = rotation
            reference_from_estimate[:3, 3] = translation
    except GeometryException as exc:
        raise InputError(f"{align} alignment failed: {exc}") from exc
    ate_m, trans_errors = _ape(ref, est, "translation part", "m")
    ate_deg, rot_errors = _ape(ref, est, "rotation angle in degrees", "deg")
    warnings = _density_warning(reference, estimate)
    uncertainty_deg, ill_conditioned = 0.0, False
    if align != "none" and not align_origin:
        spread_m, across_m = _spreads_m(ref.positions_xyz)
        uncertainty_deg = math.degrees(math.atan2(ate_m.rmse, across_m))
        ill_conditioned, why = _ill_conditioned(ate_m.rmse, ate_deg.rmse, spread_m, uncertainty_deg)
        if ill_conditioned:
            warnings.append(
                _alignment_warning(ate_m.rmse, ate_deg.rmse, spread_m, across_m, why, align)
            )
    rpe_args = (float(rpe_delta), rpe_delta_unit, rpe_pairs)
    return TrajectoryEvaluation(
        ate_m=ate_m,
        ate_deg=ate_deg,
        ate_deg_orientations=_orientation_errors(ref, est),
        rpe_m=_rpe(ref, est, "translation part", "m", *rpe_args),
        rpe_deg=_rpe(ref, est, "rotation angle in degrees", "deg", *rpe_args),
        align=align,
        align_origin=align_origin,
        scale=float(scale),
        reference_from_estimate=reference_from_estimate,
        rotation_uncertainty_deg=uncertainty_deg,
        rotation_ill_conditioned=ill_conditioned,
        warnings=tuple(warnings),
        num_reference_poses=len(reference),
        num_estimate_poses=len(estimate),
        num_matched_poses=matched,
        path_length_m=float(ref.path_length),
        duration_s=float(ref.timestamps[-1] - ref.timestamps[0]),
        max_time_diff_s=float(max_time_diff_s),
        rpe_delta=float(rpe_delta),
        rpe_delta_unit=rpe_delta_unit,
        rpe_pairs=rpe_pairs,
        aligned=AlignedPoses(
            stamps_s=np.asarray(ref.timestamps, dtype=np.float64),
            reference_xyz_m=np.asarray(ref.positions_xyz, dtype=np.float64),
            estimate_xyz_m=np.asarray(est.positions_xyz, dtype=np.float64),
            translation_error_m=trans_errors,
            rotation_error_deg=rot_errors,
        ),
    )


def evaluate_files(
    *,
    reference: str | os.PathLike[str],
    estimate: str | os.PathLike[str],
    reference_times: str | os.PathLike[str] | None = None,
    estimate_times: str | os.PathLike[str] | None = None,
    **options: Any,
) -> TrajectoryEvaluation:
    """:func:`evaluate_trajectories` on two files (TUM, KITTI or EuRoC csv, detected).

    ``*_times``: times files for KITTI pose files (else they are stamped by line index).
    Other keyword options go to :func:`evaluate_trajectories`.
    """
    return evaluate_trajectories(
        reference=read_trajectory(reference, times_path=reference_times),
        estimate=read_trajectory(estimate, times_path=estimate_times),
        **options,
    )


# ----------------------------------------------------------------------------- printing


def format_length_m(value_m: float) -> str:
    """A length with three significant figures, in millimetres below a metre:
    ``0.264 mm``, ``13.4 mm``, ``181 mm``, ``2.35 m``."""
    if not math.isfinite(value_m):
        return f"{value_m} m"
    if abs(value_m) < 1.0:
        return f"{three_significant(value_m * 1e3)} mm"
    return f"{three_significant(value_m)} m"


def three_significant(value: float) -> str:
    """``value`` to three significant figures, without an exponent for ordinary magnitudes
    (``0.00123``, ``13.4``, ``181``)."""
    if value == 0 or not 1e-4 <= abs(value) < 1e5:
        return f"{value:.3g}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def format_evaluation(result: TrajectoryEvaluation) -> str:
    """A few lines for a terminal: ATE, RPE, pairing, alignment and any warnings; lengths in
    millimetres below a metre, every figure to three significant figures."""

    def row(name: str, stats: ErrorStatistics | None, note: str = "") -> str:
        if stats is None:
            return f"{name:<9} n/a (no pose pair {_delta(result)} apart)"
        millimetres = stats.unit == "m" and abs(stats.rmse) < 1.0
        factor, unit = (1e3, "mm") if millimetres else (1.0, stats.unit)
        figures = "  ".join(
            f"{label} {three_significant(getattr(stats, label) * factor)}"
            for label in ("mean", "median", "std", "min", "max")
        )
        return (
            f"{name:<9} rmse {three_significant(stats.rmse * factor)} {unit}  ({figures} {unit}; "
            f"{stats.num} poses){note}"
        )

    how = {"se3": "SE(3)", "sim3": "Sim(3)", "none": "not"}[result.align]
    title = "origin aligned" if result.align_origin else f"{how} aligned"
    if result.align == "sim3":
        title += f", scale {result.scale:.4f}"
    lines = [f"ATE ({title})", row("  trans", result.ate_m)]
    if result.rotation_ill_conditioned:
        lines += [
            row("  rot", result.ate_deg, "  the alignment's rotation is ill-conditioned"),
            row("  rot*", result.ate_deg_orientations, "  orientations aligned alone"),
        ]
    else:
        lines.append(row("  rot", result.ate_deg))
    lines += [
        f"RPE (delta {_delta(result)}, {result.rpe_pairs} pairs)",
        row("  trans", result.rpe_m),
        row("  rot", result.rpe_deg),
        f"paired {result.num_matched_poses} of {result.num_estimate_poses} estimate / "
        f"{result.num_reference_poses} reference poses within {result.max_time_diff_s} s; "
        f"reference over them: {format_length_m(result.path_length_m)} path, "
        f"{three_significant(result.duration_s)} s",
    ]
    lines += [f"warning: {text}" for text in result.warnings]
    return "\n".join(lines)


def _delta(result: TrajectoryEvaluation) -> str:
    value = int(result.rpe_delta) if result.rpe_delta_unit == "frames" else result.rpe_delta
    return f"{value:g} {result.rpe_delta_unit}"


def _span(trajectory: Trajectory) -> str:
    if len(trajectory) == 0:
        return "empty"
    first, last = trajectory.stamps_ns[0] * 1e-9, trajectory.stamps_ns[-1] * 1e-9
    return f"{len(trajectory)} poses, {first:.3f}..{last:.3f} s"
