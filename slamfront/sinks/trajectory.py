"""Trajectory files of a run, written as the run goes (a crash keeps every pose so far)."""

from __future__ import annotations

import os
from pathlib import Path

from slamfront.io.trajectory import TumTrajectoryWriter, write_tum_trajectory
from slamfront.types import (
    Frame,
    Keyframe,
    OptimizedPoses,
    TrackingState,
    TrackResult,
    Trajectory,
)


class TrajectorySink:
    """Writes the tracker's pose of every tracked frame to ``path`` (TUM), one flushed line
    each; frames that are lost or still initialising have no pose and are absent.

    With ``raw_path`` (a run with a back end) the same lines also go there, and at ``close``
    ``path`` is rewritten atomically with the final frame poses the back end sent
    (:attr:`OptimizedPoses.frame_trajectory`), as they are; without them it keeps the
    tracker's.
    """

    def __init__(
        self, path: str | os.PathLike[str], raw_path: str | os.PathLike[str] | None = None
    ):
        self.path = Path(path)
        self._writer = TumTrajectoryWriter(self.path)
        self._raw = TumTrajectoryWriter(raw_path) if raw_path is not None else None
        self._final: Trajectory | None = None

    @property
    def poses_written(self) -> int:
        return self._writer.num_written

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        if result.state != TrackingState.OK or result.world_from_cam is None:
            return
        self._writer.write(result.stamp_ns, result.world_from_cam)
        if self._raw is not None:
            self._raw.write(result.stamp_ns, result.world_from_cam)

    def on_keyframe(self, keyframe: Keyframe) -> None:
        return None

    def on_optimized(self, poses: OptimizedPoses) -> None:
        if poses.frame_trajectory is not None:
            self._final = poses.frame_trajectory

    def close(self) -> None:
        self._writer.close()
        if self._raw is None:
            return
        self._raw.close()
        if self._final is not None and len(self._final):
            write_tum_trajectory(self.path, self._final)
