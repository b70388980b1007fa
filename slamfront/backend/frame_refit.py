"""The final pose of every tracked frame, the last step of the back end's final optimisation.

Each frame is placed on its reference keyframe's optimised pose (which keeps the tracker's
error relative to that keyframe), then, when the final adjustment placed the landmarks,
refitted (motion only) on the adjusted positions of the landmarks the tracker solved it on,
which takes that error out. :class:`TrackedFrames` collects what this needs while the run goes;
:func:`refit_frames` computes the poses at the end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from slamfront.frontend.pose import refine_pose
from slamfront.geometry import invert_pose
from slamfront.ids import rows_in
from slamfront.types import OptimizedPoses, TrackingState, TrackResult, Trajectory

_WITH_POSE = (TrackingState.OK, TrackingState.IMU_PROPAGATED)
"""States whose pose is kept (an IMU-propagated one is placed on its reference keyframe)."""

_MIN_REFIT_POINTS = 20
"""A frame is refitted only if at least this many of its landmarks were adjusted."""

_MAX_REFIT_MOVE_M = 0.05
"""A refit that moves the frame further than this from its placement is not trusted."""


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """What a tracked frame's final pose is made from."""

    stamp_ns: int
    world_from_cam: np.ndarray
    """4x4 float64 the tracker's pose."""
    reference_keyframe_id: int | None
    """The keyframe the pose was tracked against (None: the frame keeps the tracker's pose)."""
    reference_from_cam: np.ndarray
    """4x4 float64 the pose in that keyframe's camera (identity without a reference)."""
    landmark_ids: np.ndarray
    """(M,) int64 the landmarks the pose was solved on (empty when none were given)."""
    landmark_pixels: np.ndarray
    """(M, 2) float32 where the frame sees them (undistorted pixels)."""
    landmark_depths_m: np.ndarray
    """(M,) float32 the frame's measured depth at them, 0 where none."""
    map_id: int = 0
    """The map the frame was tracked in."""


class TrackedFrames:
    """The run's tracked frames in tracking order: ``append`` each result, iterate at the end.

    They wait in an anonymous temporary file (opened at the first frame, gone when closed or
    when the process ends), not in memory, so a long run's memory does not grow with them.
    Results without a pose (lost, initialising) are not kept.
    """

    _HEADER = np.dtype(
        [
            ("stamp_ns", "<i8"),
            ("reference_keyframe_id", "<i8"),  # -1: none
            ("count", "<i8"),
            ("map_id", "<i8"),
            ("world_from_cam", "<f8", (4, 4)),
            ("reference_from_cam", "<f8", (4, 4)),
        ]
    )
    _BYTES_PER_OBSERVATION = 8 + 2 * 4 + 4  # id int64, pixel 2 x float32, depth float32

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, result: TrackResult) -> None:
        if result.world_from_cam is None or result.state not in _WITH_POSE:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._file.seek(0, os.SEEK_END)
        placed = result.reference_keyframe_id is not None and result.reference_from_cam is not None
        ids, pixels, depths_m = (
            result.landmark_ids,
            result.landmark_pixels,
            result.landmark_depths_m,
        )
        if ids is None or pixels is None:
            ids, pixels = np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        if depths_m is None:
            depths_m = np.zeros(len(ids), np.float32)
        header = np.zeros((), self._HEADER)
        header["stamp_ns"] = result.stamp_ns
        header["reference_keyframe_id"] = result.reference_keyframe_id if placed else -1
        header["count"] = len(ids)
        header["map_id"] = result.map_id
        header["world_from_cam"] = result.world_from_cam
        header["reference_from_cam"] = result.reference_from_cam if placed else np.eye(4)
        self._file.write(
            header.tobytes()
            + ids.astype("<i8").tobytes()
            + pixels.astype("<f4").tobytes()
            + depths_m.astype("<f4").tobytes()
        )
        self._count += 1

    def __iter__(self) -> Iterator[TrackedFrame]:
        if self._file is None:
            return
        offset = 0
        for _ in range(self._count):
            self._file.seek(offset)
            header = np.frombuffer(self._file.read(self._HEADER.itemsize), self._HEADER)[0]
            count = int(header["count"])
            data = self._file.read(count * self._BYTES_PER_OBSERVATION)
            offset += self._HEADER.itemsize + len(data)
            reference = int(header["reference_keyframe_id"])
            yield TrackedFrame(
                stamp_ns=int(header["stamp_ns"]),
                world_from_cam=np.array(header["world_from_cam"]),
                reference_keyframe_id=reference if reference >= 0 else None,
                reference_from_cam=np.array(header["reference_from_cam"]),
                landmark_ids=np.frombuffer(data, "<i8", count),
                landmark_pixels=np.frombuffer(data, "<f4", 2 * count, 8 * count).reshape(count, 2),
                landmark_depths_m=np.frombuffer(data, "<f4", count, 16 * count),
                map_id=int(header["map_id"]),
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def refit_frames(
    frames: Iterable[TrackedFrame], poses: OptimizedPoses, camera_k: np.ndarray | None
) -> tuple[Trajectory, np.ndarray]:
    """The final pose of each of ``frames`` and the map it is in after the merges: on its
    reference keyframe's pose in ``poses`` (the tracker's pose where that keyframe is not
    among them), then, when ``poses`` carry adjusted landmarks, refitted from there on them
    (see :func:`_refitted`) with the pinhole ``camera_k`` (3x3) of the tracked keypoints."""
    world_from_keyframe = dict(zip(poses.keyframe_ids, poses.world_from_cam, strict=True))
    stamps_ns: list[int] = []
    map_ids: list[int] = []
    world_from_cam: list[np.ndarray] = []
    for frame in frames:
        stamps_ns.append(frame.stamp_ns)
        map_ids.append(poses.merged_map_of(frame.map_id))
        reference = frame.reference_keyframe_id
        anchor = world_from_keyframe.get(reference) if reference is not None else None
        if anchor is None:
            world_from_cam.append(frame.world_from_cam)
            continue
        placed = anchor @ frame.reference_from_cam
        world_from_cam.append(_refitted(placed, frame, poses, camera_k))
    trajectory = Trajectory(
        np.array(stamps_ns, np.int64), np.array(world_from_cam).reshape(len(stamps_ns), 4, 4)
    )
    return trajectory, np.array(map_ids, np.int64)


def _refitted(
    world_from_cam: np.ndarray,
    frame: TrackedFrame,
    poses: OptimizedPoses,
    camera_k: np.ndarray | None,
) -> np.ndarray:
    """``world_from_cam`` refitted on the adjusted positions of the landmarks ``frame`` saw
    (with the depths it measured there, weighed as the final adjustment weighed its
    keyframes'); unchanged when there is no adjustment or camera, too few of its landmarks
    are known, most do not agree, or the fit moves far."""
    if (
        poses.landmark_ids is None
        or poses.landmarks_world_m is None
        or camera_k is None
        or len(poses.landmark_ids) == 0
    ):
        return world_from_cam
    rows = rows_in(poses.landmark_ids, frame.landmark_ids)
    known = rows >= 0
    if int(known.sum()) < _MIN_REFIT_POINTS:
        return world_from_cam
    estimate = refine_pose(
        invert_pose(world_from_cam),
        poses.landmarks_world_m[rows[known]],
        frame.landmark_pixels[known].astype(np.float64),
        camera_k,
        huber_px=1.0,
        inlier_px=2.0,
        # from the placement, two steps and one re-selection of inliers are enough
        iterations=2,
        rounds=2,
        depths_m=frame.landmark_depths_m[known].astype(np.float64),
        range_baseline_m=poses.range_baseline_m or 0.0,
    )
    refitted = invert_pose(estimate.cam_from_world)
    moved_m = float(np.linalg.norm(refitted[:3, 3] - world_from_cam[:3, 3]))
    agreed = estimate.num_inliers >= max(_MIN_REFIT_POINTS, known.sum() // 2)
    if not agreed or moved_m > _MAX_REFIT_MOVE_M:
        return world_from_cam
    return refitted
