"""The IMU's part in tracking a frame, for the tracker to call at fixed points: integrate the
frame's samples first, predict its pose before the search, settle its outcome after it.

With ``tracker.imu.enabled=false`` the aid does nothing (no prediction, no gravity), so the
tracker calls it the same way with or without an IMU.
"""

from __future__ import annotations

import numpy as np

from slamfront.config import ImuConfig
from slamfront.errors import InputError
from slamfront.frontend.inertial import InertialOdometry
from slamfront.frontend.records import FrameInput, Outcome
from slamfront.types import Frame, TrackingState


class ImuAid:
    """The tracker's IMU: :class:`InertialOdometry` when enabled, else nothing."""

    def __init__(self, config: ImuConfig) -> None:
        self._required = config.enabled is True
        self._odometry = InertialOdometry(config) if config.enabled is not False else None

    @property
    def gravity_world(self) -> np.ndarray | None:
        """(3,) unit direction of gravity in the map's world frame; None until known."""
        return self._odometry.gravity_world if self._odometry is not None else None

    def integrate(self, frame: Frame) -> None:
        """The IMU's motion since the last frame; a frame without samples or the IMU-camera
        extrinsic is an error when ``tracker.imu.enabled=true`` insists on them."""
        if self._odometry is None:
            return
        if self._required and (not frame.imu or frame.body_from_cam is None):
            missing = "IMU samples" if not frame.imu else "the IMU-camera extrinsic"
            where = frame.source_path or "source"
            raise InputError(
                f"tracker.imu.enabled=true, but frame {frame.index} ({where}) has no {missing};"
                " use tracker.imu.enabled=auto or false"
            )
        self._odometry.integrate(frame)

    def predict(self, constant_velocity: np.ndarray | None) -> np.ndarray | None:
        """world_from_cam the IMU expects for the frame (see
        :meth:`InertialOdometry.predict`); None when it has no prediction."""
        if self._odometry is None:
            return None
        return self._odometry.predict(constant_velocity)

    def settle(self, inp: FrameInput, outcome: Outcome, *, in_map: bool) -> Outcome:
        """The frame's outcome once the IMU has taken it: a tracked pose is learnt (with its
        scale unknown for monocular frames); a frame vision lost ``in_map`` (the window has
        keyframes) is propagated by the IMU when it can, as ``IMU_PROPAGATED``, never as
        tracked; else the IMU's chain of poses breaks."""
        imu = self._odometry
        if imu is None:
            return outcome
        stamp_ns = inp.frame.stamp_ns
        if outcome.state == TrackingState.OK and outcome.world_from_cam is not None:
            imu.update(stamp_ns, outcome.world_from_cam, metric=not inp.mono)
            return outcome
        if outcome.state == TrackingState.LOST and in_map:
            world_from_cam = imu.propagate(stamp_ns)
            if world_from_cam is not None:
                return Outcome(
                    TrackingState.IMU_PROPAGATED,
                    outcome.attempt,
                    world_from_cam,
                    issue=outcome.issue,
                )
        imu.lose()
        return outcome

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the IMU's state with the map (a pose-graph correction)."""
        if self._odometry is not None:
            self._odometry.transform(new_world_from_old_world)

    def reset(self) -> None:
        """Tracking resumes in another map: the IMU forgets its pose and velocity."""
        if self._odometry is not None:
            self._odometry.reset()
