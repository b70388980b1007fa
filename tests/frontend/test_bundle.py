"""Landmark refinement over fixed cameras and the keyframe window's bundle adjustment."""

from __future__ import annotations

import numpy as np

from slamfront.frontend.bundle import bundle_adjust, refine_points
from slamfront.geometry import invert_pose, make_pose, project, so3_exp, transform_points

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    delta = invert_pose(a) @ b
    angle = np.degrees(np.linalg.norm(np.array([delta[2, 1], delta[0, 2], delta[1, 0]])))
    return float(np.linalg.norm(delta[:3, 3])), float(angle)


def test_refine_points_fuses_views_and_depth() -> None:
    rng = np.random.default_rng(4)
    truth = rng.uniform([-1, -1, 3], [1, 1, 5], size=(40, 3))
    cams = [
        make_pose(so3_exp(rng.normal(scale=0.05, size=3)), [0.3 * i, 0.0, 0.0]) for i in range(3)
    ]
    idx, poses, pixels, depth = [], [], [], []
    for cam in cams:
        pc = transform_points(cam, truth)
        idx.append(np.arange(len(truth)))
        poses.append(np.repeat(cam[None], len(truth), 0))
        pixels.append(project(K, pc) + rng.normal(scale=0.2, size=(len(truth), 2)))
        depth.append(pc[:, 2] + rng.normal(scale=0.01, size=len(truth)))
    start = truth + rng.normal(scale=0.05, size=truth.shape)
    refined = refine_points(
        start,
        np.concatenate(idx),
        np.concatenate(poses),
        np.concatenate(pixels),
        K,
        depth_m=np.concatenate(depth),
        depth_sigma_m=np.full(3 * len(truth), 0.01),
    )
    before = np.linalg.norm(start - truth, axis=1).mean()
    after = np.linalg.norm(refined - truth, axis=1).mean()
    assert after < 0.2 * before
    assert after < 0.01


def window(seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Six cameras 0.1 m apart, turning 1.7 deg each, seeing a wall 3-6 m away: true
    cam_from_world poses, points, and observations (keyframe, landmark, pixel with 0.1 px
    noise and 5 % gross outliers)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform([-2, -1.5, 3], [2, 1.5, 6], size=(1500, 3))
    truth = [
        invert_pose(make_pose(so3_exp(np.array([0, 0.03 * i, 0])), np.array([0.1 * i, 0, 0])))
        for i in range(6)
    ]
    keyframe_index, landmark_index, pixels = [], [], []
    for slot, cam_from_world in enumerate(truth):
        seen = np.flatnonzero(rng.random(len(points)) < 0.7)
        keyframe_index.append(np.full(seen.size, slot))
        landmark_index.append(seen)
        pixels.append(project(K, transform_points(cam_from_world, points[seen])))
    px = np.concatenate(pixels) + rng.normal(scale=0.1, size=(sum(map(len, pixels)), 2))
    wrong = rng.random(len(px)) < 0.05
    px[wrong] += rng.uniform(-30, 30, size=(int(wrong.sum()), 2))
    return truth, points, np.concatenate(keyframe_index), np.concatenate(landmark_index), px


def test_bundle_adjust_recovers_poses_and_points_with_the_scale_of_the_held_pair() -> None:
    """The four free poses start 2-6 cm off and the whole free part of the window 20 % too
    small (what monocular scale drift does); the two held poses bring it back."""
    truth, points, keyframe_index, landmark_index, pixels = window(4)
    rng = np.random.default_rng(5)
    held = np.array([True, True, False, False, False, False])
    shrink = 0.8
    seeds = []
    for cam_from_world, fixed in zip(truth, held, strict=True):
        if fixed:
            seeds.append(cam_from_world)
            continue
        world_from_cam = invert_pose(cam_from_world)
        world_from_cam[:3, 3] *= shrink
        noise = make_pose(so3_exp(rng.normal(scale=0.01, size=3)), rng.normal(scale=0.03, size=3))
        seeds.append(noise @ invert_pose(world_from_cam))
    seed_points = points * shrink + rng.normal(scale=0.05, size=points.shape)
    poses, adjusted = bundle_adjust(
        np.array(seeds),
        held,
        seed_points,
        keyframe_index,
        landmark_index,
        pixels,
        K,
        huber_px=1.0,
        iterations=20,
    )
    # started from the truth, the adjustment itself ends 1.1-4.1 mm off (the held pair is
    # 0.1 m apart and carries the scale out to 0.5 m): from the seeds it must end as well
    for pose, cam_from_world, seed in zip(poses, truth, seeds, strict=True):
        seed_m, _ = pose_error(seed, cam_from_world)
        error_m, error_deg = pose_error(pose, cam_from_world)
        assert error_m < 5e-3 and error_deg < 0.1, (seed_m, error_m, error_deg)
    for pose, cam_from_world in zip(poses[:2], truth[:2], strict=True):
        assert np.array_equal(pose, cam_from_world)  # held
    # depth along 0.5 m of baseline at 3-6 m: about a centimetre, from 0.5-1.2 m seeds
    assert np.median(np.linalg.norm(adjusted - points, axis=1)) < 0.02


def test_bundle_adjust_without_free_poses_refines_points_only() -> None:
    truth, points, keyframe_index, landmark_index, pixels = window(6)
    seed_points = points + np.random.default_rng(7).normal(scale=0.05, size=points.shape)
    poses, adjusted = bundle_adjust(
        np.array(truth), np.ones(6, bool), seed_points, keyframe_index, landmark_index, pixels, K
    )
    assert np.array_equal(poses, np.array(truth))
    # 11 mm is the optimum's own error (measured from the true points), 50 mm the seeds'
    assert np.median(np.linalg.norm(adjusted - points, axis=1)) < 0.015
