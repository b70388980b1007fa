"""Trajectory files of a run, written as the run goes (a crash keeps every pose so far)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from slamfront.geometry import invert_pose
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
    ``path`` is rewritten atomically with the optimised poses: each frame's pose relative to
    its reference keyframe, placed on that keyframe's optimised pose, then, when the back end
    bundle-adjusted the landmarks, refitted (motion-only, from that placement) on the adjusted
    positions of the landmarks the tracker solved the frame's pose on, with the depths the
    frame's depth image measured at them (RGB-D; weighed as the final adjustment weighed its
    keyframes' depths). The placement keeps the tracker's error relative to the keyframe; the
    refit takes it out (sim loop, fast preset, RGB-D seeds 0-2: ATE 0.26 / 0.29 / 0.23 mm;
    refitted on pixels alone 0.45 / 0.43 / 0.39, only placed 0.42 / 0.43 / 0.41; stereo frames
    measure no depth: 0.54 mm, as placed).
    Those observations (about 1000 per frame, 20 bytes each) wait in an anonymous temporary
    file, not in memory, so a long run's memory does not grow with them.
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
        self._observations = _ObservationFile() if raw_path is not None else None
        self._camera_k: np.ndarray | None = None

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
        assert self._observations is not None
        self._observations.append(
            result.landmark_ids, result.landmark_pixels, result.landmark_depths_m
        )

    def on_keyframe(self, keyframe: Keyframe) -> None:
        if self._camera_k is None:
            self._camera_k = keyframe.camera.K  # the pinhole camera of the tracked keypoints

    def on_optimized(self, poses: OptimizedPoses) -> None:
        self._optimized = poses

    def close(self) -> None:
        self._writer.close()
        if self._raw is None:
            return
        self._raw.close()
        try:
            if self._optimized is not None and self._stamps:
                write_tum_trajectory(self.path, self.optimized_trajectory())
        finally:
            assert self._observations is not None
            self._observations.close()

    def optimized_trajectory(self) -> Trajectory:
        """Every tracked frame on its reference keyframe's optimised pose (the raw pose where
        the reference is not in the graph), refitted on the adjusted landmarks if any."""
        assert self._optimized is not None and self._observations is not None
        optimized = self._optimized
        world_from_keyframe = dict(
            zip(optimized.keyframe_ids, optimized.world_from_cam, strict=True)
        )
        poses = []
        for index, (ref, ref_from_cam, raw) in enumerate(
            zip(self._reference_ids, self._reference_from_cam, self._raw_poses, strict=True)
        ):
            anchor = world_from_keyframe.get(ref)
            if anchor is None:
                poses.append(raw)
                continue
            pose = anchor @ ref_from_cam
            if optimized.landmark_ids is not None:
                pose = self._refitted(pose, *self._observations.read(index))
            poses.append(pose)
        return Trajectory(np.array(self._stamps, np.int64), np.array(poses))

    def _refitted(
        self,
        world_from_cam: np.ndarray,
        landmark_ids: np.ndarray,
        pixels: np.ndarray,
        depths_m: np.ndarray,
    ) -> np.ndarray:
        """``world_from_cam`` refitted on the adjusted positions of the landmarks it saw
        (with the depths the frame measured there, weighed as the final adjustment weighed
        its keyframes'); unchanged when too few are known, most do not agree, or the fit
        moves far."""
        from slamfront.frontend.local_map import rows_in
        from slamfront.frontend.pose import refine_pose

        optimized = self._optimized
        if (
            optimized is None
            or optimized.landmark_ids is None
            or optimized.landmarks_world_m is None
            or self._camera_k is None
            or len(optimized.landmark_ids) == 0
        ):
            return world_from_cam
        rows = rows_in(optimized.landmark_ids, landmark_ids)
        known = rows >= 0
        if int(known.sum()) < _MIN_REFIT_POINTS:
            return world_from_cam
        estimate = refine_pose(
            invert_pose(world_from_cam),
            optimized.landmarks_world_m[rows[known]],
            pixels[known].astype(np.float64),
            self._camera_k,
            huber_px=1.0,
            inlier_px=2.0,
            # from the placement, two steps and one re-selection of inliers do it (sim loop,
            # four runs: the ATE of 3 rounds of 5 to 0.001 mm, in 1.0 instead of 1.7 s)
            iterations=2,
            rounds=2,
            depths_m=depths_m[known].astype(np.float64),
            range_baseline_m=optimized.range_baseline_m or 0.0,
        )
        refitted = invert_pose(estimate.cam_from_world)
        moved_m = float(np.linalg.norm(refitted[:3, 3] - world_from_cam[:3, 3]))
        if estimate.num_inliers < max(_MIN_REFIT_POINTS, known.sum() // 2) or moved_m > 0.05:
            return world_from_cam
        return refitted


_MIN_REFIT_POINTS = 20
"""A frame refits on the adjusted landmarks only if at least this many of its are known."""


class _ObservationFile:
    """Per frame, the ids (int64), pixels (float32) and measured depths (float32, 0: none) of
    the landmarks its pose was solved on, appended to an anonymous temporary file (gone when
    closed or when the process ends); ``read(i)`` returns frame ``i``'s arrays (empty for a
    frame that had none)."""

    _BYTES = 8 + 2 * 4 + 4  # per observation

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._spans: list[tuple[int, int]] = []  # (byte offset, count) per frame
        self._end = 0

    def append(
        self,
        landmark_ids: np.ndarray | None,
        pixels: np.ndarray | None,
        depths_m: np.ndarray | None = None,
    ) -> None:
        if landmark_ids is None or pixels is None:
            self._spans.append((self._end, 0))
            return
        if depths_m is None:
            depths_m = np.zeros(len(landmark_ids), np.float32)
        data = (
            landmark_ids.astype(np.int64).tobytes()
            + pixels.astype(np.float32).tobytes()
            + depths_m.astype(np.float32).tobytes()
        )
        self._file.seek(self._end)
        self._file.write(data)
        self._spans.append((self._end, len(landmark_ids)))
        self._end += len(data)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        offset, count = self._spans[index]
        self._file.seek(offset)
        data = self._file.read(count * self._BYTES)
        ids = np.frombuffer(data, np.int64, count)
        pixels = np.frombuffer(data, np.float32, 2 * count, offset=8 * count).reshape(count, 2)
        depths_m = np.frombuffer(data, np.float32, count, offset=16 * count)
        return ids, pixels, depths_m

    def close(self) -> None:
        self._file.close()
