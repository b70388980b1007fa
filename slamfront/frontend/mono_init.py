"""Monocular two-view initialisation: the first two keyframes and their landmarks, at an
arbitrary scale (median landmark depth 1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import align_pairs
from slamfront.frontend.base import Matcher
from slamfront.frontend.records import FrameInput, MatchAttempt
from slamfront.frontend.triangulation import ray_angles_deg, triangulation_ok
from slamfront.geometry import make_pose, triangulate
from slamfront.types import Features, Frame


@dataclass(frozen=True, eq=False)
class TwoViewStart:
    """A successful initialisation. The world frame is the reference view's camera."""

    reference_frame: Frame
    reference_features: Features
    reference_grey: np.ndarray | None
    cam1_from_cam0: np.ndarray
    """4x4 pose of the current view relative to the reference, at the map's scale."""
    points_world: np.ndarray
    """(M, 3) the landmarks triangulated from the two views."""
    reference_index: np.ndarray
    """(M,) int64 keypoint of each landmark in the reference view."""
    current_index: np.ndarray
    """(M,) int64 keypoint of each landmark in the current view."""
    current_px: np.ndarray
    """(M, 2) where the landmark is in the current view (aligned to sub-pixel)."""


@dataclass(frozen=True, eq=False)
class MonoInitResult:
    attempt: MatchAttempt
    start: TwoViewStart | None = None


@dataclass(frozen=True, eq=False)
class _Reference:
    frame: Frame
    features: Features
    grey: np.ndarray | None


class MonoInitializer:
    """Keeps a reference view and tries each new frame against it (the strongest
    ``match_keypoints`` of each matched): essential matrix by
    MAGSAC++ on sub-pixel aligned matches, relative pose, triangulation with parallax and
    cheirality checks."""

    def __init__(self, config: TrackerConfig, matcher: Matcher) -> None:
        self._config = config
        self._matcher = matcher
        self._reference: _Reference | None = None

    def __call__(self, inp: FrameInput) -> MonoInitResult:
        cfg = self._config
        reference = self._reference
        if reference is None or len(reference.features) < cfg.min_map_points:
            self._reference = _Reference(inp.frame, inp.features, inp.grey)
            return MonoInitResult(MatchAttempt())
        # the matcher's cost grows with the square of its keypoints: the strongest only
        ref_index = reference.features.strongest(cfg.match_keypoints)
        cur_index = inp.features.strongest(cfg.match_keypoints)
        tm = time.perf_counter()
        matches = self._matcher(
            reference.features.subset(ref_index), inp.features.subset(cur_index)
        )
        match_ms = (time.perf_counter() - tm) * 1e3
        pairs = np.stack(
            [ref_index[matches.indices[:, 0]], cur_index[matches.indices[:, 1]]], axis=1
        )
        attempt = MatchAttempt(replace(matches, indices=pairs), match_ms)
        if len(matches) < cfg.min_map_points:
            self._reference = _Reference(inp.frame, inp.features, inp.grey)  # overlap lost
            return MonoInitResult(attempt)
        start = self._two_view(reference, inp, pairs)
        if start is not None:
            self._reference = None
        return MonoInitResult(attempt, start)

    def _two_view(
        self, reference: _Reference, inp: FrameInput, pairs: np.ndarray
    ) -> TwoViewStart | None:
        import cv2

        cfg = self._config
        px0 = reference.features.keypoints[pairs[:, 0]].astype(np.float64)
        px1 = inp.features.keypoints[pairs[:, 1]].astype(np.float64)
        parallax = float(np.median(np.linalg.norm(px1 - px0, axis=1)))
        if parallax < cfg.mono.min_parallax_px:
            return None
        if reference.grey is not None and inp.grey is not None:
            px1, keep = align_pairs(cfg.alignment, reference.grey, inp.grey, px0, px1)
            pairs, px0, px1 = pairs[keep], px0[keep], px1[keep]
            if len(pairs) < cfg.min_map_points:
                return None
        k = inp.camera.K
        # MAGSAC++ with local optimisation: plain RANSAC returns its best minimal sample
        # unrefined, and the error of that pose sets the map's scale against the baseline
        essential, mask = cv2.findEssentialMat(
            px0, px1, k, method=cv2.USAC_MAGSAC, prob=0.999, threshold=1.0
        )
        if essential is None or essential.shape != (3, 3):
            return None
        _, rot, trans, mask_pose = cv2.recoverPose(essential, px0, px1, k, mask=mask.copy())
        inl = mask_pose.ravel() > 0
        cam1_from_cam0 = make_pose(rot, trans.ravel())
        points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
        good = inl & triangulation_ok(points, np.eye(4), cam1_from_cam0, k, px0, px1, cfg)
        angles = ray_angles_deg(points[inl], np.eye(4), cam1_from_cam0)
        median_angle = float(np.median(angles)) if angles.size else 0.0
        if int(good.sum()) < cfg.min_map_points or median_angle < cfg.mono.init_angle_deg:
            return None
        scale = 1.0 / float(np.median(points[good, 2]))
        cam1_from_cam0[:3, 3] *= scale
        return TwoViewStart(
            reference.frame,
            reference.features,
            reference.grey,
            cam1_from_cam0,
            points[good] * scale,
            pairs[good, 0],
            pairs[good, 1],
            px1[good],
        )
