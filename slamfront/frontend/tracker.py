"""Streaming tracker: ``Tracker.step(frame) -> TrackResult``, a short orchestrator.

A frame is first tracked by the local-map search from the motion model's pose (with
``match_every_frame`` off); otherwise it is matched to the reference keyframe,
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

from slamfront.backend.vocabulary import Vocabulary
from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import alignment_image
from slamfront.frontend.atlas import KeyframeAtlas
from slamfront.frontend.base import Extractor, Matcher
from slamfront.frontend.depth import KeypointDepth, image_depth, keypoint_depth, pinhole_features
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.keyframes import median_depth_m, need_keyframe
from slamfront.frontend.local_map import Anchors, LocalMap, MapKeyframe
from slamfront.frontend.map_search import align_warped, search_local_map
from slamfront.frontend.mapping import KeyframeMapper, refresh_keyframe
from slamfront.frontend.mono_init import MonoInitializer
from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam, image_jump_px
from slamfront.frontend.pose import PoseEstimate
from slamfront.frontend.records import Correspondences, FrameInput, MatchAttempt, PoseFit
from slamfront.frontend.relocalizer import relocalize
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import invert_pose, orthonormalized, so3_log
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    FrameIssue,
    Keyframe,
    MapPlacement,
    OptimizedPoses,
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
    issue: FrameIssue | None = None


class Tracker:
    """Frame-by-frame camera tracking against a local map of recent keyframes."""

    def __init__(
        self,
        config: TrackerConfig,
        extractor: Extractor,
        matcher: Matcher,
        localize: Callable[[Features, CameraModel], MapPlacement | None] | None = None,
        first_keyframe_id: int = 0,
        vocabulary: Vocabulary | None = None,
        first_map_id: int = 0,
    ) -> None:
        """``localize`` places a first frame in a saved map (None while it cannot): tracking
        then starts in that map's frame instead of at the first camera. Keyframe ids start at
        ``first_keyframe_id`` and new maps at ``first_map_id`` (after the saved map's). With a
        ``vocabulary`` relocalisation recognises places among every keyframe of the run."""
        self._config = config
        self._localize = localize
        self._extractor = extractor
        self._matcher = matcher
        self._map = LocalMap(config.window.keyframes)
        self._map_id = first_map_id
        self._maps_made = first_map_id + 1
        self._mapper = KeyframeMapper(config, extractor, first_keyframe_id)
        self._mapper.use(self._map, self._map_id)
        self._atlas = KeyframeAtlas(vocabulary)
        self._mono_init = MonoInitializer(config, matcher)
        self._motion = MotionModel(config.shutter.rate_intervals)
        self._state = TrackingState.INITIALIZING
        self._lost_since_ns: int | None = None
        self._waiting_since_ns: int | None = None  # first frame waiting for the saved map
        self._frames_since_keyframe = 0
        self._last_inliers = 0  # of the last tracked frame
        self._waiting: FrameInput | None = None  # a rolling-shutter start's first frame

    @property
    def state(self) -> TrackingState:
        return self._state

    @property
    def maps_made(self) -> int:
        """Maps started so far (the first one included)."""
        return self._maps_made

    def step(self, frame: Frame, features: Features | None = None) -> TrackResult:
        """Track one frame. ``features`` may be passed when extracted elsewhere (pipelining)."""
        start = time.perf_counter()
        if features is None:
            features = self._extractor(frame.image)
        tracking_start = time.perf_counter()
        extract_ms = (tracking_start - start) * 1e3
        inp = captured = FrameInput(
            frame,
            pinhole_features(features, frame.camera),
            sensing_mode(frame, self._config.mode),
            alignment_image(frame.image, frame.camera, self._config.alignment),
            tracking_start,
        )
        if self._lost_too_long(frame.stamp_ns):
            self._leave_map()
        if len(captured.features) < self._config.min_inliers:
            state = TrackingState.LOST if self._map.keyframes else TrackingState.INITIALIZING
            outcome = _Outcome(state, issue=FrameIssue.FEW_FEATURES)
            if state == TrackingState.LOST:
                self._motion.stop()
        elif not self._map.keyframes:
            outcome, inp = self._restart(captured)
        elif self._state == TrackingState.LOST:
            inp = to_global_shutter(captured, self._rate(frame))
            outcome = self._relocalize(inp)
        else:
            outcome, inp = self._track(captured)
        self._state = outcome.state
        if outcome.state == TrackingState.OK:
            self._lost_since_ns = None
        elif outcome.state == TrackingState.LOST and self._lost_since_ns is None:
            self._lost_since_ns = frame.stamp_ns
        if outcome.keyframe is not None:
            self._store_window()
        result = _track_result(inp, outcome, self._map, self._map_id, self._config)
        return replace(result, timings=replace(result.timings, extract_ms=extract_ms))

    def keyframes(self) -> list[Keyframe]:
        """The keyframes currently in the local window, oldest first."""
        return [entry.keyframe for entry in self._map.keyframes]

    def apply_optimized(self, poses: OptimizedPoses) -> None:
        """Take the back end's corrected keyframe poses (and merged maps): every keyframe of
        the atlas moves, and the window follows its newest corrected keyframe."""
        self._atlas.move(poses)
        rows = {keyframe_id: row for row, keyframe_id in enumerate(poses.keyframe_ids)}
        shared = [e for e in self._map.keyframes if e.keyframe.keyframe_id in rows]
        if not shared:
            return
        row = rows[shared[-1].keyframe.keyframe_id]
        self.reanchor(shared[-1].keyframe.keyframe_id, poses.world_from_cam[row])
        if poses.map_ids and poses.map_ids[row] != self._map_id:
            self._map_id = poses.map_ids[row]
            self._mapper.use(self._map, self._map_id)
            for entry in self._map.keyframes:
                entry.keyframe = replace(entry.keyframe, map_id=self._map_id)

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

    def _waited_too_long(self, stamp_ns: int) -> bool:
        """Whether the saved map has failed to recognise the frames for longer than
        ``relocalization.new_map_after_s``."""
        if self._waiting_since_ns is None:
            self._waiting_since_ns = stamp_ns
        waited_s = (stamp_ns - self._waiting_since_ns) * 1e-9
        return waited_s > self._config.relocalization.new_map_after_s

    def _lost_too_long(self, stamp_ns: int) -> bool:
        if self._state != TrackingState.LOST or self._lost_since_ns is None:
            return False
        lost_s = (stamp_ns - self._lost_since_ns) * 1e-9
        return lost_s > self._config.relocalization.new_map_after_s

    def _leave_map(self) -> None:
        """Give up the map tracking was lost in (it stays in the atlas): the next frames
        relocalise in any map or start a new one."""
        self._map = LocalMap(self._config.window.keyframes, self._map.next_landmark_id)
        self._mono_init = MonoInitializer(self._config, self._matcher)
        self._motion.reset()
        self._state = TrackingState.INITIALIZING
        self._lost_since_ns = None
        self._frames_since_keyframe = 0
        self._last_inliers = 0
        self._waiting = None

    def _store_window(self) -> None:
        """The window's keyframe records, refreshed with the map, into the atlas."""
        for entry in self._map.keyframes:
            refresh_keyframe(self._map, entry)
            entry.keyframe = self._atlas.store(entry.keyframe)

    # -------------------------------------------------------------- initialisation

    def _restart(self, captured: FrameInput) -> tuple[_Outcome, FrameInput]:
        """A frame with no window: placed in a map of the atlas if it recognises one, else the
        start of a new map (the first map of a run starts directly); and the input it was
        placed by."""
        inp = to_global_shutter(captured, self._rate(captured.frame))
        if len(self._atlas):
            found = self._relocalize(inp)
            if found.state == TrackingState.OK:
                return found, inp
            self._map_id = self._maps_made
            self._mapper.use(self._map, self._map_id)
        if inp.mono:
            outcome = self._start_mono(inp)
        else:
            outcome, inp = self._start(captured)
        if outcome.keyframe is not None and self._map_id == self._maps_made:
            self._maps_made += 1
        return outcome, inp

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
                return _Outcome(TrackingState.INITIALIZING, issue=FrameIssue.SHUTTER_RATE), captured
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
        mapper = KeyframeMapper(cfg, self._extractor)
        mapper.use(lmap, 0)
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
            if found is not None:
                world_from_cam = found.world_from_cam
                self._map_id = found.map_id
                self._mapper.use(self._map, self._map_id)
            elif not self._waited_too_long(inp.frame.stamp_ns):
                # not yet recognised in the saved map: no pose (for a while; then a map of
                # its own, which a loop may later join to the saved one)
                return _Outcome(TrackingState.INITIALIZING, issue=FrameIssue.NOT_IN_MAP)
        depth = keypoint_depth(
            inp.frame, inp.features, inp.mode, inp.grey, self._extractor, self._config
        )
        if int(depth.valid.sum()) < self._config.min_map_points:
            return _Outcome(TrackingState.INITIALIZING, issue=FrameIssue.NO_DEPTH)
        entry = self._mapper.insert(
            inp.frame, inp.features, world_from_cam, depth, Correspondences.empty(), inp.grey
        )
        self._waiting_since_ns = None
        self._frames_since_keyframe = 0
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        return _Outcome(TrackingState.OK, world_from_cam=world_from_cam, keyframe=entry.keyframe)

    def _start_mono(self, inp: FrameInput) -> _Outcome:
        """The first two keyframes of a monocular run, from a two-view start."""
        tried = self._mono_init(inp)
        start = tried.start
        if start is None:
            return _Outcome(
                TrackingState.INITIALIZING, tried.attempt, issue=FrameIssue.MONO_PARALLAX
            )
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
        corr = Correspondences(
            start.current_index,
            ids,
            start.points_world,
            start.current_px,
            start.current_aligned,
        )
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
        reference = self._map.reference
        prediction = self._motion.predict(captured.frame.stamp_ns)
        anchors = self._map.anchors()
        rate = self._rate(captured.frame)
        inp = to_global_shutter(captured, rate)
        attempt, solved = self._solve(inp, prediction, anchors)
        if isinstance(solved, FrameIssue):
            return self._lose(attempt, solved), inp
        fit, inp = self._resolve_shutter(captured, inp, solved, rate, anchors)
        world_from_cam = invert_pose(fit.estimate.cam_from_world)
        if self._implausible(inp, prediction, world_from_cam, fit):
            return self._lose(attempt, FrameIssue.MOTION_GATE), inp
        return self._accept(inp, fit, world_from_cam, attempt, reference), inp

    def _solve(
        self, inp: FrameInput, prediction: np.ndarray | None, anchors: Anchors
    ) -> tuple[MatchAttempt, PoseFit | FrameIssue]:
        """The frame's pose in the window: by the local-map search from the motion model's
        pose, else from matches to the reference keyframe; or why there is none."""
        cfg = self._config
        attempt = MatchAttempt()
        fit = searched = None
        if not cfg.match_every_frame and prediction is not None and self._motion.has_velocity:
            searched = self._track_motion(inp, prediction, anchors)
            needed = max(2 * cfg.min_inliers, cfg.motion.min_share * self._last_inliers)
            fit = searched if searched.num_inliers >= needed else None
        if fit is None:
            attempt, corr = match_keyframe(self._map, self._map.reference, inp, self._matcher, cfg)
            estimate = None
            if len(corr) >= cfg.min_inliers:
                estimate = estimate_pose(corr, inp.camera, prediction, cfg)
            if estimate is not None and estimate.num_inliers >= cfg.min_inliers:
                fit = search_local_map(
                    self._map, inp, PoseFit.inliers_of(corr, estimate), anchors, cfg
                )
            elif searched is not None and searched.num_inliers >= cfg.min_inliers:
                # the matcher did worse than the search it was to back up: keep the search
                fit = searched
            elif len(corr) < cfg.min_inliers:
                return attempt, FrameIssue.FEW_MATCHES
            else:
                return attempt, FrameIssue.FEW_INLIERS
        if cfg.alignment.prewarp:
            fit = align_warped(self._map, inp, fit, anchors, cfg)
        if fit.num_inliers < cfg.min_inliers:
            return attempt, FrameIssue.FEW_INLIERS
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

    def _implausible(
        self,
        inp: FrameInput,
        prediction: np.ndarray | None,
        world_from_cam: np.ndarray,
        fit: PoseFit,
    ) -> bool:
        """The motion gate: with a velocity known and a recent last pose, the estimate must
        not move the landmarks in the image farther from the prediction than
        ``motion.max_jump_share`` of the image diagonal."""
        last_stamp_ns = self._motion.last_stamp_ns
        motion = self._config.motion
        if prediction is None or not self._motion.has_velocity or last_stamp_ns is None:
            return False
        if (inp.frame.stamp_ns - last_stamp_ns) * 1e-9 > motion.max_gap_s:
            return False
        camera = inp.camera
        diagonal_px = float(np.hypot(camera.width_px, camera.height_px))
        jump_px = image_jump_px(prediction, world_from_cam, fit.corr.points_world, camera)
        return jump_px > motion.max_jump_share * diagonal_px

    def _track_motion(self, inp: FrameInput, prediction: np.ndarray, anchors: Anchors) -> PoseFit:
        """The window landmarks searched for around their projection at the motion model's
        pose, without the matcher (which runs when this finds fewer than
        ``motion.min_share`` of the landmarks the last frame tracked, or than twice
        ``min_inliers``)."""
        cfg = self._config
        empty = np.zeros(0)
        seed = PoseEstimate(invert_pose(prediction), empty.astype(bool), empty, np.zeros((6, 6)))
        return search_local_map(
            self._map,
            inp,
            PoseFit(Correspondences.empty(), seed),
            anchors,
            cfg,
            cfg.motion.search_radius_px,
        )

    def _relocalize(self, inp: FrameInput) -> _Outcome:
        found = relocalize(self._map, inp, self._matcher, self._config, self._atlas)
        if found.lmap is None or found.keyframe is None or found.fit is None:
            return _Outcome(TrackingState.LOST, found.attempt, issue=FrameIssue.NOT_RELOCALIZED)
        if found.lmap is not self._map:  # recognised outside the window: resume there
            self._map = found.lmap
            self._map_id = found.keyframe.keyframe.map_id
            self._mapper.use(self._map, self._map_id)
        # resume with that keyframe as the reference
        self._map.keyframes.remove(found.keyframe)
        self._map.keyframes.append(found.keyframe)
        self._motion.reset()
        world_from_cam = invert_pose(found.fit.estimate.cam_from_world)
        return self._accept(inp, found.fit, world_from_cam, found.attempt, found.keyframe)

    def _lose(self, attempt: MatchAttempt, issue: FrameIssue) -> _Outcome:
        self._motion.stop()
        return _Outcome(TrackingState.LOST, attempt, issue=issue)

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
            median_depth_m(reference.keyframe.points_cam_m),
        ):
            keyframe = self._mapper.extend(inp, world_from_cam, fit, reference)
            if keyframe is not None:
                self._frames_since_keyframe = 0
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        self._last_inliers = fit.num_inliers
        return _Outcome(TrackingState.OK, attempt, world_from_cam, fit, keyframe)


def _track_result(
    inp: FrameInput, outcome: _Outcome, lmap: LocalMap, map_id: int, config: TrackerConfig
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
        issue=outcome.issue,
        map_id=map_id,
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
