"""Smooth camera trajectories of the synthetic rig, as closed-form functions of time.

Every trajectory gives ``world_from_cam`` (camera frame x right, y down, z forward; world
frame z up, see :mod:`slamfront.sim.scene`) at any real time, so poses, velocities and
accelerations are exact and infinitely differentiable (sums of sinusoids and linear terms),
which keeps a simulated IMU consistent with the images. Orientation is built from a
heading (yaw about world z), a pitch (positive looks up) and a roll about the optical axis.

Trajectories by name:

- ``loop`` (scene ``room``): a 14 s closed 6-DoF lap around the middle of the room (height,
  pitch and roll vary), looking outwards and forwards; it returns exactly to its start pose
  at 14 s and goes on for 1.5 s more, so the start viewpoint is revisited.
- ``figure8`` (scene ``room``): a 20 s figure-eight through the room centre, also periodic.
- ``still`` (scene ``room``): the camera at rest for 10 s (no motion at all).
- ``repeated`` (scene ``repeated``): 24 s sideways along the corridor past five identical
  boxes; x only increases, so no real place is ever revisited.
- ``headturn`` (scene ``room``): a headset wearer standing still for 1 s, then swaying
  slowly and turning the head left and right in quick turns (peaks above 200 deg/s), 8 s.
- ``drive`` (scene ``street``): a forward camera on a car, 1.65 m above the road, 20 s
  (200 frames at KITTI's 10 Hz): 6.5 s straight along +x in the right lane, a 90 deg left
  turn over 5 s (yaw rate rising and falling as 1 - cos, peak 36 deg/s, tightest radius
  about 13 m), then straight along +y; speed 8-9.5 m/s (slower in the turn), with small
  suspension pitch, roll and bounce. Its frames come at 10 Hz unless ``sim.fps`` says
  otherwise (the others: 30 Hz). A KITTI-like rig (1241 x 376 px, fx about 718):
  ``slamfront run sim:drive sim.width_px=1241 sim.height_px=376 sim.hfov_deg=81.6``
  (plus ``sim.sensor=mono``, or ``sim.sensor=stereo sim.baseline_m=0.54``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slamfront.sim.scene import STREET_CROSS_X_M, STREET_ROAD_HALF_M

TRAJECTORY_NAMES = ("loop", "figure8", "still", "repeated", "headturn", "drive")

# Camera axes in the world for yaw = pitch = roll = 0: looking along +x, right = -y, down = -z.
_WORLD_FROM_CAM_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_WORLD_FROM_CAM_LEVEL.setflags(write=False)


@dataclass(frozen=True, eq=False)
class TrajectoryModel:
    """A named trajectory. ``world_from_cam(t_s)`` is defined for every real time.

    duration_s: the natural length of the sequence; period_s: the time after which the
    pose repeats exactly (None when it never does); scene: the scene it is made for;
    fps: the natural frame rate (used when ``sim.fps`` is not set).
    """

    name: str
    scene: str
    duration_s: float
    period_s: float | None
    pose_fn: Callable[[np.ndarray], np.ndarray]
    fps: float = 30.0

    def world_from_cam(self, t_s: float | np.ndarray) -> np.ndarray:
        """(4, 4) pose for a scalar time, (N, 4, 4) for an array of N times (seconds)."""
        t = np.asarray(t_s, dtype=np.float64)
        poses = self.pose_fn(np.atleast_1d(t).ravel())
        return poses[0] if t.ndim == 0 else poses


def get_trajectory(name: str) -> TrajectoryModel:
    """The trajectory ``name``; ValueError listing the known names otherwise."""
    builders: dict[str, Callable[[], TrajectoryModel]] = {
        "loop": _loop,
        "figure8": _figure8,
        "still": _still,
        "repeated": _repeated,
        "headturn": _headturn,
        "drive": _drive,
    }
    if name not in builders:
        raise ValueError(f"unknown trajectory {name!r}; known: {', '.join(TRAJECTORY_NAMES)}")
    return builders[name]()


def look_poses(
    position_m: np.ndarray, yaw_rad: np.ndarray, pitch_rad: np.ndarray, roll_rad: np.ndarray
) -> np.ndarray:
    """(N, 4, 4) world_from_cam from positions (N, 3) and yaw, pitch (up), roll (N,)."""
    n = position_m.shape[0]
    cy, sy = np.cos(yaw_rad), np.sin(yaw_rad)
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    cr, sr = np.cos(roll_rad), np.sin(roll_rad)
    zeros, ones = np.zeros(n), np.ones(n)
    rz = np.stack([cy, -sy, zeros, sy, cy, zeros, zeros, zeros, ones], 1).reshape(n, 3, 3)
    # Pitch: about the camera x axis; a positive angle turns the optical axis up (-y).
    rx = np.stack([ones, zeros, zeros, zeros, cp, -sp, zeros, sp, cp], 1).reshape(n, 3, 3)
    rroll = np.stack([cr, -sr, zeros, sr, cr, zeros, zeros, zeros, ones], 1).reshape(n, 3, 3)
    poses = np.zeros((n, 4, 4))
    poses[:, :3, :3] = rz @ _WORLD_FROM_CAM_LEVEL @ rx @ rroll
    poses[:, :3, 3] = position_m
    poses[:, 3, 3] = 1.0
    return poses


def _heading(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.arctan2(dy, dx)


def _loop() -> TrajectoryModel:
    period = 14.0
    w = 2.0 * math.pi / period

    def pose(t: np.ndarray) -> np.ndarray:
        x = 1.4 * np.cos(w * t) + 0.1 * np.cos(2 * w * t + 0.4)
        y = 0.9 * np.sin(w * t) + 0.1 * np.sin(2 * w * t + 1.0)
        z = 1.4 + 0.15 * np.sin(2 * w * t + 0.3) + 0.05 * np.sin(3 * w * t)
        dx = -1.4 * w * np.sin(w * t) - 0.2 * w * np.sin(2 * w * t + 0.4)
        dy = 0.9 * w * np.cos(w * t) + 0.2 * w * np.cos(2 * w * t + 1.0)
        yaw = _heading(dx, dy) - math.radians(35.0) + math.radians(8.0) * np.sin(2 * w * t + 0.7)
        pitch = math.radians(-6.0) + math.radians(7.0) * np.sin(2 * w * t + 1.3)
        roll = math.radians(4.0) * np.sin(3 * w * t + 0.5)
        return look_poses(np.stack([x, y, z], 1), yaw, pitch, roll)

    return TrajectoryModel("loop", "room", period + 1.5, period, pose)


def _figure8() -> TrajectoryModel:
    period = 20.0
    w = 2.0 * math.pi / period

    def pose(t: np.ndarray) -> np.ndarray:
        x = 1.6 * np.sin(w * t)
        y = 0.8 * np.sin(2 * w * t)
        z = 1.35 + 0.12 * np.sin(3 * w * t + 0.2)
        dx = 1.6 * w * np.cos(w * t)
        dy = 1.6 * w * np.cos(2 * w * t)
        yaw = _heading(dx, dy) - math.radians(30.0) * np.cos(w * t)
        pitch = math.radians(-5.0) + math.radians(6.0) * np.sin(2 * w * t + 0.9)
        roll = math.radians(3.0) * np.sin(3 * w * t)
        return look_poses(np.stack([x, y, z], 1), yaw, pitch, roll)

    return TrajectoryModel("figure8", "room", period, period, pose)


def _still() -> TrajectoryModel:
    def pose(t: np.ndarray) -> np.ndarray:
        n = t.shape[0]
        position = np.tile([0.4, -0.6, 1.4], (n, 1))
        return look_poses(
            position,
            np.full(n, math.radians(-60.0)),
            np.full(n, math.radians(-12.0)),
            np.full(n, math.radians(2.0)),
        )

    return TrajectoryModel("still", "room", 10.0, None, pose)


def _repeated() -> TrajectoryModel:
    speed = 0.55

    def pose(t: np.ndarray) -> np.ndarray:
        x = -6.6 + speed * t + 0.08 * np.sin(2 * math.pi * t / 7.0)
        y = -0.6 + 0.1 * np.sin(2 * math.pi * t / 11.0)
        z = 1.45 + 0.08 * np.sin(2 * math.pi * t / 5.0 + 0.5)
        yaw = math.radians(90.0 - 12.0) + math.radians(10.0) * np.sin(2 * math.pi * t / 9.0)
        pitch = math.radians(-9.0) + math.radians(4.0) * np.sin(2 * math.pi * t / 6.0)
        roll = math.radians(2.5) * np.sin(2 * math.pi * t / 4.0)
        return look_poses(np.stack([x, y, z], 1), yaw, pitch, roll)

    return TrajectoryModel("repeated", "repeated", 24.0, None, pose)


# (start s, duration s, yaw change deg) of each head turn; peak rate 2 x change / duration
_HEAD_TURNS = ((1.5, 0.45, 60.0), (2.6, 0.35, -70.0), (3.8, 0.3, -60.0), (4.9, 0.35, 70.0),
               (6.0, 0.45, 55.0), (7.0, 0.3, -65.0))  # fmt: skip


def _turn_angle(t: np.ndarray, start_s: float, length_s: float, change_rad: float) -> np.ndarray:
    """A turn whose rate rises and falls as 1 - cos (angular acceleration continuous)."""
    s = np.clip((t - start_s) / length_s, 0.0, 1.0)
    out: np.ndarray = change_rad * (s - np.sin(2.0 * math.pi * s) / (2.0 * math.pi))
    return out


def _headturn() -> TrajectoryModel:
    def pose(t: np.ndarray) -> np.ndarray:
        moving = np.clip(t - 1.0, 0.0, None) ** 3 / (1.0 + np.clip(t - 1.0, 0.0, None) ** 2)
        x = 0.3 + 0.08 * np.sin(0.9 * moving)
        y = -0.4 + 0.06 * np.sin(0.7 * moving + 0.3) - 0.06 * math.sin(0.3)
        z = 1.6 + 0.02 * np.sin(1.7 * moving)
        yaw = np.full_like(t, math.radians(-50.0))
        for start_s, length_s, change_deg in _HEAD_TURNS:
            yaw = yaw + _turn_angle(t, start_s, length_s, math.radians(change_deg))
        pitch = math.radians(-8.0) + math.radians(4.0) * np.sin(0.8 * moving)
        roll = math.radians(2.0) * np.sin(0.6 * moving)
        return look_poses(np.stack([x, y, z], 1), yaw, pitch, roll)

    return TrajectoryModel("headturn", "room", 8.0, None, pose)


# A car drive through the ``street`` scene: straight, a 90 deg left turn, straight.
_DRIVE_TURN_START_S = 6.5
_DRIVE_TURN_S = 5.0  # peak yaw rate 2 x 90 deg / 5 s = 36 deg/s
_DRIVE_SPEED_M_S = 9.3
_DRIVE_SLOW_M_S = 1.2  # slower around the turn, in a 1 - cos dip
_DRIVE_SLOW_START_S = 5.0
_DRIVE_SLOW_S = 8.0
_DRIVE_CAMERA_HEIGHT_M = 1.65
# a slow speed wobble of +-0.25 m/s over 6.1 s (phase 0.5 rad at t = 0)
_DRIVE_WOBBLE_M_S, _DRIVE_WOBBLE_RAD_S, _DRIVE_WOBBLE_PHASE = 0.25, 2.0 * math.pi / 6.1, 0.5
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(32)
_GAUSS_NODES.setflags(write=False)
_GAUSS_WEIGHTS.setflags(write=False)


def _drive_distance(t: np.ndarray) -> np.ndarray:
    """Distance driven since t = 0 (metres): the integral of :func:`_drive_speed`."""
    w, phase = _DRIVE_WOBBLE_RAD_S, _DRIVE_WOBBLE_PHASE
    s = np.clip((t - _DRIVE_SLOW_START_S) / _DRIVE_SLOW_S, 0.0, 1.0)
    slow = 0.5 * _DRIVE_SLOW_M_S * _DRIVE_SLOW_S * (s - np.sin(2.0 * math.pi * s) / (2.0 * math.pi))
    wobble = -_DRIVE_WOBBLE_M_S / w * (np.cos(w * t + phase) - math.cos(phase))
    out: np.ndarray = _DRIVE_SPEED_M_S * t + wobble - slow
    return out


def _drive_speed(t: np.ndarray) -> np.ndarray:
    s = np.clip((t - _DRIVE_SLOW_START_S) / _DRIVE_SLOW_S, 0.0, 1.0)
    slow = 0.5 * _DRIVE_SLOW_M_S * (1.0 - np.cos(2.0 * math.pi * s))
    wobble = _DRIVE_WOBBLE_M_S * np.sin(_DRIVE_WOBBLE_RAD_S * t + _DRIVE_WOBBLE_PHASE)
    out: np.ndarray = _DRIVE_SPEED_M_S + wobble - slow
    return out


def _drive_turn_offset(t: np.ndarray) -> np.ndarray:
    """(N, 2) xy displacement during the turn up to ``t`` (Gauss-Legendre quadrature of the
    velocity over [turn start, t], exact to rounding as the integrand is smooth there)."""
    start = _DRIVE_TURN_START_S
    upper = np.clip(t, start, start + _DRIVE_TURN_S)
    half = 0.5 * (upper - start)[:, None]
    tau = start + half * (_GAUSS_NODES[None, :] + 1.0)  # (N, K)
    yaw = _turn_angle(tau, start, _DRIVE_TURN_S, 0.5 * math.pi)
    speed = _drive_speed(tau)
    dx = (half * _GAUSS_WEIGHTS * speed * np.cos(yaw)).sum(axis=1)
    dy = (half * _GAUSS_WEIGHTS * speed * np.sin(yaw)).sum(axis=1)
    return np.stack([dx, dy], axis=1)


def _drive() -> TrajectoryModel:
    start, end = _DRIVE_TURN_START_S, _DRIVE_TURN_START_S + _DRIVE_TURN_S
    lane = 0.5 * STREET_ROAD_HALF_M  # the middle of the right-hand lane
    # start where the turn ends in the right lane of the second road
    turn = _drive_turn_offset(np.array([end]))[0]
    x_start = STREET_CROSS_X_M + lane - turn[0] - float(_drive_distance(np.array([start]))[0])
    peak_lateral = 2.0 * 0.5 * math.pi / _DRIVE_TURN_S * _DRIVE_SPEED_M_S

    def pose(t: np.ndarray) -> np.ndarray:
        offset = _drive_turn_offset(t)
        x = x_start + _drive_distance(np.minimum(t, start)) + offset[:, 0]
        after = _drive_distance(np.maximum(t, end)) - float(_drive_distance(np.array([end]))[0])
        y = -lane + offset[:, 1] + after
        s = np.clip((t - start) / _DRIVE_TURN_S, 0.0, 1.0)
        yaw = _turn_angle(t, start, _DRIVE_TURN_S, 0.5 * math.pi)
        yaw_rate = 0.5 * math.pi / _DRIVE_TURN_S * (1.0 - np.cos(2.0 * math.pi * s))
        bounce = 0.01 * np.sin(2.0 * math.pi * t / 1.1) + 0.006 * np.sin(
            2.0 * math.pi * t / 0.53 + 2.0
        )
        z = _DRIVE_CAMERA_HEIGHT_M + bounce
        # suspension: slow pitch and roll oscillations, the body rolling out of the turn
        pitch = (
            math.radians(-1.0)
            + math.radians(0.5) * np.sin(2.0 * math.pi * t / 1.3)
            + math.radians(0.25) * np.sin(2.0 * math.pi * t / 0.7 + 1.0)
        )
        roll = (
            math.radians(0.35) * np.sin(2.0 * math.pi * t / 1.7 + 0.3)
            + math.radians(0.6) * _drive_speed(t) * yaw_rate / peak_lateral
        )
        return look_poses(np.stack([x, y, z], 1), yaw, pitch, roll)

    return TrajectoryModel("drive", "street", 20.0, None, pose, fps=10.0)
