"""Streaming tracker: ``Tracker.step(frame) -> TrackResult``.

Each frame is matched to the reference (latest) keyframe; the reference's landmarks give
2-D/3-D correspondences for PnP in RANSAC; the pose is refined by robust motion-only bundle
adjustment, then landmarks of the other window keyframes are projected and searched for
(tracking against the local map), and the pose is refined again on everything found. With
``match_every_frame`` off (RGB-D and stereo), a frame is first tracked by the local-map search
alone from the motion model's pose, and matched only when that finds too little.
Keyframes get landmarks from depth (RGB-D), from row-constrained stereo matching (stereo), or
by triangulation against the previous keyframe (monocular, arbitrary scale).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.base import Extractor, Matcher
from slamfront.frontend.descriptors import pair_distance
from slamfront.frontend.keyframes import need_keyframe
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.pose import (
    PoseEstimate,
    bundle_adjust,
    refine_points,
    refine_pose,
    relative_motion_ok,
    solve_pnp_ransac,
)
from slamfront.frontend.refine import grey, refine_positions, refine_positions_warped
from slamfront.frontend.stereo import stereo_matches
from slamfront.geometry import (
    invert_pose,
    make_pose,
    orthonormalized,
    so3_exp,
    so3_log,
    transform_points,
    triangulate,
    undistort_points,
    unproject,
    view_warp,
)
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    Keyframe,
    Matches,
    StageTimings,
    TrackingState,
    TrackResult,
)


@dataclass(frozen=True, eq=False)
class _Correspondences:
    """2-D/3-D pairs for one frame: current keypoint index, landmark id, world point, and the
    measured pixel (the keypoint, or where image alignment put the landmark)."""

    keypoint_index: np.ndarray
    landmark_ids: np.ndarray
    points_world: np.ndarray
    pixels: np.ndarray

    @staticmethod
    def empty() -> _Correspondences:
        return _Correspondences(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 2))
        )

    def __len__(self) -> int:
        return int(self.keypoint_index.size)

    def select(self, mask: np.ndarray) -> _Correspondences:
        return _Correspondences(
            self.keypoint_index[mask],
            self.landmark_ids[mask],
            self.points_world[mask],
            self.pixels[mask],
        )

    def concat(self, other: _Correspondences) -> _Correspondences:
        return _Correspondences(
            np.concatenate([self.keypoint_index, other.keypoint_index]),
            np.concatenate([self.landmark_ids, other.landmark_ids]),
            np.concatenate([self.points_world, other.points_world]),
            np.concatenate([self.pixels, other.pixels]),
        )


class Tracker:
    """Frame-by-frame camera tracking against a local map of recent keyframes."""

    def __init__(
        self,
        config: TrackerConfig,
        extractor: Extractor,
        matcher: Matcher,
        localize: Callable[[Features, CameraModel], np.ndarray | None] | None = None,
        first_keyframe_id: int = 0,
    ) -> None:
        """``localize`` places a first frame in a saved map (its world_from_cam, or None
        while it cannot): tracking then starts in that map's frame instead of at the first
        camera. Keyframe ids start at ``first_keyframe_id`` (after the saved map's)."""
        self._config = config
        self._localize = localize
        self._extractor = extractor
        self._matcher = matcher
        self._map = LocalMap(config.local_map_keyframes)
        self._state = TrackingState.INITIALIZING
        self._last_pose: tuple[int, np.ndarray] | None = None  # (stamp_ns, world_from_cam)
        self._velocity: tuple[np.ndarray, float] | None = None  # (se3 twist per second)
        self._frames_since_keyframe = 0
        self._next_keyframe_id = first_keyframe_id
        self._mono_reference: tuple[Frame, Features] | None = None
        self._grey: np.ndarray | None = None  # grey image of the frame being tracked
        self._matched_keyframe_id: int | None = None  # what this frame was matched against
        self._mono = False
        self._scale_note_given = False
        self._last_inliers = 0  # of the last tracked frame

    @property
    def state(self) -> TrackingState:
        return self._state

    # ------------------------------------------------------------------ public verb

    def step(self, frame: Frame, features: Features | None = None) -> TrackResult:
        """Track one frame. ``features`` may be passed when extracted elsewhere (pipelining)."""
        start = time.perf_counter()
        if features is None:
            features = self._extractor(frame.image)
        extract_ms = (time.perf_counter() - start) * 1e3
        features = _pinhole_features(features, frame.camera)
        result = self._track(frame, features)
        return replace(result, timings=replace(result.timings, extract_ms=extract_ms))

    def keyframes(self) -> list[Keyframe]:
        """The keyframes currently in the local window, oldest first."""
        return [entry.keyframe for entry in self._map.keyframes]

    def reanchor(self, keyframe_id: int, corrected_world_from_cam: np.ndarray) -> bool:
        """Move the local map so that ``keyframe_id`` sits at its corrected pose.

        Called after a pose-graph optimisation: the live pose follows the corrected reference
        keyframe instead of jumping back to the drifted frame. False if the keyframe left the
        window.
        """
        for entry in self._map.keyframes:
            if entry.keyframe.keyframe_id == keyframe_id:
                correction = orthonormalized(
                    corrected_world_from_cam @ invert_pose(entry.world_from_cam)
                )
                self._map.transform(correction)
                if self._last_pose is not None:
                    stamp, pose = self._last_pose
                    self._last_pose = (stamp, orthonormalized(correction @ pose))
                return True
        return False

    # ------------------------------------------------------------------ internals

    def _mode(self, frame: Frame) -> str:
        if self._config.mode != "auto":
            return self._config.mode
        if frame.depth_m is not None:
            return "rgbd"
        if frame.image_right is not None and frame.stereo is not None:
            return "stereo"
        return "mono"

    def _track(self, frame: Frame, features: Features) -> TrackResult:
        t0 = time.perf_counter()
        mode = self._mode(frame)
        self._mono = mode == "mono"
        self._grey = self._grey_of(frame.image, frame.camera)
        self._matched_keyframe_id = None
        if not self._map.keyframes:
            if mode == "mono":
                return self._initialize_mono(frame, features, t0)
            return self._initialize_metric(frame, features, mode, t0)
        if self._state == TrackingState.LOST:
            return self._relocalize(frame, features, mode, t0)
        return self._track_local_map(frame, features, mode, t0)

    def _result(
        self,
        frame: Frame,
        features: Features,
        state: TrackingState,
        world_from_cam: np.ndarray | None,
        t0: float,
        match_ms: float = 0.0,
        matches: Matches | None = None,
        estimate: PoseEstimate | None = None,
        keyframe: Keyframe | None = None,
        inliers: _Correspondences | None = None,
    ) -> TrackResult:
        self._state = state
        total_ms = (time.perf_counter() - t0) * 1e3
        reference_id = reference_from_cam = None
        if world_from_cam is not None and self._map.keyframes:
            entry = self._map.reference
            reference_id = entry.keyframe.keyframe_id
            reference_from_cam = invert_pose(entry.world_from_cam) @ world_from_cam
        return TrackResult(
            frame_index=frame.index,
            stamp_ns=frame.stamp_ns,
            state=state,
            world_from_cam=world_from_cam,
            num_features=len(features),
            num_matches=len(matches) if matches is not None else 0,
            num_inliers=estimate.num_inliers if estimate is not None else 0,
            reprojection_rmse_px=estimate.rmse_px if estimate is not None else float("nan"),
            is_keyframe=keyframe is not None,
            keyframe_id=keyframe.keyframe_id if keyframe is not None else None,
            reference_keyframe_id=reference_id,
            reference_from_cam=reference_from_cam,
            matched_keyframe_id=self._matched_keyframe_id if matches is not None else None,
            matches=matches,
            features=features,
            timings=StageTimings(match_ms=match_ms, pose_ms=max(total_ms - match_ms, 0.0)),
            landmark_ids=inliers.landmark_ids.copy() if inliers is not None else None,
            landmark_pixels=inliers.pixels.copy() if inliers is not None else None,
            landmark_keypoints=inliers.keypoint_index.copy() if inliers is not None else None,
            landmark_depths_m=self._landmark_depths(frame, inliers),
        )

    def _landmark_depths(self, frame: Frame, inliers: _Correspondences | None) -> np.ndarray | None:
        """The depth image's depth where this frame sees its inlier landmarks (0: none)."""
        if inliers is None or frame.depth_m is None:
            return None
        cfg = self._config
        depth = _depth_at(frame.depth_m, inliers.pixels, cfg.depth_edge_ratio)
        depth[(depth < cfg.min_depth_m) | (depth > cfg.max_depth_m)] = 0.0
        return depth

    # -------------------------------------------------------------- initialisation

    def _initialize_metric(
        self, frame: Frame, features: Features, mode: str, t0: float
    ) -> TrackResult:
        world_from_cam = np.eye(4)
        if self._localize is not None:
            found = self._localize(features, frame.camera)
            if found is None:  # not yet recognised in the saved map: no pose
                return self._result(frame, features, TrackingState.INITIALIZING, None, t0)
            world_from_cam = found
        depth, sigma = self._keypoint_depth(frame, features, mode)
        valid = depth > 0
        if int(valid.sum()) < self._config.min_map_points:
            return self._result(frame, features, TrackingState.INITIALIZING, None, t0)
        keyframe = self._insert_keyframe(
            frame,
            features,
            world_from_cam,
            depth,
            sigma,
            _Correspondences.empty(),
            grey=self._grey,
        )
        self._remember_pose(frame.stamp_ns, world_from_cam)
        return self._result(
            frame,
            features,
            TrackingState.OK,
            world_from_cam,
            t0,
            keyframe=keyframe,
        )

    def _initialize_mono(self, frame: Frame, features: Features, t0: float) -> TrackResult:
        """Two-view start: essential matrix in RANSAC, relative pose, triangulation with
        parallax and cheirality checks. The scale is arbitrary (median depth 1)."""
        import cv2

        cfg = self._config
        if self._mono_reference is None or len(self._mono_reference[1]) < cfg.min_map_points:
            self._mono_reference = (frame, features)
            return self._result(frame, features, TrackingState.INITIALIZING, None, t0)
        ref_frame, ref_features = self._mono_reference
        tm = time.perf_counter()
        matches = self._matcher(ref_features, features)
        match_ms = (time.perf_counter() - tm) * 1e3
        if len(matches) < cfg.min_map_points:
            self._mono_reference = (frame, features)  # lost overlap: restart from here
            return self._result(
                frame, features, TrackingState.INITIALIZING, None, t0, match_ms, matches
            )
        pairs = matches.indices
        px0 = ref_features.keypoints[pairs[:, 0]].astype(np.float64)
        px1 = features.keypoints[pairs[:, 1]].astype(np.float64)
        parallax = float(np.median(np.linalg.norm(px1 - px0, axis=1)))
        if parallax < cfg.mono_min_parallax_px:
            return self._result(
                frame, features, TrackingState.INITIALIZING, None, t0, match_ms, matches
            )
        ref_grey = self._grey_of(ref_frame.image, ref_frame.camera)
        if ref_grey is not None and self._grey is not None:
            px1, keep = self._align(ref_grey, self._grey, px0, px1)
            pairs, px0, px1 = pairs[keep], px0[keep], px1[keep]
            if len(pairs) < cfg.min_map_points:
                return self._result(
                    frame, features, TrackingState.INITIALIZING, None, t0, match_ms, matches
                )
        k = frame.camera.K
        # MAGSAC++ with local optimisation: plain RANSAC returns its best 5-point sample
        # unrefined, on the sim loop 1.2 deg and 13 deg off in rotation and translation
        # direction (sub-pixel pairs, 12 frames apart), 0.1 and 1.5 deg refined. That error
        # set the map's depth against the baseline 20 % wrong, and the scale then relaxed
        # threefold within 50 frames.
        essential, mask = cv2.findEssentialMat(
            px0, px1, k, method=cv2.USAC_MAGSAC, prob=0.999, threshold=1.0
        )
        if essential is None or essential.shape != (3, 3):
            return self._result(
                frame, features, TrackingState.INITIALIZING, None, t0, match_ms, matches
            )
        _, rot, trans, mask_pose = cv2.recoverPose(essential, px0, px1, k, mask=mask.copy())
        inl = mask_pose.ravel() > 0
        cam1_from_cam0 = make_pose(rot, trans.ravel())
        points = triangulate(np.eye(4), cam1_from_cam0, k, px0, px1)
        good = inl & self._triangulation_ok(points, np.eye(4), cam1_from_cam0, k, px0, px1)
        angles = _ray_angles_deg(points[inl], np.eye(4), cam1_from_cam0)
        median_angle = float(np.median(angles)) if angles.size else 0.0
        if int(good.sum()) < cfg.min_map_points or median_angle < cfg.mono_init_angle_deg:
            return self._result(
                frame, features, TrackingState.INITIALIZING, None, t0, match_ms, matches
            )
        scale = 1.0 / float(np.median(points[good, 2]))
        points *= scale
        cam1_from_cam0[:3, 3] *= scale
        # keyframe 0: the reference frame, with the triangulated points as its landmarks
        zeros0 = np.zeros(len(ref_features), np.float32)
        self._insert_keyframe(
            ref_frame,
            ref_features,
            np.eye(4),
            zeros0,
            zeros0,
            _Correspondences.empty(),
            True,
            ref_grey,
        )
        ids = self._map.add_landmarks(points[good], ref_features.descriptors[pairs[good, 0]])
        self._map.reference.landmark_ids[pairs[good, 0]] = ids
        self._map.reference.keyframe = replace(
            self._map.reference.keyframe, points_cam_m=self._map.points_cam(self._map.reference)
        )
        world_from_cam1 = invert_pose(cam1_from_cam0)
        corr = _Correspondences(
            pairs[good, 1],
            ids,
            points[good],
            px1[good],
        )
        zeros1 = np.zeros(len(features), np.float32)
        keyframe = self._insert_keyframe(
            frame, features, world_from_cam1, zeros1, zeros1, corr, True, self._grey
        )
        self._remember_pose(ref_frame.stamp_ns, np.eye(4))
        self._remember_pose(frame.stamp_ns, world_from_cam1)
        self._mono_reference = None
        return self._result(
            frame,
            features,
            TrackingState.OK,
            world_from_cam1,
            t0,
            match_ms,
            matches,
            keyframe=keyframe,
        )

    # -------------------------------------------------------------------- tracking

    def _predict(self, stamp_ns: int) -> np.ndarray | None:
        if self._last_pose is None:
            return None
        last_stamp, last_pose = self._last_pose
        if self._velocity is None:
            return last_pose
        twist, _ = self._velocity
        dt = (stamp_ns - last_stamp) * 1e-9
        delta = make_pose(so3_exp(twist[3:] * dt), twist[:3] * dt)
        return last_pose @ delta

    def _remember_pose(self, stamp_ns: int, world_from_cam: np.ndarray) -> None:
        if self._last_pose is not None:
            last_stamp, last_pose = self._last_pose
            dt = (stamp_ns - last_stamp) * 1e-9
            if dt > 0:
                delta = invert_pose(last_pose) @ world_from_cam
                twist = np.concatenate([delta[:3, 3], so3_log(delta[:3, :3])]) / dt
                self._velocity = (twist, dt)
        self._last_pose = (stamp_ns, world_from_cam)

    def _lose(
        self, frame: Frame, features: Features, t0: float, match_ms: float, matches: Matches | None
    ) -> TrackResult:
        self._velocity = None
        return self._result(frame, features, TrackingState.LOST, None, t0, match_ms, matches)

    def _match_reference(
        self, entry: MapKeyframe, features: Features
    ) -> tuple[Matches, _Correspondences, float]:
        # only the keyframe's keypoints that carry a landmark can give a correspondence;
        # both sides are capped at the best ``match_keypoints`` by score (the rest still serve
        # the local-map search); monocular keeps them all, as its matches without a landmark
        # are triangulated into new ones
        useful = None if self._mono else self._map.rows_of(entry.landmark_ids) >= 0
        ref_index = entry.keyframe.features.strongest(self._config.match_keypoints, useful)
        cur_index = features.strongest(self._config.match_keypoints)
        tm = time.perf_counter()
        matches = self._matcher(
            entry.keyframe.features.subset(ref_index), features.subset(cur_index)
        )
        match_ms = (time.perf_counter() - tm) * 1e3
        if len(matches):
            indices = np.stack(
                [ref_index[matches.indices[:, 0]], cur_index[matches.indices[:, 1]]], axis=1
            )
            matches = replace(matches, indices=indices)
        self._matched_keyframe_id = entry.keyframe.keyframe_id
        ids = entry.landmark_ids[matches.indices[:, 0]] if len(matches) else np.zeros(0, np.int64)
        rows = self._map.rows_of(ids)
        has = rows >= 0
        current_index = matches.indices[has, 1]
        pixels = features.keypoints[current_index].astype(np.float64)
        if entry.grey is not None and self._grey is not None and has.any():
            # where the keyframe's keypoints went, by image alignment (sub-pixel)
            reference_px = entry.keyframe.features.keypoints[matches.indices[has, 0]]
            pixels, keep = self._align(entry.grey, self._grey, reference_px, pixels)
            has[has] = keep
            current_index, pixels = current_index[keep], pixels[keep]
        corr = _Correspondences(
            current_index, ids[has], self._map.positions_world[rows[has]], pixels
        )
        return matches, corr, match_ms

    def _estimate(
        self,
        corr: _Correspondences,
        features: Features,
        camera: CameraModel,
        guess_world_from_cam: np.ndarray | None,
    ) -> PoseEstimate | None:
        cfg = self._config
        if len(corr) < cfg.min_inliers:
            return None
        pixels = corr.pixels
        k = camera.K
        initial: np.ndarray | None = None
        if guess_world_from_cam is not None:
            # the motion model's guess, kept if most correspondences agree with it
            guess = refine_pose(
                invert_pose(guess_world_from_cam),
                corr.points_world,
                pixels,
                k,
                cfg.huber_px,
                cfg.ransac_reprojection_px,
            )
            if guess.num_inliers >= max(cfg.min_inliers, 0.6 * len(corr)):
                initial = guess.cam_from_world
        if initial is None:
            found = solve_pnp_ransac(corr.points_world, pixels, k, cfg.ransac_reprojection_px)
            if found is None:
                return None
            initial = found[0]
        return refine_pose(
            initial,
            corr.points_world,
            pixels,
            k,
            cfg.huber_px,
            cfg.ransac_reprojection_px,
        )

    def _track_local_map(
        self, frame: Frame, features: Features, mode: str, t0: float
    ) -> TrackResult:
        cfg = self._config
        reference = self._map.reference
        prediction = self._predict(frame.stamp_ns)
        anchors = self._map.anchors()
        found = None
        if (
            not cfg.match_every_frame
            and not self._mono
            and prediction is not None
            and self._velocity is not None
        ):
            found = self._track_motion(features, frame.camera, prediction, anchors)
        matches: Matches | None = None
        match_ms = 0.0
        if found is None:
            matches, corr, match_ms = self._match_reference(reference, features)
            estimate = self._estimate(corr, features, frame.camera, prediction)
            if estimate is None or estimate.num_inliers < cfg.min_inliers:
                return self._lose(frame, features, t0, match_ms, matches)
            corr, estimate = corr.select(estimate.inliers), _restrict(estimate)
            found = self._search_local_map(corr, features, frame.camera, estimate, anchors)
        corr, estimate = found
        if cfg.lk_prewarp:
            corr, estimate = self._align_warped(corr, frame.camera, estimate, anchors)
        if estimate.num_inliers < cfg.min_inliers:
            return self._lose(frame, features, t0, match_ms, matches)
        world_from_cam = invert_pose(estimate.cam_from_world)
        if prediction is not None and self._last_pose is not None:
            dt = max((frame.stamp_ns - self._last_pose[0]) * 1e-9, 1e-3)
            if not relative_motion_ok(
                prediction, world_from_cam, dt, cfg.max_speed_m_s, cfg.max_angular_speed_deg_s
            ):
                return self._lose(frame, features, t0, match_ms, matches)
        return self._accept(
            frame, features, mode, corr, estimate, world_from_cam, t0, match_ms, matches, reference
        )

    def _track_motion(
        self,
        features: Features,
        camera: CameraModel,
        prediction: np.ndarray,
        anchors: tuple[np.ndarray, np.ndarray],
    ) -> tuple[_Correspondences, PoseEstimate] | None:
        """RGB-D and stereo with ``match_every_frame`` off: the window landmarks searched for
        around their projection at the motion model's pose, without the matcher; None (the
        matcher runs) when that finds fewer than ``motion_min_share`` of the landmarks the
        last frame tracked, or than twice ``min_inliers``."""
        cfg = self._config
        empty = np.zeros(0)
        seed = PoseEstimate(invert_pose(prediction), empty.astype(bool), empty, np.zeros((6, 6)))
        corr, estimate = self._search_local_map(
            _Correspondences.empty(), features, camera, seed, anchors, cfg.motion_search_radius_px
        )
        needed = max(2 * cfg.min_inliers, cfg.motion_min_share * self._last_inliers)
        if estimate.num_inliers < needed:
            return None
        return corr, estimate

    def _accept(
        self,
        frame: Frame,
        features: Features,
        mode: str,
        corr: _Correspondences,
        estimate: PoseEstimate,
        world_from_cam: np.ndarray,
        t0: float,
        match_ms: float,
        matches: Matches | None,
        reference: MapKeyframe,
    ) -> TrackResult:
        self._frames_since_keyframe += 1
        ref_ids = reference.landmark_ids
        tracked_ref = int(np.isin(corr.landmark_ids, ref_ids[ref_ids >= 0]).sum())
        # the share is measured against the most any frame tracked of this keyframe, not
        # against all its landmarks: a detector never re-finds all of its keypoints
        reference.most_tracked = max(reference.most_tracked, tracked_ref)
        keyframe = None
        if need_keyframe(
            self._config.keyframes,
            reference.world_from_cam,
            world_from_cam,
            tracked_ref,
            reference.most_tracked,
            self._frames_since_keyframe,
        ):
            keyframe = self._make_keyframe(
                frame, features, mode, world_from_cam, corr, reference, estimate
            )
        self._remember_pose(frame.stamp_ns, world_from_cam)
        self._last_inliers = estimate.num_inliers
        return self._result(
            frame,
            features,
            TrackingState.OK,
            world_from_cam,
            t0,
            match_ms,
            matches,
            estimate,
            keyframe,
            corr.select(estimate.inliers),
        )

    def _search_local_map(
        self,
        corr: _Correspondences,
        features: Features,
        camera: CameraModel,
        estimate: PoseEstimate,
        anchors: tuple[np.ndarray, np.ndarray],
        radius_px: float | None = None,
    ) -> tuple[_Correspondences, PoseEstimate]:
        """Project window landmarks not yet matched and look for them near their projection
        (``anchors``: ``LocalMap.anchors()``), within ``radius_px`` (default
        ``search_radius_px``)."""
        from scipy.spatial import cKDTree

        cfg = self._config
        lmap = self._map
        if len(lmap) == 0 or lmap.descriptors is None or len(features) == 0:
            return corr, estimate
        candidates = ~np.isin(lmap.ids, corr.landmark_ids)
        rows = np.flatnonzero(candidates)
        pose = estimate.cam_from_world
        points_cam = transform_points(pose, lmap.positions_world[rows])
        front = points_cam[:, 2] > cfg.min_depth_m
        rows, points_cam = rows[front], points_cam[front]
        k = camera.K
        proj = points_cam[:, :2] / points_cam[:, 2:3] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
        inside = (
            (proj[:, 0] >= 0)
            & (proj[:, 0] < camera.width_px)
            & (proj[:, 1] >= 0)
            & (proj[:, 1] < camera.height_px)
        )
        rows, proj = rows[inside], proj[inside]
        taken = np.zeros(len(features), bool)
        taken[corr.keypoint_index] = True
        if rows.size == 0:
            return corr, estimate
        tree = cKDTree(features.keypoints.astype(np.float64))
        radius = cfg.search_radius_px if radius_px is None else radius_px
        dist_px, nn = tree.query(proj, k=4, distance_upper_bound=radius)
        valid = np.isfinite(dist_px)
        nn_safe = np.where(valid, nn, 0)
        desc = features.descriptors[nn_safe]  # (R, 4, D)
        ddist = pair_distance(lmap.descriptors[rows][:, None, :], desc)
        ddist = np.where(valid & ~taken[nn_safe], ddist, np.inf)
        order = np.argsort(ddist, axis=1)
        best = np.take_along_axis(ddist, order[:, :1], 1)[:, 0]
        second = np.take_along_axis(ddist, order[:, 1:2], 1)[:, 0]
        best_kp = np.take_along_axis(nn_safe, order[:, :1], 1)[:, 0]
        ok = (best <= cfg.search_max_distance) & (best <= cfg.search_ratio * second)
        rows, best_kp, best = rows[ok], best_kp[ok], best[ok]
        if rows.size == 0:
            return corr, estimate
        # one landmark per keypoint: keep the closest descriptor
        order = np.lexsort((best, best_kp))
        first = np.ones(order.size, bool)
        first[1:] = best_kp[order][1:] != best_kp[order][:-1]
        chosen = order[first]
        found = _Correspondences(
            best_kp[chosen],
            lmap.ids[rows[chosen]],
            lmap.positions_world[rows[chosen]],
            self._align_to_anchors(rows[chosen], features.keypoints[best_kp[chosen]], anchors),
        )
        found = found.select(np.all(np.isfinite(found.pixels), axis=1))
        merged = corr.concat(found)
        refined = refine_pose(
            pose,
            merged.points_world,
            merged.pixels,
            k,
            cfg.huber_px,
            cfg.ransac_reprojection_px,
        )
        return merged.select(refined.inliers), _restrict(refined)

    def _align_to_anchors(
        self, rows: np.ndarray, keypoints: np.ndarray, anchors: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Sub-pixel positions of landmarks found near keypoints, by aligning the window
        around each landmark's newest keyframe observation; NaN where alignment failed
        (unless ``lk_keep_unaligned``), the keypoint itself when refinement is off."""
        pixels = keypoints.astype(np.float64)
        if self._grey is None or rows.size == 0:
            return pixels
        slots, anchor_px = anchors
        slot_of = slots[rows]
        greys, usable = self._window_images(slot_of)
        keep = np.full(rows.size, self._config.lk_keep_unaligned)
        chosen = np.flatnonzero(usable)
        if chosen.size:
            # one alignment for all keyframes: their windows tiled into one image
            cfg = self._config
            aligned, ok = refine_positions_warped(
                greys,
                slot_of[chosen],
                anchor_px[rows[chosen]],
                self._grey,
                pixels[chosen],
                np.broadcast_to(np.eye(2), (chosen.size, 2, 2)),
                cfg.lk_max_shift_px,
                cfg.lk_window_px,
                cfg.lk_max_round_trip_px,
            )
            pixels[chosen] = aligned
            keep[chosen] = ok | cfg.lk_keep_unaligned
        pixels[~keep] = np.nan
        return pixels

    def _window_images(self, slot_of: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """The window keyframes' grey images (the current one standing in, unused, where a
        keyframe has none) and which of the slots ``slot_of`` (-1: no anchor) have one."""
        current = self._grey
        assert current is not None
        greys = [entry.grey for entry in self._map.keyframes]
        # slot -1 picks the trailing False
        usable = np.array([g is not None for g in greys] + [False])[slot_of]
        return [g if g is not None else current for g in greys], usable

    def _align(
        self,
        reference: np.ndarray,
        current: np.ndarray,
        reference_px: np.ndarray,
        current_px: np.ndarray,
        max_row_shift_px: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`refine_positions` with the tracker's alignment settings: (N, 2) positions
        and the (N,) mask of those to keep (aligned, or all with ``lk_keep_unaligned``)."""
        cfg = self._config
        pixels, aligned = refine_positions(
            reference,
            current,
            reference_px,
            current_px,
            cfg.lk_max_shift_px,
            max_row_shift_px=max_row_shift_px,
            window_px=cfg.lk_window_px,
            levels=cfg.lk_levels,
            max_round_trip_px=cfg.lk_max_round_trip_px,
        )
        return pixels, aligned | cfg.lk_keep_unaligned

    def _align_warped(
        self,
        corr: _Correspondences,
        camera: CameraModel,
        estimate: PoseEstimate,
        anchors: tuple[np.ndarray, np.ndarray],
    ) -> tuple[_Correspondences, PoseEstimate]:
        """Each correspondence aligned again from its landmark's newest keyframe window,
        warped into this view by the estimated pose; the pose refined on the result. Where
        that alignment fails the position found before is kept."""
        cfg = self._config
        if self._grey is None or len(corr) == 0:
            return corr, estimate
        rows = self._map.rows_of(corr.landmark_ids)
        slots, anchor_px = anchors
        slot_of = np.where(rows >= 0, slots[rows], -1)
        greys, usable = self._window_images(slot_of)
        chosen = np.flatnonzero(usable)
        if chosen.size == 0:
            return corr, estimate
        cam_from_world = estimate.cam_from_world
        warp = np.empty((chosen.size, 2, 2))
        for slot in np.unique(slot_of[chosen]):
            group = slot_of[chosen] == slot
            warp[group] = view_warp(
                camera.K,
                invert_pose(self._map.keyframes[slot].world_from_cam),
                cam_from_world,
                corr.points_world[chosen[group]],
            )
        aligned, ok = refine_positions_warped(
            greys,
            slot_of[chosen],
            anchor_px[rows[chosen]],
            self._grey,
            corr.pixels[chosen],
            warp,
            cfg.lk_max_shift_px,
            cfg.lk_window_px,
            cfg.lk_max_round_trip_px,
        )
        pixels = corr.pixels.copy()
        pixels[chosen[ok]] = aligned[ok]
        refined = refine_pose(
            cam_from_world,
            corr.points_world,
            pixels,
            camera.K,
            cfg.huber_px,
            cfg.ransac_reprojection_px,
        )
        if refined.num_inliers < cfg.min_inliers:
            return corr, estimate
        return replace(corr, pixels=pixels).select(refined.inliers), _restrict(refined)

    # ------------------------------------------------------------------- keyframes

    def _keypoint_depth(
        self, frame: Frame, features: Features, mode: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N,) depth of each keypoint from the depth image or the stereo pair (0 = none),
        and its standard deviation in metres."""
        cfg = self._config
        none = np.zeros(len(features), np.float32)
        if mode == "rgbd" and frame.depth_m is not None:
            depth = _depth_at(frame.depth_m, features.keypoints, cfg.depth_edge_ratio)
            # structured light / time of flight: error grows with the square of the range
            sigma = np.maximum(cfg.rgbd_depth_sigma_m, cfg.rgbd_depth_sigma_quadratic * depth**2)
        elif mode == "stereo" and frame.image_right is not None and frame.stereo is not None:
            right = _pinhole_features(self._extractor(frame.image_right), frame.stereo.right)
            pairs = stereo_matches(
                features,
                right,
                frame.stereo,
                cfg.stereo_max_row_diff_px,
                cfg.min_depth_m,
                cfg.max_depth_m,
            )
            left_px = features.keypoints[pairs[:, 0]].astype(np.float64)
            right_px = right.keypoints[pairs[:, 1]].astype(np.float64)
            right_grey = self._grey_of(frame.image_right, frame.stereo.right)
            if self._grey is not None and right_grey is not None and len(pairs):
                # sub-pixel disparity: align the left keypoint's window along the row
                right_px, keep = self._align(
                    self._grey, right_grey, left_px, right_px, cfg.stereo_max_row_diff_px
                )
                pairs, left_px, right_px = pairs[keep], left_px[keep], right_px[keep]
            focal_baseline = frame.stereo.left.fx * frame.stereo.baseline_m
            disparity = left_px[:, 0] - right_px[:, 0]
            depth = np.zeros(len(features), np.float32)
            positive = disparity > 0
            depth[pairs[positive, 0]] = focal_baseline / disparity[positive]
            sigma = cfg.stereo_disparity_sigma_px * depth**2 / focal_baseline
        else:
            return none, none
        invalid = (depth < cfg.min_depth_m) | (depth > cfg.max_depth_m)
        depth[invalid] = 0.0
        return depth, np.where(invalid, 0.0, sigma).astype(np.float32)

    def _make_keyframe(
        self,
        frame: Frame,
        features: Features,
        mode: str,
        world_from_cam: np.ndarray,
        corr: _Correspondences,
        reference: MapKeyframe,
        estimate: PoseEstimate,
    ) -> Keyframe | None:
        # depth where the landmarks were measured (image alignment), not where detected
        features = _with_tracked_pixels(features, corr)
        depth, sigma = self._keypoint_depth(frame, features, mode)
        if mode == "mono":
            self._insert_keyframe(
                frame, features, world_from_cam, depth, sigma, corr, True, self._grey
            )
            self._triangulate_window(self._map.reference, frame.camera)
        else:
            new_points = (depth > 0).sum()
            if len(corr) + new_points < self._config.min_map_points:
                return None  # degraded: no depth here; keep the old reference
            self._insert_keyframe(
                frame, features, world_from_cam, depth, sigma, corr, grey=self._grey
            )
        self._refine_structure(mode, frame.camera)
        if mode != "mono":
            self._adjust_window(mode, frame.camera)
        elif self._config.mono_adjustment_iterations > 0:
            # alternation drifts the monocular scale; a joint adjustment holding the two
            # oldest keyframes (the gauge and the scale) keeps it
            self._bundle_window(frame.camera, num_fixed=2)
        entry = self._map.reference
        entry.keyframe = replace(
            entry.keyframe,
            points_cam_m=self._map.points_cam(entry),
            landmark_ids=entry.landmark_ids.copy(),
            reprojection_rmse_px=estimate.rmse_px,
            reference_keyframe_id=reference.keyframe.keyframe_id,
            reference_from_cam=invert_pose(reference.world_from_cam) @ world_from_cam,
        )
        return entry.keyframe

    def _insert_keyframe(
        self,
        frame: Frame,
        features: Features,
        world_from_cam: np.ndarray,
        depth: np.ndarray,
        depth_sigma: np.ndarray,
        corr: _Correspondences,
        mono: bool = False,
        grey: np.ndarray | None = None,
    ) -> Keyframe:
        landmark_ids = np.full(len(features), -1, np.int64)
        landmark_ids[corr.keypoint_index] = corr.landmark_ids
        features = _with_tracked_pixels(features, corr)
        lmap = self._map
        if len(corr) and lmap.descriptors is not None:
            # landmarks take the appearance of their latest observation
            rows = lmap.rows_of(corr.landmark_ids)
            lmap.descriptors[rows] = features.descriptors[corr.keypoint_index]
        if not mono:
            fresh = np.flatnonzero((landmark_ids < 0) & (depth > 0))
            if fresh.size:
                points_cam = unproject(
                    frame.camera.K,
                    features.keypoints[fresh].astype(np.float64),
                    depth[fresh].astype(np.float64),
                )
                points_world = transform_points(world_from_cam, points_cam)
                landmark_ids[fresh] = lmap.add_landmarks(points_world, features.descriptors[fresh])
        keyframe = Keyframe(
            keyframe_id=self._next_keyframe_id,
            frame_index=frame.index,
            stamp_ns=frame.stamp_ns,
            world_from_cam=world_from_cam.copy(),
            camera=frame.camera,
            features=features,
            points_cam_m=np.zeros((0, 3)),
            grey=grey,
            depth_m=depth.copy(),
        )
        self._next_keyframe_id += 1
        entry = MapKeyframe(keyframe, landmark_ids, depth, depth_sigma)
        lmap.add_keyframe(entry)
        entry.keyframe = replace(
            keyframe, points_cam_m=lmap.points_cam(entry), landmark_ids=entry.landmark_ids.copy()
        )
        self._frames_since_keyframe = 0
        return entry.keyframe

    def _triangulate_window(self, newer: MapKeyframe, camera: CameraModel) -> None:
        """Monocular: new landmarks for the new keyframe's keypoints that have none, matched
        against each older window keyframe's free keypoints, oldest (widest baseline, most
        precise depth) first; what fails the parallax gate there is tried on newer ones."""
        for older in self._map.keyframes[:-1]:
            free0 = older.landmark_ids < 0
            free1 = newer.landmark_ids < 0
            if free0.sum() < self._config.min_inliers or free1.sum() < self._config.min_inliers:
                continue
            limit = self._config.match_keypoints
            i0 = older.keyframe.features.strongest(limit, free0)
            i1 = newer.keyframe.features.strongest(limit, free1)
            matches = self._matcher(
                older.keyframe.features.subset(i0), newer.keyframe.features.subset(i1)
            )
            if len(matches):
                self._triangulate_pairs(
                    older, newer, i0[matches.indices[:, 0]], i1[matches.indices[:, 1]], camera
                )

    def _triangulate_pairs(
        self,
        older: MapKeyframe,
        newer: MapKeyframe,
        i0: np.ndarray,
        i1: np.ndarray,
        camera: CameraModel,
    ) -> None:
        """Landmarks from keypoint pairs ``i0`` (older) / ``i1`` (newer) that pass the checks.

        Each pair is first aligned: the older keyframe's window around its keypoint, warped
        into the newer view through the first triangulation, says where that very point is
        in the newer keyframe, and the landmark is triangulated again from there (the newer
        keyframe keeps that position as its observation). Two detections of a point are each
        about a pixel off (see :mod:`slamfront.frontend.refine`); at the one to three degrees
        of parallax of neighbouring keyframes that is a depth error of tens of percent, and
        landmarks made so bent the map enough to turn the monocular trajectory 16 degrees off
        within 60 frames of facing a wall (sim loop seed 1; aligned: 0.2 degrees)."""
        k = camera.K
        cam0 = invert_pose(older.world_from_cam)
        cam1 = invert_pose(newer.world_from_cam)
        px0 = older.keyframe.features.keypoints[i0].astype(np.float64)
        px1 = newer.keyframe.features.keypoints[i1].astype(np.float64)
        points = triangulate(cam0, cam1, k, px0, px1)
        if older.grey is not None and newer.grey is not None and i0.size:
            finite = np.all(np.isfinite(points), axis=1)
            warp = view_warp(k, cam0, cam1, np.where(finite[:, None], points, 0.0))
            cfg = self._config
            aligned, ok = refine_positions_warped(
                [older.grey],
                np.zeros(i0.size, np.int64),
                px0,
                newer.grey,
                px1,
                warp,
                cfg.lk_max_shift_px,
                cfg.lk_window_px,
                cfg.lk_max_round_trip_px,
            )
            keep = finite & (ok | cfg.lk_keep_unaligned)
            i0, i1, px0 = i0[keep], i1[keep], px0[keep]
            px1 = np.where(ok[keep, None], aligned[keep], px1[keep])
            points = triangulate(cam0, cam1, k, px0, px1)
        good = self._triangulation_ok(points, cam0, cam1, k, px0, px1)
        if not good.any():
            return
        ids = self._map.add_landmarks(points[good], newer.keyframe.features.descriptors[i1[good]])
        older.landmark_ids[i0[good]] = ids
        newer.landmark_ids[i1[good]] = ids
        features = newer.keyframe.features
        keypoints = features.keypoints.copy()
        keypoints[i1[good]] = px1[good]
        newer.keyframe = replace(newer.keyframe, features=replace(features, keypoints=keypoints))

    def _triangulation_ok(
        self,
        points_world: np.ndarray,
        cam0_from_world: np.ndarray,
        cam1_from_world: np.ndarray,
        k: np.ndarray,
        px0: np.ndarray,
        px1: np.ndarray,
    ) -> np.ndarray:
        """Cheirality, reprojection within the RANSAC threshold, and enough parallax."""
        cfg = self._config
        ok = np.all(np.isfinite(points_world), axis=1)
        for cam_from_world, px in ((cam0_from_world, px0), (cam1_from_world, px1)):
            pc = transform_points(cam_from_world, points_world)
            ok &= pc[:, 2] > 0
            z = np.where(pc[:, 2] > 0, pc[:, 2], 1.0)
            proj = pc[:, :2] / z[:, None] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
            ok &= np.linalg.norm(proj - px, axis=1) < cfg.ransac_reprojection_px
        angles = _ray_angles_deg(points_world, cam0_from_world, cam1_from_world)
        return ok & (angles >= cfg.mono_min_angle_deg)

    def _refine_structure(self, mode: str, camera: CameraModel) -> None:
        """Structure-only refinement of window landmarks from all window observations
        (and their depth measurements, weighted by a depth-proportional sigma)."""
        lmap = self._map
        _, rows, cam_from_world, pixels, depth, sigma = lmap.observations()
        if rows.size == 0:
            return
        depth_obs = np.where(depth > 0, depth, np.nan)
        sigma = np.where(depth > 0, sigma, 1.0)
        counts = np.bincount(rows, minlength=len(lmap))
        multi = counts[rows] >= 2
        if not multi.any():
            return
        lmap.positions_world = refine_points(
            lmap.positions_world,
            rows[multi],
            cam_from_world[multi],
            pixels[multi],
            camera.K,
            depth_obs[multi] if mode != "mono" else None,
            sigma[multi] if mode != "mono" else None,
            self._config.huber_px,
        )

    def _adjust_window(self, mode: str, camera: CameraModel) -> None:
        """Local bundle adjustment by alternation: keyframe poses (all but the oldest, which
        holds the gauge) refined against the window's landmarks, then the landmarks against
        all observations (and depth), ``local_adjustment_rounds`` times."""
        cfg = self._config
        lmap = self._map
        for _ in range(cfg.local_adjustment_rounds):
            for entry in lmap.keyframes[1:]:
                rows = lmap.rows_of(entry.landmark_ids)
                has = rows >= 0
                if int(has.sum()) < cfg.min_inliers:
                    continue
                estimate = refine_pose(
                    invert_pose(entry.world_from_cam),
                    lmap.positions_world[rows[has]],
                    entry.keyframe.features.keypoints[has].astype(np.float64),
                    camera.K,
                    cfg.huber_px,
                    cfg.ransac_reprojection_px,
                    iterations=5,
                )
                if estimate.num_inliers >= cfg.min_inliers:
                    entry.keyframe = replace(
                        entry.keyframe, world_from_cam=invert_pose(estimate.cam_from_world)
                    )
            self._refine_structure(mode, camera)

    def _bundle_window(self, camera: CameraModel, num_fixed: int) -> None:
        """Joint bundle adjustment of the window: keyframe poses (the ``num_fixed`` oldest
        held: the gauge, and for monocular the scale) and the landmarks they observe."""
        lmap = self._map
        entries = lmap.keyframes
        if len(entries) <= num_fixed:
            return
        slots, rows, _, pixels, _, _ = lmap.observations()
        fixed = np.arange(len(entries)) < num_fixed
        poses, points = bundle_adjust(
            np.array([invert_pose(entry.world_from_cam) for entry in entries]),
            fixed,
            lmap.positions_world,
            slots,
            rows,
            pixels,
            camera.K,
            self._config.huber_px,
            iterations=self._config.mono_adjustment_iterations,
        )
        lmap.positions_world = points
        for entry, pose, held in zip(entries, poses, fixed, strict=True):
            if not held:
                entry.keyframe = replace(entry.keyframe, world_from_cam=invert_pose(pose))

    def _grey_of(self, image: np.ndarray, camera: CameraModel) -> np.ndarray | None:
        """Grey image for alignment, or None when refinement is off or the keypoints are
        not in this image's pixels (a distorted image whose keypoints were undistorted)."""
        cfg = self._config
        if not cfg.lk_refine or camera.is_distorted:
            return None
        return grey(image)

    # -------------------------------------------------------------- relocalisation

    def _relocalize(self, frame: Frame, features: Features, mode: str, t0: float) -> TrackResult:
        cfg = self._config
        match_ms = 0.0
        last_matches: Matches | None = None
        for entry in reversed(self._map.keyframes[-cfg.relocalization_keyframes :]):
            matches, corr, ms = self._match_reference(entry, features)
            match_ms += ms
            last_matches = matches
            estimate = self._estimate(corr, features, frame.camera, None)
            if estimate is None or estimate.num_inliers < cfg.min_inliers:
                continue
            corr, estimate = corr.select(estimate.inliers), _restrict(estimate)
            corr, estimate = self._search_local_map(
                corr, features, frame.camera, estimate, self._map.anchors()
            )
            if estimate.num_inliers < cfg.min_inliers:
                continue
            # resume with this keyframe as the reference
            self._map.keyframes.remove(entry)
            self._map.keyframes.append(entry)
            self._last_pose = None
            self._velocity = None
            world_from_cam = invert_pose(estimate.cam_from_world)
            return self._accept(
                frame, features, mode, corr, estimate, world_from_cam, t0, match_ms, matches, entry
            )
        return self._result(frame, features, TrackingState.LOST, None, t0, match_ms, last_matches)


def _ray_angles_deg(
    points_world: np.ndarray, cam0_from_world: np.ndarray, cam1_from_world: np.ndarray
) -> np.ndarray:
    """Angle at each point between the rays to the two camera centres, degrees."""
    ray0 = points_world - invert_pose(cam0_from_world)[:3, 3]
    ray1 = points_world - invert_pose(cam1_from_world)[:3, 3]
    cos = np.sum(ray0 * ray1, axis=1) / np.maximum(
        np.linalg.norm(ray0, axis=1) * np.linalg.norm(ray1, axis=1), 1e-12
    )
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _restrict(estimate: PoseEstimate) -> PoseEstimate:
    """The estimate with only its inliers (matching the filtered correspondences)."""
    mask = estimate.inliers
    return PoseEstimate(
        estimate.cam_from_world, mask[mask], estimate.residuals_px[mask], estimate.information
    )


def _pinhole_features(features: Features, camera: CameraModel) -> Features:
    """Keypoints moved to the undistorted pinhole image when the camera has distortion."""
    if not camera.is_distorted or len(features) == 0:
        return features
    return replace(
        features, keypoints=undistort_points(camera, features.keypoints).astype(np.float32)
    )


def _with_tracked_pixels(features: Features, corr: _Correspondences) -> Features:
    """``features`` with each tracked keypoint moved to where its landmark was measured (image
    alignment): a keyframe keeps those positions, so that later alignment against it follows
    those very points and its depth is sampled there."""
    if not len(corr):
        return features
    keypoints = features.keypoints.copy()
    keypoints[corr.keypoint_index] = corr.pixels
    return replace(features, keypoints=keypoints)


def _depth_at(depth_m: np.ndarray, keypoints: np.ndarray, edge_ratio: float) -> np.ndarray:
    """Depth at each sub-pixel keypoint, bilinear between the four pixels around it; 0 where
    any pixel of the 3x3 neighbourhood is invalid or the depth there varies by more than
    ``edge_ratio`` (an occlusion edge, where interpolating would invent a surface).

    Bilinear, not nearest: on a surface seen at a grazing angle depth changes by a few per
    cent per pixel, and a keypoint's sub-pixel position would otherwise get the depth of a
    point up to half a pixel away.
    """
    h, w = depth_m.shape
    x = np.clip(keypoints[:, 0].astype(np.float64), 0, w - 1)
    y = np.clip(keypoints[:, 1].astype(np.float64), 0, h - 1)
    col = np.rint(x).astype(np.int64)
    row = np.rint(y).astype(np.int64)
    centre = depth_m[row, col].astype(np.float32)
    lo = centre.copy()
    hi = centre.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            d = depth_m[np.clip(row + dr, 0, h - 1), np.clip(col + dc, 0, w - 1)]
            lo = np.minimum(lo, d)
            hi = np.maximum(hi, d)
    ok = (lo > 0) & ((hi - lo) <= edge_ratio * centre)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    bilinear = (
        depth_m[y0, x0] * (1 - fx) * (1 - fy)
        + depth_m[y0, x0 + 1] * fx * (1 - fy)
        + depth_m[y0 + 1, x0] * (1 - fx) * fy
        + depth_m[y0 + 1, x0 + 1] * fx * fy
    )
    return np.where(ok, bilinear, 0.0).astype(np.float32)
