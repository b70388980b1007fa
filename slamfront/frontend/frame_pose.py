"""A frame's pose in the window: by the local-map search from the motion model's prediction,
backed up by the matcher; refined again where a rolling shutter's correction changed; and
checked against the prediction."""

from __future__ import annotations

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.base import Matcher
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.local_map import Anchors, LocalMap
from slamfront.frontend.map_search import align_warped, search_local_map
from slamfront.frontend.motion_model import image_jump_px
from slamfront.frontend.pose import PoseEstimate
from slamfront.frontend.records import Correspondences, FrameInput, MatchAttempt, PoseFit
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import invert_pose
from slamfront.types import FrameIssue


def solve_in_window(
    lmap: LocalMap,
    inp: FrameInput,
    prediction: np.ndarray | None,
    anchors: Anchors,
    matcher: Matcher,
    config: TrackerConfig,
    *,
    search_first: bool,
    last_inliers: int,
) -> tuple[MatchAttempt, PoseFit | FrameIssue]:
    """The frame's pose in the window, or why there is none. With ``search_first`` (and a
    ``prediction``) the window's landmarks are first searched for around their projection at
    the predicted pose; the matcher (against the reference keyframe) runs when that finds
    fewer than ``motion.min_share`` of the ``last_inliers`` the previous frame had, or than
    twice ``min_inliers``, and if it does worse, the search's pose stands."""
    cfg = config
    attempt = MatchAttempt()
    fit = searched = None
    if search_first and prediction is not None:
        seed = PoseEstimate(
            invert_pose(prediction), np.zeros(0, bool), np.zeros(0), np.zeros((6, 6))
        )
        searched = search_local_map(
            lmap, inp, PoseFit(Correspondences.empty(), seed), anchors, cfg,
            radius_px=cfg.motion.search_radius_px,
        )  # fmt: skip
        needed = max(2 * cfg.min_inliers, cfg.motion.min_share * last_inliers)
        fit = searched if searched.num_inliers >= needed else None
    if fit is None:
        attempt, corr = match_keyframe(lmap, lmap.reference, inp, matcher, cfg)
        estimate = None
        if len(corr) >= cfg.min_inliers:
            estimate = estimate_pose(corr, inp.camera, cfg, guess_world_from_cam=prediction)
        if estimate is not None and estimate.num_inliers >= cfg.min_inliers:
            fit = search_local_map(lmap, inp, PoseFit.inliers_of(corr, estimate), anchors, cfg)
        elif searched is not None and searched.num_inliers >= cfg.min_inliers:
            fit = searched  # the matcher did worse than the search it was to back up
        elif len(corr) < cfg.min_inliers:
            return attempt, FrameIssue.FEW_MATCHES
        else:
            return attempt, FrameIssue.FEW_INLIERS
    if cfg.alignment.prewarp:
        fit = align_warped(lmap, inp, fit, anchors, cfg)
    if fit.num_inliers < cfg.min_inliers:
        return attempt, FrameIssue.FEW_INLIERS
    return attempt, fit


def resolve_shutter(
    lmap: LocalMap,
    captured: FrameInput,
    inp: FrameInput,
    fit: PoseFit,
    anchors: Anchors,
    config: TrackerConfig,
    *,
    rate: np.ndarray,
    solved_rate: np.ndarray | None,
) -> tuple[PoseFit, FrameInput]:
    """A rolling-shutter frame corrected by ``solved_rate`` (the rate its solved pose gives,
    over the intervals ending at it rather than at the previous frame) instead of ``rate``,
    and tracked again from the solved pose, when that changes the correction by more than
    ``shutter.resolve_px``; ``fit`` and ``inp`` as they are otherwise."""
    camera = captured.frame.camera
    limit_px = config.shutter.resolve_px
    if limit_px is None or solved_rate is None or camera.readout_s <= 0.0:
        return fit, inp
    # the largest change of a keypoint's correction: an edge row, at the image centre
    change_px = 0.5 * camera.readout_s * camera.fx * float(np.linalg.norm(solved_rate - rate))
    if change_px <= limit_px:
        return fit, inp
    again = to_global_shutter(captured, solved_rate)
    seed = PoseFit(Correspondences.empty(), fit.estimate)
    refit = search_local_map(
        lmap, again, seed, anchors, config, radius_px=config.motion.search_radius_px
    )
    if config.alignment.prewarp:
        refit = align_warped(lmap, again, refit, anchors, config)
    if refit.num_inliers < config.min_inliers:
        return fit, inp
    return refit, again


def strays_from_prediction(
    inp: FrameInput,
    prediction: np.ndarray,
    world_from_cam: np.ndarray,
    fit: PoseFit,
    config: TrackerConfig,
) -> bool:
    """The motion gate: whether the estimate moves its landmarks in the image farther from
    where the prediction put them than ``motion.max_jump_share`` of the image diagonal."""
    camera = inp.camera
    diagonal_px = float(np.hypot(camera.width_px, camera.height_px))
    jump_px = image_jump_px(prediction, world_from_cam, fit.corr.points_world, camera)
    return jump_px > config.motion.max_jump_share * diagonal_px
