"""Left-right correspondences of a rectified stereo pair by row-constrained matching."""

from __future__ import annotations

import numpy as np

from slamfront.frontend.descriptors import pair_distance
from slamfront.types import Features, StereoRig


def stereo_matches(
    left: Features,
    right: Features,
    rig: StereoRig,
    max_row_diff_px: float = 1.5,
    min_depth_m: float = 0.1,
    max_depth_m: float = 20.0,
    max_distance: float = 0.3,
    ratio: float = 0.9,
) -> np.ndarray:
    """(M, 2) int64 rows (left index, right index) of keypoints matched across a rectified pair.

    A match must lie on (nearly) the same row (the epipolar constraint), at a positive
    disparity within the depth range, be the mutual best by descriptor distance, below
    ``max_distance`` and pass the ratio test. Only the pairs the row constraint allows are
    compared (right keypoints sorted by row), so the cost grows with the keypoints on each
    row, not with the product of both counts.
    """
    none = np.zeros((0, 2), np.int64)
    if len(left) == 0 or len(right) == 0:
        return none
    if not rig.rectified:
        raise ValueError("stereo_matches needs a rectified rig")
    pair_left, pair_right = _row_candidates(left.keypoints, right.keypoints, max_row_diff_px)
    focal_baseline = rig.left.fx * rig.baseline_m
    disparity = rectified_disparity(
        rig, left.keypoints[pair_left, 0], right.keypoints[pair_right, 0]
    )
    allowed = (disparity >= focal_baseline / max_depth_m) & (
        disparity <= focal_baseline / min_depth_m
    )
    pair_left, pair_right = pair_left[allowed], pair_right[allowed]
    if pair_left.size == 0:
        return none
    dist = pair_distance(left.descriptors[pair_left], right.descriptors[pair_right])
    best, best_r, second = _best_two(pair_left, pair_right, dist, len(left))
    best_l = _best_one(pair_right, pair_left, dist, len(right))
    rows = np.arange(len(left))
    has = best_r >= 0
    ok = (
        has
        & (best <= max_distance)
        & (best <= ratio * second)
        & (best_l[np.maximum(best_r, 0)] == rows)
    )
    return np.stack([rows[ok], best_r[ok]], axis=1).astype(np.int64)


def rectified_disparity(rig: StereoRig, left_u: np.ndarray, right_u: np.ndarray) -> np.ndarray:
    """Disparity in pixels (``focal * baseline / depth``) of points at columns ``left_u`` and
    ``right_u`` of a rectified pair, each measured from its own camera's principal column
    (they differ where the rectification shifted one image, e.g. a KITTI ``P1``)."""
    offset = rig.left.cx - rig.right.cx
    return np.asarray(left_u, np.float64) - np.asarray(right_u, np.float64) - offset


def _row_candidates(
    left_px: np.ndarray, right_px: np.ndarray, max_row_diff_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every (left, right) index pair whose rows differ by at most ``max_row_diff_px``."""
    order = np.argsort(right_px[:, 1], kind="stable")
    rows_sorted = right_px[order, 1]
    lo = np.searchsorted(rows_sorted, left_px[:, 1] - max_row_diff_px, side="left")
    hi = np.searchsorted(rows_sorted, left_px[:, 1] + max_row_diff_px, side="right")
    counts = hi - lo
    pair_left = np.repeat(np.arange(left_px.shape[0]), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    pair_right = order[starts + np.arange(pair_left.size)]
    return pair_left, pair_right


def _best_two(
    owner: np.ndarray, other: np.ndarray, dist: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per owner index: smallest distance, the ``other`` index holding it (-1: no pair; ties
    to the lowest index), and the second smallest distance (inf: none)."""
    best = np.full(count, np.inf)
    second = np.full(count, np.inf)
    best_other = np.full(count, -1, np.int64)
    order = np.lexsort((other, dist, owner))
    owner_sorted = owner[order]
    first = np.ones(order.size, bool)
    first[1:] = owner_sorted[1:] != owner_sorted[:-1]
    heads = order[first]
    best[owner[heads]] = dist[heads]
    best_other[owner[heads]] = other[heads]
    runner = np.flatnonzero(first[:-1] & ~first[1:]) + 1 if order.size > 1 else np.zeros(0, int)
    second[owner_sorted[runner]] = dist[order[runner]]
    return best, best_other, second


def _best_one(owner: np.ndarray, other: np.ndarray, dist: np.ndarray, count: int) -> np.ndarray:
    """Per owner index, the ``other`` index at the smallest distance (-1: no pair)."""
    return _best_two(owner, other, dist, count)[1]
