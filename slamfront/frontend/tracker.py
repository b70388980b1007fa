"""Streaming tracker: ``Tracker.step(frame) -> TrackResult``, a short orchestrator.

A frame is first tracked by the local-map search from the motion model's pose (RGB-D and
stereo with ``match_every_frame`` off); otherwise it is matched to the reference keyframe,
its pose found by PnP and the local-map search, and its correspondences aligned again through
the view change. Keyframes are added by :class:`~slamfront.frontend.mapping.KeyframeMapper`;
the first comes from depth, or from a two-view start for monocular.

A rolling-shutter camera's frame is first moved to its global-shutter image
(:mod:`~slamfront.frontend.rolling_shutter`) by the camera's angular rate: the gyro's when the
frame carries samples, else the tracked poses' (the rate ending at the previous frame, then
the one ending at the frame's solved pose, tracked again when that differs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import alignment_image
from slamfront.frontend.base import Extractor, Matcher
from slamfront.frontend.depth import KeypointDepth, image_depth, keypoint_depth, pinhole_features
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.keyframes import need_keyframe
from slamfront.frontend.local_map import Anchors, LocalMap, MapKeyframe
from slamfront.frontend.map_search import align_warped, search_local_map
from slamfront.frontend.mapping import KeyframeMapper, refresh_keyframe
from slamfront.frontend.mono_init import MonoInitializer
from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam
from slamfront.frontend.pose import PoseEstimate, relative_motion_ok
from slamfront.frontend.records import Correspondences, FrameInput, MatchAttempt, PoseFit
from slamfront.frontend.relocalizer import relocalize
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import invert_pose, orthonormalized, so3_log
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    Keyframe,
    StageTimings,
    TrackingState,
    TrackResult,
)


@dataclass(frozen=True, eq=False)
class _Outcome:
    """What tracking made of a frame, before it becomes a :class:`TrackResult`."""

    state: TrackingState
    attempt: MatchAttempt = field(default_factory=MatchAttempt)
    world_from_cam: np.ndarray | None = None
    fit: PoseFit | None = None
    keyframe: Keyframe | None = None


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
        self._map = LocalMap(config.window.keyframes)
        self._mapper = KeyframeMapper(self._map, config, extractor, matcher, first_keyframe_id)
        self._mono_init = MonoInitializer(config, matcher)
        self._motion = MotionModel(config.shutter.rate_intervals)
        self._state = TrackingState.INITIALIZING
        self._frames_since_keyframe = 0
        self._last_inliers = 0  # of the last tracked frame
        self._waiting: FrameInput | None = None  # a rolling-shutter start's first frame

    @property
    def state(self) -> TrackingState:
        return self._state

    def step(self, frame: Frame, features: Features | None = None) -> TrackResult:
        """Track one frame. ``features`` may be passed when extracted elsewhere (pipelining)."""
        start = time.perf_counter()
        if features is None:
            features = self._extractor(frame.image)
        tracking_start = time.perf_counter()
        extract_ms = (tracking_start - start) * 1e3
        captured = FrameInput(
            frame,
            pinhole_features(features, frame.camera),
            sensing_mode(frame, self._config.mode),
            alignment_image(frame.image, frame.camera, self._config.alignment),
            tracking_start,
        )
        if self._map.keyframes and self._state != TrackingState.LOST:
            outcome, inp = self._track(captured)
        elif not self._map.keyframes and not captured.mono:
            outcome, inp = self._start(captured)
        else:
            inp = to_global_shutter(captured, self._rate(frame))
            outcome = self._relocalize(inp) if self._map.keyframes else self._start_mono(inp)
        self._state = outcome.state
        result = _track_result(inp, outcome, self._map, self._config)
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
                self._motion.transform(correction)
                return True
        return False

    # -------------------------------------------------------------- initialisation

    def _start(self, captured: FrameInput) -> tuple[_Outcome, FrameInput]:
        """A metric start. Its keyframe anchors the map, so a rolling shutter without a gyro
        first needs the rate the camera turns at: the first frame waits, and the next one
        starts the map, corrected by its motion since the first."""
        frame = captured.frame
        rate = self._rate(frame)
        first = first_from_cam = None
        if frame.camera.readout_s > 0.0 and gyro_rate_cam(frame) is None:
            first, self._waiting = self._waiting, captured
            if first is not None:
                first_from_cam = self._probe(first, captured)
            if first is None or first_from_cam is None:
                return _Outcome(TrackingState.INITIALIZING), captured
            dt = (frame.stamp_ns - first.frame.stamp_ns) * 1e-9
            rate = so3_log(first_from_cam[:3, :3]) / max(dt, 1e-3)
        inp = to_global_shutter(captured, rate)
        outcome = self._start_metric(inp)
        if first is not None and first_from_cam is not None and outcome.world_from_cam is not None:
            self._waiting = None
            # the motion since the first frame gives the next frame's prediction
            self._motion.reset()
            world_from_first = outcome.world_from_cam @ invert_pose(first_from_cam)
            self._motion.update(first.frame.stamp_ns, world_from_first)
            self._motion.update(frame.stamp_ns, outcome.world_from_cam)
        return outcome, inp

    def _probe(self, first: FrameInput, second: FrameInput) -> np.ndarray | None:
        """The second frame's pose in the first's camera (first_from_cam), from its matches
        to a throwaway keyframe of the first, both uncorrected; None with too few inliers."""
        cfg = self._config
        depth = keypoint_depth(
            first.frame, first.features, first.mode, first.grey, self._extractor, cfg
        )
        if int(depth.valid.sum()) < cfg.min_map_points:
            return None
        lmap = LocalMap(1)
        mapper = KeyframeMapper(lmap, cfg, self._extractor, self._matcher)
        entry = mapper.insert(
            first.frame, first.features, np.eye(4), depth, Correspondences.empty(), first.grey
        )
        _, corr = match_keyframe(lmap, entry, second, self._matcher, cfg)
        estimate = estimate_pose(corr, second.camera, None, cfg)
        if estimate is None or estimate.num_inliers < cfg.min_inliers:
            return None
        return invert_pose(estimate.cam_from_world)

    def _start_metric(self, inp: FrameInput) -> _Outcome:
        """The first keyframe of a metric rig, its landmarks from measured depth."""
        world_from_cam = np.eye(4)
        if self._localize is not None:
            found = self._localize(inp.features, inp.camera)
            if found is None:  # not yet recognised in the saved map: no pose
                return _Outcome(TrackingState.INITIALIZING)
            world_from_cam = found
        depth = keypoint_depth(
            inp.frame, inp.features, inp.mode, inp.grey, self._extractor, self._config
        )
        if int(depth.valid.sum()) < self._config.min_map_points:
            return _Outcome(TrackingState.INITIALIZING)
        entry = self._mapper.insert(
            inp.frame, inp.features, world_from_cam, depth, Correspondences.empty(), inp.grey
        )
        self._frames_since_keyframe = 0
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        return _Outcome(TrackingState.OK, world_from_cam=world_from_cam, keyframe=entry.keyframe)

    def _start_mono(self, inp: FrameInput) -> _Outcome:
        """The first two keyframes of a monocular run, from a two-view start."""
        tried = self._mono_init(inp)
        start = tried.start
        if start is None:
            return _Outcome(TrackingState.INITIALIZING, tried.attempt)
        ref_features = start.reference_features
        reference = self._mapper.insert(
            start.reference_frame,
            ref_features,
            np.eye(4),
            KeypointDepth.none(len(ref_features)),
            Correspondences.empty(),
            start.reference_grey,
        )
        ids = self._map.add_landmarks(
            start.points_world, ref_features.descriptors[start.reference_index]
        )
        reference.landmark_ids[start.reference_index] = ids
        refresh_keyframe(self._map, reference)
        world_from_cam = invert_pose(start.cam1_from_cam0)
        corr = Correspondences(start.current_index, ids, start.points_world, start.current_px)
        entry = self._mapper.insert(
            inp.frame,
            inp.features,
            world_from_cam,
            KeypointDepth.none(len(inp.features)),
            corr,
            inp.grey,
        )
        self._frames_since_keyframe = 0
        self._motion.update(start.reference_frame.stamp_ns, np.eye(4))
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        return _Outcome(TrackingState.OK, tried.attempt, world_from_cam, keyframe=entry.keyframe)

    # -------------------------------------------------------------------- tracking

    def _track(self, captured: FrameInput) -> tuple[_Outcome, FrameInput]:
        """The frame tracked in the window, and the (global-shutter) input it was tracked on."""
        cfg = self._config
        reference = self._map.reference
        prediction = self._motion.predict(captured.frame.stamp_ns)
        anchors = self._map.anchors()
        rate = self._rate(captured.frame)
        inp = to_global_shutter(captured, rate)
        attempt, fit = self._solve(inp, prediction, anchors)
        if fit is None:
            return self._lose(attempt), inp
        fit, inp = self._resolve_shutter(captured, inp, fit, rate, anchors)
        world_from_cam = invert_pose(fit.estimate.cam_from_world)
        last_stamp_ns = self._motion.last_stamp_ns
        if prediction is not None and last_stamp_ns is not None:
            dt = max((inp.frame.stamp_ns - last_stamp_ns) * 1e-9, 1e-3)
            motion = cfg.motion
            if not relative_motion_ok(
                prediction, world_from_cam, dt, motion.max_speed_m_s, motion.max_angular_speed_deg_s
            ):
                return self._lose(attempt), inp
        return self._accept(inp, fit, world_from_cam, attempt, reference), inp

    def _solve(
        self, inp: FrameInput, prediction: np.ndarray | None, anchors: Anchors
    ) -> tuple[MatchAttempt, PoseFit | None]:
        """The frame's pose in the window: by the local-map search from the motion model's
        pose, else from matches to the reference keyframe; None when too few inliers."""
        cfg = self._config
        attempt = MatchAttempt()
        fit = None
        if (
            not cfg.match_every_frame
            and not inp.mono
            and prediction is not None
            and self._motion.has_velocity
        ):
            fit = self._track_motion(inp, prediction, anchors)
        if fit is None:
            reference = self._map.reference
            attempt, corr = match_keyframe(self._map, reference, inp, self._matcher, cfg)
            estimate = estimate_pose(corr, inp.camera, prediction, cfg)
            if estimate is None or estimate.num_inliers < cfg.min_inliers:
                return attempt, None
            fit = search_local_map(self._map, inp, PoseFit.inliers_of(corr, estimate), anchors, cfg)
        if cfg.alignment.prewarp:
            fit = align_warped(self._map, inp, fit, anchors, cfg)
        if fit.num_inliers < cfg.min_inliers:
            return attempt, None
        return attempt, fit

    def _rate(self, frame: Frame) -> np.ndarray:
        """(3,) the camera's angular rate at the frame, rad/s in its frame: the gyro's when
        the frame carries samples, else the motion model's (zero when it has none)."""
        if frame.camera.readout_s <= 0.0:
            return np.zeros(3)
        gyro = gyro_rate_cam(frame)
        return gyro if gyro is not None else self._motion.rate_cam_rad_s

    def _resolve_shutter(
        self,
        captured: FrameInput,
        inp: FrameInput,
        fit: PoseFit,
        rate: np.ndarray,
        anchors: Anchors,
    ) -> tuple[PoseFit, FrameInput]:
        """A rolling-shutter frame corrected by the rate its solved pose gives (over the
        intervals ending at it, rather than at the previous frame) and tracked again from that
        pose, when that changes the correction by more than ``shutter.resolve_px``; ``fit``
        and ``inp`` as they are otherwise."""
        cfg = self._config
        camera = captured.frame.camera
        limit_px = cfg.shutter.resolve_px
        if limit_px is None or camera.readout_s <= 0.0 or gyro_rate_cam(captured.frame) is not None:
            return fit, inp
        solved = self._motion.rate_to(
            captured.frame.stamp_ns, invert_pose(fit.estimate.cam_from_world)
        )
        if solved is None:
            return fit, inp
        # the largest change of a keypoint's correction: an edge row, at the image centre
        change_px = 0.5 * camera.readout_s * camera.fx * float(np.linalg.norm(solved - rate))
        if change_px <= limit_px:
            return fit, inp
        again = to_global_shutter(captured, solved)
        seed = PoseFit(Correspondences.empty(), fit.estimate)
        refit = search_local_map(self._map, again, seed, anchors, cfg, cfg.motion.search_radius_px)
        if cfg.alignment.prewarp:
            refit = align_warped(self._map, again, refit, anchors, cfg)
        if refit.num_inliers < cfg.min_inliers:
            return fit, inp
        return refit, again

    def _track_motion(
        self, inp: FrameInput, prediction: np.ndarray, anchors: Anchors
    ) -> PoseFit | None:
        """The window landmarks searched for around their projection at the motion model's
        pose, without the matcher; None (the matcher runs) when that finds fewer than
        ``motion.min_share`` of the landmarks the last frame tracked, or than twice
        ``min_inliers``."""
        cfg = self._config
        empty = np.zeros(0)
        seed = PoseEstimate(invert_pose(prediction), empty.astype(bool), empty, np.zeros((6, 6)))
        fit = search_local_map(
            self._map,
            inp,
            PoseFit(Correspondences.empty(), seed),
            anchors,
            cfg,
            cfg.motion.search_radius_px,
        )
        needed = max(2 * cfg.min_inliers, cfg.motion.min_share * self._last_inliers)
        return fit if fit.num_inliers >= needed else None

    def _relocalize(self, inp: FrameInput) -> _Outcome:
        found = relocalize(self._map, inp, self._matcher, self._config)
        if found.keyframe is None or found.fit is None:
            return _Outcome(TrackingState.LOST, found.attempt)
        # resume with that keyframe as the reference
        self._map.keyframes.remove(found.keyframe)
        self._map.keyframes.append(found.keyframe)
        self._motion.reset()
        world_from_cam = invert_pose(found.fit.estimate.cam_from_world)
        return self._accept(inp, found.fit, world_from_cam, found.attempt, found.keyframe)

    def _lose(self, attempt: MatchAttempt) -> _Outcome:
        self._motion.stop()
        return _Outcome(TrackingState.LOST, attempt)

    def _accept(
        self,
        inp: FrameInput,
        fit: PoseFit,
        world_from_cam: np.ndarray,
        attempt: MatchAttempt,
        reference: MapKeyframe,
    ) -> _Outcome:
        self._frames_since_keyframe += 1
        ref_ids = reference.landmark_ids
        tracked_ref = int(np.isin(fit.corr.landmark_ids, ref_ids[ref_ids >= 0]).sum())
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
            keyframe = self._mapper.extend(inp, world_from_cam, fit, reference)
            if keyframe is not None:
                self._frames_since_keyframe = 0
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        self._last_inliers = fit.num_inliers
        return _Outcome(TrackingState.OK, attempt, world_from_cam, fit, keyframe)


def _track_result(
    inp: FrameInput, outcome: _Outcome, lmap: LocalMap, config: TrackerConfig
) -> TrackResult:
    """The record of a tracked frame; its pose is also given relative to the window's
    reference keyframe."""
    frame, fit, attempt = inp.frame, outcome.fit, outcome.attempt
    total_ms = (time.perf_counter() - inp.start_s) * 1e3
    reference_id = reference_from_cam = None
    if outcome.world_from_cam is not None and lmap.keyframes:
        entry = lmap.reference
        reference_id = entry.keyframe.keyframe_id
        reference_from_cam = invert_pose(entry.world_from_cam) @ outcome.world_from_cam
    inliers = fit.corr if fit is not None else None
    depths = None
    if inliers is not None and frame.depth_m is not None:
        depths = image_depth(frame, inliers.pixels, config)
    matches = attempt.matches
    return TrackResult(
        frame_index=frame.index,
        stamp_ns=frame.stamp_ns,
        state=outcome.state,
        world_from_cam=outcome.world_from_cam,
        num_features=len(inp.features),
        num_matches=len(matches) if matches is not None else 0,
        num_inliers=fit.num_inliers if fit is not None else 0,
        reprojection_rmse_px=fit.estimate.rmse_px if fit is not None else float("nan"),
        is_keyframe=outcome.keyframe is not None,
        keyframe_id=outcome.keyframe.keyframe_id if outcome.keyframe is not None else None,
        reference_keyframe_id=reference_id,
        reference_from_cam=reference_from_cam,
        matched_keyframe_id=attempt.keyframe_id if matches is not None else None,
        matches=matches,
        features=inp.features,
        timings=StageTimings(
            match_ms=attempt.match_ms, pose_ms=max(total_ms - attempt.match_ms, 0.0)
        ),
        landmark_ids=inliers.landmark_ids.copy() if inliers is not None else None,
        landmark_pixels=inliers.pixels.copy() if inliers is not None else None,
        landmark_keypoints=inliers.keypoint_index.copy() if inliers is not None else None,
        landmark_depths_m=depths,
    )


def sensing_mode(frame: Frame, configured: str) -> str:
    """The mode a frame is tracked in: the configured one, or for "auto" "rgbd" when the
    frame carries depth, "stereo" when it carries a rectified right image, else "mono"."""
    if configured != "auto":
        return configured
    if frame.depth_m is not None:
        return "rgbd"
    if frame.image_right is not None and frame.stereo is not None:
        return "stereo"
    return "mono"
