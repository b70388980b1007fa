"""A picture of a trajectory evaluation: top view of estimate and reference, error over time.

matplotlib is imported only here, only when a plot is drawn, and used through its
object-oriented API on an Agg canvas: no pyplot, no global backend switch, no window.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slamfront.eval.trajectory_metrics import TrajectoryEvaluation, format_length_m
from slamfront.io.atomic import open_temp

_AXES = ("x", "y", "z")


def top_view_axes(reference_xyz_m: np.ndarray) -> tuple[int, int]:
    """The two world axes along which the reference moves most (the one it moves least along
    is the view direction), in increasing order."""
    extent = np.ptp(reference_xyz_m, axis=0)
    first, second = sorted(int(i) for i in np.argsort(extent)[1:])
    return first, second


def plot_evaluation(
    result: TrajectoryEvaluation, path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Write a PNG of ``result``: left, the aligned estimate over the reference seen along the
    axis they move least; right, the translation error of each pose over time. Atomic
    (a temporary file renamed over ``path``); returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    poses = result.aligned
    a, b = top_view_axes(poses.reference_xyz_m)
    figure = Figure(figsize=(12.0, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    top, errors = figure.subplots(1, 2, width_ratios=(1.0, 1.3))
    ref, est = poses.reference_xyz_m, poses.estimate_xyz_m
    top.plot(ref[:, a], ref[:, b], color="0.6", lw=3.0, label="reference")  # visible under
    top.plot(est[:, a], est[:, b], color="tab:blue", lw=1.2, label="estimate (aligned)")
    top.plot(ref[0, a], ref[0, b], "o", color="0.3", ms=6, label="start")
    top.set_xlabel(f"{_AXES[a]} [m]")
    top.set_ylabel(f"{_AXES[b]} [m]")
    top.set_aspect("equal", adjustable="datalim")
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize="small")
    top.set_title(f"top view (seen along {_AXES[3 - a - b]})")
    millimetres = result.ate_m.rmse < 1.0
    factor, unit = (1e3, "mm") if millimetres else (1.0, "m")
    seconds = poses.stamps_s - poses.stamps_s[0]
    errors.plot(seconds, poses.translation_error_m * factor, color="tab:red", lw=1.0)
    errors.axhline(result.ate_m.rmse * factor, color="0.3", ls="--", lw=1.0)
    errors.set_xlabel("time since the first pose [s]")
    errors.set_ylabel(f"translation error [{unit}]")
    errors.set_ylim(bottom=0.0)
    errors.grid(True, alpha=0.3)
    how = (
        "origin"
        if result.align_origin
        else {"se3": "SE(3)", "sim3": "Sim(3)"}.get(result.align, "no")
    )
    errors.set_title(
        f"ATE rmse {format_length_m(result.ate_m.rmse)} (dashed), {how} alignment, "
        f"{result.num_matched_poses} poses"
    )
    if title:
        figure.suptitle(title)
    target = Path(path)
    fd, tmp = open_temp(target, ".tmp.png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=100)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


__all__ = ["plot_evaluation", "top_view_axes"]
