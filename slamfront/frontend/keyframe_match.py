"""A frame matched to one keyframe, and its pose from the 2-D/3-D pairs that gives."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import align_positions
from slamfront.frontend.base import Matcher
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.pose import PoseEstimate, refine_pose, solve_pnp_ransac
from slamfront.frontend.records import Correspondences, FrameInput, MatchAttempt
from slamfront.geometry import invert_pose
from slamfront.types import CameraModel


def match_keyframe(
    lmap: LocalMap, entry: MapKeyframe, inp: FrameInput, matcher: Matcher, config: TrackerConfig
) -> tuple[MatchAttempt, Correspondences]:
    """The frame's keypoints matched to the keyframe's, and the pairs whose keyframe keypoint
    carries a landmark as 2-D/3-D correspondences, each aligned to sub-pixel precision from
    the keyframe's image.

    Only the keyframe's keypoints that carry a landmark can give a correspondence (in every
    mode: monocular keyframes pair their free keypoints for new landmarks on their own); both
    sides are capped at the best ``match_keypoints`` by score (the rest still serve the
    local-map search)."""
    features = inp.features
    reference = entry.keyframe.features
    useful = lmap.rows_of(entry.landmark_ids) >= 0
    ref_index = reference.strongest(config.match_keypoints, useful)
    cur_index = features.strongest(config.match_keypoints)
    tm = time.perf_counter()
    matches = matcher(reference.subset(ref_index), features.subset(cur_index))
    match_ms = (time.perf_counter() - tm) * 1e3
    if len(matches):
        indices = np.stack(
            [ref_index[matches.indices[:, 0]], cur_index[matches.indices[:, 1]]], axis=1
        )
        matches = replace(matches, indices=indices)
    attempt = MatchAttempt(matches, match_ms, entry.keyframe.keyframe_id)
    ids = entry.landmark_ids[matches.indices[:, 0]] if len(matches) else np.zeros(0, np.int64)
    rows = lmap.rows_of(ids)
    has = rows >= 0
    current_index = matches.indices[has, 1]
    pixels = features.keypoints[current_index].astype(np.float64)
    aligned = np.zeros(current_index.size, bool)
    if entry.grey is not None and inp.grey is not None and has.any():
        # where the keyframe's keypoints went, by image alignment (sub-pixel); a pair whose
        # alignment fails keeps the keypoint: the pose's robust fit decides, not alignment
        reference_px = reference.keypoints[matches.indices[has, 0]]
        pixels, aligned = align_positions(
            config.alignment, entry.grey, inp.grey, reference_px, pixels
        )
    corr = Correspondences(
        current_index, ids[has], lmap.positions_world[rows[has]], pixels, aligned
    )
    return attempt, corr


def estimate_pose(
    corr: Correspondences,
    camera: CameraModel,
    config: TrackerConfig,
    *,
    guess_world_from_cam: np.ndarray | None = None,
) -> PoseEstimate | None:
    """Pose from correspondences: the motion model's guess refined if most correspondences
    agree with it, else PnP in RANSAC; then robust refinement. None with too few pairs or no
    consensus."""
    if len(corr) < config.min_inliers:
        return None
    k = camera.K
    initial: np.ndarray | None = None
    if guess_world_from_cam is not None:
        guess = refine_pose(
            invert_pose(guess_world_from_cam),
            corr.points_world,
            corr.pixels,
            k,
            huber_px=config.huber_px,
            inlier_px=config.ransac_reprojection_px,
        )
        if guess.num_inliers >= max(config.min_inliers, 0.6 * len(corr)):
            initial = guess.cam_from_world
    if initial is None:
        found = solve_pnp_ransac(
            corr.points_world, corr.pixels, k, threshold_px=config.ransac_reprojection_px
        )
        if found is None:
            return None
        initial = found[0]
    return refine_pose(
        initial,
        corr.points_world,
        corr.pixels,
        k,
        huber_px=config.huber_px,
        inlier_px=config.ransac_reprojection_px,
    )
