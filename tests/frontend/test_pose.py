from __future__ import annotations

import numpy as np

from slamfront.frontend.pose import refine_pose, solve_pnp_ransac
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
    assert solve_pnp_ransac(points, pixels, K, threshold_px=2.0) is None


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
