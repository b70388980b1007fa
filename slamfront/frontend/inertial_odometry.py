"""The IMU in the tracker: the body's motion since the last frame, integrated from the samples
each frame carries, predicts the frame's pose (the rotation from the gyro at once; the
translation too once gravity and velocity are known), and carries the pose through a brief
visual failure. Gravity and the gyro bias come from a short window of tracked poses at the
start, a monocular map's metric scale from a longer one; the estimates on those windows are
in :mod:`slamfront.frontend.inertial_alignment`, this module keeps the state between frames
and decides when to ask for them.

Timestamps: a frame stamped ``t`` was taken at IMU time ``t + time_offset_s``. Samples that
do not come after the previous one are dropped (counted); a gap longer than
``max_sample_gap_s`` is never integrated across: the frame gets no IMU prediction, and the
velocity is learnt again from the next tracked poses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from slamfront.config import ImuConfig
from slamfront.frontend.imu_preintegration import (
    ImuSamples,
    Preintegrated,
    concatenate_samples,
    preintegrate,
)
from slamfront.frontend.inertial_alignment import (
    ScaleAlignment,
    StepCache,
    WindowInterval,
    coarse_steps,
    moving_initialisation,
    scale_alignment,
    static_initialisation,
    window_velocity,
)
from slamfront.geometry import invert_pose, make_pose, orthonormalized
from slamfront.types import Frame

# weight of the velocity the last two tracked poses imply against the IMU-propagated one: a
# complementary filter that smooths the poses' noise without lagging behind accelerations
_VELOCITY_GAIN = 0.3
# monocular scale alignment: the shortest step between the poses it compares (s), and how far
# the unconstrained gravity's magnitude may be from g's (relative) for the solution to be
# trusted
_ALIGNMENT_STEP_S = 0.15
_MAX_GRAVITY_MISFIT = 0.05
# how often the growing window is aligned while waiting for a scale, and after it was found
# (s of motion), and the window's span after which the scale stays fixed (s)
_ATTEMPT_EVERY_S = 0.5
_REFINE_EVERY_S = 2.0
_REFINE_HORIZON_S = 20.0


@dataclass(frozen=True, slots=True, eq=False)
class _BodyState:
    """The body at a frame: stamp (camera clock), world_from_body (4x4), velocity_world_m_s
    (3,) of the body origin, None until known."""

    stamp_ns: int
    world_from_body: np.ndarray
    velocity_world_m_s: np.ndarray | None


class InertialOdometry:
    """IMU state between frames for one tracker. Call :meth:`integrate` first for every frame,
    then :meth:`predict`, and after tracking :meth:`update` (a visual pose) or
    :meth:`propagate` (none)."""

    def __init__(self, config: ImuConfig) -> None:
        self._config = config
        self._offset_ns = round(config.time_offset_s * 1e9)
        self._buffer: deque[tuple[int, np.ndarray, np.ndarray]] = deque()
        self._frame_ns: int | None = None  # camera stamp of the last integrated frame
        self._delta: Preintegrated | None = None  # last frame -> current frame
        self._state: _BodyState | None = None  # the body at the last frame with a pose
        self._body_from_cam: np.ndarray | None = None
        self.gyro_bias_rad_s = np.zeros(3)
        self.accel_bias_m_s2 = np.zeros(3)
        self._gravity_world: np.ndarray | None = None  # (3,) m/s^2 in the map's world
        self._gravity_body: np.ndarray | None = None  # kept while no pose is known
        self._window: list[WindowInterval] = []
        self._window_samples: list[ImuSamples] = []
        self._last_visual_ns: int | None = None
        self._metric = True  # whether the poses have a metric scale
        # monocular: the map's scale from the IMU (None: not yet), the scale correction the
        # tracker is yet to apply, and whether the alignment gave up on this map
        self._scale_known = False
        self._pending_scale: float | None = None
        self._scale_abandoned = False
        self._aligned_steps = 0  # window steps the last alignment attempt saw
        self._steps = StepCache()
        # after the scale is found, the alignment goes on over a growing window and corrects
        # the scale whenever it is surer of it
        self._refining = False
        self._scale_rel_std = 1.0
        self._accel_noise_density = config.accel_noise_density
        self.last_alignment: ScaleAlignment | None = None
        self.samples_dropped = 0
        self.gaps = 0

    @property
    def gravity_world(self) -> np.ndarray | None:
        """(3,) unit direction of gravity in the map's world frame once initialised."""
        if self._gravity_world is None:
            return None
        return self._gravity_world / np.linalg.norm(self._gravity_world)

    @property
    def has_delta(self) -> bool:
        """Whether the current frame has an IMU measurement of the motion since the last."""
        return self._delta is not None

    def integrate(self, frame: Frame) -> None:
        """Take the frame's samples and integrate the motion since the previous frame."""
        self._delta = None
        if frame.body_from_cam is None:
            return
        self._body_from_cam = frame.body_from_cam
        if frame.imu_noise is not None:
            self._accel_noise_density = frame.imu_noise.accel_noise_density
        gap = self._take(frame)
        previous_ns, self._frame_ns = self._frame_ns, frame.stamp_ns
        if gap:
            self._lose_gravity()
            return
        if previous_ns is None or not self._buffer or frame.stamp_ns <= previous_ns:
            return
        start_ns, end_ns = previous_ns + self._offset_ns, frame.stamp_ns + self._offset_ns
        samples = self._samples_for(start_ns, end_ns)
        if samples is None:
            self._lose_gravity()
            return
        self._delta = preintegrate(
            samples, start_ns, end_ns, self.gyro_bias_rad_s, self.accel_bias_m_s2
        )
        if self._aligning:
            self._window_samples.append(samples)
        if self._gravity_body is not None:
            self._gravity_body = self._delta.delta_rot.T @ self._gravity_body

    def predict(self, constant_velocity: np.ndarray | None) -> np.ndarray | None:
        """world_from_cam expected for the current frame: the IMU's rotation since the last
        pose, and its translation when gravity and velocity are known (else the one of the
        ``constant_velocity`` prediction); None without an IMU measurement or a last pose."""
        state, delta, body_from_cam = self._state, self._delta, self._body_from_cam
        if state is None or delta is None or body_from_cam is None:
            return None
        if self._frame_ns is None or self._frame_ns - state.stamp_ns > round(
            delta.dt_s * 1e9 + 1e6
        ):
            return None  # frames without an IMU measurement since the last pose
        body = _propagated(state, delta, self._gravity_world)
        if body is None:
            if constant_velocity is None:
                return None
            world_from_cam = state.world_from_body @ make_pose(delta.delta_rot, np.zeros(3))
            world_from_cam = world_from_cam @ body_from_cam
            world_from_cam[:3, 3] = constant_velocity[:3, 3]
            return world_from_cam
        out: np.ndarray = body[0] @ body_from_cam
        return out

    def propagate(self, stamp_ns: int) -> np.ndarray | None:
        """The frame's world_from_cam by the IMU alone (vision failed on it), within
        ``max_propagation_s`` of the last visual pose, gravity and velocity known; it becomes
        the state the next frame is predicted from. None otherwise."""
        state, delta, body_from_cam = self._state, self._delta, self._body_from_cam
        if state is None or delta is None or body_from_cam is None:
            return None
        if self._last_visual_ns is None:
            return None
        if (stamp_ns - self._last_visual_ns) * 1e-9 > self._config.max_propagation_s:
            return None
        body = _propagated(state, delta, self._gravity_world)
        if body is None:
            return None
        self._state = _BodyState(stamp_ns, body[0], body[1])
        out: np.ndarray = body[0] @ body_from_cam
        return out

    def update(self, stamp_ns: int, world_from_cam: np.ndarray, *, metric: bool = True) -> None:
        """A visually tracked pose: the new state; the velocity from the IMU-propagated one
        blended with the one the last two poses imply; the initialisation window grows.
        Poses of unknown scale (``metric`` false: monocular) give no velocity: the IMU
        predicts rotations only until the visual-inertial alignment has measured the map's
        scale (:meth:`take_scale`); the poses are metric from then on."""
        if self._body_from_cam is None:
            return
        self._metric = metric or self._scale_known
        aligning = self._aligning
        world_from_body = world_from_cam @ invert_pose(self._body_from_cam)
        state, delta = self._state, self._delta
        velocity = None
        linked = (
            state is not None
            and delta is not None
            and abs((stamp_ns - state.stamp_ns) * 1e-9 - delta.dt_s) < 1e-3
        )
        if linked and state is not None and delta is not None:
            if aligning:
                self._grow_window(state, delta, stamp_ns, world_from_body)
            if self._metric and self._gravity_world is not None:
                velocity = self._velocity(state, delta, world_from_body)
        if self._gravity_world is None and self._gravity_body is not None:
            self._gravity_world = world_from_body[:3, :3] @ self._gravity_body
            self._gravity_body = None
        self._state = _BodyState(stamp_ns, world_from_body, velocity)
        self._last_visual_ns = stamp_ns
        if not self._metric or self._refining:
            self._try_scale()
        elif self._gravity_world is None:
            self._try_initialise(world_from_body)

    def take_scale(self) -> float | None:
        """The metric scale (metres per map unit) the alignment found since the last call, for
        the tracker to apply to its map (then :meth:`rescale`); None when none."""
        scale, self._pending_scale = self._pending_scale, None
        return scale

    def rescale(self, scale: float) -> None:
        """The map was scaled by ``scale`` about its origin: so is the last pose (the
        velocity is already metric)."""
        state, body_from_cam = self._state, self._body_from_cam
        if state is None or body_from_cam is None:
            return
        world_from_cam = state.world_from_body @ body_from_cam
        world_from_cam[:3, 3] *= scale
        world_from_body = world_from_cam @ invert_pose(body_from_cam)
        self._state = _BodyState(state.stamp_ns, world_from_body, state.velocity_world_m_s)
        self._window = [_rescaled_interval(i, scale, body_from_cam) for i in self._window]

    @property
    def _aligning(self) -> bool:
        """Whether the initialisation window is being gathered."""
        if not self._metric:
            return not self._scale_abandoned
        return self._refining or self._gravity_world is None

    @property
    def scale_known(self) -> bool:
        """Whether the map's poses are metric (always for RGB-D and stereo)."""
        return self._metric

    def abandon_scale(self) -> None:
        """Monocular: stop looking for this map's scale (it stays arbitrary)."""
        self._scale_abandoned = True
        self._refining = False
        self._window = []
        self._window_samples = []

    def lose(self) -> None:
        """No pose for the current frame and none propagated."""
        self._break()

    def reset(self) -> None:
        """Tracking resumes in another frame (a new map, relocalised): forget the pose and
        velocity; gravity is carried over in the body frame by the gyro. A monocular map's
        scale is learnt again."""
        self._break()
        self._scale_known = False
        self._scale_abandoned = False
        self._pending_scale = None
        self._refining = False
        self._scale_rel_std = 1.0

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the state with the map (a pose-graph correction)."""
        rot = new_world_from_old_world[:3, :3]
        if self._gravity_world is not None:
            self._gravity_world = rot @ self._gravity_world
        state = self._state
        if state is not None:
            velocity = state.velocity_world_m_s
            if velocity is not None:
                velocity = rot @ velocity
            moved = orthonormalized(new_world_from_old_world @ state.world_from_body)
            self._state = _BodyState(state.stamp_ns, moved, velocity)

    # ------------------------------------------------------------------ internals

    def _break(self) -> None:
        """The chain of tracked poses is broken: gravity goes to the body frame (carried by
        the gyro until the next pose), the state and the initialisation window are dropped."""
        if self._gravity_world is not None and self._state is not None:
            self._gravity_body = self._state.world_from_body[:3, :3].T @ self._gravity_world
            if self._delta is not None:
                self._gravity_body = self._delta.delta_rot.T @ self._gravity_body
            self._gravity_world = None
        self._state = None
        self._last_visual_ns = None
        self._window = []
        self._window_samples = []
        self._aligned_steps = 0
        self._steps.clear()

    def _lose_gravity(self) -> None:
        """A gap: nothing links the frames across it, so gravity and the state are learnt
        again (the biases are kept)."""
        self.gaps += 1
        self._break()
        self._gravity_world = self._gravity_body = None

    def _take(self, frame: Frame) -> bool:
        """Buffer the frame's samples in order; True when they leave a gap after the last."""
        last_ns = self._buffer[-1][0] if self._buffer else None
        gap = False
        max_gap_ns = self._config.max_sample_gap_s * 1e9
        for sample in frame.imu:
            if last_ns is not None and sample.stamp_ns <= last_ns:
                self.samples_dropped += 1
                continue
            if last_ns is not None and sample.stamp_ns - last_ns > max_gap_ns:
                gap = True
                self._buffer.clear()
            gyro = np.asarray(sample.gyro_rad_s, dtype=np.float64)
            accel = np.asarray(sample.accel_m_s2, dtype=np.float64)
            self._buffer.append((sample.stamp_ns, gyro, accel))
            last_ns = sample.stamp_ns
        imu_now_ns = frame.stamp_ns + self._offset_ns
        if last_ns is not None and imu_now_ns - last_ns > max_gap_ns:
            gap = True  # the samples stopped
        return gap

    def _samples_for(self, start_ns: int, end_ns: int) -> ImuSamples | None:
        """The buffered samples covering [start, end] (the last one at or before the start
        first), older ones dropped; None when they leave a gap at either end."""
        while len(self._buffer) > 1 and self._buffer[1][0] <= start_ns:
            self._buffer.popleft()
        max_gap_ns = self._config.max_sample_gap_s * 1e9
        first_ns, last_ns = self._buffer[0][0], self._buffer[-1][0]
        if first_ns - start_ns > max_gap_ns or end_ns - last_ns > max_gap_ns:
            return None
        stamps = np.array([s[0] for s in self._buffer], dtype=np.int64)
        gyro = np.array([s[1] for s in self._buffer])
        accel = np.array([s[2] for s in self._buffer])
        return ImuSamples(stamps, gyro, accel)

    def _velocity(
        self, state: _BodyState, delta: Preintegrated, world_from_body: np.ndarray
    ) -> np.ndarray:
        """Velocity at the new pose: from the two poses and the IMU between them, blended with
        the propagated one when the last state had a velocity."""
        assert self._gravity_world is not None
        g, dt = self._gravity_world, delta.dt_s
        rot_i, p_i = state.world_from_body[:3, :3], state.world_from_body[:3, 3]
        v_i = (world_from_body[:3, 3] - p_i - 0.5 * g * dt * dt - rot_i @ delta.delta_pos_m) / dt
        from_poses: np.ndarray = v_i + g * dt + rot_i @ delta.delta_vel_m_s
        if state.velocity_world_m_s is None:
            return from_poses
        propagated = state.velocity_world_m_s + g * dt + rot_i @ delta.delta_vel_m_s
        blended: np.ndarray = _VELOCITY_GAIN * from_poses + (1.0 - _VELOCITY_GAIN) * propagated
        return blended

    def _grow_window(
        self, state: _BodyState, delta: Preintegrated, stamp_ns: int, world_from_body: np.ndarray
    ) -> None:
        samples = self._window_samples[-1] if self._window_samples else None
        if samples is None:
            return
        start_ns = state.stamp_ns + self._offset_ns
        end_ns = stamp_ns + self._offset_ns
        assert self._body_from_cam is not None
        self._window.append(
            WindowInterval(
                samples,
                start_ns,
                end_ns,
                state.world_from_body,
                world_from_body,
                state.world_from_body @ self._body_from_cam,
                world_from_body @ self._body_from_cam,
            )
        )

    def _try_initialise(self, world_from_body: np.ndarray) -> None:
        """Gravity and gyro bias once the window spans ``init_window_s``: from a static rig
        (accelerometer and gyro means), else by aligning the IMU with the tracked poses."""
        cfg = self._config
        if not self._window_samples:
            return
        every = concatenate_samples(self._window_samples)
        span_s = (every.stamps_ns[-1] - every.stamps_ns[0]) * 1e-9
        if span_s < cfg.init_window_s:
            return
        velocity = None
        static = static_initialisation(every, cfg.static_gyro_rad_s)
        if static is not None:
            gravity_body, self.gyro_bias_rad_s = static
            self._gravity_world = world_from_body[:3, :3] @ gravity_body
            # steady straight motion reads as rest too: the velocity is the tracked poses'
            velocity = window_velocity(self._window) if self._metric else None
        elif self._metric and len(self._window) >= 3:
            moving = moving_initialisation(self._window)
            if moving is not None:
                self.gyro_bias_rad_s, self._gravity_world, velocity = moving
        if self._gravity_world is None:  # slide the window on
            self._window = self._window[1:]
            self._window_samples = self._window_samples[1:]
            return
        self._window = []
        self._window_samples = []
        if self._state is not None:
            self._state = _BodyState(self._state.stamp_ns, world_from_body, velocity)

    def _try_scale(self) -> None:
        """Monocular: the visual-inertial alignment on the window once it spans
        ``scale_window_s`` (again at each new step of it); an accepted scale is handed to the
        tracker by :meth:`take_scale`, with gravity, the biases and the velocity set."""
        cfg, body_from_cam = self._config, self._body_from_cam
        if self._scale_abandoned or body_from_cam is None or not self._window:
            return
        steps = coarse_steps(self._window, _ALIGNMENT_STEP_S)
        span_s = (steps[-1].end_ns - steps[0].start_ns) * 1e-9
        if span_s < cfg.scale_window_s or len(steps) < 4:
            return
        # an attempt every so many steps (the window keeps growing)
        every_s = _REFINE_EVERY_S if self._refining else _ATTEMPT_EVERY_S
        every = max(1, round(every_s / _ALIGNMENT_STEP_S))
        if len(steps) < self._aligned_steps + every:
            return
        self._aligned_steps = len(steps)
        found = scale_alignment(
            steps,
            invert_pose(body_from_cam),
            accel_noise_density=self._accel_noise_density,
            integrate=self._steps,
        )
        self._steps.retain({(step.start_ns, step.end_ns) for step in steps})
        self.last_alignment = found
        horizon_reached = span_s > _REFINE_HORIZON_S
        if horizon_reached:  # long enough: the scale stays as it is
            self._refining = False
            self._window = []
            self._window_samples = []
        if (
            found is None
            or found.scale_rel_std > min(cfg.max_scale_std, self._scale_rel_std)
            or abs(found.gravity_misfit - 1.0) > _MAX_GRAVITY_MISFIT
        ):
            return  # poorly conditioned: keep waiting for more motion
        self._pending_scale = found.scale
        self._scale_rel_std = found.scale_rel_std
        self._refining = not horizon_reached
        self._scale_known = self._metric = True
        self.gyro_bias_rad_s = found.gyro_bias_rad_s
        self.accel_bias_m_s2 = found.accel_bias_m_s2
        self._gravity_world = found.gravity_world
        self._gravity_body = None
        state = self._state
        if state is not None:
            velocity = found.velocity_world_m_s
            self._state = _BodyState(state.stamp_ns, state.world_from_body, velocity)


def _rescaled_interval(
    interval: WindowInterval, scale: float, body_from_cam: np.ndarray
) -> WindowInterval:
    """An interval of the window with its camera positions scaled about the origin."""
    cam_from_body = invert_pose(body_from_cam)
    start, end = interval.start_world_from_cam.copy(), interval.end_world_from_cam.copy()
    start[:3, 3] *= scale
    end[:3, 3] *= scale
    return WindowInterval(
        interval.samples,
        interval.start_ns,
        interval.end_ns,
        start @ cam_from_body,
        end @ cam_from_body,
        start,
        end,
    )


def _propagated(
    state: _BodyState, delta: Preintegrated, gravity_world: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(world_from_body, velocity) after ``delta`` from ``state``; None without gravity or
    velocity."""
    if gravity_world is None or state.velocity_world_m_s is None:
        return None
    rot_i, p_i, v_i = (
        state.world_from_body[:3, :3],
        state.world_from_body[:3, 3],
        state.velocity_world_m_s,
    )
    dt, g = delta.dt_s, gravity_world
    position = p_i + v_i * dt + 0.5 * g * dt * dt + rot_i @ delta.delta_pos_m
    velocity = v_i + g * dt + rot_i @ delta.delta_vel_m_s
    rotation = orthonormalized(make_pose(rot_i @ delta.delta_rot, position))
    return rotation, velocity
