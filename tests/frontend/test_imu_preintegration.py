"""Preintegration against the simulator's exact IMU (no noise): the relative rotation,
velocity and position it measures match the closed-form trajectory's."""

from __future__ import annotations

import numpy as np
import pytest

from slamfront.frontend.imu_preintegration import ImuSamples, preintegrate
from slamfront.geometry import rotation_angle_deg, so3_exp
from slamfront.sim.imu import GRAVITY_WORLD_M_S2, ImuErrors, body_motion, imu_samples, imu_stamps_ns
from slamfront.sim.rig import BODY_FROM_CAM
from slamfront.sim.trajectories import get_trajectory


def _arrays(samples: tuple) -> ImuSamples:  # type: ignore[type-arg]
    return ImuSamples(
        np.array([s.stamp_ns for s in samples], np.int64),
        np.array([s.gyro_rad_s for s in samples], np.float64),
        np.array([s.accel_m_s2 for s in samples], np.float64),
    )


@pytest.mark.parametrize("name", ["loop", "headturn"])
@pytest.mark.parametrize("span_s", [1 / 30, 0.5])
def test_preintegration_matches_the_exact_trajectory(name: str, span_s: float) -> None:
    model = get_trajectory(name)
    bias_g = np.array([0.01, -0.02, 0.015])
    bias_a = np.array([0.2, -0.1, 0.3])
    errors = ImuErrors(tuple(bias_g), tuple(bias_a))  # type: ignore[arg-type]
    for start_s in (0.4, 2.0, 3.3):
        start_ns, end_ns = round(start_s * 1e9), round((start_s + span_s) * 1e9)
        stamps = imu_stamps_ns(start_ns - 10_000_000, end_ns + 10_000_000, 200.0)
        samples = _arrays(imu_samples(model, BODY_FROM_CAM, stamps, errors, None))
        pre = preintegrate(samples, start_ns, end_ns, bias_g, bias_a)
        truth = body_motion(model, BODY_FROM_CAM, np.array([start_ns, end_ns]) * 1e-9)
        rot_i, rot_j = truth.world_from_body[:, :3, :3]
        p_i, p_j = truth.world_from_body[:, :3, 3]
        v_i, v_j = truth.velocity_world_m_s
        dt = pre.dt_s
        g = GRAVITY_WORLD_M_S2
        assert rotation_angle_deg(rot_i.T @ rot_j @ pre.delta_rot.T) < 2e-3 * (span_s / 0.1)
        dv = rot_i.T @ (v_j - v_i - g * dt)
        dp = rot_i.T @ (p_j - p_i - v_i * dt - 0.5 * g * dt * dt)
        assert np.linalg.norm(pre.delta_vel_m_s - dv) < 2e-3 * span_s / 0.1
        assert np.linalg.norm(pre.delta_pos_m - dp) < 1e-4 * (span_s / 0.1) ** 2


def test_gyro_bias_jacobian_predicts_a_bias_change() -> None:
    model = get_trajectory("loop")
    start_ns, end_ns = 1_000_000_000, 1_500_000_000
    stamps = imu_stamps_ns(start_ns - 5_000_000, end_ns + 5_000_000, 200.0)
    samples = _arrays(imu_samples(model, BODY_FROM_CAM, stamps, ImuErrors(), None))
    zero = np.zeros(3)
    base = preintegrate(samples, start_ns, end_ns, zero, zero)
    change = np.array([0.01, -0.005, 0.008])
    moved = preintegrate(samples, start_ns, end_ns, change, zero)
    predicted = base.delta_rot @ so3_exp(base.rot_d_gyro_bias @ change)
    assert rotation_angle_deg(predicted.T @ moved.delta_rot) < 1e-3
    assert rotation_angle_deg(base.delta_rot.T @ moved.delta_rot) > 0.1  # the change matters


def test_bad_input_is_refused() -> None:
    empty = ImuSamples(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no IMU samples"):
        preintegrate(empty, 0, 10, np.zeros(3), np.zeros(3))
    one = ImuSamples(np.array([5], np.int64), np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="before it starts"):
        preintegrate(one, 10, 0, np.zeros(3), np.zeros(3))


def test_accel_bias_jacobians_are_exact() -> None:
    """The velocity and position changes are linear in the accelerometer bias: the Jacobians
    predict a re-integration with another bias exactly."""
    rng = np.random.default_rng(1)
    stamps = np.arange(0, 200_000_000, 5_000_000, dtype=np.int64)
    samples = ImuSamples(
        stamps, rng.normal(0, 1.0, (stamps.size, 3)), rng.normal(0, 3, (stamps.size, 3))
    )
    bias = np.array([0.3, -0.2, 0.5])
    zero = np.zeros(3)
    base = preintegrate(samples, 2_000_000, 190_000_000, zero, zero)
    moved = preintegrate(samples, 2_000_000, 190_000_000, zero, bias)
    np.testing.assert_allclose(
        moved.delta_vel_m_s, base.delta_vel_m_s + base.vel_d_accel_bias @ bias, atol=1e-12
    )
    np.testing.assert_allclose(
        moved.delta_pos_m, base.delta_pos_m + base.pos_d_accel_bias @ bias, atol=1e-12
    )
