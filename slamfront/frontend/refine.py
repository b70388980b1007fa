"""Sub-pixel refinement of correspondences by image alignment (pyramidal Lucas-Kanade).

Detectors re-find a point only to within about a pixel from one image to the next. Aligning
a small window around the keypoint of the reference image to the current image, starting
from the matched keypoint, measures where that same physical point went to a small fraction
of a pixel. The matcher still decides *which* points correspond; this step only decides
*where*.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def grey(image: np.ndarray) -> np.ndarray:
    """The contiguous uint8 grey image alignment works on."""
    import cv2

    out = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return np.ascontiguousarray(out)


def refine_positions(
    reference: np.ndarray,
    current: np.ndarray,
    reference_px: np.ndarray,
    current_px: np.ndarray,
    *,
    max_shift_px: float,
    max_row_shift_px: float | None = None,
    window_px: int = 9,
    levels: int = 1,
    max_round_trip_px: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the points at ``reference_px`` of the grey ``reference`` image are in the grey
    ``current`` image, starting at
    ``current_px`` (the matched keypoints). Returns (N, 2) float64 refined positions and an
    (N,) mask of points whose alignment converged within ``max_shift_px`` of the start (and,
    for rectified stereo, within ``max_row_shift_px`` of the start's row); positions of the
    others are the unrefined start."""
    import cv2

    count = reference_px.shape[0]
    if count == 0:
        return np.zeros((0, 2)), np.zeros(0, bool)
    p0 = np.ascontiguousarray(reference_px, dtype=np.float32).reshape(-1, 1, 2)
    p1 = np.ascontiguousarray(current_px, dtype=np.float32).reshape(-1, 1, 2).copy()
    refined, status, _ = cv2.calcOpticalFlowPyrLK(
        reference,
        current,
        p0,
        p1,
        winSize=(window_px, window_px),
        maxLevel=levels,
        criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.01),
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )
    refined = refined.reshape(-1, 2).astype(np.float64)
    start = current_px.astype(np.float64)
    shift = refined - start
    ok = (status.ravel() > 0) & np.all(np.isfinite(refined), axis=1)
    ok &= np.linalg.norm(shift, axis=1) <= max_shift_px
    if max_row_shift_px is not None:
        ok &= np.abs(shift[:, 1]) <= max_row_shift_px
    if max_round_trip_px is not None and ok.any():
        # aligned back from where it landed, the window must return to where it started
        # (only for the points still in: each point is aligned on its own)
        sel = np.flatnonzero(ok)
        back, back_status, _ = cv2.calcOpticalFlowPyrLK(
            current,
            reference,
            refined[sel].astype(np.float32).reshape(-1, 1, 2),
            p0[sel].copy(),
            winSize=(window_px, window_px),
            maxLevel=levels,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.01),
            flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
        )
        round_trip = np.linalg.norm(back.reshape(-1, 2) - reference_px[sel], axis=1)
        ok[sel] = (back_status.ravel() > 0) & (round_trip <= max_round_trip_px)
    return np.where(ok[:, None], refined, start), ok


def refine_positions_warped(
    references: Sequence[np.ndarray],
    reference_index: np.ndarray,
    reference_px: np.ndarray,
    current: np.ndarray,
    current_px: np.ndarray,
    *,
    warp: np.ndarray | None,
    max_shift_px: float,
    window_px: int = 9,
    max_round_trip_px: float | None = None,
    match_brightness: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`refine_positions` with each window taken from its reference image through a
    known view change, so that it already looks as it does in ``current`` and only the
    translation is left to measure (a translation-only window of a surface seen larger, or
    turned, aligns to a point biased in a direction that depends on its texture).

    Point ``i``'s window is in the grey image ``references[reference_index[i]]`` around
    ``reference_px[i]``; ``warp`` (N, 2, 2) is its local linear map from reference to
    current pixel offsets (see :func:`slamfront.geometry.view_warp`), None for the identity
    (the window as it is in its reference image). Full resolution only:
    the start is expected within a pixel or two. With ``match_brightness`` each reference
    image's windows are first mapped to ``current``'s brightness (see ``_brightness_matched``).
    """
    count = reference_px.shape[0]
    if count == 0:
        return np.zeros((0, 2)), np.zeros(0, bool)
    half_px = window_px // 2 + 2  # the window, its gradient and the interpolation margin
    side = 2 * half_px + 1
    tiles = _warped_tiles(references, reference_index, reference_px, warp, half_px)
    if match_brightness:
        tiles = _brightness_matched(tiles, reference_index, current, current_px, window_px)
    # the alignment wants both images the same size: tile images of ``current``'s size
    height, width = current.shape[:2]
    rows, cols = height // side, width // side
    refined = current_px.astype(np.float64).copy()
    ok = np.zeros(count, bool)
    for start in range(0, count, rows * cols):
        part = slice(start, start + rows * cols)
        batch = tiles[part]
        grid = np.zeros((rows * cols, side, side), np.uint8)
        grid[: batch.shape[0]] = batch
        mosaic = np.zeros((height, width), np.uint8)
        mosaic[: rows * side, : cols * side] = (
            grid.reshape(rows, cols, side, side).transpose(0, 2, 1, 3).reshape(rows * side, -1)
        )
        index = np.arange(batch.shape[0])
        centres = np.stack([index % cols, index // cols], axis=1) * side + half_px
        refined[part], ok[part] = refine_positions(
            mosaic,
            current,
            centres.astype(np.float64),
            current_px[part],
            max_shift_px=max_shift_px,
            window_px=window_px,
            levels=0,
            max_round_trip_px=max_round_trip_px,
        )
    return refined, ok


def _warped_tiles(
    references: Sequence[np.ndarray],
    reference_index: np.ndarray,
    reference_px: np.ndarray,
    warp: np.ndarray | None,
    half_px: int,
) -> np.ndarray:
    """(N, side, side) uint8: each point's reference image around it, seen through its warp
    (tile pixel (r, c) is the reference at ``reference_px + warp^-1 (c - half, r - half)``;
    ``warp`` None: the identity)."""
    import cv2

    count = reference_px.shape[0]
    side = 2 * half_px + 1
    offsets = np.arange(-half_px, half_px + 1, dtype=np.float32)
    du, dv = np.meshgrid(offsets, offsets)  # (side, side): column and row offsets
    centre = reference_px.astype(np.float32)
    # current offsets -> reference offsets
    inverse = None if warp is None else _inverse2(warp).astype(np.float32)
    tiles = np.zeros((count, side, side), np.uint8)
    for image_index in np.unique(reference_index):
        members = np.flatnonzero(reference_index == image_index)
        for start in range(0, members.size, 1024):  # remap wants images under 32767 pixels a side
            group = members[start : start + 1024]
            u0, v0 = centre[group, 0, None, None], centre[group, 1, None, None]
            if inverse is None:
                map_u, map_v = u0 + du, v0 + dv
            else:
                a = inverse[group]
                map_u = u0 + a[:, 0, 0, None, None] * du + a[:, 0, 1, None, None] * dv
                map_v = v0 + a[:, 1, 0, None, None] * du + a[:, 1, 1, None, None] * dv
            sampled = cv2.remap(
                references[int(image_index)],
                map_u.reshape(group.size * side, side),
                map_v.reshape(group.size * side, side),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            tiles[group] = sampled.reshape(group.size, side, side)
    return tiles


def _brightness_matched(
    tiles: np.ndarray,
    reference_index: np.ndarray,
    current: np.ndarray,
    current_px: np.ndarray,
    window_px: int,
    min_points: int = 20,
    min_gain: float = 0.5,
    max_gain: float = 2.0,
) -> np.ndarray:
    """``tiles`` (N, side, side) uint8 with each reference image's brightness mapped to the
    current image's (auto exposure changes between a keyframe and a later frame; Lucas-Kanade
    assumes it constant): per reference image a gain and offset fitted to the mean of each
    window against the mean of the current image's window at its start, by least squares
    refitted twice on the points within three robust standard deviations (windows whose start
    is off, occluded or specular disagree). Images with fewer than ``min_points`` windows, an
    implausible gain, or a change too small to tell from noise keep their tiles."""
    half = window_px // 2
    margin = (tiles.shape[1] - window_px) // 2
    height, width = current.shape[:2]
    col = np.round(current_px[:, 0]).astype(np.int64)
    row = np.round(current_px[:, 1]).astype(np.int64)
    inside = np.flatnonzero(
        (col >= half) & (col < width - half) & (row >= half) & (row < height - half)
    )
    image = np.asarray(reference_index)[inside]
    count = np.bincount(image)
    if inside.size == 0 or count.max() < min_points:
        return tiles
    # every other pixel of the windows: the means only need to follow the brightness
    window = slice(margin, margin + window_px, 2)
    x = tiles[inside, window, window].mean(axis=(1, 2))
    offsets = np.arange(-half, half + 1, 2)
    rows = row[inside, None, None] + offsets[None, :, None]
    cols = col[inside, None, None] + offsets[None, None, :]
    y = current[rows, cols].mean(axis=(1, 2))
    keep = np.ones(inside.size, bool)
    images = count.size
    for _ in range(3):
        weight = keep.astype(np.float64)
        n = np.maximum(np.bincount(image, weight, images), 1.0)
        mean_x = np.bincount(image, weight * x, images) / n
        mean_y = np.bincount(image, weight * y, images) / n
        dx = x - mean_x[image]
        variance = np.bincount(image, weight * dx * dx, images)
        covariance = np.bincount(image, weight * dx * (y - mean_y[image]), images)
        gain = covariance / np.maximum(variance, 1e-9)
        offset = mean_y - gain * mean_x
        residual = np.abs(y - (gain[image] * x + offset[image]))
        sigma = 1.4826 * _group_medians(residual, image, keep, images)
        keep = residual <= np.maximum(3.0 * sigma, 2.0)[image]
    # the change over the windows' brightness (mean +- 2 std) must exceed two grey levels and
    # three standard errors of the fit there: smaller ones are noise of the window means
    # (starts a pixel off, blur), and remapping would only requantise the tiles
    kept = np.maximum(np.bincount(image, keep, images), 3.0)
    mean = np.bincount(image, keep * x, images) / kept
    spread = 2.0 * np.sqrt(np.maximum(np.bincount(image, keep * x * x, images) / kept - mean**2, 0))
    residual_sq = (y - (gain[image] * x + offset[image])) ** 2
    error = np.sqrt(np.bincount(image, keep * residual_sq, images) / (kept - 2.0) * 5.0 / kept)
    change = np.maximum(
        np.abs((gain - 1.0) * (mean - spread) + offset),
        np.abs((gain - 1.0) * (mean + spread) + offset),
    )
    usable = (count >= min_points) & (gain >= min_gain) & (gain <= max_gain)
    usable &= (change >= np.maximum(2.0, 3.0 * error)) & (kept >= min_points // 2)
    if not usable.any():
        return tiles
    out = tiles.copy()
    levels = np.arange(256.0)
    for image_index in np.flatnonzero(usable):
        table = np.clip(np.rint(gain[image_index] * levels + offset[image_index]), 0, 255)
        group = reference_index == image_index
        out[group] = table.astype(np.uint8)[tiles[group]]
    return out


def _group_medians(
    values: np.ndarray, group: np.ndarray, keep: np.ndarray, groups: int
) -> np.ndarray:
    """The median of the kept non-negative ``values`` of each group (0 where none is kept)."""
    kept = np.flatnonzero(keep)
    key = group[kept] * (1.0 + float(values.max(initial=0.0))) + values[kept]
    order = kept[np.argsort(key)]
    sizes = np.bincount(group[kept], minlength=groups)
    starts = np.cumsum(sizes) - sizes
    medians = np.zeros(groups)
    has = sizes > 0
    medians[has] = values[order[starts[has] + sizes[has] // 2]]
    return medians


def _inverse2(m: np.ndarray) -> np.ndarray:
    """(N, 2, 2) inverses of invertible (N, 2, 2) matrices, in closed form."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    out = np.empty_like(m, dtype=np.float64)
    out[:, 0, 0] = m[:, 1, 1]
    out[:, 0, 1] = -m[:, 0, 1]
    out[:, 1, 0] = -m[:, 1, 0]
    out[:, 1, 1] = m[:, 0, 0]
    result: np.ndarray = out / det[:, None, None]
    return result
