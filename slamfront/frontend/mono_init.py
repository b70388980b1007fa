"""Monocular two-view initialisation: the first two keyframes and their landmarks, at an
arbitrary scale (median landmark depth 1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.base import Matcher
from slamfront.frontend.epipolar_search import search_epipolar
from slamfront.frontend.records import FrameInput, MatchAttempt
from slamfront.frontend.triangulation import align_through_points, ray_angles_deg, triangulation_ok
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
    """(M, 2) where the landmark is in the current view (aligned to sub-pixel where
    ``current_aligned``, else the detected keypoint)."""
    current_aligned: np.ndarray
    """(M,) bool whether image alignment found ``current_px``."""


@dataclass(frozen=True, eq=False)
class MonoInitResult:
    attempt: MatchAttempt
    start: TwoViewStart | None = None


@dataclass(frozen=True, slots=True, eq=False)
class _GuidedPairs:
    """Landmarks found along epipolar lines, all passing the triangulation checks."""

    pairs: np.ndarray
    """(M, 2) int64 keypoint pairs (reference, current)."""
    current_px: np.ndarray
    """(M, 2) where each is in the current view."""
    points: np.ndarray
    """(M, 3) the triangulated points, in the reference camera's frame."""
    aligned: np.ndarray
    """(M,) bool whether image alignment found ``current_px``."""


@dataclass(frozen=True, eq=False)
class _Reference:
    frame: Frame
    features: Features
    grey: np.ndarray | None


class MonoInitializer:
    """Keeps a reference view and tries each new frame against it: the strongest
    ``match_keypoints`` of each matched, essential matrix by MAGSAC++, the pairs aligned to
    sub-pixel precision through that relative pose and the pose found again, then the other
    keypoints paired along their epipolar lines. It starts once ``min_map_points`` of the
    landmarks are seen under ``mono.init_angle_deg`` of parallax."""

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
        cfg = self._config
        k = inp.camera.K
        matched = pairs
        px0 = reference.features.keypoints[pairs[:, 0]].astype(np.float64)
        px1 = inp.features.keypoints[pairs[:, 1]].astype(np.float64)
        parallax = float(np.median(np.linalg.norm(px1 - px0, axis=1)))
        if parallax < cfg.mono.min_parallax_px:
            return None
        found = _relative_pose(px0, px1, k)
        if found is None:
            return None
        cam1_from_cam0, inl = found
        pairs, px0, px1 = pairs[inl], px0[inl], px1[inl]
        aligned = np.ones(len(pairs), bool)
        if reference.grey is not None and inp.grey is not None:
            # the reference windows warped into this view by that first pose, then the pose
            # again from where they aligned; a pair alignment fails on keeps its keypoint
            points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
            px1, aligned = align_through_points(
                reference.grey,
                inp.grey,
                k,
                np.eye(4),
                cam1_from_cam0,
                px0,
                px1,
                points,
                alignment=cfg.alignment,
            )
            found = _relative_pose(px0, px1, k)
            if found is None:
                return None
            cam1_from_cam0, inl = found
            pairs, px0, px1, aligned = pairs[inl], px0[inl], px1[inl], aligned[inl]
        points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
        good = triangulation_ok(points, np.eye(4), cam1_from_cam0, k, px0, px1, cfg)
        # a pair alignment failed on helps the pose but makes no landmark (at the detector's
        # precision its depth would be poor), unless the configuration keeps such pairs
        good &= aligned | cfg.alignment.keep_unaligned
        pairs, px1, points, aligned = pairs[good], px1[good], points[good], aligned[good]
        more = self._guided(reference, inp, matched, cam1_from_cam0)
        pairs = np.concatenate([pairs, more.pairs])
        px1 = np.concatenate([px1, more.current_px])
        points = np.concatenate([points, more.points])
        aligned = np.concatenate([aligned, more.aligned])
        # enough well-conditioned landmarks, not their median angle: moving forward, the
        # points near the direction of travel keep tiny ray angles however far one goes
        wide = ray_angles_deg(points, np.eye(4), cam1_from_cam0) >= cfg.mono.init_angle_deg
        if int(wide.sum()) < cfg.min_map_points:
            return None
        scale = 1.0 / float(np.median(points[:, 2]))
        cam1_from_cam0[:3, 3] *= scale
        return TwoViewStart(
            reference_frame=reference.frame,
            reference_features=reference.features,
            reference_grey=reference.grey,
            cam1_from_cam0=cam1_from_cam0,
            points_world=points * scale,
            reference_index=pairs[:, 0],
            current_index=pairs[:, 1],
            current_px=px1,
            current_aligned=aligned,
        )

    def _guided(
        self,
        reference: _Reference,
        inp: FrameInput,
        taken: np.ndarray,
        cam1_from_cam0: np.ndarray,
    ) -> _GuidedPairs:
        """Landmarks of the keypoints the matcher was not given (or did not pair), paired
        along their epipolar lines under the two-view pose and aligned like the matched ones."""
        cfg = self._config
        k = inp.camera.K
        free0 = np.ones(len(reference.features), bool)
        free1 = np.ones(len(inp.features), bool)
        free0[taken[:, 0]] = False
        free1[taken[:, 1]] = False
        pairs = search_epipolar(
            reference.features,
            inp.features,
            k,
            cam1_from_cam0,
            free0,
            free1,
            max_line_px=cfg.ransac_reprojection_px,
            config=cfg.search,
        )
        px0 = reference.features.keypoints[pairs[:, 0]].astype(np.float64)
        px1 = inp.features.keypoints[pairs[:, 1]].astype(np.float64)
        points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
        aligned = np.ones(len(pairs), bool)
        if reference.grey is not None and inp.grey is not None and len(pairs):
            px1, aligned = align_through_points(
                reference.grey,
                inp.grey,
                k,
                np.eye(4),
                cam1_from_cam0,
                px0,
                px1,
                points,
                alignment=cfg.alignment,
            )
            keep = aligned | cfg.alignment.keep_unaligned
            pairs, px0, px1, aligned = pairs[keep], px0[keep], px1[keep], aligned[keep]
            points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
        good = triangulation_ok(points, np.eye(4), cam1_from_cam0, k, px0, px1, cfg)
        return _GuidedPairs(pairs[good], px1[good], points[good], aligned[good])


def _relative_pose(
    px0: np.ndarray, px1: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """cam1_from_cam0 with a unit baseline from pixel pairs, and the (N,) mask of pairs that
    agree with it (essential-matrix inliers in front of both views); None without a model."""
    import cv2

    if px0.shape[0] < 5:
        return None
    # MAGSAC++ with local optimisation: plain RANSAC returns its best minimal sample
    # unrefined, and the error of that pose sets the map's scale against the baseline
    essential, mask = cv2.findEssentialMat(
        px0, px1, k, method=cv2.USAC_MAGSAC, prob=0.999, threshold=1.0
    )
    if essential is None or essential.shape != (3, 3):
        return None
    _, rot, trans, mask_pose = cv2.recoverPose(essential, px0, px1, k, mask=mask.copy())
    return make_pose(rot, trans.ravel()), mask_pose.ravel() > 0
