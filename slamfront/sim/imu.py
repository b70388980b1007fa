"""A simulated IMU consistent with a :class:`~slamfront.sim.trajectories.TrajectoryModel`.

The IMU (body) frame is rigidly attached to the camera: ``world_from_body = world_from_cam @
inv(body_from_cam)``. At each sample time the gyroscope reads the body angular rate in the
body frame and the accelerometer the specific force
``R_body_from_world (a_world - g_world)`` with ``g_world = (0, 0, -9.81)`` m/s² (world z up),
each plus a constant bias and white Gaussian noise (per-sample standard deviation, not a
noise density). Derivatives come from 5-point central differences of the closed-form
trajectory (error around 1e-9 m/s², far below any noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slamfront.geometry import invert_pose
from slamfront.sim.trajectories import TrajectoryModel
from slamfront.types import ImuSample

GRAVITY_WORLD_M_S2 = np.array([0.0, 0.0, -9.81])
GRAVITY_WORLD_M_S2.setflags(write=False)


@dataclass(frozen=True, eq=False)
class BodyMotion:
    """Exact motion of the IMU frame at N times.

    world_from_body: (N, 4, 4); velocity_world_m_s, accel_world_m_s2: (N, 3) of the body
    origin in the world frame; gyro_body_rad_s: (N, 3) angular rate in the body frame.
    """

    world_from_body: np.ndarray
    velocity_world_m_s: np.ndarray
    accel_world_m_s2: np.ndarray
    gyro_body_rad_s: np.ndarray


@dataclass(frozen=True)
class ImuErrors:
    """Sensor errors: constant biases and per-sample white-noise standard deviations."""

    gyro_bias_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    accel_bias_m_s2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gyro_noise_std_rad_s: float = 0.0
    accel_noise_std_m_s2: float = 0.0


def body_motion(model: TrajectoryModel, body_from_cam: np.ndarray, t_s: np.ndarray) -> BodyMotion:
    """Pose, velocity, acceleration and angular rate of the body frame at times ``t_s``."""
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    cam_from_body = invert_pose(body_from_cam)

    def poses(times: np.ndarray) -> np.ndarray:
        out: np.ndarray = model.world_from_cam(times) @ cam_from_body
        return out

    def stencil(h: float) -> np.ndarray:
        offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]) * h
        stacked = poses((t[None, :] + offsets[:, None]).ravel())
        return stacked.reshape(5, t.shape[0], 4, 4)

    fine = stencil(1e-3)
    coarse = stencil(1e-2)
    first = (fine[0] - 8.0 * fine[1] + 8.0 * fine[3] - fine[4]) / (12.0 * 1e-3)
    second = (-coarse[0] + 16.0 * coarse[1] - 30.0 * coarse[2] + 16.0 * coarse[3] - coarse[4]) / (
        12.0 * 1e-4
    )
    world_from_body = fine[2]
    rot = world_from_body[:, :3, :3]
    omega_hat = np.transpose(rot, (0, 2, 1)) @ first[:, :3, :3]
    gyro = 0.5 * np.stack(
        [
            omega_hat[:, 2, 1] - omega_hat[:, 1, 2],
            omega_hat[:, 0, 2] - omega_hat[:, 2, 0],
            omega_hat[:, 1, 0] - omega_hat[:, 0, 1],
        ],
        axis=1,
    )
    return BodyMotion(world_from_body, first[:, :3, 3], second[:, :3, 3], gyro)


def imu_stamps_ns(after_ns: int, until_ns: int, rate_hz: float) -> np.ndarray:
    """Sample times ``round(k * 1e9 / rate_hz)`` with after_ns < t <= until_ns (int64)."""
    period_ns = 1e9 / rate_hz
    k0 = int(np.floor(after_ns / period_ns)) - 1
    k1 = int(np.ceil(until_ns / period_ns)) + 1
    k = np.arange(k0, k1 + 1, dtype=np.int64)
    stamps = np.rint(k * period_ns).astype(np.int64)
    return stamps[(stamps > after_ns) & (stamps <= until_ns)]


def imu_samples(
    model: TrajectoryModel,
    body_from_cam: np.ndarray,
    stamps_ns: np.ndarray,
    errors: ImuErrors,
    rng: np.random.Generator | None,
) -> tuple[ImuSample, ...]:
    """IMU readings at ``stamps_ns``; ``rng`` draws the noise (None: no noise)."""
    if stamps_ns.size == 0:
        return ()
    motion = body_motion(model, body_from_cam, stamps_ns * 1e-9)
    rot = motion.world_from_body[:, :3, :3]
    specific_world = motion.accel_world_m_s2 - GRAVITY_WORLD_M_S2
    accel = np.einsum("nji,nj->ni", rot, specific_world) + np.asarray(errors.accel_bias_m_s2)
    gyro = motion.gyro_body_rad_s + np.asarray(errors.gyro_bias_rad_s)
    if rng is not None:
        n = stamps_ns.size
        gyro = gyro + rng.standard_normal((n, 3)) * errors.gyro_noise_std_rad_s
        accel = accel + rng.standard_normal((n, 3)) * errors.accel_noise_std_m_s2
    return tuple(
        ImuSample(
            int(s),
            (float(g[0]), float(g[1]), float(g[2])),
            (float(a[0]), float(a[1]), float(a[2])),
        )
        for s, g, a in zip(stamps_ns, gyro, accel, strict=True)
    )
