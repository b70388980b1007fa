"""The frame's pose refitted on its correspondences, aligned and unaligned pixels each
weighted by the noise they show."""

from __future__ import annotations

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.pose import refine_pose
from slamfront.frontend.records import Correspondences, PoseFit
from slamfront.geometry import project, transform_points
from slamfront.types import CameraModel

_MIN_PER_CLASS = 10
"""Correspondences of each kind needed to measure its noise."""

_DETECTOR_USELESS_RATIO = 4.0
"""Where alignment is this many times more precise than the detector, detector positions add
nothing but the occlusions and outliers alignment refused, and are left out."""


def relative_sigma(
    corr: Correspondences, cam_from_world: np.ndarray, camera: CameraModel
) -> np.ndarray:
    """(N,) pixel noise of each correspondence relative to an aligned one: 1 where alignment
    measured the pixel, and where it did not (the detector's position) the ratio of the robust
    scales (median absolute residual) of the two kinds at ``cam_from_world``, at least 1.
    Alignment is precise on a clean image and little better than the detector on a blurred,
    rolling-shutter one; the residuals say which."""
    sigma = np.ones(len(corr))
    aligned = corr.aligned
    if aligned.sum() < _MIN_PER_CLASS or (~aligned).sum() < _MIN_PER_CLASS:
        return sigma
    points_cam = transform_points(cam_from_world, corr.points_world)
    front = points_cam[:, 2] > 0
    residual = np.linalg.norm(
        project(camera.K, np.where(front[:, None], points_cam, [0.0, 0.0, 1.0])) - corr.pixels,
        axis=1,
    )
    residual = np.where(front, residual, np.inf)
    scale_aligned = float(np.median(residual[aligned]))
    scale_detected = float(np.median(residual[~aligned]))
    if scale_aligned > 0:
        sigma[~aligned] = max(scale_detected / scale_aligned, 1.0)
    return sigma


def refit_pose(
    corr: Correspondences,
    cam_from_world: np.ndarray,
    camera: CameraModel,
    config: TrackerConfig,
) -> PoseFit:
    """Robust refit of the pose from ``cam_from_world``, weighted by :func:`relative_sigma`;
    the fit keeps its inliers only. Where the detector's positions are far less precise than
    alignment's they are left out altogether."""
    sigma = relative_sigma(corr, cam_from_world, camera)
    if sigma.max() >= _DETECTOR_USELESS_RATIO:
        corr = corr.select(corr.aligned)
        sigma = np.ones(len(corr))
    estimate = refine_pose(
        cam_from_world,
        corr.points_world,
        corr.pixels,
        camera.K,
        huber_px=config.huber_px,
        inlier_px=config.ransac_reprojection_px,
        pixel_sigma=sigma,
    )
    return PoseFit.inliers_of(corr, estimate)
