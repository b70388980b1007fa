"""The tracker's sub-pixel alignment settings applied to :mod:`slamfront.frontend.refine`."""

from __future__ import annotations

import numpy as np

from slamfront.config import AlignmentConfig
from slamfront.frontend.refine import grey, refine_positions
from slamfront.types import CameraModel


def alignment_image(
    image: np.ndarray, camera: CameraModel, config: AlignmentConfig
) -> np.ndarray | None:
    """Grey image for alignment, or None when alignment is off or the keypoints are not in
    this image's pixels (a distorted image whose keypoints were undistorted)."""
    if not config.enabled or camera.is_distorted:
        return None
    return grey(image)


def align_positions(
    config: AlignmentConfig,
    reference: np.ndarray,
    current: np.ndarray,
    reference_px: np.ndarray,
    current_px: np.ndarray,
    *,
    max_row_shift_px: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the points at ``reference_px`` of ``reference`` lie in ``current``, starting at
    ``current_px``: (N, 2) positions (the start where alignment failed) and the (N,) mask of
    those alignment measured."""
    return refine_positions(
        reference,
        current,
        reference_px,
        current_px,
        max_shift_px=config.max_shift_px,
        max_row_shift_px=max_row_shift_px,
        window_px=config.window_px,
        levels=config.levels,
        max_round_trip_px=config.max_round_trip_px,
    )


def align_pairs(
    config: AlignmentConfig,
    reference: np.ndarray,
    current: np.ndarray,
    reference_px: np.ndarray,
    current_px: np.ndarray,
    *,
    max_row_shift_px: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`align_positions` where alignment is the only check of a pair (stereo,
    monocular initialisation): positions and the mask of pairs to keep (aligned, or all with
    ``keep_unaligned``)."""
    pixels, aligned = align_positions(
        config, reference, current, reference_px, current_px, max_row_shift_px=max_row_shift_px
    )
    return pixels, aligned | config.keep_unaligned
