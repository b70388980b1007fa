"""Constant-velocity motion model: the pose a frame is expected at, from the last two."""

from __future__ import annotations

import numpy as np

from slamfront.geometry import (
    invert_pose,
    make_pose,
    orthonormalized,
    project,
    so3_exp,
    so3_log,
    transform_points,
)
from slamfront.types import CameraModel


class MotionModel:
    """Remembers the last tracked pose and the body-frame twist that led to it."""

    def __init__(self) -> None:
        self._last: tuple[int, np.ndarray] | None = None  # (stamp_ns, world_from_cam)
        self._twist: np.ndarray | None = None  # (6,) translation, rotation per second

    @property
    def has_velocity(self) -> bool:
        return self._twist is not None

    @property
    def last_stamp_ns(self) -> int | None:
        return self._last[0] if self._last is not None else None

    def predict(self, stamp_ns: int) -> np.ndarray | None:
        """world_from_cam expected at ``stamp_ns``; None before any pose."""
        if self._last is None:
            return None
        last_stamp, last_pose = self._last
        if self._twist is None:
            return last_pose
        dt = (stamp_ns - last_stamp) * 1e-9
        delta = make_pose(so3_exp(self._twist[3:] * dt), self._twist[:3] * dt)
        return last_pose @ delta

    def update(self, stamp_ns: int, world_from_cam: np.ndarray) -> None:
        """A tracked pose: it becomes the last one, and the motion since the previous one the
        velocity."""
        if self._last is not None:
            last_stamp, last_pose = self._last
            dt = (stamp_ns - last_stamp) * 1e-9
            if dt > 0:
                delta = invert_pose(last_pose) @ world_from_cam
                self._twist = np.concatenate([delta[:3, 3], so3_log(delta[:3, :3])]) / dt
        self._last = (stamp_ns, world_from_cam)

    def stop(self) -> None:
        """Tracking failed: the velocity is no longer known (the last pose is kept)."""
        self._twist = None

    def reset(self) -> None:
        """Forget everything (tracking resumes somewhere unrelated)."""
        self._last = None
        self._twist = None

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the last pose with the map (after a pose-graph correction)."""
        if self._last is not None:
            stamp, pose = self._last
            self._last = (stamp, orthonormalized(new_world_from_old_world @ pose))


def image_jump_px(
    predicted_world_from_cam: np.ndarray,
    world_from_cam: np.ndarray,
    points_world: np.ndarray,
    camera: CameraModel,
) -> float:
    """Median distance between where the landmarks project at the predicted pose and at the
    estimated one (pixels): how far the estimate strays from the prediction in the image,
    whatever the rig, the scene's depth or the speed."""
    if points_world.shape[0] == 0:
        return 0.0
    at_prediction = transform_points(invert_pose(predicted_world_from_cam), points_world)
    at_estimate = transform_points(invert_pose(world_from_cam), points_world)
    visible = (at_prediction[:, 2] > 0) & (at_estimate[:, 2] > 0)
    if not visible.any():
        return float("inf")
    shift = project(camera.K, at_prediction[visible]) - project(camera.K, at_estimate[visible])
    return float(np.median(np.linalg.norm(shift, axis=1)))
