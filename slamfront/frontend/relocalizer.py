"""Relocalisation after a loss: the frame matched against the window's keyframes, newest
first, until one gives a verified pose."""

from __future__ import annotations

from dataclasses import dataclass

from slamfront.config import TrackerConfig
from slamfront.frontend.base import Matcher
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.map_search import search_local_map
from slamfront.frontend.records import FrameInput, MatchAttempt, PoseFit


@dataclass(frozen=True, eq=False)
class Relocalization:
    attempt: MatchAttempt
    """The matcher's work over every keyframe tried."""
    keyframe: MapKeyframe | None = None
    """The keyframe the frame was placed against (None: not relocalised)."""
    fit: PoseFit | None = None


def relocalize(
    lmap: LocalMap, inp: FrameInput, matcher: Matcher, config: TrackerConfig
) -> Relocalization:
    """Try the ``relocalization.keyframes`` newest keyframes: match, PnP in RANSAC, then the
    local-map search from that pose; the first with ``min_inliers`` after both wins."""
    attempt = MatchAttempt()
    for entry in reversed(lmap.keyframes[-config.relocalization.keyframes :]):
        tried, corr = match_keyframe(lmap, entry, inp, matcher, config)
        attempt = attempt.then(tried)
        estimate = estimate_pose(corr, inp.camera, None, config)
        if estimate is None or estimate.num_inliers < config.min_inliers:
            continue
        fit = search_local_map(
            lmap, inp, PoseFit.inliers_of(corr, estimate), lmap.anchors(), config
        )
        if fit.num_inliers >= config.min_inliers:
            return Relocalization(attempt, entry, fit)
    return Relocalization(attempt)
