"""The IMU's part in tracking a frame, for the tracker to call at fixed points: integrate the
frame's samples first, predict its pose before the search, settle its outcome after it.

With ``tracker.imu.enabled=false`` the aid does nothing (no prediction, no gravity), so the
tracker calls it the same way with or without an IMU.

A monocular map with an IMU is held back (:meth:`ImuAid.holds_back`) until the IMU has
measured its scale (:meth:`ImuAid.take_scale`, which the tracker applies to its map), or
given out at an arbitrary scale after ``scale_wait_s``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import ImuConfig
from slamfront.errors import InputError
from slamfront.frontend.inertial_odometry import InertialOdometry
from slamfront.frontend.records import FrameInput, Outcome
from slamfront.types import Frame, FrameIssue, TrackingState, TrackResult


class ImuAid:
    """The tracker's IMU: :class:`InertialOdometry` when enabled, else nothing."""

    def __init__(self, config: ImuConfig) -> None:
        self._required = config.enabled is True
        self._scale_wait_s = config.scale_wait_s
        self._odometry = InertialOdometry(config) if config.enabled is not False else None
        # monocular: when the current map started (None: not a monocular map with an IMU),
        # whether it is given out at an arbitrary scale, and per map the product of the
        # scales applied to it
        self._map_started_ns: int | None = None
        self._arbitrary_scale = False
        self._map_scales: dict[int, float] = {}
        self._held_back: list[tuple[int, np.ndarray, int]] = []

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

    def map_started(self, inp: FrameInput) -> None:
        """A new map started at ``inp``'s frame: a monocular one waits for its scale when the
        frame carries IMU samples and the IMU-camera extrinsic (else its scale stays arbitrary)."""
        frame = inp.frame
        has_imu = bool(frame.imu) and frame.body_from_cam is not None
        with_scale = inp.mono and self._odometry is not None and has_imu
        self._map_started_ns = frame.stamp_ns if with_scale else None
        self._arbitrary_scale = False

    def holds_back(self, inp: FrameInput) -> bool:
        """Whether the frame's pose is withheld: a monocular map whose scale the IMU has not
        measured yet, within ``scale_wait_s`` of its start (after that it is given out at an
        arbitrary scale, and the IMU stops looking)."""
        imu, started_ns = self._odometry, self._map_started_ns
        if imu is None or started_ns is None or not inp.mono or self._arbitrary_scale:
            return False
        if imu.scale_known or not inp.frame.imu or inp.frame.body_from_cam is None:
            return False
        if (inp.frame.stamp_ns - started_ns) * 1e-9 > self._scale_wait_s:
            self._arbitrary_scale = True
            imu.abandon_scale()
            return False
        return True

    def hold_back(self, inp: FrameInput, result: TrackResult) -> TrackResult:
        """``result`` as the tracker gives it out: without its pose while the frame
        :meth:`holds_back` (the pose is kept for :meth:`take_held_back`)."""
        if not self.holds_back(inp):
            return result
        if result.world_from_cam is not None:
            self._held_back.append((result.stamp_ns, result.world_from_cam, result.map_id))
        return replace(
            result,
            state=TrackingState.INITIALIZING,
            world_from_cam=None,
            is_keyframe=False,
            keyframe_id=None,
            reference_keyframe_id=None,
            reference_from_cam=None,
            issue=FrameIssue.IMU_SCALE,
        )

    def take_held_back(self) -> list[tuple[int, np.ndarray, int]]:
        """(stamp_ns, world_from_cam, map_id) of the frames held back since the last call."""
        held, self._held_back = self._held_back, []
        return held

    def take_scale(self, map_id: int) -> float | None:
        """A scale (metres per map unit) the IMU measured for map ``map_id`` since the last
        call, for the tracker to scale its map by; the IMU's state is scaled with it."""
        imu = self._odometry
        scale = imu.take_scale() if imu is not None else None
        if imu is None or scale is None:
            return None
        imu.rescale(scale)
        self._map_scales[map_id] = self._map_scales.get(map_id, 1.0) * scale
        return scale

    def map_scale(self, map_id: int) -> float:
        """The product of the scales applied to map ``map_id`` so far (1: none)."""
        return self._map_scales.get(map_id, 1.0)

    @property
    def metric(self) -> bool | None:
        """Whether the current monocular map is metric; None when it is not a monocular map
        with an IMU."""
        if self._odometry is None or self._map_started_ns is None:
            return None
        return self._odometry.scale_known

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the IMU's state with the map (a pose-graph correction)."""
        if self._odometry is not None:
            self._odometry.transform(new_world_from_old_world)

    def reset(self) -> None:
        """Tracking resumes in another map: the IMU forgets its pose and velocity (and a
        monocular map's scale)."""
        self._map_started_ns = None
        self._arbitrary_scale = False
        if self._odometry is not None:
            self._odometry.reset()
