"""Monocular landmarks: keypoint pairs of two views triangulated, checked and sub-pixel
aligned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import AlignmentConfig, TrackerConfig
from slamfront.frontend.epipolar_search import search_epipolar
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.refine import refine_positions_warped
from slamfront.geometry import invert_pose, project, transform_points, triangulate, view_warp
from slamfront.types import CameraModel


def ray_angles_deg(
    points_world: np.ndarray, cam0_from_world: np.ndarray, cam1_from_world: np.ndarray
) -> np.ndarray:
    """Angle at each point between the rays to the two camera centres, degrees."""
    ray0 = points_world - invert_pose(cam0_from_world)[:3, 3]
    ray1 = points_world - invert_pose(cam1_from_world)[:3, 3]
    cos = np.sum(ray0 * ray1, axis=1) / np.maximum(
        np.linalg.norm(ray0, axis=1) * np.linalg.norm(ray1, axis=1), 1e-12
    )
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def triangulation_ok(
    points_world: np.ndarray,
    cam0_from_world: np.ndarray,
    cam1_from_world: np.ndarray,
    k: np.ndarray,
    px0: np.ndarray,
    px1: np.ndarray,
    config: TrackerConfig,
) -> np.ndarray:
    """(N,) bool: in front of both cameras, reprojected within the RANSAC threshold in both,
    and seen under at least ``mono.min_angle_deg`` of parallax."""
    ok = np.all(np.isfinite(points_world), axis=1)
    for cam_from_world, px in ((cam0_from_world, px0), (cam1_from_world, px1)):
        pc = transform_points(cam_from_world, points_world)
        front = pc[:, 2] > 0
        ok &= front
        proj = project(k, np.where(front[:, None], pc, [0.0, 0.0, 1.0]))
        ok &= np.linalg.norm(proj - px, axis=1) < config.ransac_reprojection_px
    angles = ray_angles_deg(points_world, cam0_from_world, cam1_from_world)
    return ok & (angles >= config.mono.min_angle_deg)


def align_through_points(
    grey0: np.ndarray,
    grey1: np.ndarray,
    k: np.ndarray,
    cam0_from_world: np.ndarray,
    cam1_from_world: np.ndarray,
    px0: np.ndarray,
    px1: np.ndarray,
    points_world: np.ndarray,
    *,
    alignment: AlignmentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the points at ``px0`` of view 0 lie in view 1, starting at ``px1``: each window
    of ``grey0`` warped into view 1 through its triangulated point before it is aligned, so
    that a window the motion scaled or turned still aligns. (N, 2) positions (``px1`` where
    alignment failed) and the (N,) mask of those aligned."""
    finite = np.all(np.isfinite(points_world), axis=1)
    warp = view_warp(
        k, cam0_from_world, cam1_from_world, np.where(finite[:, None], points_world, 0.0)
    )
    # a point behind either camera (cheirality rejects it later) has no meaningful warp
    sane = np.all(np.isfinite(warp), axis=(1, 2))
    sane[sane] = np.linalg.det(warp[sane]) > 1e-6
    warp[~sane] = np.eye(2)
    aligned, ok = refine_positions_warped(
        [grey0],
        np.zeros(px0.shape[0], np.int64),
        px0,
        grey1,
        px1,
        warp=warp,
        max_shift_px=alignment.max_shift_px,
        window_px=alignment.window_px,
        max_round_trip_px=alignment.max_round_trip_px,
    )
    ok &= finite
    return np.where(ok[:, None], aligned, px1), ok


def triangulate_window(
    lmap: LocalMap, newer: MapKeyframe, camera: CameraModel, config: TrackerConfig
) -> None:
    """New landmarks for the new keyframe's keypoints that have none, paired with each older
    window keyframe's free keypoints, oldest (widest baseline, most precise depth) first;
    what fails the parallax gate there is tried on newer ones. The two poses are known, so
    the pairs are found along epipolar lines without the matcher, among all the keypoints
    (a car leaves most landmarks behind within a few keyframes)."""
    for older in lmap.keyframes[:-1]:
        free0 = older.landmark_ids < 0
        free1 = newer.landmark_ids < 0
        if free0.sum() < config.min_inliers or free1.sum() < config.min_inliers:
            continue
        pairs = search_epipolar(
            older.keyframe.features,
            newer.keyframe.features,
            camera.K,
            invert_pose(newer.world_from_cam) @ older.world_from_cam,
            free0,
            free1,
            max_line_px=config.ransac_reprojection_px,
            config=config.search,
        )
        if len(pairs):
            _triangulate_pairs(lmap, older, newer, pairs[:, 0], pairs[:, 1], camera, config)


def _triangulate_pairs(
    lmap: LocalMap,
    older: MapKeyframe,
    newer: MapKeyframe,
    i0: np.ndarray,
    i1: np.ndarray,
    camera: CameraModel,
    config: TrackerConfig,
) -> None:
    """Landmarks from keypoint pairs ``i0`` (older) / ``i1`` (newer) that pass the checks.

    Each pair is first aligned: the older keyframe's window around its keypoint, warped into
    the newer view through the first triangulation, says where that very point is in the
    newer keyframe, and the landmark is triangulated again from there (the newer keyframe
    keeps that position as its observation). Two detections of a point are each about a
    pixel apart, which at the small parallax of neighbouring keyframes is a large depth
    error that bends the map."""
    k = camera.K
    cam0 = invert_pose(older.world_from_cam)
    cam1 = invert_pose(newer.world_from_cam)
    px0 = older.keyframe.features.keypoints[i0].astype(np.float64)
    px1 = newer.keyframe.features.keypoints[i1].astype(np.float64)
    points = triangulate(cam0, cam1, k, px0, px1)
    if older.grey is not None and newer.grey is not None and i0.size:
        finite = np.all(np.isfinite(points), axis=1)
        aligned, ok = align_through_points(
            older.grey, newer.grey, k, cam0, cam1, px0, px1, points, alignment=config.alignment
        )
        keep = finite & (ok | config.alignment.keep_unaligned)
        i0, i1, px0, px1 = i0[keep], i1[keep], px0[keep], aligned[keep]
        points = triangulate(cam0, cam1, k, px0, px1)
    good = triangulation_ok(points, cam0, cam1, k, px0, px1, config)
    if not good.any():
        return
    ids = lmap.add_landmarks(points[good], newer.keyframe.features.descriptors[i1[good]])
    older.landmark_ids[i0[good]] = ids
    newer.landmark_ids[i1[good]] = ids
    features = newer.keyframe.features
    keypoints = features.keypoints.copy()
    keypoints[i1[good]] = px1[good]
    newer.keyframe = replace(newer.keyframe, features=replace(features, keypoints=keypoints))
