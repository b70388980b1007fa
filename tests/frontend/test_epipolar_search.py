"""Guided pairing of two views of known relative pose (no matcher)."""

from __future__ import annotations

import numpy as np

from slamfront.config import SearchConfig
from slamfront.frontend.epipolar_search import search_epipolar
from slamfront.geometry import make_pose, project, so3_exp, transform_points
from slamfront.types import Features

K = np.array([[700.0, 0.0, 600.0], [0.0, 700.0, 180.0], [0.0, 0.0, 1.0]])
SIZE = (1200, 370)


def _views(seed: int = 0, count: int = 400) -> tuple[Features, Features, np.ndarray, np.ndarray]:
    """Two views of random points, a car-like step forward with a slight turn; view 1's
    keypoints shuffled. Returns both feature sets, cam1_from_cam0 and, per view-0 keypoint,
    its true partner in view 1."""
    rng = np.random.default_rng(seed)
    points = np.c_[
        rng.uniform(-15, 15, count), rng.uniform(-3, 2, count), rng.uniform(5, 60, count)
    ]
    cam1_from_cam0 = make_pose(so3_exp([0.0, 0.01, 0.0]), [0.0, 0.0, -1.2])
    px0 = project(K, points)
    px1 = project(K, transform_points(cam1_from_cam0, points))
    inside = np.all((px0 > 0) & (px0 < SIZE) & (px1 > 0) & (px1 < SIZE), axis=1)
    px0, px1 = px0[inside], px1[inside]
    desc = rng.normal(size=(px0.shape[0], 64))
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    noisy = desc + 0.05 * rng.normal(size=desc.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    order = rng.permutation(px0.shape[0])
    partner = np.argsort(order)  # view-0 keypoint i is view-1 keypoint partner[i]

    def features(px: np.ndarray, d: np.ndarray) -> Features:
        return Features(
            px.astype(np.float32) + rng.normal(scale=0.3, size=px.shape).astype(np.float32),
            np.ones(px.shape[0], np.float32),
            d.astype(np.float32),
            SIZE,
        )

    return features(px0, desc), features(px1[order], noisy[order]), cam1_from_cam0, partner


def test_pairs_are_the_true_correspondences() -> None:
    f0, f1, cam1_from_cam0, partner = _views()
    every0 = np.ones(len(f0), bool)
    every1 = np.ones(len(f1), bool)
    pairs = search_epipolar(
        f0, f1, K, cam1_from_cam0, every0, every1, max_line_px=2.0, config=SearchConfig()
    )
    assert pairs.shape[1] == 2 and pairs.dtype == np.int64
    assert len(pairs) >= 0.95 * len(f0)
    np.testing.assert_array_equal(pairs[:, 1], partner[pairs[:, 0]])
    # one pair per keypoint on either side
    assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


def test_only_allowed_keypoints_and_only_on_the_line() -> None:
    f0, f1, cam1_from_cam0, partner = _views(seed=1)
    allowed0 = np.arange(len(f0)) % 2 == 0
    allowed1 = np.ones(len(f1), bool)
    allowed1[partner[:10]] = False  # the partners of view-0 keypoints 0..9 are taken
    pairs = search_epipolar(
        f0, f1, K, cam1_from_cam0, allowed0, allowed1, max_line_px=2.0, config=SearchConfig()
    )
    assert np.all(allowed0[pairs[:, 0]]) and np.all(allowed1[pairs[:, 1]])
    assert not np.isin(np.arange(10), pairs[:, 0]).any()  # no partner left: no pair
    np.testing.assert_array_equal(pairs[:, 1], partner[pairs[:, 0]])
    # under a wrong pose (sideways motion: vertical lines) the partners are off the lines
    wrong = make_pose(np.eye(3), [0.0, 1.0, 0.0])
    every0 = np.ones(len(f0), bool)
    every1 = np.ones(len(f1), bool)
    found = search_epipolar(
        f0, f1, K, wrong, every0, every1, max_line_px=2.0, config=SearchConfig()
    )
    assert len(found) < 0.15 * len(f0)  # those few move along the wrong lines too


def test_nothing_to_pair() -> None:
    f0, f1, cam1_from_cam0, _ = _views(seed=2, count=50)
    none0 = np.zeros(len(f0), bool)
    every1 = np.ones(len(f1), bool)
    pairs = search_epipolar(
        f0, f1, K, cam1_from_cam0, none0, every1, max_line_px=2.0, config=SearchConfig()
    )
    assert pairs.shape == (0, 2)
