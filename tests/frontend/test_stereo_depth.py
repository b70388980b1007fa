"""Stereo depth at keypoints against exact disparities: the sub-pixel alignment must not bias
them (a constant disparity error is a scale error of the whole trajectory)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import slamfront as sf
from slamfront.frontend.base import Extractor
from slamfront.frontend.depth import keypoint_depth
from slamfront.frontend.extractors import build_extractor
from slamfront.frontend.refine import grey
from slamfront.geometry import make_pose
from slamfront.sim.rig import SimRig
from slamfront.types import Frame, StereoRig

# the synthetic rig at a KITTI-like image shape and focal length times baseline
SIM = ["sim.sensor=stereo", "sim.width_px=1226", "sim.height_px=370", "sim.baseline_m=0.3"]


@pytest.fixture(scope="module")
def config() -> sf.Config:
    return sf.load_config("fast", SIM)


@pytest.fixture(scope="module")
def extractor(config: sf.Config, shared_weights: Path) -> Extractor:
    """The default extractor (detecting at VGA area, so its keypoints are mapped back to the
    full image: that mapping is under test too)."""
    del shared_weights  # the fixture skips without the published weights
    return build_extractor(config.extractor)


def disparity_errors(
    frame: Frame,
    true_disparity: Callable[[np.ndarray], np.ndarray],
    extractor: Extractor,
    config: sf.Config,
) -> tuple[np.ndarray, int]:
    """Measured minus true disparity (px) at the left keypoints given a depth, and the count of
    keypoints. ``true_disparity`` maps (N, 2) left pixels to (N,) disparities (NaN: unknown)."""
    features = extractor(frame.image)
    depth = keypoint_depth(frame, features, "stereo", grey(frame.image), config.tracker)
    assert frame.stereo is not None
    focal_baseline = frame.stereo.left.fx * frame.stereo.baseline_m
    has = depth.valid
    measured = focal_baseline / depth.depth_m[has].astype(np.float64)
    error = measured - true_disparity(features.keypoints[has].astype(np.float64))
    return error[np.isfinite(error)], len(features)


def plane_disparity(
    depth_m: np.ndarray, focal_baseline: float
) -> Callable[[np.ndarray], np.ndarray]:
    """True disparity at sub-pixel positions of a rendered depth image: inverse depth is linear
    across a plane, so it is interpolated; NaN near depth edges and holes."""
    inverse = np.where(depth_m > 0, 1.0 / np.maximum(depth_m, 1e-6), 0.0).astype(np.float32)
    low = cv2.erode(inverse, np.ones((5, 5)))
    high = cv2.dilate(inverse, np.ones((5, 5)))

    def truth(px: np.ndarray) -> np.ndarray:
        at = cv2.remap(inverse, *px.T[:, :, None].astype(np.float32), cv2.INTER_LINEAR).ravel()
        u, v = np.rint(px).astype(int).T
        smooth = (high[v, u] - low[v, u] < 0.03 * inverse[v, u]) & (low[v, u] > 0)
        return np.where(smooth, focal_baseline * at, np.nan)

    return truth


def test_rendered_pair_disparities_are_unbiased(config: sf.Config, extractor: Extractor) -> None:
    """Rendered rectified pairs, exact depth: the aligned disparity error's median is within
    0.02 px of zero (a 0.1 px bias is a 1 % scale error at 10 px of disparity)."""
    rig = SimRig(config.sim)
    depth_rig = SimRig(replace(config.sim, sensor="rgbd"), scene=rig.scene)
    focal_baseline = rig.camera.fx * config.sim.baseline_m
    errors = []
    for index in (0, 40, 80):
        depth_m = depth_rig.frame(index).depth_m
        assert depth_m is not None
        truth = plane_disparity(depth_m, focal_baseline)
        error, count = disparity_errors(rig.frame(index), truth, extractor, config)
        assert error.size > 0.3 * count
        errors.append(error)
    error = np.concatenate(errors)
    assert abs(np.median(error)) < 0.02, np.median(error)
    assert np.median(np.abs(error)) < 0.25  # sub-pixel (the detector alone: about 0.7)


def test_disparity_stays_unbiased_when_the_pair_is_off_by_part_of_a_row(
    config: sf.Config, extractor: Extractor
) -> None:
    """A real rectification can leave the right image a fraction of a row off (KITTI's: up to
    about half a pixel, turning across the image). On a surface whose disparity changes down
    the image (a road), a window held to the left point's row sees the texture of another row
    and measures a disparity off by the row offset times that gradient (0.075 px here); the
    alignment follows the point off the row instead, so the offset leaves the disparities as
    they are without it."""
    left = grey(SimRig(config.sim).frame(0).image)
    height, width = left.shape
    base_px, per_row = 12.0, 0.15  # disparity = base + per_row * (v - height / 2): a ground plane
    cols, rows = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    camera = sf.CameraModel(width, height, 700.0, 700.0, width / 2, height / 2)
    rig = StereoRig(camera, camera, make_pose(np.eye(3), [-0.5, 0.0, 0.0]), rectified=True)

    def truth(px: np.ndarray) -> np.ndarray:
        inside = (px[:, 0] > base_px + 40) & (px[:, 1] > 10) & (px[:, 1] < height - 10)
        return np.where(inside, base_px + per_row * (px[:, 1] - height / 2), np.nan)

    medians = {}
    for row_offset_px in (-0.5, 0.0, 0.5):
        # left point (u, v) is seen at right (u - disparity(v), v + offset)
        source_rows = rows - row_offset_px
        source_cols = cols + base_px + per_row * (source_rows - height / 2)
        right = cv2.remap(left, source_cols, source_rows, cv2.INTER_CUBIC)
        frame = Frame(0, 0, left, camera, image_right=right, stereo=rig)
        error, count = disparity_errors(frame, truth, extractor, config)
        assert error.size > 0.3 * count
        medians[row_offset_px] = float(np.median(error))
    shifts = [medians[offset] - medians[0.0] for offset in (-0.5, 0.5)]
    assert max(map(abs, shifts)) < 0.03, medians
