"""Trajectories of the synthetic rig: hand-held speeds, smoothness, revisits (or none)."""

from __future__ import annotations

import numpy as np
import pytest

from slamfront.geometry import invert_pose, rotation_angle_deg
from slamfront.sim.imu import body_motion
from slamfront.sim.scene import build_scene
from slamfront.sim.trajectories import TRAJECTORY_NAMES, get_trajectory

# (max speed m/s, max rate deg/s, max acceleration m/s², max jerk m/s³) of each trajectory
_LIMITS = {"headturn": (1.0, 450.0, 2.0, 5.0), "drive": (10.0, 45.0, 8.0, 15.0)}


@pytest.mark.parametrize("name", TRAJECTORY_NAMES)
def test_speeds_are_hand_held_and_motion_is_smooth(name: str) -> None:
    model = get_trajectory(name)
    t = np.linspace(-0.5, model.duration_s + 0.5, 4001)
    motion = body_motion(model, np.eye(4), t)
    speed = np.linalg.norm(motion.velocity_world_m_s, axis=1)
    rate_deg_s = np.degrees(np.linalg.norm(motion.gyro_body_rad_s, axis=1))
    max_speed, max_rate, max_accel, max_jerk = _LIMITS.get(name, (1.0, 60.0, 2.0, 5.0))
    assert speed.max() < max_speed  # hand-held, or a car in town
    assert rate_deg_s.max() < max_rate  # quick head turns: 450
    # Continuous velocity and acceleration: no jumps between samples a few ms apart.
    dt = t[1] - t[0]
    assert np.abs(np.diff(motion.velocity_world_m_s, axis=0)).max() < max_accel * dt
    assert np.abs(np.diff(motion.accel_world_m_s2, axis=0)).max() < max_jerk * dt
    # Rotations are proper.
    rot = model.world_from_cam(t)[:, :3, :3]
    np.testing.assert_allclose(
        rot @ np.transpose(rot, (0, 2, 1)), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_headturn_stands_still_then_turns_fast() -> None:
    model = get_trajectory("headturn")
    t = np.arange(0.0, model.duration_s, 0.002)
    motion = body_motion(model, np.eye(4), t)
    rate_deg_s = np.degrees(np.linalg.norm(motion.gyro_body_rad_s, axis=1))
    speed = np.linalg.norm(motion.velocity_world_m_s, axis=1)
    assert rate_deg_s[t < 1.0].max() < 1e-6 and speed[t < 1.0].max() < 1e-6
    assert rate_deg_s.max() > 300.0
    assert np.count_nonzero(np.diff((rate_deg_s > 200.0).astype(int)) == 1) == 6  # six turns


def test_loop_leaves_the_start_and_returns_to_it() -> None:
    model = get_trajectory("loop")
    assert model.period_s is not None and model.duration_s > model.period_s + 1.0
    t = np.arange(0.0, model.duration_s, 1.0 / 30.0)
    poses = model.world_from_cam(t)
    start = poses[0]
    dist = np.linalg.norm(poses[:, :3, 3] - start[:3, 3], axis=1)
    assert dist.max() > 1.5  # it really leaves
    back = model.world_from_cam(model.period_s)
    np.testing.assert_allclose(back, start, atol=1e-9)
    # The frames after the return see the start viewpoint again, closely.
    late = t > model.period_s - 0.2
    angles = [rotation_angle_deg(invert_pose(start) @ p) for p in poses[late]]
    assert dist[late].min() < 0.01 and min(angles) < 0.5
    # 6-DoF: height, pitch and roll all vary by more than a token amount.
    heights = poses[:, 2, 3]
    assert heights.max() - heights.min() > 0.2
    optical_axis = poses[:, :3, 2]
    pitch_deg = np.degrees(np.arcsin(optical_axis[:, 2]))
    assert pitch_deg.max() - pitch_deg.min() > 8.0
    right = poses[:, :3, 0]
    roll_deg = np.degrees(np.arcsin(right[:, 2]))
    assert roll_deg.max() - roll_deg.min() > 4.0


def test_figure8_is_periodic_and_crosses_itself() -> None:
    model = get_trajectory("figure8")
    assert model.period_s is not None
    np.testing.assert_allclose(
        model.world_from_cam(model.period_s), model.world_from_cam(0.0), atol=1e-9
    )
    half = model.world_from_cam(model.period_s / 2.0)
    start = model.world_from_cam(0.0)
    # Same place (the crossing), different direction.
    assert np.linalg.norm(half[:2, 3] - start[:2, 3]) < 0.05
    assert rotation_angle_deg(invert_pose(start) @ half) > 20.0


def test_still_does_not_move() -> None:
    model = get_trajectory("still")
    poses = model.world_from_cam(np.linspace(0.0, model.duration_s, 50))
    np.testing.assert_array_equal(poses, np.broadcast_to(poses[0], poses.shape))


def test_repeated_never_revisits_a_place() -> None:
    model = get_trajectory("repeated")
    t = np.arange(0.0, model.duration_s, 0.1)
    xyz = model.world_from_cam(t)[:, :3, 3]
    assert np.all(np.diff(xyz[:, 0]) > 0.0)  # always moving on along the corridor
    gap = np.abs(t[:, None] - t[None, :]) > 3.0
    dist = np.linalg.norm(xyz[:, None] - xyz[None, :], axis=2)
    assert dist[gap].min() > 1.2
    assert xyz[-1, 0] - xyz[0, 0] > 12.0  # passes all five boxes (3 m apart)


@pytest.mark.parametrize("name", [n for n in TRAJECTORY_NAMES if n != "drive"])
def test_camera_stays_inside_its_scene_away_from_walls(name: str) -> None:
    model = get_trajectory(name)
    scene_bounds = {
        "room": ([-4.0, -3.0, 0.0], [4.0, 3.0, 2.8]),
        "repeated": ([-8.0, -2.5, 0.0], [8.0, 2.5, 2.8]),
    }
    lo, hi = (np.array(v) for v in scene_bounds[model.scene])
    xyz = model.world_from_cam(np.linspace(0.0, model.duration_s, 500))[:, :3, 3]
    assert np.all(xyz > lo + 0.8) and np.all(xyz < hi - 0.8)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="known: loop"):
        get_trajectory("spiral")
    with pytest.raises(ValueError, match="known: room"):
        build_scene("garden", 0)
