"""The IMU in the tracker: the body's motion since the last frame, integrated from the samples
each frame carries, predicts the frame's pose (the rotation from the gyro at once; the
translation too once gravity and velocity are known), and carries the pose through a brief
visual failure. Gravity and the gyro bias come from a short window at the start: static
(the accelerometer's mean is gravity, the gyro's mean its bias) or moving (the tracked poses
against the integrated IMU, for rigs with metric depth).

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
from slamfront.frontend.imu_preintegration import ImuSamples, Preintegrated, preintegrate
from slamfront.geometry import invert_pose, make_pose, orthonormalized, so3_log
from slamfront.types import Frame

GRAVITY_M_S2 = 9.81
# weight of the velocity the last two tracked poses imply against the IMU-propagated one: a
# complementary filter that smooths the poses' noise without lagging behind accelerations
_VELOCITY_GAIN = 0.3
# a static window's accelerometer magnitude must be this close to gravity (m/s^2)
_STATIC_ACCEL_TOLERANCE_M_S2 = 0.5


@dataclass(frozen=True, slots=True, eq=False)
class _BodyState:
    """The body at a frame: stamp (camera clock), world_from_body (4x4), velocity_world_m_s
    (3,) of the body origin, None until known."""

    stamp_ns: int
    world_from_body: np.ndarray
    velocity_world_m_s: np.ndarray | None


@dataclass(frozen=True, slots=True, eq=False)
class _Interval:
    """One frame interval of the initialisation window: its preintegration, the raw samples
    (to integrate again with a new bias) and the tracked body poses at both ends."""

    samples: ImuSamples
    start_ns: int
    end_ns: int
    start_world_from_body: np.ndarray
    end_world_from_body: np.ndarray


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
        self._window: list[_Interval] = []
        self._window_samples: list[ImuSamples] = []
        self._last_visual_ns: int | None = None
        self._metric = True  # whether the poses have a metric scale
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
        if self._gravity_world is None:
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
        Poses of unknown scale (``metric`` false: monocular) give no velocity and no moving
        start: the IMU then predicts rotations only."""
        if self._body_from_cam is None:
            return
        self._metric = metric
        world_from_body = world_from_cam @ invert_pose(self._body_from_cam)
        state, delta = self._state, self._delta
        velocity = None
        linked = (
            state is not None
            and delta is not None
            and abs((stamp_ns - state.stamp_ns) * 1e-9 - delta.dt_s) < 1e-3
        )
        if linked and state is not None and delta is not None:
            if self._gravity_world is None:
                self._grow_window(state, delta, stamp_ns, world_from_body)
            elif metric:
                velocity = self._velocity(state, delta, world_from_body)
        if self._gravity_world is None and self._gravity_body is not None:
            self._gravity_world = world_from_body[:3, :3] @ self._gravity_body
            self._gravity_body = None
        self._state = _BodyState(stamp_ns, world_from_body, velocity)
        self._last_visual_ns = stamp_ns
        if self._gravity_world is None:
            self._try_initialise(world_from_body)

    def lose(self) -> None:
        """No pose for the current frame and none propagated."""
        self._break()

    def reset(self) -> None:
        """Tracking resumes in another frame (a new map, relocalised): forget the pose and
        velocity; gravity is carried over in the body frame by the gyro."""
        self._break()

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
        self._window.append(
            _Interval(samples, start_ns, end_ns, state.world_from_body, world_from_body)
        )

    def _try_initialise(self, world_from_body: np.ndarray) -> None:
        """Gravity and gyro bias once the window spans ``init_window_s``: from a static rig
        (accelerometer and gyro means), else by aligning the IMU with the tracked poses."""
        cfg = self._config
        if not self._window_samples:
            return
        every = _concatenate(self._window_samples)
        span_s = (every.stamps_ns[-1] - every.stamps_ns[0]) * 1e-9
        if span_s < cfg.init_window_s:
            return
        velocity = None
        static = static_initialisation(every, cfg.static_gyro_rad_s)
        if static is not None:
            gravity_body, self.gyro_bias_rad_s = static
            self._gravity_world = world_from_body[:3, :3] @ gravity_body
            velocity = np.zeros(3) if self._metric else None
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


def static_initialisation(
    samples: ImuSamples, max_gyro_spread_rad_s: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(gravity in the body frame (3,) m/s^2, gyro bias (3,) rad/s) from samples of a rig at
    rest: the accelerometer's mean reads minus gravity, the gyro's mean is its bias. None
    when the gyro moves by more than ``max_gyro_spread_rad_s`` from its mean or the
    accelerometer's magnitude is not near gravity's."""
    gyro_mean = samples.gyro_rad_s.mean(axis=0)
    spread = float(np.max(np.linalg.norm(samples.gyro_rad_s - gyro_mean, axis=1)))
    accel_mean = samples.accel_m_s2.mean(axis=0)
    magnitude = float(np.linalg.norm(accel_mean))
    if spread > max_gyro_spread_rad_s:
        return None
    if abs(magnitude - GRAVITY_M_S2) > _STATIC_ACCEL_TOLERANCE_M_S2:
        return None
    return -accel_mean / magnitude * GRAVITY_M_S2, gyro_mean


def moving_initialisation(
    window: list[_Interval],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(gyro bias (3,) rad/s, gravity in the world (3,) m/s^2, velocity at the window's last
    pose (3,) m/s) from consecutive tracked body
    poses (metric) and the IMU between them: the bias by least squares on the rotations
    (each pose against the window's first, by first-order bias correction), then gravity and
    every velocity by linear least squares on the positions and velocities, gravity's
    magnitude fixed afterwards. None when the result is implausible."""
    zero = np.zeros(3)
    # gyro bias: the rotation from the first pose to each later one
    rows, rhs = [], []
    chained_rot = np.eye(3)
    chained_jac = np.zeros((3, 3))
    first_rot = window[0].start_world_from_body[:3, :3]
    for interval in window:
        pre = preintegrate(interval.samples, interval.start_ns, interval.end_ns, zero, zero)
        # chain the Jacobians: d log(R_a R_b)/d b = R_b^T J_a + J_b
        chained_jac = pre.delta_rot.T @ chained_jac + pre.rot_d_gyro_bias
        chained_rot = chained_rot @ pre.delta_rot
        seen = first_rot.T @ interval.end_world_from_body[:3, :3]
        rows.append(chained_jac)
        rhs.append(so3_log(chained_rot.T @ seen))
    bias = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)[0]
    if not np.all(np.isfinite(bias)) or np.linalg.norm(bias) > 0.5:
        return None
    # gravity and velocities: unknowns g (3), then v_0 .. v_n (3 each)
    n = len(window)
    a = np.zeros((6 * n, 3 + 3 * (n + 1)))
    b = np.zeros(6 * n)
    for k, interval in enumerate(window):
        pre = preintegrate(interval.samples, interval.start_ns, interval.end_ns, bias, zero)
        dt = pre.dt_s
        rot_i, p_i = interval.start_world_from_body[:3, :3], interval.start_world_from_body[:3, 3]
        p_j = interval.end_world_from_body[:3, 3]
        eye = np.eye(3)
        r = 6 * k
        # p_j - p_i - v_i dt - g dt^2 / 2 = R_i dp
        a[r : r + 3, 0:3] = -0.5 * dt * dt * eye
        a[r : r + 3, 3 + 3 * k : 6 + 3 * k] = -dt * eye
        b[r : r + 3] = rot_i @ pre.delta_pos_m - (p_j - p_i)
        # v_j - v_i - g dt = R_i dv
        a[r + 3 : r + 6, 0:3] = -dt * eye
        a[r + 3 : r + 6, 3 + 3 * k : 6 + 3 * k] = -eye
        a[r + 3 : r + 6, 6 + 3 * k : 9 + 3 * k] = eye
        b[r + 3 : r + 6] = rot_i @ pre.delta_vel_m_s
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    gravity = solution[:3]
    magnitude = float(np.linalg.norm(gravity))
    if not np.isfinite(magnitude) or abs(magnitude - GRAVITY_M_S2) > 0.2 * GRAVITY_M_S2:
        return None
    return bias, gravity / magnitude * GRAVITY_M_S2, solution[-3:].copy()


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


def _concatenate(parts: list[ImuSamples]) -> ImuSamples:
    """Samples of consecutive intervals as one set (shared boundary samples once)."""
    stamps = np.concatenate([p.stamps_ns for p in parts])
    gyro = np.concatenate([p.gyro_rad_s for p in parts])
    accel = np.concatenate([p.accel_m_s2 for p in parts])
    _, first = np.unique(stamps, return_index=True)
    return ImuSamples(stamps[first], gyro[first], accel[first])
