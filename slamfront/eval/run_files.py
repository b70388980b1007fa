"""What a run folder (the output of ``slamfront run``) says about evaluating it.

A run folder holds ``config.yaml`` and ``stats.json`` next to the trajectories it wrote
(``trajectory.tum``, ``trajectory_raw.tum``, ``trajectory_map<k>.tum`` and the same in the
KITTI ``.kitti`` / EuRoC ``.csv`` formats) and, when the source has one, ``groundtruth.tum``.
From it: whether the run was monocular (so its scale is arbitrary and it is aligned in
Sim(3)), whether two files handed to ``eval`` are in the wrong order, and the whole
evaluation of a run against its own ground truth.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slamfront.errors import InputError
from slamfront.eval.trajectory_metrics import (
    Alignment,
    TrajectoryEvaluation,
    evaluate_files,
)

RUN_MARKERS = ("stats.json", "config.yaml")
"""Files ``slamfront run`` writes into every run folder."""
_RUN_TRAJECTORY = re.compile(r"trajectory(_raw)?(_map\d+)?\.(tum|kitti|csv)")
_GROUNDTRUTH = re.compile(r"groundtruth\.(tum|kitti|csv)")


@dataclass(frozen=True)
class AlignmentChoice:
    """The alignment ``align='auto'`` resolved to, and why (a phrase for a terminal)."""

    align: Alignment
    reason: str


def run_folder(path: str | os.PathLike[str]) -> Path | None:
    """The run folder holding ``path`` when ``path`` is a file ``slamfront run`` wrote there
    (a trajectory or the ground truth, beside ``stats.json`` or ``config.yaml``), else None."""
    target = Path(path)
    name = target.name
    if not (_RUN_TRAJECTORY.fullmatch(name) or _GROUNDTRUTH.fullmatch(name)):
        return None
    folder = target.parent
    return folder if any((folder / marker).is_file() for marker in RUN_MARKERS) else None


def is_run_estimate(path: str | os.PathLike[str]) -> bool:
    """``path`` is a trajectory a run estimated (not the ground truth it copied)."""
    return run_folder(path) is not None and bool(_RUN_TRAJECTORY.fullmatch(Path(path).name))


def check_order(reference: str | os.PathLike[str], estimate: str | os.PathLike[str]) -> None:
    """InputError when the two files are most likely given in the wrong order: the reference
    is a trajectory a run estimated while the estimate is not (e.g. the ground truth the run
    copied beside it). Two runs' trajectories compared with each other pass."""
    if not is_run_estimate(reference) or is_run_estimate(estimate):
        return
    folder = Path(reference).parent
    markers = " and ".join(m for m in RUN_MARKERS if (folder / m).is_file())
    raise InputError(
        f"{reference} is the trajectory `slamfront run` estimated ({markers} beside it), "
        "given as the reference; the order is REF EST, the reference (ground truth) first as "
        f"in evo_ape and the TUM scripts: slamfront eval {estimate} {reference}"
        " (--no-order-check if this is really meant)"
    )


# the note of a monocular run whose scale the IMU measured (its trajectory is metric)
METRIC_MONO_NOTE = "monocular-inertial: metric scale measured by the IMU"


def run_is_monocular(folder: str | os.PathLike[str]) -> bool | None:
    """Whether the run in ``folder`` tracked monocular (scale arbitrary): from ``stats.json``
    (its ``mode``, or the monocular note; a monocular run the IMU made metric is not), else
    ``config.yaml``'s ``tracker.mode``; None when neither says."""
    root = Path(folder)
    stats_path = root / "stats.json"
    if stats_path.is_file():
        try:
            stats = json.loads(stats_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{stats_path}: cannot read the run's stats: {exc}") from exc
        if isinstance(stats, dict):
            notes = stats.get("notes")
            if isinstance(notes, list) and METRIC_MONO_NOTE in notes:
                return False
            mode = stats.get("mode")
            if isinstance(mode, str):
                return mode.lower() in ("mono", "monocular")
            if isinstance(notes, list) and "frames_read" in stats:
                return any(isinstance(n, str) and n.startswith("monocular") for n in notes)
    config_path = root / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"{config_path}: cannot read the run's config: {exc}") from exc
        tracker = config.get("tracker") if isinstance(config, dict) else None
        mode = tracker.get("mode") if isinstance(tracker, dict) else None
        if mode == "mono":
            return True
        if mode in ("rgbd", "stereo"):
            return False
    return None


def choose_alignment(estimate: str | os.PathLike[str]) -> AlignmentChoice:
    """``align='auto'``: Sim(3) when the run that wrote ``estimate`` was monocular, else
    SE(3)."""
    folder = run_folder(estimate)
    if folder is None:
        return AlignmentChoice("se3", "SE(3): the estimate is not in a run folder to say its mode")
    mono = run_is_monocular(folder)
    if mono:
        return AlignmentChoice("sim3", f"Sim(3): the run was monocular ({folder}/stats.json)")
    if mono is None:
        return AlignmentChoice("se3", f"SE(3): {folder}/ does not say the run's mode")
    return AlignmentChoice("se3", f"SE(3): the run was metric ({folder}/stats.json)")


def kitti_times_beside(path: str | os.PathLike[str]) -> Path | None:
    """``<stem>_times.txt`` next to a ``.kitti`` file (written with it by ``slamfront run``)."""
    target = Path(path)
    if target.suffix != ".kitti":
        return None
    times = target.with_name(f"{target.stem}_times.txt")
    return times if times.is_file() else None


def evaluate_run(folder: str | os.PathLike[str], **options: Any) -> TrajectoryEvaluation | None:
    """``trajectory.tum`` of the run in ``folder`` against its ``groundtruth.tum``, aligned as
    :func:`choose_alignment` says; None when the run has no ground truth or no pose.
    Keyword options go to :func:`~slamfront.eval.trajectory_metrics.evaluate_trajectories`."""
    root = Path(folder)
    reference, estimate = root / "groundtruth.tum", root / "trajectory.tum"
    if not reference.is_file() or not estimate.is_file():
        return None
    if not any(line.strip() and not line.startswith("#") for line in estimate.open()):
        return None
    align = choose_alignment(estimate).align
    return evaluate_files(reference=reference, estimate=estimate, align=align, **options)


__all__ = [
    "AlignmentChoice",
    "check_order",
    "choose_alignment",
    "evaluate_run",
    "is_run_estimate",
    "kitti_times_beside",
    "run_folder",
    "run_is_monocular",
]
