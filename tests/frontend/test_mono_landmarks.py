"""Monocular landmarks made at keyframes sit at the rendered depth, up to the one scale of the
map: the synthetic rig renders depth beside the colour image, which the tracker (forced to
monocular) never sees and the test reads to check each new landmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import slamfront as sf
from slamfront.frontend.extractors import build_extractor
from slamfront.frontend.matchers import build_matcher
from slamfront.frontend.tracker import Tracker


def test_new_landmarks_share_one_scale(shared_weights: Path) -> None:
    """Per keyframe, the landmarks it adds (depth in its camera over the rendered depth at
    the keypoint) agree with the whole run's median to within 3 % at their 10th and 90th
    percentiles. Triangulated from the two raw detections instead of aligned positions they
    spread by +-11 % (0.32-0.40 around 0.36, sim loop seed 1), which later bent the map."""
    del shared_weights
    config = sf.load_config(
        "fast",
        ["sim.sensor=rgbd", "sim.frames=110", "tracker.mode=mono", "tracker.imu.enabled=false"],
    )
    tracker = Tracker(
        config.tracker,
        build_extractor(config.extractor),
        build_matcher(config.matcher, extractor_model=config.extractor.model),
    )
    seen: set[int] = set()
    per_keyframe: list[np.ndarray] = []
    with sf.open_source("sim:loop", config) as source:
        for frame in source:
            result = tracker.step(frame)
            if not result.is_keyframe:
                continue
            assert frame.depth_m is not None
            keyframe = tracker.keyframes()[-1]
            assert keyframe.landmark_ids is not None
            ids = keyframe.landmark_ids
            new = np.array([i >= 0 and int(i) not in seen for i in ids])
            seen.update(int(i) for i in ids if i >= 0)
            cols, rows = np.round(keyframe.features.keypoints[new]).astype(int).T
            rendered = frame.depth_m[rows, cols]
            estimated = keyframe.points_cam_m[new, 2]
            valid = (rendered > 0) & np.isfinite(estimated)
            per_keyframe.append(estimated[valid] / rendered[valid])
    assert len(per_keyframe) >= 6
    scale = float(np.median(np.concatenate(per_keyframe)))
    for index, ratios in enumerate(per_keyframe[1:], start=1):
        assert ratios.size >= 50, index
        low, high = np.percentile(ratios, [10, 90]) / scale
        assert low >= 0.97 and high <= 1.03, (index, round(low, 3), round(high, 3))
