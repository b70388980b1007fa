from __future__ import annotations

import numpy as np

from slamfront.frontend.pose import (
    bundle_adjust,
    refine_points,
    refine_pose,
    solve_pnp_ransac,
)
from slamfront.geometry import invert_pose, make_pose, project, so3_exp, transform_points

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


def scene(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points_world = rng.uniform([-3, -2, 3], [3, 2, 9], size=(n, 3))
    cam_from_world = make_pose(
        so3_exp(rng.normal(scale=0.1, size=3)), rng.normal(scale=0.3, size=3)
    )
    pixels = project(K, transform_points(cam_from_world, points_world))
    return points_world, cam_from_world, pixels


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    delta = invert_pose(a) @ b
    angle = np.degrees(np.linalg.norm(np.array([delta[2, 1], delta[0, 2], delta[1, 0]])))
    return float(np.linalg.norm(delta[:3, 3])), float(angle)


def test_pnp_ransac_rejects_outliers_and_refine_reaches_noise_floor() -> None:
    points, truth, pixels = scene(0)
    rng = np.random.default_rng(1)
    noisy = pixels + rng.normal(scale=0.3, size=pixels.shape)
    outliers = rng.choice(len(points), size=90, replace=False)  # 30 % gross outliers
    noisy[outliers] = rng.uniform([0, 0], [640, 480], size=(90, 2))
    found = solve_pnp_ransac(points, noisy, K, threshold_px=2.0)
    assert found is not None
    pose, mask = found
    assert mask[outliers].sum() <= 3
    assert mask.sum() >= 200
    est = refine_pose(pose, points, noisy, K, huber_px=1.0, inlier_px=2.0)
    dist_m, angle_deg = pose_error(est.cam_from_world, truth)
    assert dist_m < 0.01
    assert angle_deg < 0.05
    assert est.num_inliers >= 205
    assert 0.2 < est.rmse_px < 0.6  # ~ the injected noise (0.3 px per axis -> 0.42 px)
    # information is symmetric positive definite
    np.testing.assert_allclose(est.information, est.information.T, rtol=1e-9, atol=1e-6)
    assert np.linalg.eigvalsh(est.information).min() > 0


def test_refine_pose_converges_from_a_rough_guess() -> None:
    points, truth, pixels = scene(2)
    guess = make_pose(so3_exp([0.03, -0.02, 0.02]), [0.1, -0.05, 0.08]) @ truth
    est = refine_pose(guess, points, pixels, K)
    dist_m, angle_deg = pose_error(est.cam_from_world, truth)
    assert dist_m < 1e-6 and angle_deg < 1e-6
    assert est.num_inliers == len(points)


def test_refine_pose_rounds_drop_outliers_that_lean_one_way() -> None:
    # a fifth of the correspondences sit 5 px off, all the same way (a repeated texture): the
    # Huber fit over everything is pulled off; refitting on the inliers comes back
    points, truth, pixels = scene(3, n=400)
    rng = np.random.default_rng(4)
    noisy = pixels + rng.normal(scale=0.2, size=pixels.shape)
    leaning = rng.choice(len(points), size=80, replace=False)
    noisy[leaning] += [4.0, 3.0]
    single = refine_pose(truth, points, noisy, K, huber_px=2.0, inlier_px=2.0, rounds=1)
    est = refine_pose(truth, points, noisy, K, huber_px=2.0, inlier_px=2.0)
    single_m, _ = pose_error(single.cam_from_world, truth)
    dist_m, angle_deg = pose_error(est.cam_from_world, truth)
    assert single_m > 5 * dist_m  # what the later rounds are for
    assert dist_m < 0.001 and angle_deg < 0.005
    assert not est.inliers[leaning].any()
    assert est.num_inliers >= 315
    assert est.rmse_px < 0.35


def test_pnp_needs_six_points() -> None:
    points, _, pixels = scene(3, n=5)
    assert solve_pnp_ransac(points, pixels, K, 2.0) is None


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
        np.concatenate(depth),
        np.full(3 * len(truth), 0.01),
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
        np.array(seeds), held, seed_points, keyframe_index, landmark_index, pixels, K, 1.0, 20
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


def test_refine_pose_with_measured_depths() -> None:
    """Exact pixels and depths: the refit lands on the truth from a rough guess. Pixels with
    0.5 px noise and exact depths (weighed as a 30 m stereo baseline): the depths take out
    most of the translation error that pixels alone leave (measured over four scenes: 1.9
    against 5.1 mm in total)."""
    points, truth, pixels = scene(2)
    depths = transform_points(truth, points)[:, 2]
    guess = make_pose(so3_exp([0.03, -0.02, 0.02]), [0.1, -0.05, 0.08]) @ truth
    est = refine_pose(guess, points, pixels, K, depths_m=depths, range_baseline_m=30.0)
    dist_m, angle_deg = pose_error(est.cam_from_world, truth)
    assert dist_m < 1e-6 and angle_deg < 1e-6
    plain_m = ranged_m = 0.0
    for seed in range(4):
        points, truth, pixels = scene(seed)
        noisy = pixels + np.random.default_rng(10 + seed).normal(scale=0.5, size=pixels.shape)
        depths = transform_points(truth, points)[:, 2]
        depths[::10] = 0.0  # no depth measured there: the pixels alone
        guess = make_pose(so3_exp([0.03, -0.02, 0.02]), [0.1, -0.05, 0.08]) @ truth
        plain = refine_pose(guess, points, noisy, K)
        ranged = refine_pose(guess, points, noisy, K, depths_m=depths, range_baseline_m=30.0)
        assert ranged.num_inliers == len(points)
        plain_m += pose_error(plain.cam_from_world, truth)[0]
        ranged_m += pose_error(ranged.cam_from_world, truth)[0]
    assert ranged_m < 0.5 * plain_m, (ranged_m, plain_m)
