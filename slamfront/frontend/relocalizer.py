"""Relocalisation after a loss: the frame matched against the window's keyframes, newest
first, then against the keyframes of every map that look most like it (place recognition),
until one gives a verified pose."""

from __future__ import annotations

from dataclasses import dataclass

from slamfront.config import TrackerConfig
from slamfront.frontend.atlas import KeyframeAtlas
from slamfront.frontend.base import Matcher
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.map_search import search_local_map
from slamfront.frontend.records import FrameInput, MatchAttempt, PoseFit


@dataclass(frozen=True, eq=False)
class Relocalization:
    attempt: MatchAttempt
    """The matcher's work over every keyframe tried."""
    lmap: LocalMap | None = None
    """The window to resume in (the current one, or one rebuilt around a recognised
    keyframe of the atlas); None: not relocalised."""
    keyframe: MapKeyframe | None = None
    """The keyframe the frame was placed against, in ``lmap``."""
    fit: PoseFit | None = None


def relocalize(
    lmap: LocalMap,
    inp: FrameInput,
    matcher: Matcher,
    config: TrackerConfig,
    atlas: KeyframeAtlas,
) -> Relocalization:
    """Try the ``relocalization.keyframes`` newest keyframes of the window, then the
    ``relocalization.candidates`` atlas keyframes most like the frame, each in a window
    rebuilt around it: match, PnP in RANSAC, then the local-map search from that pose; the
    first with ``min_inliers`` after both wins."""
    attempt = MatchAttempt()
    tries: list[tuple[LocalMap, MapKeyframe]] = [
        (lmap, entry) for entry in reversed(lmap.keyframes[-config.relocalization.keyframes :])
    ]
    window_ids = {entry.keyframe.keyframe_id for entry in lmap.keyframes}
    first_id = lmap.next_landmark_id
    for keyframe in atlas.candidates(inp.features, window_ids, config.relocalization.candidates):
        around = atlas.around(keyframe.keyframe_id, config.window.keyframes)
        rebuilt = LocalMap.of_keyframes(around, config.window.keyframes, first_id)
        tries.append((rebuilt, rebuilt.reference))
    for window, entry in tries:
        tried, corr = match_keyframe(window, entry, inp, matcher, config)
        attempt = attempt.then(tried)
        if len(corr) < config.min_inliers:
            continue
        estimate = estimate_pose(corr, inp.camera, config)
        if estimate is None or estimate.num_inliers < config.min_inliers:
            continue
        fit = search_local_map(
            window, inp, PoseFit.inliers_of(corr, estimate), window.anchors(), config
        )
        if fit.num_inliers >= config.min_inliers:
            return Relocalization(attempt, window, entry, fit)
    return Relocalization(attempt)
