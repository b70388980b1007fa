"""Constant-velocity motion model: the pose a frame is expected at, from the last two; and
the camera's angular rate at a frame, from the gyro when the frame carries its samples."""

from __future__ import annotations

from collections import deque

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
from slamfront.types import CameraModel, Frame


class MotionModel:
    """Remembers the recent tracked poses and the body-frame twist that led to the last."""

    def __init__(self, rate_intervals: int = 1) -> None:
        """``rate_intervals``: frame intervals the angular rate is averaged over."""
        self._last: tuple[int, np.ndarray] | None = None  # (stamp_ns, world_from_cam)
        self._twist: np.ndarray | None = None  # (6,) translation, rotation per second
        # the last poses tracked one after the other, oldest first
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=rate_intervals + 1)
        self._rate_intervals = rate_intervals

    @property
    def has_velocity(self) -> bool:
        return self._twist is not None

    @property
    def last_stamp_ns(self) -> int | None:
        return self._last[0] if self._last is not None else None

    @property
    def rate_cam_rad_s(self) -> np.ndarray:
        """(3,) mean angular rate over the last ``rate_intervals`` tracked intervals, rad/s
        in the camera frame; zero without a velocity."""
        if self._twist is None or len(self._recent) < 2:
            return np.zeros(3)
        return _mean_rate(self._recent[0], self._recent[-1])

    def rate_at(self, frame: Frame) -> np.ndarray:
        """(3,) the camera's angular rate at ``frame``, rad/s in its frame, for its
        rolling-shutter correction: the gyro's when the frame carries samples, else the mean
        rate of the tracked poses (zero without a velocity); zero for a global shutter."""
        if frame.camera.readout_s <= 0.0:
            return np.zeros(3)
        gyro = gyro_rate_cam(frame)
        return gyro if gyro is not None else self.rate_cam_rad_s

    def is_recent(self, stamp_ns: int, max_gap_s: float) -> bool:
        """Whether the model has a velocity and its last pose is at most ``max_gap_s`` before
        ``stamp_ns``: only then is its prediction close enough to gate a pose by."""
        if self._twist is None or self._last is None:
            return False
        return (stamp_ns - self._last[0]) * 1e-9 <= max_gap_s

    def rate_to(self, stamp_ns: int, world_from_cam: np.ndarray) -> np.ndarray | None:
        """(3,) mean angular rate, rad/s in the camera frame, over the last
        ``rate_intervals`` intervals if the frame at ``stamp_ns`` is at ``world_from_cam``;
        None without a last pose or time since it."""
        if self._last is None or stamp_ns <= self._last[0]:
            return None
        start = self._recent[-min(self._rate_intervals, len(self._recent))]
        return _mean_rate(start, (stamp_ns, world_from_cam))

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
        self._recent.append(self._last)

    def stop(self) -> None:
        """Tracking failed: the velocity is no longer known (the last pose is kept)."""
        self._twist = None
        self._recent.clear()
        if self._last is not None:
            self._recent.append(self._last)

    def reset(self) -> None:
        """Forget everything (tracking resumes somewhere unrelated)."""
        self._last = None
        self._twist = None
        self._recent.clear()

    def rescale(self, scale: float) -> None:
        """The map was scaled about its origin: so are the remembered poses and velocity."""

        def scaled(pose: np.ndarray) -> np.ndarray:
            out = pose.copy()
            out[:3, 3] *= scale
            return out

        moved = [(stamp, scaled(pose)) for stamp, pose in self._recent]
        self._recent.clear()
        self._recent.extend(moved)
        if self._last is not None:
            self._last = (self._last[0], scaled(self._last[1]))
        if self._twist is not None:
            self._twist = np.concatenate([self._twist[:3] * scale, self._twist[3:]])

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the recent poses with the map (after a pose-graph correction)."""
        moved = [
            (stamp, orthonormalized(new_world_from_old_world @ pose))
            for stamp, pose in self._recent
        ]
        self._recent.clear()
        self._recent.extend(moved)
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


def _mean_rate(start: tuple[int, np.ndarray], end: tuple[int, np.ndarray]) -> np.ndarray:
    """(3,) mean angular rate from pose ``start`` to pose ``end`` (stamp_ns, world_from_cam),
    rad/s in the camera frame."""
    delta = invert_pose(start[1]) @ end[1]
    return so3_log(delta[:3, :3]) / ((end[0] - start[0]) * 1e-9)


def gyro_rate_cam(frame: Frame) -> np.ndarray | None:
    """(3,) angular rate, rad/s in the camera frame, the gyro measured while the frame was
    read out: the mean of its samples in the half readout before the stamp (at least the
    latest sample); None without samples or the IMU-camera extrinsic. Bias is not removed."""
    if not frame.imu or frame.body_from_cam is None:
        return None
    start_ns = frame.stamp_ns - round(frame.camera.readout_s * 0.5e9)
    samples = [s.gyro_rad_s for s in frame.imu if s.stamp_ns >= start_ns] or [
        frame.imu[-1].gyro_rad_s
    ]
    omega_body = np.mean(np.asarray(samples, dtype=np.float64), axis=0)
    return frame.body_from_cam[:3, :3].T @ omega_body
