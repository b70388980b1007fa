"""Keypoint pairs of two views of known relative pose, found without the matcher: each
keypoint's descriptor compared with those of the other view's keypoints near its epipolar
line (guided matching)."""

from __future__ import annotations

import numpy as np

from slamfront.config import SearchConfig
from slamfront.frontend.descriptors import pair_distance
from slamfront.types import Features


def search_epipolar(
    features0: Features,
    features1: Features,
    k: np.ndarray,
    cam1_from_cam0: np.ndarray,
    allowed0: np.ndarray,
    allowed1: np.ndarray,
    *,
    max_line_px: float,
    config: SearchConfig,
) -> np.ndarray:
    """(M, 2) int64 pairs (index into ``features0``, index into ``features1``) among the
    ``allowed0`` / ``allowed1`` keypoints (boolean masks): view 1's keypoint lies within
    ``max_line_px`` of view 0's epipolar line, its descriptor is the nearest there, within
    ``config.max_distance`` and ``config.ratio`` of the second nearest, and view 0's keypoint
    is in turn the nearest to it among its candidates (each keypoint in at most one pair)."""
    index0 = np.flatnonzero(allowed0)
    index1 = np.flatnonzero(allowed1)
    none = np.zeros((0, 2), np.int64)
    if index0.size == 0 or index1.size < 2:
        return none
    fundamental = _fundamental(k, cam1_from_cam0).astype(np.float32)
    px0 = features0.keypoints[index0].astype(np.float32)
    px1 = features1.keypoints[index1].astype(np.float32)
    lines = px0 @ fundamental[:, :2].T + fundamental[:, 2]  # (N0, 3) epipolar lines in view 1
    lines /= np.maximum(np.linalg.norm(lines[:, :2], axis=1, keepdims=True), 1e-12)
    rows, cols = _near_lines(lines, px1, max_line_px)
    if rows.size < 2:
        return none
    distance = pair_distance(
        features0.descriptors[index0[rows]], features1.descriptors[index1[cols]]
    ).astype(np.float64)
    best, second, best_col = _two_nearest(rows, cols, distance, index0.size)
    ok = (best <= config.max_distance) & (best <= config.ratio * second)
    # mutual: view 1's keypoint has no closer candidate in view 0
    _, _, best_row = _two_nearest(cols, rows, distance, index1.size)
    ok[ok] = best_row[best_col[ok]] == np.flatnonzero(ok)
    chosen = np.flatnonzero(ok)
    return np.stack([index0[chosen], index1[best_col[chosen]]], axis=1).astype(np.int64)


def _near_lines(
    lines: np.ndarray, points: np.ndarray, max_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """(line, point) index pairs of the (N0, 3) normalised lines and (N1, 2) points at most
    ``max_px`` apart, by line then point; the distance matrix a block of lines at a time,
    small enough to stay in cache."""
    block = max(1, _BLOCK_ELEMENTS // max(points.shape[0], 1))
    x, y = points[:, 0], points[:, 1]
    rows, cols = [], []
    for start in range(0, lines.shape[0], block):
        a, b, c = lines[start : start + block, :, None].transpose(1, 0, 2)
        distance = np.abs(a * x + b * y + c)
        r, col = np.nonzero(distance <= max_px)
        rows.append(r + start)
        cols.append(col)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


_BLOCK_ELEMENTS = 1 << 14
"""Line-point distances computed at a time by :func:`_near_lines`."""


def _two_nearest(
    keys: np.ndarray, others: np.ndarray, distance: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key 0..count-1 over the candidate pairs (keys[i], others[i]) at ``distance[i]``:
    the smallest distance, the second smallest (inf: none) and the other of the smallest
    (-1: no candidate)."""
    best = np.full(count, np.inf)
    second = np.full(count, np.inf)
    partner = np.full(count, -1, np.int64)
    if keys.size > 1 and np.any(keys[1:] < keys[:-1]):  # pairs come sorted by line
        order = np.argsort(keys, kind="stable")
        keys, others, distance = keys[order], others[order], distance[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    present = keys[starts]
    lowest = np.minimum.reduceat(distance, starts)
    # the first pair of each key at its smallest distance
    at_lowest = np.flatnonzero(distance == np.repeat(lowest, np.diff(np.r_[starts, keys.size])))
    _, first = np.unique(keys[at_lowest], return_index=True)
    winner = at_lowest[first]
    best[present] = lowest
    partner[present] = others[winner]
    rest = distance.copy()
    rest[winner] = np.inf
    second[present] = np.minimum.reduceat(rest, starts)
    return best, second, partner


def _fundamental(k: np.ndarray, cam1_from_cam0: np.ndarray) -> np.ndarray:
    """F with x1^T F x0 = 0 for pixels x0, x1 of one point in views 0 and 1."""
    rot, trans = cam1_from_cam0[:3, :3], cam1_from_cam0[:3, 3]
    skew = np.array(
        [[0.0, -trans[2], trans[1]], [trans[2], 0.0, -trans[0]], [-trans[1], trans[0], 0.0]]
    )
    k_inv = np.linalg.inv(k)
    fundamental: np.ndarray = k_inv.T @ skew @ rot @ k_inv
    return fundamental
