"""Loop detection: place recognition, geometric verification and temporal consistency.

For every new keyframe :class:`LoopDetector` (run on the back-end thread)

1. asks the :class:`~slamfront.backend.place_recognition.PlaceIndex` for the most similar
   earlier keyframes by appearance alone (VLAD; never by pose, so it works after large
   drift), skipping the ``min_keyframe_gap`` most recent ones and any below ``min_similarity``;
2. verifies the best of them geometrically (:func:`verify_loop`): the matcher it was given
   pairs the two keyframes' features, then PnP + RANSAC (OpenCV) places the query camera
   against the candidate's 3-D points; ``min_inliers`` and ``min_inlier_ratio`` must hold;
   with ``align_subpixel`` and both keyframes' grey images, the inliers are then aligned to
   sub-pixel precision and the pose refitted on them (the loop's own error, not just drift,
   limits what a closure can correct); while the previous query keyframe verified a loop to
   the same place, a candidate is first verified without the matcher
   (:func:`verify_guided`: its points projected at the pose that loop and the odometry
   predict, paired by descriptor near their projection);
3. rejects a verified loop that would move the query keyframe further than drift can
   explain: ``max_drift_m`` plus ``max_drift_ratio`` times the path travelled since the
   matched keyframe (a relative bound, so large drift over a long path is still corrected);
4. emits a :class:`~slamfront.types.LoopCandidate` only once ``consistency`` consecutive query
   keyframes have each verified a loop to the same place, and the motion their loops imply
   agrees with the tracker's odometry between them (a single look-alike view, e.g. one of
   several identical objects, is not enough).

Metric 3-D points are needed (RGB-D or stereo keyframes); monocular maps have no scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from slamfront.backend.place_recognition import PlaceIndex, vlad
from slamfront.backend.pose_graph import pose_information
from slamfront.backend.vocabulary import Vocabulary
from slamfront.errors import InputError
from slamfront.frontend.descriptors import in_image, pair_near_projections
from slamfront.frontend.pose import refine_pose
from slamfront.frontend.refine import refine_positions, refine_positions_warped
from slamfront.geometry import (
    invert_pose,
    make_pose,
    project,
    reprojection_error_sq,
    rotation_angle_deg,
    transform_points,
    view_warp,
)
from slamfront.types import Features, Keyframe, LoopCandidate, Matches

if TYPE_CHECKING:
    from slamfront.config import LoopClosureConfig

MatcherFn = Callable[[Features, Features], Matches]


@dataclass(frozen=True, eq=False)
class LoopVerification:
    """A geometrically verified pair of keyframes.

    match_from_query: 4x4 pose of the query camera in the candidate camera;
    num_matches: matches whose candidate keypoint has a 3-D point;
    inlier_ratio: num_inliers / num_matches; rmse_px: inlier reprojection RMSE;
    information: 6x6 (Pose3 tangent order) of ``match_from_query``, see ``pose_information``;
    match_keypoints (M,) int64 / query_pixels (M, 2) float64: the inliers the pose was fitted
    on, as the candidate keypoint (whose 3-D point it is) and where the query image sees it.
    """

    match_from_query: np.ndarray
    num_matches: int
    num_inliers: int
    inlier_ratio: float
    rmse_px: float
    information: np.ndarray
    match_keypoints: np.ndarray
    query_pixels: np.ndarray


def verify_loop(
    query: Keyframe,
    candidate: Keyframe,
    matcher: MatcherFn,
    config: LoopClosureConfig,
    *,
    min_sigma_px: float = 0.5,
) -> LoopVerification | None:
    """Match the two keyframes and solve the query pose against the candidate's 3-D points.

    None when there are too few matches, PnP finds no consensus, or the inlier count or
    ratio is below ``config.min_inliers`` / ``config.min_inlier_ratio``.
    """
    # the strongest keypoints of each side (on the candidate's, of those with a 3-D point):
    # the matcher's cost grows with the square of the points
    query_keep = query.features.strongest(config.match_keypoints)
    candidate_keep = candidate.features.strongest(config.match_keypoints, _has_point(candidate))
    matches = matcher(query.features.subset(query_keep), candidate.features.subset(candidate_keep))
    idx = np.asarray(matches.indices, dtype=np.int64).reshape(-1, 2)
    return _verified(
        query, candidate, query_keep[idx[:, 0]], candidate_keep[idx[:, 1]], config, min_sigma_px
    )


def verify_guided(
    query: Keyframe,
    candidate: Keyframe,
    candidate_from_query: np.ndarray,
    config: LoopClosureConfig,
    *,
    min_sigma_px: float = 0.5,
) -> LoopVerification | None:
    """:func:`verify_loop` with the matcher replaced by a search: the candidate's 3-D points
    projected at the predicted pose ``candidate_from_query`` (4x4) and paired with the
    query keypoint of the nearest descriptor within ``config.guided_radius_px`` (ratio test
    ``guided_ratio``, at most ``guided_max_distance``). The same geometric checks follow."""
    radius_px = config.guided_radius_px
    rows = np.flatnonzero(_has_point(candidate))
    if radius_px is None or rows.size == 0 or len(query.features) < 2:
        return None
    points_query_m = transform_points(
        invert_pose(candidate_from_query), np.asarray(candidate.points_cam_m)[rows]
    )
    front = points_query_m[:, 2] > 1e-6
    rows, points_query_m = rows[front], points_query_m[front]
    proj_px = project(query.camera.K, points_query_m)
    inside = in_image(proj_px, query.camera)
    rows, proj_px = rows[inside], proj_px[inside]
    if rows.size == 0:
        return None
    points, query_index = pair_near_projections(
        proj_px, candidate.features.descriptors[rows], query.features,
        radius_px=radius_px, max_distance=config.guided_max_distance, ratio=config.guided_ratio,
    )  # fmt: skip
    return _verified(query, candidate, query_index, rows[points], config, min_sigma_px)


def _has_point(keyframe: Keyframe) -> np.ndarray:
    points_m = np.asarray(keyframe.points_cam_m, dtype=np.float64)
    has: np.ndarray = np.all(np.isfinite(points_m), axis=1) & (points_m[:, 2] > 0)
    return has


def _verified(
    query: Keyframe,
    candidate: Keyframe,
    query_index: np.ndarray,
    candidate_index: np.ndarray,
    config: LoopClosureConfig,
    min_sigma_px: float,
) -> LoopVerification | None:
    """The geometric verification of paired keypoints (``query_index`` of the query with
    ``candidate_index`` of the candidate, whose 3-D points they are): PnP + RANSAC, refits,
    the inlier gates, and the sub-pixel refit."""
    import cv2

    num_matches = len(candidate_index)  # every one has a 3-D point in the candidate
    if num_matches < max(config.min_inliers, 6):
        return None
    points_m = np.ascontiguousarray(
        np.asarray(candidate.points_cam_m, dtype=np.float64)[candidate_index]
    )
    pixels = np.ascontiguousarray(query.features.keypoints[query_index], dtype=np.float64)
    camera_k = query.camera.K
    try:
        ok, rvec, tvec, consensus = cv2.solvePnPRansac(
            points_m,
            pixels,
            camera_k,
            None,
            iterationsCount=config.ransac_iterations,
            reprojectionError=config.ransac_reprojection_px,
            confidence=0.999,
            flags=cv2.SOLVEPNP_AP3P,
        )
    except cv2.error:
        return None
    if not ok or consensus is None:
        return None
    # OpenCV's own final fit on the consensus (EPnP) is poor on planar scenes: refit it with
    # SQPnP + Levenberg-Marquardt, re-select the inliers at that pose, and once more.
    inliers = np.zeros(num_matches, dtype=bool)
    inliers[np.asarray(consensus).reshape(-1)] = True
    threshold_sq = config.ransac_reprojection_px**2
    for _ in range(2):
        if inliers.sum() < 6:
            return None
        try:
            ok, rvec, tvec = cv2.solvePnP(
                points_m[inliers], pixels[inliers], camera_k, None, flags=cv2.SOLVEPNP_SQPNP
            )
            if not ok:
                return None
            rvec, tvec = cv2.solvePnPRefineLM(
                points_m[inliers], pixels[inliers], camera_k, None, rvec, tvec
            )
        except cv2.error:
            return None
        query_from_match = make_pose(cv2.Rodrigues(rvec)[0], np.asarray(tvec).reshape(3))
        errors_sq = reprojection_error_sq(
            camera_k, query_from_match, points_m, pixels, min_depth_m=1e-9
        )
        inliers = errors_sq < threshold_sq
    num_inliers = int(inliers.sum())
    ratio = num_inliers / num_matches
    if num_inliers < config.min_inliers or ratio < config.min_inlier_ratio:
        return None
    rmse_px = float(np.sqrt(np.mean(errors_sq[inliers])))
    used = np.flatnonzero(inliers)
    used_px = pixels[used]
    if config.align_subpixel and query.grey is not None and candidate.grey is not None:
        refined = _aligned_pose(
            query_from_match,
            points_m[used],
            used_px,
            candidate.features.keypoints[candidate_index[used]],
            query.grey,
            candidate.grey,
            camera_k,
        )
        if refined is not None:
            query_from_match, kept, used_px, rmse_px = refined
            used = used[kept]
    points_used = points_m[used]
    points_query = points_used @ query_from_match[:3, :3].T + query_from_match[:3, 3]
    focal_px = float(np.sqrt(query.camera.fx * query.camera.fy))
    return LoopVerification(
        match_from_query=invert_pose(query_from_match),
        num_matches=num_matches,
        num_inliers=num_inliers,
        inlier_ratio=ratio,
        rmse_px=rmse_px,
        information=pose_information(points_query, focal_px, rmse_px, min_sigma_px),
        match_keypoints=candidate_index[used],
        query_pixels=used_px,
    )


def _aligned_pose(
    query_from_match: np.ndarray,
    points_m: np.ndarray,
    pixels: np.ndarray,
    candidate_px: np.ndarray,
    query_grey: np.ndarray,
    candidate_grey: np.ndarray,
    camera_k: np.ndarray,
    *,
    max_shift_px: float = 4.0,
    max_round_trip_px: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """The loop pose refitted on sub-pixel correspondences.

    Keypoints are re-found only to about a pixel from one view to the next, and a loop
    measured at that precision can be off by as much as the whole drift it is meant to
    remove. Each inlier's window in the candidate image (where its
    3-D point was measured) is aligned into the query image, starting at the matched
    keypoint (pyramidal Lucas-Kanade with a forward-backward check), and the pose is refined
    on the aligned pixels by robust least squares; then once more with each window warped
    into the query view by that pose (a revisit sees the surfaces at another scale and
    angle, which biases a window aligned as it is). Returns (query_from_match, the indices of
    the points kept, their aligned query pixels, inlier RMSE px), or None when too few points
    align.
    """

    def refit(
        pose: np.ndarray, aligned_px: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        if int(ok.sum()) < 6:
            return None
        estimate = refine_pose(
            pose, points_m[ok], aligned_px[ok], camera_k, huber_px=1.0, inlier_px=1.5
        )
        if estimate.num_inliers < 6:
            return None
        kept = np.flatnonzero(ok)[estimate.inliers]
        return estimate.cam_from_world, kept, aligned_px[kept], estimate.rmse_px

    aligned_px, ok = refine_positions(
        candidate_grey,
        query_grey,
        candidate_px,
        pixels,
        max_shift_px=max_shift_px,
        max_round_trip_px=max_round_trip_px,
    )
    first = refit(query_from_match, aligned_px, ok)
    if first is None:
        return None
    warped_px, warped_ok = refine_positions_warped(
        [candidate_grey],
        np.zeros(len(candidate_px), np.int64),
        candidate_px,
        query_grey,
        aligned_px,
        warp=view_warp(camera_k, np.eye(4), first[0], points_m),
        max_shift_px=max_shift_px,
        max_round_trip_px=max_round_trip_px,
    )
    return refit(first[0], warped_px, warped_ok) or first


@dataclass(frozen=True, eq=False)
class _Confirmation:
    query_id: int
    world_from_query: np.ndarray
    match_id: int
    similarity: float
    verification: LoopVerification


class LoopDetector:
    """``detector(keyframe) -> LoopCandidate | None``; see the module docstring.

    ``matcher`` is the front end's ``(Features, Features) -> Matches`` callable (not built
    here); ``vocabulary`` gives the global descriptors; ``keyframes`` pre-loads earlier ones
    (e.g. of a saved map) without querying. A keyframe's ``global_descriptor`` is used when
    set (compute it with :func:`~slamfront.backend.place_recognition.vlad` to keep it for
    the map file), else computed here. Owned by one thread; keeps references to the keyframes.
    """

    def __init__(
        self,
        config: LoopClosureConfig,
        matcher: MatcherFn,
        vocabulary: Vocabulary,
        *,
        keyframes: Sequence[Keyframe] = (),
        min_sigma_px: float = 0.5,
    ) -> None:
        self._config = config
        self._matcher = matcher
        self._vocabulary = vocabulary
        self._min_sigma_px = min_sigma_px
        self._index = PlaceIndex(vocabulary.global_dim, capacity=max(1024, 2 * len(keyframes)))
        self._keyframes: dict[int, Keyframe] = {}
        self._path_m: dict[int, float] = {}  # path length travelled up to each live keyframe
        self._last_live: Keyframe | None = None
        self._streak: list[_Confirmation] = []
        for keyframe in keyframes:
            self._insert(keyframe)

    def __call__(self, keyframe: Keyframe) -> LoopCandidate | None:
        keyframe = self._with_global(keyframe)
        self._track_path(keyframe)
        confirmation = self._find(keyframe)
        self._insert(keyframe)
        if confirmation is None:
            self._streak = []
            return None
        if self._streak and self._consistent(self._streak[-1], confirmation):
            self._streak.append(confirmation)
        else:
            self._streak = [confirmation]
        if len(self._streak) < self._config.consistency:
            return None
        found = confirmation.verification
        return LoopCandidate(
            query_keyframe_id=confirmation.query_id,
            match_keyframe_id=confirmation.match_id,
            similarity=confirmation.similarity,
            match_from_query=found.match_from_query,
            num_inliers=found.num_inliers,
            inlier_ratio=found.inlier_ratio,
            information=found.information,
            match_keypoints=found.match_keypoints,
            query_pixels=found.query_pixels,
        )

    def _find(self, keyframe: Keyframe) -> _Confirmation | None:
        assert keyframe.global_descriptor is not None
        places = self._index.query(
            keyframe.global_descriptor,
            top_k=self._config.candidates,
            max_keyframe_id=keyframe.keyframe_id - self._config.min_keyframe_gap,
        )
        for place in places:
            if place.similarity < self._config.min_similarity:
                break
            candidate = self._keyframes[place.keyframe_id]
            config, sigma_px, matcher = self._config, self._min_sigma_px, self._matcher
            found = None
            for guess in self._guesses(keyframe, candidate):
                found = verify_guided(keyframe, candidate, guess, config, min_sigma_px=sigma_px)
                if found is not None:
                    break
            if found is None:
                found = verify_loop(keyframe, candidate, matcher, config, min_sigma_px=sigma_px)
            if found is not None and self._plausible(keyframe, place.keyframe_id, found):
                return _Confirmation(
                    keyframe.keyframe_id,
                    np.asarray(keyframe.world_from_cam, dtype=np.float64),
                    place.keyframe_id,
                    place.similarity,
                    found,
                )
        return None

    def _guesses(self, query: Keyframe, candidate: Keyframe) -> list[np.ndarray]:
        """Predicted ``candidate_from_query`` poses for a guided verification, while the
        previous query keyframe verified a loop to the candidate's place: by that loop and the
        odometry since (right until a correction moves the tracker), and by the two keyframes'
        poses (right once the correction has). None outside a streak: a first loop is found
        by appearance alone."""
        if not self._streak or self._config.guided_radius_px is None:
            return []
        previous = self._streak[-1]
        gap = abs(candidate.keyframe_id - previous.match_id)
        matched = self._keyframes[previous.match_id]
        if gap > self._config.consistency_max_keyframe_gap or matched.map_id != candidate.map_id:
            return []
        candidate_from_world = invert_pose(candidate.world_from_cam)
        by_loop = (
            candidate_from_world
            @ matched.world_from_cam
            @ previous.verification.match_from_query
            @ invert_pose(previous.world_from_query)
            @ query.world_from_cam
        )
        guesses = [by_loop]
        if query.map_id == candidate.map_id:
            guesses.append(candidate_from_world @ query.world_from_cam)
        return guesses

    def _track_path(self, keyframe: Keyframe) -> None:
        previous = self._last_live
        travelled = 0.0
        if previous is not None:
            step = keyframe.world_from_cam[:3, 3] - previous.world_from_cam[:3, 3]
            travelled = self._path_m[previous.keyframe_id] + float(np.linalg.norm(step))
        self._path_m[keyframe.keyframe_id] = travelled
        self._last_live = keyframe

    def _plausible(self, query: Keyframe, match_id: int, found: LoopVerification) -> bool:
        """Is the correction this loop implies within what drift along the path explains?"""
        ratio = self._config.max_drift_ratio
        if ratio is None or match_id not in self._path_m:
            return True
        if self._keyframes[match_id].map_id != query.map_id:
            return True  # another map: no path connects them, so no drift to compare with
        path_m = self._path_m[query.keyframe_id] - self._path_m[match_id]
        implied = self._keyframes[match_id].world_from_cam @ found.match_from_query
        correction_m = float(np.linalg.norm(implied[:3, 3] - query.world_from_cam[:3, 3]))
        return correction_m <= self._config.max_drift_m + ratio * path_m

    def _consistent(self, previous: _Confirmation, current: _Confirmation) -> bool:
        """Do two consecutive loops agree with the odometry between their query keyframes?"""
        config = self._config
        if abs(current.match_id - previous.match_id) > config.consistency_max_keyframe_gap:
            return False
        world_from_prev_match = self._keyframes[previous.match_id].world_from_cam
        world_from_match = self._keyframes[current.match_id].world_from_cam
        prev_match_from_match = invert_pose(world_from_prev_match) @ world_from_match
        implied = (
            invert_pose(previous.verification.match_from_query)
            @ prev_match_from_match
            @ current.verification.match_from_query
        )
        odometry = invert_pose(previous.world_from_query) @ current.world_from_query
        disagreement = invert_pose(implied) @ odometry
        return bool(
            np.linalg.norm(disagreement[:3, 3]) <= config.consistency_translation_m
            and rotation_angle_deg(disagreement[:3, :3]) <= config.consistency_rotation_deg
        )

    def _with_global(self, keyframe: Keyframe) -> Keyframe:
        if keyframe.global_descriptor is None:
            descriptor = vlad(self._vocabulary, keyframe.features.descriptors)
            return replace(keyframe, global_descriptor=descriptor)
        if keyframe.global_descriptor.shape != (self._vocabulary.global_dim,):
            raise InputError(
                f"keyframe {keyframe.keyframe_id}: global descriptor of shape "
                f"{keyframe.global_descriptor.shape}, vocabulary {self._vocabulary.vocabulary_id} "
                f"makes ({self._vocabulary.global_dim},)"
            )
        return keyframe

    def _insert(self, keyframe: Keyframe) -> None:
        keyframe = self._with_global(keyframe)
        assert keyframe.global_descriptor is not None
        self._index.add(keyframe.keyframe_id, keyframe.global_descriptor)
        self._keyframes[keyframe.keyframe_id] = keyframe
