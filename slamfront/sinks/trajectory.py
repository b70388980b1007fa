"""Trajectory files of a run, written as the run goes (a crash keeps every pose so far)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slamfront.io.trajectory import TumTrajectoryWriter, read_tum_trajectory, write_tum_trajectory
from slamfront.types import (
    Frame,
    Keyframe,
    OptimizedPoses,
    TrackingState,
    TrackResult,
    Trajectory,
)

# a propagated pose is the IMU's estimate, not an invented one
_WITH_POSE = (TrackingState.OK, TrackingState.IMU_PROPAGATED)


class TrajectorySink:
    """Writes the tracker's pose of every tracked frame, one flushed TUM line each; frames
    that are lost or still initialising have no pose and are absent.

    Each map has a file of its own, so that no file mixes poses of unrelated frames: poses of
    the first map go to ``path``, those of map ``k`` to ``<stem>_map<k>.tum`` beside it. At
    ``close`` ``path`` holds the map the run ended in (maps merged into it included, in its
    frame) and every other map keeps a file of its own.

    At ``close`` the files are rewritten atomically with the final frame poses the run sent
    (:attr:`OptimizedPoses.frame_trajectory`: the back end's, or a monocular-inertial map's
    at its measured scale), as they are. With ``raw_path`` (a run with a back end) the
    tracker's own poses also go there, per map the same way, and stay.
    """

    def __init__(
        self, path: str | os.PathLike[str], raw_path: str | os.PathLike[str] | None = None
    ):
        self.path = Path(path)
        self._raw_path = Path(raw_path) if raw_path is not None else None
        self._writers: dict[int, TumTrajectoryWriter] = {0: TumTrajectoryWriter(self.path)}
        self._raw: dict[int, TumTrajectoryWriter] = {}
        if self._raw_path is not None:
            self._raw[0] = TumTrajectoryWriter(self._raw_path)
        self._final: OptimizedPoses | None = None
        self._last_map_id = 0

    @property
    def poses_written(self) -> int:
        return sum(writer.num_written for writer in self._writers.values())

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        if result.world_from_cam is None or result.state not in _WITH_POSE:
            return
        map_id = result.map_id
        self._last_map_id = map_id
        _writer(self._writers, self.path, map_id).write(result.stamp_ns, result.world_from_cam)
        if self._raw_path is not None:
            _writer(self._raw, self._raw_path, map_id).write(result.stamp_ns, result.world_from_cam)

    def on_keyframe(self, keyframe: Keyframe) -> None:
        return None

    def on_optimized(self, poses: OptimizedPoses) -> None:
        if poses.frame_trajectory is not None:
            self._final = poses

    def close(self) -> None:
        for writer in [*self._writers.values(), *self._raw.values()]:
            writer.close()
        final = self._final
        if final is not None and final.frame_trajectory is not None and len(final.frame_trajectory):
            trajectory = final.frame_trajectory
            map_ids = final.frame_map_ids
            if map_ids is None:
                map_ids = np.zeros(len(trajectory), np.int64)
            by_map = {int(m): _subset(trajectory, map_ids == m) for m in np.unique(map_ids)}
            self._publish(self.path, set(self._writers), by_map, int(map_ids[-1]))
            if self._raw_path is None:
                return
            raw = {  # a map of the run may have no pose of its own (a saved map's)
                m: read_tum_trajectory(_map_path(self._raw_path, m))
                for m, writer in self._raw.items()
                if writer.num_written
            }
            self._publish(self._raw_path, set(self._raw), raw, self._last_map_id)
        else:
            for path, written in ((self.path, self._writers), (self._raw_path, self._raw)):
                if path is not None and self._last_map_id != 0 and written:
                    _swap_into_main(path, self._last_map_id)

    def _publish(
        self, path: Path, written: set[int], by_map: dict[int, Trajectory], final_map: int
    ) -> None:
        """``path`` takes ``final_map``'s poses, ``<stem>_map<k>.tum`` every other map's; files
        written for maps that merged away are removed."""
        for map_id, trajectory in by_map.items():
            target = path if map_id == final_map else _map_path(path, map_id)
            write_tum_trajectory(target, trajectory)
        for map_id in written | {0}:
            stale = _map_path(path, map_id)
            if stale != path and (map_id not in by_map or map_id == final_map):
                stale.unlink(missing_ok=True)
        if final_map not in by_map:
            write_tum_trajectory(path, Trajectory(np.zeros(0, np.int64), np.zeros((0, 4, 4))))


def _map_path(path: Path, map_id: int) -> Path:
    """Where map ``map_id``'s poses go while the run goes (map 0: ``path`` itself)."""
    return path if map_id == 0 else path.with_name(f"{path.stem}_map{map_id}{path.suffix}")


def _writer(
    writers: dict[int, TumTrajectoryWriter], path: Path, map_id: int
) -> TumTrajectoryWriter:
    if map_id not in writers:
        writers[map_id] = TumTrajectoryWriter(_map_path(path, map_id))
    return writers[map_id]


def _swap_into_main(path: Path, final_map: int) -> None:
    """Without final poses: ``path`` takes the final map's file, map 0 a file of its own."""
    first = path.with_name(f"{path.stem}_map0{path.suffix}")
    os.replace(path, first)
    os.replace(_map_path(path, final_map), path)


def _subset(trajectory: Trajectory, mask: np.ndarray) -> Trajectory:
    return Trajectory(trajectory.stamps_ns[mask], trajectory.world_from_body[mask])
