"""The simulated IMU agrees with the ground-truth trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from slamfront.geometry import invert_pose, so3_exp, so3_log
from slamfront.sim.imu import (
    GRAVITY_WORLD_M_S2,
    ImuErrors,
    imu_samples,
    imu_stamps_ns,
)
from slamfront.sim.rig import BODY_FROM_CAM
from slamfront.sim.trajectories import get_trajectory


def _integrate(
    gyro: np.ndarray,
    accel: np.ndarray,
    dt: float,
    world_from_body: np.ndarray,
    velocity: np.ndarray,
) -> np.ndarray:
    """Strapdown integration (midpoint rotation, trapezoidal velocity) -> final world_from_body."""
    rot = world_from_body[:3, :3].copy()
    pos = world_from_body[:3, 3].copy()
    vel = velocity.copy()
    for k in range(len(gyro) - 1):
        acc_k = rot @ accel[k] + GRAVITY_WORLD_M_S2
        rot_next = rot @ so3_exp(0.5 * (gyro[k] + gyro[k + 1]) * dt)
        acc_next = rot_next @ accel[k + 1] + GRAVITY_WORLD_M_S2
        pos = pos + vel * dt + (2.0 * acc_k + acc_next) / 6.0 * dt * dt
        vel = vel + 0.5 * (acc_k + acc_next) * dt
        rot = rot_next
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, pos
    return out


@pytest.mark.parametrize(
    ("name", "start_s"),
    # the drive: on the straight, into its turn (quadrature-built positions), mid-turn
    [("loop", 2), ("figure8", 2), ("repeated", 2), ("drive", 2), ("drive", 6.3), ("drive", 8.5)],
)
def test_noise_free_imu_integrates_to_the_ground_truth_relative_pose(
    name: str, start_s: float
) -> None:
    model = get_trajectory(name)
    rate_hz, t0_ns = 200.0, round(start_s * 1e9)
    t1_ns = t0_ns + 500_000_000
    stamps = imu_stamps_ns(t0_ns - 1, t1_ns, rate_hz)
    assert stamps[0] == t0_ns and stamps[-1] == t1_ns and len(stamps) == 101
    samples = imu_samples(model, BODY_FROM_CAM, stamps, ImuErrors(), rng=None)
    gyro = np.array([s.gyro_rad_s for s in samples])
    accel = np.array([s.accel_m_s2 for s in samples])

    cam_from_body = invert_pose(BODY_FROM_CAM)

    def body_pose(t_s: float) -> np.ndarray:
        pose: np.ndarray = model.world_from_cam(t_s) @ cam_from_body
        return pose

    # Initial velocity of the body origin from the ground-truth poses alone.
    h = 1e-4
    v0 = (body_pose(t0_ns * 1e-9 + h)[:3, 3] - body_pose(t0_ns * 1e-9 - h)[:3, 3]) / (2 * h)
    start, end = body_pose(t0_ns * 1e-9), body_pose(t1_ns * 1e-9)
    estimate = _integrate(gyro, accel, 1.0 / rate_hz, start, v0)
    # Discretisation error of this integrator at 200 Hz is ~1e-7 m; any inconsistency in
    # frames, gravity or the extrinsic shows up as millimetres to metres.
    assert np.linalg.norm(estimate[:3, 3] - end[:3, 3]) < 1e-4
    assert np.degrees(np.linalg.norm(so3_log(invert_pose(end)[:3, :3] @ estimate[:3, :3]))) < 1e-3
    # The motion is real (so the check above has teeth).
    assert np.linalg.norm(end[:3, 3] - start[:3, 3]) > 0.05


def test_at_rest_the_accelerometer_reads_gravity_up_plus_bias() -> None:
    model = get_trajectory("still")
    stamps = imu_stamps_ns(-1, 2_000_000_000, 200.0)
    errors = ImuErrors(
        gyro_bias_rad_s=(0.001, -0.002, 0.0015),
        accel_bias_m_s2=(0.02, -0.01, 0.03),
        gyro_noise_std_rad_s=0.002,
        accel_noise_std_m_s2=0.02,
    )
    samples = imu_samples(model, BODY_FROM_CAM, stamps, errors, np.random.default_rng(3))
    gyro = np.array([s.gyro_rad_s for s in samples])
    accel = np.array([s.accel_m_s2 for s in samples])
    n = len(samples)
    body_from_world = invert_pose(model.world_from_cam(0.0) @ invert_pose(BODY_FROM_CAM))[:3, :3]
    expected_accel = body_from_world @ np.array([0.0, 0.0, 9.81]) + np.array(errors.accel_bias_m_s2)
    tol_accel = 5 * 0.02 / np.sqrt(n)
    np.testing.assert_allclose(accel.mean(axis=0), expected_accel, atol=tol_accel)
    np.testing.assert_allclose(
        gyro.mean(axis=0), errors.gyro_bias_rad_s, atol=5 * 0.002 / np.sqrt(n)
    )
    np.testing.assert_allclose(accel.std(axis=0), 0.02, rtol=0.2)
    np.testing.assert_allclose(gyro.std(axis=0), 0.002, rtol=0.2)
    # The camera looks down a little, so gravity is not along a single body axis.
    assert np.abs(expected_accel).max() < 9.8


def test_sample_stamps_fall_in_the_half_open_window() -> None:
    stamps = imu_stamps_ns(33_333_333, 66_666_667, 200.0)
    np.testing.assert_array_equal(
        stamps, [35_000_000, 40_000_000, 45_000_000, 50_000_000, 55_000_000, 60_000_000, 65_000_000]
    )
    assert imu_stamps_ns(35_000_000, 40_000_000, 200.0).tolist() == [40_000_000]
    assert imu_stamps_ns(35_000_000, 39_999_999, 200.0).size == 0
    # A rate that does not divide a second: stamps are rounded and strictly increasing.
    odd = imu_stamps_ns(0, 1_000_000_000, 300.0)
    assert len(odd) == 300 and np.all(np.diff(odd) > 0) and odd[-1] == 1_000_000_000
