"""Trajectory files of a run, written as the run goes (a crash keeps every pose so far)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slamfront.eval.trajectory_io import TumTrajectoryWriter, write_tum_trajectory
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
    ``path`` is rewritten atomically with the optimised poses: each frame's pose relative to
    its reference keyframe, placed on that keyframe's optimised pose.
    """

    def __init__(
        self, path: str | os.PathLike[str], raw_path: str | os.PathLike[str] | None = None
    ):
        self.path = Path(path)
        self._writer = TumTrajectoryWriter(self.path)
        self._raw = TumTrajectoryWriter(raw_path) if raw_path is not None else None
        self._stamps: list[int] = []
        self._reference_ids: list[int] = []
        self._reference_from_cam: list[np.ndarray] = []
        self._raw_poses: list[np.ndarray] = []
        self._optimized: OptimizedPoses | None = None

    @property
    def poses_written(self) -> int:
        return self._writer.num_written

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        if result.state != TrackingState.OK or result.world_from_cam is None:
            return
        self._writer.write(result.stamp_ns, result.world_from_cam)
        if self._raw is None:
            return
        self._raw.write(result.stamp_ns, result.world_from_cam)
        self._stamps.append(result.stamp_ns)
        self._raw_poses.append(result.world_from_cam)
        if result.reference_keyframe_id is None or result.reference_from_cam is None:
            self._reference_ids.append(-1)  # not placed on a keyframe: keeps the raw pose
            self._reference_from_cam.append(np.eye(4))
        else:
            self._reference_ids.append(result.reference_keyframe_id)
            self._reference_from_cam.append(result.reference_from_cam)

    def on_keyframe(self, keyframe: Keyframe) -> None:
        return None

    def on_optimized(self, poses: OptimizedPoses) -> None:
        self._optimized = poses

    def close(self) -> None:
        self._writer.close()
        if self._raw is None:
            return
        self._raw.close()
        if self._optimized is None or not self._stamps:
            return
        write_tum_trajectory(self.path, self.optimized_trajectory())

    def optimized_trajectory(self) -> Trajectory:
        """Every tracked frame on its reference keyframe's optimised pose (the raw pose where
        the reference is not in the graph)."""
        assert self._optimized is not None
        world_from_keyframe = dict(
            zip(self._optimized.keyframe_ids, self._optimized.world_from_cam, strict=True)
        )
        poses = []
        for ref, ref_from_cam, raw in zip(
            self._reference_ids, self._reference_from_cam, self._raw_poses, strict=True
        ):
            anchor = world_from_keyframe.get(ref)
            poses.append(raw if anchor is None else anchor @ ref_from_cam)
        return Trajectory(np.array(self._stamps, np.int64), np.array(poses))
