"""The search of left points along the rows of a rectified pair's right image."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.frontend.stereo import rectified_disparity, search_rows
from slamfront.geometry import make_pose
from slamfront.types import CameraModel, StereoRig

CAMERA = CameraModel(1226, 370, 718.0, 718.0, 600.0, 185.0)
RIG = StereoRig(CAMERA, CAMERA, make_pose(np.eye(3), [-0.54, 0, 0]), rectified=True)


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
    right_px, found = search_rows(
        left, right, left_px, rig, min_disparity_px=1.0, max_disparity_px=300.0
    )
    assert found.mean() > 0.8
    disparity = rectified_disparity(rig, left_px[found, 0], right_px[found, 0])
    # searched at a quarter of the width here: to about one of its pixels (alignment refines)
    assert np.max(np.abs(disparity - 40.0)) < 2.0
    assert np.median(np.abs(disparity - 40.0)) < 0.5
    np.testing.assert_array_equal(right_px[:, 1], left_px[:, 1])
    # the true disparity outside the range searched: (almost) nothing is found
    assert (
        search_rows(left, right, left_px, rig, min_disparity_px=1.0, max_disparity_px=30.0)[
            1
        ].mean()
        < 0.05
    )


def test_row_search_rejects_a_repeating_row() -> None:
    """Vertical stripes repeat along the row: every period matches as well, so no point is
    unique, whereas the same points on texture are found."""
    columns = np.arange(1226)
    stripes = np.tile(128 + 90 * np.sin(2 * np.pi * columns / 24.0), (370, 1)).astype(np.uint8)
    stripes = np.clip(stripes + textured(370, 1226)[:, :1] // 8, 0, 255).astype(np.uint8)
    left_px = np.c_[np.linspace(300, 1200, 200), np.linspace(10, 360, 200)]
    _, found = search_rows(
        stripes,
        shifted_pair(stripes, 40, 0),
        left_px,
        RIG,
        min_disparity_px=1.0,
        max_disparity_px=300.0,
    )
    assert found.mean() < 0.05
