"""The frame's pose refitted on its correspondences, aligned and unaligned pixels each
weighted by the noise they show."""

from __future__ import annotations

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.pose import PoseEstimate, refine_pose
from slamfront.frontend.records import Correspondences
from slamfront.geometry import project, transform_points
from slamfront.types import CameraModel

_MIN_PER_CLASS = 10


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
    if np.isfinite(scale_detected) and scale_aligned > 0:
        sigma[~aligned] = max(scale_detected / scale_aligned, 1.0)
    return sigma


def refit_pose(
    corr: Correspondences,
    cam_from_world: np.ndarray,
    camera: CameraModel,
    config: TrackerConfig,
) -> PoseEstimate:
    """Robust refit of the pose from ``cam_from_world``, weighted by :func:`relative_sigma`."""
    return refine_pose(
        cam_from_world,
        corr.points_world,
        corr.pixels,
        camera.K,
        config.huber_px,
        config.ransac_reprojection_px,
        pixel_sigma=relative_sigma(corr, cam_from_world, camera),
    )
