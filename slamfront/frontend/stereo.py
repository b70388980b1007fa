"""Left-right correspondences of a rectified stereo pair by row-constrained matching."""

from __future__ import annotations

import numpy as np

from slamfront.frontend.descriptors import cross_distance
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
    ``max_distance`` and pass the ratio test.
    """
    none = np.zeros((0, 2), np.int64)
    if len(left) == 0 or len(right) == 0:
        return none
    if not rig.rectified:
        raise ValueError("stereo_matches needs a rectified rig")
    focal_baseline = rig.left.fx * rig.baseline_m
    kl, kr = left.keypoints, right.keypoints
    disparity = kl[:, None, 0] - kr[None, :, 0]
    allowed = (
        (np.abs(kl[:, None, 1] - kr[None, :, 1]) <= max_row_diff_px)
        & (disparity >= focal_baseline / max_depth_m)
        & (disparity <= focal_baseline / min_depth_m)
    )
    if not allowed.any():
        return none
    dist = np.where(allowed, cross_distance(left.descriptors, right.descriptors), np.inf)
    best_r = np.argmin(dist, axis=1)
    rows = np.arange(len(left))
    best = dist[rows, best_r]
    if dist.shape[1] > 1:
        second = np.partition(dist, 1, axis=1)[:, 1]
    else:
        second = np.full(len(left), np.inf)
    best_l = np.argmin(dist, axis=0)
    ok = (
        np.isfinite(best)
        & (best <= max_distance)
        & (best <= ratio * second)
        & (best_l[best_r] == rows)
    )
    return np.stack([rows[ok], best_r[ok]], axis=1).astype(np.int64)
