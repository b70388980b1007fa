"""Sub-pixel refinement of correspondences by image alignment (pyramidal Lucas-Kanade).

Detectors re-find a point only to within about a pixel from one image to the next (measured
on the synthetic rig: median 0.8 px for ORB, 1.3 px for the XFeat cell detector, matched to
exact ground truth). Aligning a small window around the keypoint of the reference image to
the current image, starting from the matched keypoint, measures where that same physical
point went to a few hundredths of a pixel. The matcher still decides *which* points
correspond; this step only decides *where*.
"""

from __future__ import annotations

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
