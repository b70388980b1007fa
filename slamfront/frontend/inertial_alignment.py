"""Estimates from a window of tracked poses and the IMU between them, for
:class:`~slamfront.frontend.inertial_odometry.InertialOdometry` to start from: gravity and the
gyro bias from a rig at rest (:func:`static_initialisation`) or moving with metric poses
(:func:`moving_initialisation`), and a monocular map's metric scale with gravity, the biases
and the velocity (:func:`scale_alignment`). Pure functions of the window: no state between
calls beyond the optional :class:`StepCache` of preintegrated steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slamfront.frontend.imu_preintegration import (
    GRAVITY_M_S2,
    ImuSamples,
    Preintegrated,
    concatenate_samples,
    preintegrate,
)
from slamfront.geometry import skew, so3_exp, so3_log

# a static window's accelerometer magnitude must be this close to gravity (m/s^2)
_STATIC_ACCEL_TOLERANCE_M_S2 = 0.5
# prior standard deviation of the accelerometer bias in the monocular scale alignment (m/s^2)
_ACCEL_BIAS_PRIOR_M_S2 = 0.1
# the camera positions' standard deviation the monocular scale alignment assumes (m)
_POSITION_STD_M = 0.01
# a step preintegrated with a gyro bias this close to the current estimate is reused (rad/s)
_BIAS_REUSE_RAD_S = 2e-4


@dataclass(frozen=True, slots=True, eq=False)
class WindowInterval:
    """One interval of the window (between two frames, or consecutive ones joined): the raw
    samples (to integrate again with each bias estimate), its bounds on the IMU clock and the
    tracked body and camera poses at both ends."""

    samples: ImuSamples
    start_ns: int
    end_ns: int
    start_world_from_body: np.ndarray
    end_world_from_body: np.ndarray
    start_world_from_cam: np.ndarray
    end_world_from_cam: np.ndarray


Integrator = Callable[[WindowInterval, np.ndarray], Preintegrated]
"""The preintegration of an interval with a gyro bias (no accelerometer bias)."""


def _integrate(interval: WindowInterval, gyro_bias_rad_s: np.ndarray) -> Preintegrated:
    return preintegrate(
        interval.samples, interval.start_ns, interval.end_ns, gyro_bias_rad_s, np.zeros(3)
    )


class StepCache:
    """Preintegrated steps of the alignment window, reused while the gyro bias they were
    integrated with stays within ``_BIAS_REUSE_RAD_S`` of the one asked for (the window's
    full steps do not change as it grows)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], list[Preintegrated]] = {}

    def __call__(self, interval: WindowInterval, gyro_bias_rad_s: np.ndarray) -> Preintegrated:
        entries = self._entries.setdefault((interval.start_ns, interval.end_ns), [])
        for pre in entries:
            if np.max(np.abs(pre.gyro_bias_rad_s - gyro_bias_rad_s)) <= _BIAS_REUSE_RAD_S:
                return pre
        pre = _integrate(interval, gyro_bias_rad_s)
        entries.append(pre)
        del entries[:-2]  # the zero-bias one and the latest estimate's
        return pre

    def clear(self) -> None:
        self._entries.clear()

    def retain(self, keys: set[tuple[int, int]]) -> None:
        """Forget the steps not in ``keys`` (start_ns, end_ns)."""
        self._entries = {k: v for k, v in self._entries.items() if k in keys}


def coarse_steps(window: list[WindowInterval], min_step_s: float) -> list[WindowInterval]:
    """Consecutive intervals joined into steps of at least ``min_step_s`` from the window's
    start (so that they stay the same as it grows), the newest remainder a step of its own:
    over frame-to-frame intervals the camera's displacement is too small against its noise to
    carry a scale."""
    steps: list[WindowInterval] = []
    group: list[WindowInterval] = []
    for interval in window:
        group.append(interval)
        if (group[-1].end_ns - group[0].start_ns) * 1e-9 >= min_step_s:
            steps.append(_joined(group))
            group = []
    if group:
        steps.append(_joined(group))
    return steps


def _joined(parts: list[WindowInterval]) -> WindowInterval:
    first, last = parts[0], parts[-1]
    if len(parts) == 1:
        return first
    return WindowInterval(
        concatenate_samples([p.samples for p in parts]),
        first.start_ns,
        last.end_ns,
        first.start_world_from_body,
        last.end_world_from_body,
        first.start_world_from_cam,
        last.end_world_from_cam,
    )


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
    window: list[WindowInterval],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(gyro bias (3,) rad/s, gravity in the world (3,) m/s^2, velocity at the window's last
    pose (3,) m/s) from consecutive tracked body
    poses (metric) and the IMU between them: the bias by least squares on the rotations
    (each pose against the window's first, by first-order bias correction), then gravity and
    every velocity by linear least squares on the positions and velocities, gravity's
    magnitude fixed afterwards. None when the result is implausible."""
    bias = gyro_bias_from_rotations(window)
    if bias is None:
        return None
    zero = np.zeros(3)
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


def gyro_bias_from_rotations(
    window: list[WindowInterval], integrate: Integrator | None = None
) -> np.ndarray | None:
    """(3,) gyro bias rad/s by least squares on the tracked rotations (each pose against the
    window's first, by first-order bias correction; rotations need no scale); None when
    implausible."""
    zero = np.zeros(3)
    integrate = integrate if integrate is not None else _integrate
    rows, rhs = [], []
    chained_rot = np.eye(3)
    chained_jac = np.zeros((3, 3))
    first_rot = window[0].start_world_from_body[:3, :3]
    for interval in window:
        pre = integrate(interval, zero)
        # chain the Jacobians: d log(R_a R_b)/d b = R_b^T J_a + J_b
        chained_jac = pre.delta_rot.T @ chained_jac + pre.rot_d_gyro_bias
        chained_rot = chained_rot @ pre.delta_rot
        seen = first_rot.T @ interval.end_world_from_body[:3, :3]
        rows.append(chained_jac)
        rhs.append(so3_log(chained_rot.T @ seen))
    bias = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)[0]
    if not np.all(np.isfinite(bias)) or np.linalg.norm(bias) > 0.5:
        return None
    return bias


@dataclass(frozen=True, slots=True, eq=False)
class ScaleAlignment:
    """The monocular map's metric scale from the IMU: scale (metres per map unit), gravity_world
    (3,) m/s^2 in the map's frame, velocity_world_m_s (3,) of the body at the window's last
    pose (metric), gyro_bias_rad_s and accel_bias_m_s2 (3,), scale_rel_std its relative
    standard deviation, gravity_misfit the unconstrained gravity's magnitude over g's."""

    scale: float
    gravity_world: np.ndarray
    velocity_world_m_s: np.ndarray
    gyro_bias_rad_s: np.ndarray
    accel_bias_m_s2: np.ndarray
    scale_rel_std: float
    gravity_misfit: float


def scale_alignment(
    window: list[WindowInterval],
    cam_from_body: np.ndarray,
    *,
    accel_noise_density: float,
    position_std_m: float = _POSITION_STD_M,
    iterations: int = 4,
    integrate: Integrator | None = None,
) -> ScaleAlignment | None:
    """Visual-inertial alignment of up-to-scale tracked poses: the gyro bias from the
    rotations, then scale, gravity and every velocity by linear least squares on the camera
    positions against the preintegrated IMU (body positions are ``s c + R_wc t_cb``: the lever
    arm is metric), then refined with gravity's magnitude fixed (its direction on the sphere)
    and the accelerometer bias (under a prior). None when the window cannot give them."""
    integrate = integrate if integrate is not None else _integrate
    bias = gyro_bias_from_rotations(window, integrate)
    if bias is None:
        return None
    zero = np.zeros(3)
    lever_cam = cam_from_body[:3, 3]
    n = len(window)
    # per interval: camera centres (map units), body rotations, lever arms (metric, world)
    parts = []
    for interval in window:
        pre = integrate(interval, bias)
        parts.append((interval, pre, pre.vel_d_accel_bias, pre.pos_d_accel_bias))

    def system(
        gravity_dir: np.ndarray | None, accel_bias: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows for x = [s, g (3) or delta (2), ba (3) when refining, v_0 .. v_n]."""
        refine = gravity_dir is not None
        head = 1 + (2 + 3 if refine else 3)
        a = np.zeros((6 * n + (3 if refine else 0), head + 3 * (n + 1)))
        b = np.zeros(a.shape[0])
        basis = _tangent_basis(gravity_dir) if gravity_dir is not None else None
        for k, (interval, pre, jac_vel, jac_pos) in enumerate(parts):
            dt = pre.dt_s
            w_from_cam_i, w_from_cam_j = interval.start_world_from_cam, interval.end_world_from_cam
            rot_i = interval.start_world_from_body[:3, :3]
            lever_i = w_from_cam_i[:3, :3] @ lever_cam
            lever_j = w_from_cam_j[:3, :3] @ lever_cam
            dp = pre.delta_pos_m + jac_pos @ accel_bias
            dv = pre.delta_vel_m_s + jac_vel @ accel_bias
            eye = np.eye(3)
            r = 6 * k
            vi, vj = head + 3 * k, head + 3 * k + 3
            # s (c_j - c_i) - v_i dt - g dt^2 / 2 = R_i dp - (l_j - l_i)
            a[r : r + 3, 0] = w_from_cam_j[:3, 3] - w_from_cam_i[:3, 3]
            a[r : r + 3, vi : vi + 3] = -dt * eye
            b[r : r + 3] = rot_i @ dp - (lever_j - lever_i)
            # v_j - v_i - g dt = R_i dv
            a[r + 3 : r + 6, vi : vi + 3] = -eye
            a[r + 3 : r + 6, vj : vj + 3] = eye
            b[r + 3 : r + 6] = rot_i @ dv
            if gravity_dir is None:
                a[r : r + 3, 1:4] = -0.5 * dt * dt * eye
                a[r + 3 : r + 6, 1:4] = -dt * eye
                continue
            assert basis is not None
            g0 = GRAVITY_M_S2 * gravity_dir
            # g ~ G (u - [u]x B delta): the direction moves on the sphere
            g_jac = -GRAVITY_M_S2 * skew(gravity_dir) @ basis
            a[r : r + 3, 1:3] = -0.5 * dt * dt * g_jac
            b[r : r + 3] += 0.5 * dt * dt * g0
            a[r + 3 : r + 6, 1:3] = -dt * g_jac
            b[r + 3 : r + 6] += dt * g0
            # the bias correction on top of accel_bias
            a[r : r + 3, 3:6] = -rot_i @ jac_pos
            a[r + 3 : r + 6, 3:6] = -rot_i @ jac_vel
        if refine:
            # a prior pulling the accelerometer bias correction to zero
            a[6 * n :, 3:6] = np.eye(3) / _ACCEL_BIAS_PRIOR_M_S2
            b[6 * n :] = -accel_bias / _ACCEL_BIAS_PRIOR_M_S2
        return a, b

    a, b = system(None, zero)
    solution = _solve(a, b)
    scale, gravity = float(solution[0]), solution[1:4]
    magnitude = float(np.linalg.norm(gravity))
    if not (np.isfinite(scale) and np.isfinite(magnitude)) or scale <= 0.0 or magnitude == 0.0:
        return None
    misfit = magnitude / GRAVITY_M_S2
    direction = gravity / magnitude
    accel_bias = zero.copy()
    # rows weighted by their expected noise: the camera positions' and the integrated
    # accelerometer's white noise over each interval
    weights = np.ones(6 * n + 3)
    for k, (_, pre, _, _) in enumerate(parts):
        weights[6 * k : 6 * k + 3] = 1.0 / position_std_m
        weights[6 * k + 3 : 6 * k + 6] = 1.0 / (accel_noise_density * np.sqrt(pre.dt_s))
    for _ in range(iterations):
        a, b = system(direction, accel_bias)
        a, b = a * weights[:, None], b * weights
        solution = _solve(a, b)
        basis = _tangent_basis(direction)
        direction = so3_exp(basis @ solution[1:3]) @ direction
        accel_bias = accel_bias + solution[3:6]
        scale = float(solution[0])
    if not np.isfinite(scale) or scale <= 0.0:
        return None
    # the scale's standard deviation from the weighted residuals (at the last linearisation)
    residual = a @ solution - b
    dof = max(a.shape[0] - a.shape[1], 1)
    sigma_sq = float(residual @ residual) / dof
    try:
        cov_ss = float(np.linalg.inv(a.T @ a)[0, 0]) * sigma_sq
    except np.linalg.LinAlgError:
        return None
    velocity = solution[-3:].copy()
    return ScaleAlignment(
        scale,
        GRAVITY_M_S2 * direction,
        velocity,
        bias,
        accel_bias,
        float(np.sqrt(max(cov_ss, 0.0))) / scale,
        misfit,
    )


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares by the normal equations (the systems are small and well scaled; far
    faster than an SVD); NaN when singular."""
    try:
        out: np.ndarray = np.linalg.solve(a.T @ a, a.T @ b)
    except np.linalg.LinAlgError:
        return np.full(a.shape[1], np.nan)
    return out


def _tangent_basis(direction: np.ndarray) -> np.ndarray:
    """(3, 2) two unit vectors orthogonal to ``direction`` and to each other."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    first = np.cross(direction, helper)
    first /= np.linalg.norm(first)
    second = np.cross(direction, first)
    return np.stack([first, second], axis=1)


def window_velocity(window: list[WindowInterval]) -> np.ndarray:
    """(3,) m/s the body's mean velocity over the window by its tracked end poses (zero
    without an interval)."""
    if not window:
        return np.zeros(3)
    span_s = (window[-1].end_ns - window[0].start_ns) * 1e-9
    moved_m = window[-1].end_world_from_body[:3, 3] - window[0].start_world_from_body[:3, 3]
    out: np.ndarray = moved_m / max(span_s, 1e-9)
    return out
