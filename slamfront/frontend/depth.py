"""Depth at a frame's keypoints, from its depth image (RGB-D) or its right image (stereo)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import align_pairs
from slamfront.frontend.refine import grey
from slamfront.frontend.stereo import rectified_disparity, search_rows
from slamfront.geometry import sample_depth, undistort_points
from slamfront.types import CameraModel, Features, Frame


@dataclass(frozen=True, eq=False)
class KeypointDepth:
    """(N,) float32 depth of each keypoint in metres (0: none) and its standard deviation."""

    depth_m: np.ndarray
    sigma_m: np.ndarray

    @staticmethod
    def none(count: int) -> KeypointDepth:
        zeros = np.zeros(count, np.float32)
        return KeypointDepth(zeros, zeros.copy())

    @property
    def valid(self) -> np.ndarray:
        return self.depth_m > 0


def pinhole_features(features: Features, camera: CameraModel) -> Features:
    """Keypoints moved to the undistorted pinhole image when the camera has distortion."""
    if not camera.is_distorted or len(features) == 0:
        return features
    keypoints = undistort_points(camera, features.keypoints).astype(np.float32)
    return replace(features, keypoints=keypoints)


def image_depth(frame: Frame, pixels: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """(N,) depth the frame's depth image measures at ``pixels`` within the configured range
    (0: none)."""
    assert frame.depth_m is not None
    depth = sample_depth(frame.depth_m, pixels, config.depth.edge_ratio)
    far_m = config.depth.max_m if config.depth.max_m is not None else np.inf
    depth[(depth < config.depth.min_m) | (depth > far_m)] = 0.0
    return depth


def keypoint_depth(
    frame: Frame,
    features: Features,
    mode: str,
    grey_left: np.ndarray | None,
    config: TrackerConfig,
) -> KeypointDepth:
    """Depth of each keypoint from the depth image ("rgbd") or the stereo pair ("stereo":
    each keypoint searched for along its rectified row of the right image, the disparity
    then aligned to sub-pixel), with its noise; none for "mono". ``grey_left``: the frame's
    alignment image (None: alignment off, the disparity stays at the search's precision)."""
    cfg = config
    if mode == "rgbd" and frame.depth_m is not None:
        depth = image_depth(frame, features.keypoints, cfg)
        # structured light / time of flight: error grows with the square of the range
        sigma = np.maximum(cfg.depth.rgbd_sigma_m, cfg.depth.rgbd_sigma_quadratic * depth**2)
        return KeypointDepth(depth, np.where(depth > 0, sigma, 0.0).astype(np.float32))
    if mode == "stereo" and frame.image_right is not None and frame.stereo is not None:
        return _stereo_depth(frame, features, grey_left, cfg)
    return KeypointDepth.none(len(features))


def _stereo_depth(
    frame: Frame, features: Features, grey_left: np.ndarray | None, cfg: TrackerConfig
) -> KeypointDepth:
    assert frame.image_right is not None and frame.stereo is not None
    rig = frame.stereo
    focal_baseline = rig.left.fx * rig.baseline_m
    far_m = cfg.depth.max_m
    if far_m is None:
        far_m = focal_baseline / cfg.stereo.min_disparity_px
    right_image = grey(frame.image_right)
    left_px = features.keypoints.astype(np.float64)
    right_px, found = search_rows(
        grey_left if grey_left is not None else grey(frame.image),
        right_image,
        left_px,
        rig,
        min_disparity_px=focal_baseline / far_m,
        max_disparity_px=focal_baseline / cfg.depth.min_m,
    )
    index = np.flatnonzero(found)
    left_px, right_px = left_px[index], right_px[index]
    if grey_left is not None and len(index):
        # sub-pixel disparity: align the left keypoint's window along the row
        right_px, keep = align_pairs(
            cfg.alignment,
            grey_left,
            right_image,
            left_px,
            right_px,
            max_row_shift_px=cfg.stereo.max_row_diff_px,
        )
        index, left_px, right_px = index[keep], left_px[keep], right_px[keep]
    disparity = rectified_disparity(rig, left_px[:, 0], right_px[:, 0])
    depth = np.zeros(len(features), np.float32)
    positive = disparity > 0
    depth[index[positive]] = focal_baseline / disparity[positive]
    sigma = cfg.stereo.disparity_sigma_px * depth**2 / focal_baseline
    invalid = (depth < cfg.depth.min_m) | (depth > far_m)
    depth[invalid] = 0.0
    return KeypointDepth(depth, np.where(invalid, 0.0, sigma).astype(np.float32))
