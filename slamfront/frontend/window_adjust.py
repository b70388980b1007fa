"""Adjustment of the local map's window at a new keyframe: landmarks alone (structure only),
keyframe poses and landmarks by alternation (RGB-D, stereo), or jointly (monocular)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.bundle import bundle_adjust, refine_points
from slamfront.frontend.local_map import LocalMap
from slamfront.frontend.pose import refine_pose
from slamfront.geometry import invert_pose
from slamfront.types import CameraModel


def refine_structure(
    lmap: LocalMap, camera: CameraModel, config: TrackerConfig, *, use_depth: bool
) -> None:
    """Landmarks seen by two or more window keyframes refined from all their observations
    (with their measured depths, weighted by the depth's sigma, when ``use_depth``)."""
    obs = lmap.observations()
    if obs.rows.size == 0:
        return
    measured = obs.depth_m > 0
    depth_obs = np.where(measured, obs.depth_m, np.nan)
    sigma = np.where(measured, obs.depth_sigma_m, 1.0)
    counts = np.bincount(obs.rows, minlength=len(lmap))
    multi = counts[obs.rows] >= 2
    if not multi.any():
        return
    lmap.positions_world = refine_points(
        lmap.positions_world,
        obs.rows[multi],
        obs.cam_from_world[multi],
        obs.pixels[multi],
        camera.K,
        depth_m=depth_obs[multi] if use_depth else None,
        depth_sigma_m=sigma[multi] if use_depth else None,
        huber_px=config.huber_px,
    )


def adjust_window(lmap: LocalMap, camera: CameraModel, config: TrackerConfig) -> None:
    """Local bundle adjustment by alternation (metric rigs): keyframe poses (all but the
    oldest, which holds the gauge) refined against the window's landmarks, then the landmarks
    against all observations and depths, ``window.adjustment_rounds`` times."""
    for _ in range(config.window.adjustment_rounds):
        for entry in lmap.keyframes[1:]:
            rows = lmap.rows_of(entry.landmark_ids)
            has = rows >= 0
            if int(has.sum()) < config.min_inliers:
                continue
            estimate = refine_pose(
                invert_pose(entry.world_from_cam),
                lmap.positions_world[rows[has]],
                entry.keyframe.features.keypoints[has].astype(np.float64),
                camera.K,
                huber_px=config.huber_px,
                inlier_px=config.ransac_reprojection_px,
                iterations=5,
            )
            if estimate.num_inliers >= config.min_inliers:
                entry.keyframe = replace(
                    entry.keyframe, world_from_cam=invert_pose(estimate.cam_from_world)
                )
        refine_structure(lmap, camera, config, use_depth=True)


def bundle_window(
    lmap: LocalMap, camera: CameraModel, config: TrackerConfig, *, num_fixed: int
) -> None:
    """Joint bundle adjustment of the window: keyframe poses (the ``num_fixed`` oldest held:
    the gauge, and for monocular the scale) and the landmarks they observe."""
    entries = lmap.keyframes
    if len(entries) <= num_fixed:
        return
    obs = lmap.observations()
    fixed = np.arange(len(entries)) < num_fixed
    poses, points = bundle_adjust(
        np.array([invert_pose(entry.world_from_cam) for entry in entries]),
        fixed,
        lmap.positions_world,
        obs.slots,
        obs.rows,
        obs.pixels,
        camera.K,
        huber_px=config.huber_px,
        iterations=config.mono.adjustment_iterations,
    )
    lmap.positions_world = points
    for entry, pose, held in zip(entries, poses, fixed, strict=True):
        if not held:
            entry.keyframe = replace(entry.keyframe, world_from_cam=invert_pose(pose))
