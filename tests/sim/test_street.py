"""The street scene and the car drive through it: on the road, clear of buildings and
cars, a smooth 90 deg left turn at town speeds, and KITTI-sized views with texture on
both sides, sky only at the top."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from slamfront.config import SimConfig
from slamfront.sim.rig import SimRig
from slamfront.sim.scene import (
    STREET_CROSS_X_M,
    STREET_END_Y_M,
    STREET_ROAD_HALF_M,
    STREET_START_X_M,
    Scene,
)
from slamfront.sim.trajectories import get_trajectory

KITTI_RIG = {"width_px": 1241, "height_px": 376, "hfov_deg": 81.6}
CLEAN = {"image_noise_std": 0.0, "motion_blur": False}
CAMERA_HEIGHT_BAND_M = (1.5, 1.8)


def _drive_samples(step_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    model = get_trajectory("drive")
    t = np.arange(0.0, model.duration_s + 1e-9, step_s)
    return t, model.world_from_cam(t)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (N,) from 2-D points to the segment a-b."""
    ab = b - a
    s = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.asarray(np.linalg.norm(points - (a + s[:, None] * ab), axis=1))


def _heading_deg(poses: np.ndarray) -> np.ndarray:
    axis = poses[:, :3, 2]  # the optical axis in the world
    return np.degrees(np.unwrap(np.arctan2(axis[:, 1], axis[:, 0])))


def test_drive_stays_on_the_road_clear_of_buildings_and_cars(street_scene: Scene) -> None:
    _, poses = _drive_samples()
    xy = poses[:, :2, 3]
    x, y = xy[:, 0], xy[:, 1]
    # the car (1.8 m wide) stays on the asphalt: 1 m margin to its edge
    margin = STREET_ROAD_HALF_M - 1.0
    road1 = (np.abs(y) <= margin) & (x > STREET_START_X_M) & (x < STREET_CROSS_X_M + margin)
    road2 = (np.abs(x - STREET_CROSS_X_M) <= margin) & (y > -margin) & (y < STREET_END_Y_M)
    assert (road1 | road2).all()
    assert np.abs(poses[:, 2, 3] - 1.65).max() < 0.03  # camera height on a car
    # every wall standing at camera height is at least 1 m away (3 m for the nearest)
    walls = [
        f
        for f in street_scene.faces
        if abs(f.normal[2]) < 0.5
        and f.corners_m[:, 2].min() < CAMERA_HEIGHT_BAND_M[0]
        and f.corners_m[:, 2].max() > CAMERA_HEIGHT_BAND_M[1]
    ]
    assert len(walls) > 120
    nearest = np.full(len(xy), np.inf)
    for face in walls:
        bottom = face.corners_m[np.argsort(face.corners_m[:, 2])[:2], :2]
        nearest = np.minimum(nearest, _segment_distance(xy, bottom[0], bottom[1]))
    assert nearest.min() > 3.0
    # parked cars: distance from the camera to each box's footprint
    assert len(street_scene.boxes) >= 8
    for box in street_scene.boxes:
        yaw = math.radians(box.yaw_deg)
        rot = np.array([[math.cos(yaw), math.sin(yaw)], [-math.sin(yaw), math.cos(yaw)]])
        local = np.abs((xy - np.array(box.center_xy_m)) @ rot.T)
        outside = np.maximum(local - 0.5 * np.array(box.size_m[:2]), 0.0)
        assert np.linalg.norm(outside, axis=1).min() > 1.0


def test_drive_turns_left_by_90_degrees_smoothly_at_town_speed() -> None:
    t, poses = _drive_samples()
    dt = t[1] - t[0]
    heading = _heading_deg(poses)
    assert heading[-1] - heading[0] == pytest.approx(90.0, abs=1.0)
    assert np.abs(heading[t < 6.0]).max() < 0.01 and np.abs(heading[t > 12.0] - 90.0).max() < 0.01
    rate = np.diff(heading) / dt
    assert rate.min() > -0.01  # a left turn only
    assert 30.0 < rate.max() < 45.0
    # continuous yaw rate: no jump between samples 10 ms apart (rate of change < 50 deg/s²)
    assert np.abs(np.diff(rate)).max() < 50.0 * dt
    xy = poses[:, :2, 3]
    speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) / dt
    assert speed.min() > 7.5 and speed.max() < 10.0
    assert speed.max() - speed.min() > 1.0  # it slows for the turn
    turning = rate > 5.0
    radius = speed[turning] / np.radians(rate[turning])
    assert 12.0 < radius.min() < 20.0
    # suspension: small pitch and roll, not a rigid sled
    pitch = np.degrees(np.arcsin(poses[:, 2, 2]))
    roll = np.degrees(np.arcsin(poses[:, 2, 0]))
    assert 0.5 < pitch.max() - pitch.min() < 4.0 and np.abs(pitch).max() < 2.5
    assert 0.5 < roll.max() - roll.min() < 3.0 and np.abs(roll).max() < 1.5


def test_drive_gives_200_frames_at_10_hz_unless_told_otherwise(street_scene: Scene) -> None:
    rig = SimRig(SimConfig(trajectory="drive", width_px=160, height_px=64), street_scene)
    assert rig.num_frames == 200
    assert rig.stamp_ns(199) == 19_900_000_000
    assert len(rig.frame(5).imu) == 20  # 200 Hz IMU samples over 0.1 s
    faster = SimConfig(trajectory="drive", fps=30.0, width_px=160, height_px=64)
    assert SimRig(faster, street_scene).num_frames == 600
    assert SimRig(SimConfig(width_px=160, height_px=64)).num_frames == round(15.5 * 30)


def _textured_points(grey: np.ndarray, mask: np.ndarray) -> int:
    pts = cv2.goodFeaturesToTrack(grey, 3000, 0.01, 5, mask=mask.astype(np.uint8), blockSize=5)
    return 0 if pts is None else len(pts)


@pytest.mark.parametrize("index", [0, 70, 90, 110, 170])
def test_kitti_sized_views_have_texture_on_both_sides_and_sky_at_the_top(
    street_scene: Scene, index: int
) -> None:
    """Before (0), entering (70), in the middle of (90) and after the turn (110, 170)."""
    rig = SimRig(SimConfig(trajectory="drive", **KITTI_RIG, **CLEAN), street_scene)  # type: ignore[arg-type]
    frame = rig.frame(index)
    assert frame.depth_m is not None
    depth, h, w = frame.depth_m, rig.camera.height_px, rig.camera.width_px
    sky = depth == 0
    assert not sky[int(0.4 * h) :].any()  # the lower 60 % always hits the street
    assert sky.mean() < 0.15
    assert not frame.image[sky].any()  # sky is black
    assert depth[~sky].min() > 2.0  # nothing right in front of the lens
    grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
    rows = np.zeros((h, w), bool)
    rows[: int(0.6 * h)] = True  # above the road: façades, cars, the street ahead
    for lo, hi in ((0, w // 3), (w // 3, 2 * w // 3), (2 * w // 3, w)):
        region = rows.copy()
        region[:, :lo] = False
        region[:, hi:] = False
        assert _textured_points(grey, region & ~sky) > 150
    # the road itself has texture too
    road = np.zeros((h, w), bool)
    road[int(0.75 * h) :, w // 4 : 3 * w // 4] = True
    assert _textured_points(grey, road) > 100


def test_the_whole_drive_sees_buildings_on_both_sides(street_scene: Scene) -> None:
    """Coarse views of every 4th frame: the side thirds of the image are never empty
    (no looking through a gap into nothing) and the sky stays in the top part."""
    small = {**KITTI_RIG, "width_px": 248, "height_px": 76}
    rig = SimRig(SimConfig(trajectory="drive", **small, **CLEAN), street_scene)  # type: ignore[arg-type]
    h, w = 76, 248
    for index in range(0, rig.num_frames, 4):
        depth = rig.renderer(rig.world_from_cam(index)).depth_m
        sky = depth == 0
        assert not sky[int(0.4 * h) :].any(), index
        band = slice(int(0.25 * h), int(0.5 * h))  # just above the horizon
        for side in (slice(0, w // 3), slice(2 * w // 3, w)):
            assert (depth[band, side] > 0).mean() > 0.9, index
