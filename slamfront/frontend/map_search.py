"""Tracking against the local map: window landmarks projected at a pose estimate and looked
for among the frame's keypoints near their projection, each found landmark aligned to
sub-pixel precision against the newest keyframe that observed it, and the pose refined."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.descriptors import in_image, pair_near_projections
from slamfront.frontend.local_map import Anchors, LocalMap
from slamfront.frontend.pose_fit import refit_pose
from slamfront.frontend.records import Correspondences, FrameInput, PoseFit
from slamfront.frontend.refine import refine_positions_warped
from slamfront.geometry import invert_pose, project, transform_points, view_warp


def search_local_map(
    lmap: LocalMap,
    inp: FrameInput,
    fit: PoseFit,
    anchors: Anchors,
    config: TrackerConfig,
    *,
    radius_px: float | None = None,
) -> PoseFit:
    """``fit`` extended by the window landmarks it does not hold yet, found within
    ``radius_px`` (default ``search.radius_px``) of their projection at its pose, and the
    pose refined on all of them."""
    features, camera = inp.features, inp.camera
    if len(lmap) == 0 or lmap.descriptors is None or len(features) == 0:
        return fit
    rows = np.flatnonzero(~np.isin(lmap.ids, fit.corr.landmark_ids))
    pose = fit.estimate.cam_from_world
    points_cam = transform_points(pose, lmap.positions_world[rows])
    front = points_cam[:, 2] > config.depth.min_m
    rows, points_cam = rows[front], points_cam[front]
    proj = project(camera.K, points_cam)
    inside = in_image(proj, camera)
    rows, proj = rows[inside], proj[inside]
    if rows.size == 0:
        return fit
    taken = np.zeros(len(features), bool)
    taken[fit.corr.keypoint_index] = True
    search = config.search
    points, best_kp = pair_near_projections(
        proj, lmap.descriptors[rows], features,
        radius_px=search.radius_px if radius_px is None else radius_px,
        max_distance=search.max_distance, ratio=search.ratio, taken=taken,
    )  # fmt: skip
    if points.size == 0:
        return fit
    rows = rows[points]
    pixels, aligned = _align_to_anchors(
        lmap, inp, rows, features.keypoints[best_kp], anchors, config
    )
    found = Correspondences(best_kp, lmap.ids[rows], lmap.positions_world[rows], pixels, aligned)
    return refit_pose(fit.corr.concat(found), pose, camera, config)


def align_warped(
    lmap: LocalMap, inp: FrameInput, fit: PoseFit, anchors: Anchors, config: TrackerConfig
) -> PoseFit:
    """Each correspondence aligned again from its landmark's newest keyframe window, warped
    into this view by the fitted pose, and the pose refined on the result. Where that
    alignment fails the position found before is kept; if the refit keeps too few inliers,
    ``fit`` is returned unchanged."""
    corr, camera = fit.corr, inp.camera
    if inp.grey is None or len(corr) == 0:
        return fit
    rows = lmap.rows_of(corr.landmark_ids)
    slot_of = np.where(rows >= 0, anchors.slot[rows], -1)
    greys, usable = _window_images(lmap, inp.grey, slot_of)
    chosen = np.flatnonzero(usable)
    if chosen.size == 0:
        return fit
    cam_from_world = fit.estimate.cam_from_world
    warp = np.empty((chosen.size, 2, 2))
    for slot in np.unique(slot_of[chosen]):
        group = slot_of[chosen] == slot
        warp[group] = view_warp(
            camera.K,
            invert_pose(lmap.keyframes[slot].world_from_cam),
            cam_from_world,
            corr.points_world[chosen[group]],
        )
    align = config.alignment
    aligned, ok = refine_positions_warped(
        greys,
        slot_of[chosen],
        anchors.pixel[rows[chosen]],
        inp.grey,
        corr.pixels[chosen],
        warp=warp,
        max_shift_px=align.max_shift_px,
        window_px=align.window_px,
        max_round_trip_px=align.max_round_trip_px,
        match_brightness=align.match_brightness,
    )
    pixels = corr.pixels.copy()
    pixels[chosen[ok]] = aligned[ok]
    was_aligned = corr.aligned.copy()
    was_aligned[chosen[ok]] = True
    refitted = refit_pose(
        replace(corr, pixels=pixels, aligned=was_aligned), cam_from_world, camera, config
    )
    return refitted if refitted.num_inliers >= config.min_inliers else fit


def _align_to_anchors(
    lmap: LocalMap,
    inp: FrameInput,
    rows: np.ndarray,
    keypoints: np.ndarray,
    anchors: Anchors,
    config: TrackerConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions of landmarks found near keypoints, by aligning the window around
    each landmark's newest keyframe observation, and which of them alignment measured (the
    others keep the keypoint)."""
    pixels = keypoints.astype(np.float64)
    aligned = np.zeros(rows.size, bool)
    if inp.grey is None or rows.size == 0:
        return pixels, aligned
    align = config.alignment
    slot_of = anchors.slot[rows]
    greys, usable = _window_images(lmap, inp.grey, slot_of)
    chosen = np.flatnonzero(usable)
    if chosen.size:
        # one alignment for all keyframes: their windows tiled into one image
        moved, ok = refine_positions_warped(
            greys,
            slot_of[chosen],
            anchors.pixel[rows[chosen]],
            inp.grey,
            pixels[chosen],
            warp=None,
            max_shift_px=align.max_shift_px,
            window_px=align.window_px,
            max_round_trip_px=align.max_round_trip_px,
            match_brightness=align.match_brightness,
        )
        pixels[chosen] = moved
        aligned[chosen] = ok
    return pixels, aligned


def _window_images(
    lmap: LocalMap, current: np.ndarray, slot_of: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The window keyframes' grey images (the current one standing in, unused, where a
    keyframe has none) and which of the slots ``slot_of`` (-1: no anchor) have one."""
    greys = [entry.grey for entry in lmap.keyframes]
    # slot -1 picks the trailing False
    usable = np.array([g is not None for g in greys] + [False])[slot_of]
    return [g if g is not None else current for g in greys], usable
