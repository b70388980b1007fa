"""Trajectory files of a run, written as the run goes (a crash keeps every pose so far)."""

from __future__ import annotations

import os
from pathlib import Path

from slamfront.eval.trajectory_io import TumTrajectoryWriter
from slamfront.types import Frame, Keyframe, OptimizedPoses, TrackingState, TrackResult


class TrajectorySink:
    """Writes the tracker's pose of every tracked frame to a TUM file, one flushed line each.

    Frames that are lost or still initialising have no pose and are absent from the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._writer = TumTrajectoryWriter(self.path)

    @property
    def poses_written(self) -> int:
        return self._writer.num_written

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        if result.state == TrackingState.OK and result.world_from_cam is not None:
            self._writer.write(result.stamp_ns, result.world_from_cam)

    def on_keyframe(self, keyframe: Keyframe) -> None:
        return None

    def on_optimized(self, poses: OptimizedPoses) -> None:
        return None

    def close(self) -> None:
        self._writer.close()
