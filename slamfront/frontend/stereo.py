"""Left-right correspondences of a rectified stereo pair, searched along its rows."""

from __future__ import annotations

import numpy as np

from slamfront.types import StereoRig


def rectified_disparity(rig: StereoRig, left_u: np.ndarray, right_u: np.ndarray) -> np.ndarray:
    """Disparity in pixels (``focal * baseline / depth``) of points at columns ``left_u`` and
    ``right_u`` of a rectified pair, each measured from its own camera's principal column
    (they differ where the rectification shifted one image, e.g. a KITTI ``P1``)."""
    offset = rig.left.cx - rig.right.cx
    return np.asarray(left_u, np.float64) - np.asarray(right_u, np.float64) - offset


def search_rows(
    left: np.ndarray,
    right: np.ndarray,
    left_px: np.ndarray,
    rig: StereoRig,
    *,
    min_disparity_px: float,
    max_disparity_px: float,
    window_px: int = 5,
    min_width_px: int = 300,
    min_score: float = 0.9,
    min_margin: float = 0.1,
    max_round_trip_px: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the points at ``left_px`` of the grey left image of a rectified pair lie in the
    grey right image, searched along the same row over the disparity range: (N, 2) float64
    right positions (to about a pixel of the reduced images below; the row is the left
    point's) and the (N,) mask of those found.

    The search runs on both images halved while they stay at least ``min_width_px`` wide
    (so its cost hardly grows with the image), comparing each point's ``window_px`` window
    with every window of the right row by normalised cross-correlation (one matrix product
    per row holding points). A point is found where the correlation
    peaks at or above ``min_score``, at least ``min_margin`` above any other peak of the
    row (repeating texture matches several places as well), and where the right window,
    searched back along the left row, lands within ``max_round_trip_px`` (reduced pixels)
    of the point.
    """
    import cv2

    count = left_px.shape[0]
    found = np.zeros(count, bool)
    right_px = np.asarray(left_px, np.float64).copy()
    if count == 0:
        return right_px, found
    if not rig.rectified:
        raise ValueError("search_rows needs a rectified rig")
    level = 0
    while left.shape[1] // 2 >= min_width_px:
        left, right = cv2.pyrDown(left), cv2.pyrDown(right)
        level += 1
    scale = 2.0**level
    half = window_px // 2
    height, width = left.shape[:2]
    if min(height, width) < window_px:
        return right_px, found
    # right column = left column - disparity - offset (each camera's own principal column)
    offset = (rig.left.cx - rig.right.cx) / scale
    low, high = min_disparity_px / scale + offset, max_disparity_px / scale + offset
    cols = np.rint(left_px[:, 0] / scale).astype(np.int64)
    rows = np.rint(left_px[:, 1] / scale).astype(np.int64)
    inside = (cols >= half) & (cols < width - half) & (rows >= half) & (rows < height - half)
    centres = np.arange(half, width - half)  # columns of the row's window centres
    order = np.flatnonzero(inside)
    order = order[np.argsort(rows[order], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(rows[order]) != 0])
    left_windows, right_windows = _windows(left, window_px), _windows(right, window_px)
    for points in np.split(order, starts[1:]):
        if points.size == 0:
            continue
        left_row = left_windows[rows[points[0]] - half]
        right_row = right_windows[rows[points[0]] - half]
        u = cols[points]
        scores = left_row[u - half] @ right_row.T  # (points, centres)
        disparity = u[:, None] - centres[None, :]
        scores[(disparity < low) | (disparity > high)] = -1.0
        best = np.argmax(scores, axis=1)
        at = np.arange(points.size)
        peak = scores[at, best]
        near = np.abs(centres[None, :] - centres[best][:, None]) <= 2
        second = np.where(near, -1.0, scores).max(axis=1)
        back = right_row[best] @ left_row.T
        back_disparity = centres[None, :] - centres[best][:, None]
        back[(back_disparity < low) | (back_disparity > high)] = -1.0
        returned = centres[np.argmax(back, axis=1)]
        ok = (
            (peak >= min_score)
            & (peak - second >= min_margin)
            & (np.abs(returned - u) <= max_round_trip_px)
        )
        # sub-pixel peak by a parabola through its neighbours
        inner = (best > 0) & (best < centres.size - 1)
        before = scores[at, np.maximum(best - 1, 0)]
        after = scores[at, np.minimum(best + 1, centres.size - 1)]
        curve = before - 2.0 * peak + after
        shift = np.where(inner & (curve < 0), 0.5 * (before - after) / np.minimum(curve, -1e-9), 0)
        disparity_px = (u - centres[best] - shift) * scale
        right_px[points, 0] = left_px[points, 0] - disparity_px
        found[points] = ok
    return right_px, found


def _windows(image: np.ndarray, window_px: int) -> np.ndarray:
    """(rows, columns, window_px**2) float32 windows of the image, one per pixel at least
    ``window_px // 2`` from the border, each zero-mean and of unit norm (zero where flat)."""
    windows = np.lib.stride_tricks.sliding_window_view(
        image.astype(np.float32), (window_px, window_px)
    )
    flat = windows.reshape(*windows.shape[:2], -1)
    flat = flat - flat.mean(axis=2, keepdims=True)
    norm = np.sqrt(np.einsum("ijk,ijk->ij", flat, flat))[:, :, None]
    return flat / np.maximum(norm, 1e-3)
