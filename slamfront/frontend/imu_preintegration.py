"""IMU preintegration: the body's relative rotation, velocity and position change between two
times from gyro and accelerometer samples, biases removed, gravity left out (it is added
where the world frame is known).

The measurements are taken as linear in time between samples (held at the ends when the
samples do not reach a bound) and integrated by the midpoint rule over each piece, which
keeps the error far below sensor noise at IMU rates. With ``R_i``, ``p_i``, ``v_i`` the body
pose and velocity at the start (world frame, gravity ``g_world``):

    R_j = R_i dR,  v_j = v_i + g dt + R_i dv,  p_j = p_i + v_i dt + g dt^2 / 2 + R_i dp
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slamfront.geometry import skew, so3_exp

# the magnitude of gravity (m/s^2) the IMU's estimates assume
GRAVITY_M_S2 = 9.81


@dataclass(frozen=True, slots=True, eq=False)
class ImuSamples:
    """Samples as arrays: stamps_ns (N,) int64 strictly increasing (IMU clock); gyro_rad_s and
    accel_m_s2 (N, 3) in the body frame."""

    stamps_ns: np.ndarray
    gyro_rad_s: np.ndarray
    accel_m_s2: np.ndarray

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])


def concatenate_samples(parts: list[ImuSamples]) -> ImuSamples:
    """Samples of consecutive intervals as one set (shared boundary samples once)."""
    stamps = np.concatenate([p.stamps_ns for p in parts])
    gyro = np.concatenate([p.gyro_rad_s for p in parts])
    accel = np.concatenate([p.accel_m_s2 for p in parts])
    _, first = np.unique(stamps, return_index=True)
    return ImuSamples(stamps[first], gyro[first], accel[first])


@dataclass(frozen=True, slots=True, eq=False)
class Preintegrated:
    """Body motion from time i to j measured by the IMU, in body frame i, gravity excluded.

    delta_rot: (3, 3) R_i^T R_j; delta_vel_m_s, delta_pos_m: (3,); dt_s: j - i in seconds;
    rot_d_gyro_bias: (3, 3) how log(delta_rot) moves with the gyro bias (first order, right
    perturbation: delta_rot(b + db) ~ delta_rot(b) exp(rot_d_gyro_bias db)); gyro_bias_rad_s,
    accel_bias_m_s2: (3,) the biases removed; vel_d_accel_bias, pos_d_accel_bias: (3, 3) how
    delta_vel_m_s and delta_pos_m move with the accelerometer bias (exactly: they are linear
    in it).
    """

    delta_rot: np.ndarray
    delta_vel_m_s: np.ndarray
    delta_pos_m: np.ndarray
    dt_s: float
    rot_d_gyro_bias: np.ndarray
    gyro_bias_rad_s: np.ndarray
    accel_bias_m_s2: np.ndarray
    vel_d_accel_bias: np.ndarray
    pos_d_accel_bias: np.ndarray


def preintegrate(
    samples: ImuSamples,
    start_ns: int,
    end_ns: int,
    gyro_bias_rad_s: np.ndarray,
    accel_bias_m_s2: np.ndarray,
) -> Preintegrated:
    """The motion from ``start_ns`` to ``end_ns`` (IMU clock; end >= start) measured by
    ``samples`` (at least one). ValueError on an empty sample set or a reversed interval."""
    if len(samples) == 0:
        raise ValueError("no IMU samples to integrate")
    if end_ns < start_ns:
        raise ValueError(f"IMU interval ends ({end_ns}) before it starts ({start_ns})")
    bg = np.asarray(gyro_bias_rad_s, dtype=np.float64)
    ba = np.asarray(accel_bias_m_s2, dtype=np.float64)
    knots_ns, gyro, accel = _knots(samples, start_ns, end_ns)
    rot = np.eye(3)
    vel = np.zeros(3)
    pos = np.zeros(3)
    jac = np.zeros((3, 3))
    vel_d_ba = np.zeros((3, 3))
    pos_d_ba = np.zeros((3, 3))
    for k in range(knots_ns.shape[0] - 1):
        dt = (knots_ns[k + 1] - knots_ns[k]) * 1e-9
        if dt <= 0.0:
            continue
        omega = 0.5 * (gyro[k] + gyro[k + 1]) - bg
        step = so3_exp(omega * dt)
        half = so3_exp(omega * (0.5 * dt))
        rot_half = rot @ half
        acc_i = rot_half @ (0.5 * (accel[k] + accel[k + 1]) - ba)
        pos = pos + vel * dt + 0.5 * acc_i * dt * dt
        vel = vel + acc_i * dt
        pos_d_ba = pos_d_ba + vel_d_ba * dt - 0.5 * rot_half * dt * dt
        vel_d_ba = vel_d_ba - rot_half * dt
        jac = step.T @ jac - _right_jacobian(omega * dt) * dt
        rot = rot @ step
    return Preintegrated(
        rot, vel, pos, (end_ns - start_ns) * 1e-9, jac, bg.copy(), ba.copy(), vel_d_ba, pos_d_ba
    )


def _knots(
    samples: ImuSamples, start_ns: int, end_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times from start to end (the bounds and every sample strictly between) and the
    measurements there, linearly interpolated (held beyond the first and last sample)."""
    stamps = samples.stamps_ns
    inside = (stamps > start_ns) & (stamps < end_ns)
    knots = np.concatenate([[start_ns], stamps[inside], [end_ns]]).astype(np.int64)
    t = (stamps - stamps[0]).astype(np.float64)
    tk = (knots - stamps[0]).astype(np.float64)
    gyro = np.stack([np.interp(tk, t, samples.gyro_rad_s[:, a]) for a in range(3)], axis=1)
    accel = np.stack([np.interp(tk, t, samples.accel_m_s2[:, a]) for a in range(3)], axis=1)
    return knots, gyro, accel


def _right_jacobian(phi: np.ndarray) -> np.ndarray:
    """SO(3) right Jacobian at rotation vector ``phi``."""
    theta = float(np.linalg.norm(phi))
    hat = skew(phi)
    if theta < 1e-6:
        return np.eye(3) - 0.5 * hat
    return (
        np.eye(3)
        - (1.0 - np.cos(theta)) / theta**2 * hat
        + (theta - np.sin(theta)) / theta**3 * (hat @ hat)
    )
