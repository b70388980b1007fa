"""Row-constrained stereo matching against a brute-force reference over every pair."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from slamfront.frontend.descriptors import cross_distance
from slamfront.frontend.stereo import rectified_disparity, search_rows, stereo_matches
from slamfront.geometry import make_pose
from slamfront.types import CameraModel, Features, StereoRig

CAMERA = CameraModel(1226, 370, 718.0, 718.0, 600.0, 185.0)
RIG = StereoRig(CAMERA, CAMERA, make_pose(np.eye(3), [-0.54, 0, 0]), rectified=True)


def brute_force(left: Features, right: Features, max_row: float, near: float, far: float):
    focal_baseline = RIG.left.fx * RIG.baseline_m
    kl, kr = left.keypoints, right.keypoints
    disparity = kl[:, None, 0] - kr[None, :, 0]
    allowed = (
        (np.abs(kl[:, None, 1] - kr[None, :, 1]) <= max_row)
        & (disparity >= focal_baseline / far)
        & (disparity <= focal_baseline / near)
    )
    dist = np.where(allowed, cross_distance(left.descriptors, right.descriptors), np.inf)
    best_r = np.argmin(dist, axis=1)
    rows = np.arange(len(left))
    best = dist[rows, best_r]
    second = np.partition(dist, 1, axis=1)[:, 1]
    ok = np.isfinite(best) & (best <= 0.3) & (best <= 0.9 * second)
    ok &= np.argmin(dist, axis=0)[best_r] == rows
    return np.stack([rows[ok], best_r[ok]], axis=1)


def pair(binary: bool, seed: int = 0, n: int = 1500) -> tuple[Features, Features, np.ndarray]:
    rng = np.random.default_rng(seed)
    left_px = np.stack([rng.uniform(0, 1226, n), rng.uniform(0, 370, n)], 1).astype(np.float32)
    right_px = left_px.copy()
    right_px[:, 0] -= rng.uniform(2, 80, n).astype(np.float32)
    right_px[:, 1] += rng.normal(0, 0.5, n).astype(np.float32)
    if binary:
        desc = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
        flips = (rng.random((n, 32 * 8)) < 0.05).astype(np.uint8)
        desc_right = desc ^ np.packbits(flips, axis=1)
    else:
        desc = rng.normal(size=(n, 64)).astype(np.float32)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True)
        desc_right = desc + rng.normal(0, 0.08, desc.shape).astype(np.float32)
        desc_right /= np.linalg.norm(desc_right, axis=1, keepdims=True)
    perm = rng.permutation(n)
    scores = np.ones(n, np.float32)
    left = Features(left_px, scores, desc, (1226, 370))
    right = Features(right_px[perm], scores, desc_right[perm], (1226, 370))
    truth = np.empty(n, np.int64)
    truth[perm] = np.arange(n)  # right index of each left keypoint
    return left, right, truth


@pytest.mark.parametrize("binary", [False, True])
def test_row_search_equals_brute_force_and_finds_the_true_pairs(binary: bool) -> None:
    left, right, truth = pair(binary)
    found = stereo_matches(left, right, RIG, 1.5, 0.1, 200.0)
    np.testing.assert_array_equal(found, brute_force(left, right, 1.5, 0.1, 200.0))
    assert len(found) > 0.8 * len(left)
    assert np.mean(truth[found[:, 0]] == found[:, 1]) > 0.99


def test_depth_range_and_rows_limit_the_pairs() -> None:
    left, right, _ = pair(False, seed=1)
    # 5-20 m at f*b = 388 px: disparities of 19-78 px only
    found = stereo_matches(left, right, RIG, 1.5, 5.0, 20.0)
    np.testing.assert_array_equal(found, brute_force(left, right, 1.5, 5.0, 20.0))
    disparity = left.keypoints[found[:, 0], 0] - right.keypoints[found[:, 1], 0]
    assert disparity.min() >= 388 / 20.0 - 0.01 and disparity.max() <= 388 / 5.0 + 0.01
    assert len(stereo_matches(left, right, RIG, 0.01, 0.1, 200.0)) < 0.05 * len(left)


def test_each_image_keeps_its_principal_column() -> None:
    """A right image rectified with its principal column 3.25 px further right shows every
    point 3.25 px further right: the same pairs, the same disparities."""
    left, right, _ = pair(False, seed=2)
    shifted_rig = StereoRig(
        CAMERA, replace(CAMERA, cx=CAMERA.cx + 3.25), RIG.right_from_left, rectified=True
    )
    moved = replace(right, keypoints=right.keypoints + np.float32([3.25, 0.0]))
    found = stereo_matches(left, right, RIG, 1.5, 5.0, 20.0)
    np.testing.assert_array_equal(stereo_matches(left, moved, shifted_rig, 1.5, 5.0, 20.0), found)
    kl, kr, km = (
        left.keypoints[found[:, 0], 0],
        right.keypoints[found[:, 1], 0],
        moved.keypoints[found[:, 1], 0],
    )
    np.testing.assert_allclose(rectified_disparity(shifted_rig, kl, km), kl - kr, atol=1e-4)
    np.testing.assert_allclose(rectified_disparity(RIG, kl, kr), kl - kr, atol=0)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A grey image of smoothed noise (texture at every scale the search reduces to)."""
    import cv2

    noise = np.random.default_rng(seed).normal(128, 60, (height, width)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5), 0, 255).astype(np.uint8)


def shifted_pair(left: np.ndarray, disparity_px: int, offset_px: int) -> np.ndarray:
    """The right image of ``left`` seen at a constant disparity, its principal column
    ``offset_px`` left of the left one's (right column = left column - disparity - offset)."""
    shift = disparity_px + offset_px
    right = np.zeros_like(left)
    right[:, : left.shape[1] - shift] = left[:, shift:]
    return right


def test_row_search_finds_the_disparity_from_each_principal_column() -> None:
    offset_px = 3
    rig = replace(RIG, right=replace(CAMERA, cx=CAMERA.cx - offset_px))
    left = textured(370, 1226)
    right = shifted_pair(left, 40, offset_px)
    rng = np.random.default_rng(1)
    left_px = np.c_[rng.uniform(100, 1200, 300), rng.uniform(10, 360, 300)]
    right_px, found = search_rows(left, right, left_px, rig, 1.0, 300.0)
    assert found.mean() > 0.8
    disparity = rectified_disparity(rig, left_px[found, 0], right_px[found, 0])
    # searched at a quarter of the width here: to about one of its pixels (alignment refines)
    assert np.max(np.abs(disparity - 40.0)) < 2.0
    assert np.median(np.abs(disparity - 40.0)) < 0.5
    np.testing.assert_array_equal(right_px[:, 1], left_px[:, 1])
    # the true disparity outside the range searched: (almost) nothing is found
    assert search_rows(left, right, left_px, rig, 1.0, 30.0)[1].mean() < 0.05


def test_row_search_rejects_a_repeating_row() -> None:
    """Vertical stripes repeat along the row: every period matches as well, so no point is
    unique, whereas the same points on texture are found."""
    columns = np.arange(1226)
    stripes = np.tile(128 + 90 * np.sin(2 * np.pi * columns / 24.0), (370, 1)).astype(np.uint8)
    stripes = np.clip(stripes + textured(370, 1226)[:, :1] // 8, 0, 255).astype(np.uint8)
    left_px = np.c_[np.linspace(300, 1200, 200), np.linspace(10, 360, 200)]
    _, found = search_rows(stripes, shifted_pair(stripes, 40, 0), left_px, RIG, 1.0, 300.0)
    assert found.mean() < 0.05
