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
from dataclasses import replace

import numpy as np

from slamfront.backend.vocabulary import Vocabulary
from slamfront.config import TrackerConfig
from slamfront.frontend.alignment import alignment_image
from slamfront.frontend.base import Extractor, Matcher
from slamfront.frontend.depth import image_depth, pinhole_features
from slamfront.frontend.frame_pose import resolve_shutter, solve_in_window, strays_from_prediction
from slamfront.frontend.imu_aid import ImuAid
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.map_start import Localizer, MapStart
from slamfront.frontend.maps import TrackerMaps
from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam
from slamfront.frontend.records import FrameInput, MatchAttempt, Outcome, PoseFit
from slamfront.frontend.relocalizer import relocalize
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import invert_pose
from slamfront.types import (
    Features,
    Frame,
    FrameIssue,
    Keyframe,
    OptimizedPoses,
    StageTimings,
    TrackingState,
    TrackResult,
)


class Tracker:
    """Frame-by-frame camera tracking against a local map of recent keyframes."""

    def __init__(
        self,
        config: TrackerConfig,
        extractor: Extractor,
        matcher: Matcher,
        *,
        localize: Localizer | None = None,
        first_keyframe_id: int = 0,
        vocabulary: Vocabulary | None = None,
        first_map_id: int = 0,
    ) -> None:
        """``localize`` places a first frame in a saved map (None while it cannot): tracking
        then starts in that map's frame instead of at the first camera. Keyframe ids start at
        ``first_keyframe_id`` and new maps at ``first_map_id`` (after the saved map's). With a
        ``vocabulary`` relocalisation recognises places among every keyframe of the run."""
        self._config = config
        self._extractor = extractor
        self._matcher = matcher
        self._maps = TrackerMaps(
            config,
            first_keyframe_id=first_keyframe_id,
            first_map_id=first_map_id,
            vocabulary=vocabulary,
        )
        self._motion = MotionModel(config.shutter.rate_intervals)
        self._start = MapStart(config, matcher, self._maps.mapper, self._motion, localize)
        self._state = TrackingState.INITIALIZING
        self._lost_since_ns: int | None = None
        self._frames_since_keyframe = 0
        self._last_inliers = 0  # of the last tracked frame
        self._imu = ImuAid(config.imu)
        self._mode = ""  # the sensing mode of the last frame

    @property
    def state(self) -> TrackingState:
        return self._state

    @property
    def maps_made(self) -> int:
        """Maps started so far (the first one included)."""
        return self._maps.made

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
        self._mode = captured.mode
        self._imu.integrate(frame)
        if self._lost_too_long(frame.stamp_ns):
            self._leave_map()
        in_map = bool(self._maps.window.keyframes)
        if len(captured.features) < self._config.min_inliers:
            state = TrackingState.LOST if in_map else TrackingState.INITIALIZING
            outcome = Outcome(state, issue=FrameIssue.FEW_FEATURES)
            if state == TrackingState.LOST:
                self._motion.stop()
        elif not in_map:
            outcome, inp = self._restart(captured)
        elif self._state == TrackingState.LOST:
            inp = to_global_shutter(captured, self._motion.rate_at(frame))
            outcome = self._relocalize(inp)
        else:
            outcome, inp = self._track(captured)
        outcome = self._imu.settle(inp, outcome, in_map=bool(self._maps.window.keyframes))
        scale = self._imu.take_scale(self._maps.map_id)
        if scale is not None:
            outcome = self._maps.rescale(outcome, scale)
            self._motion.rescale(scale)
        self._state = outcome.state
        if outcome.state == TrackingState.OK:
            self._lost_since_ns = None
        elif outcome.state != TrackingState.INITIALIZING and self._lost_since_ns is None:
            self._lost_since_ns = frame.stamp_ns
        if outcome.keyframe is not None:
            self._frames_since_keyframe = 0
            self._maps.store_window()
        result = _track_result(inp, outcome, self._maps.window, self._maps.map_id, self._config)
        result = replace(
            result,
            timings=replace(result.timings, extract_ms=extract_ms),
            gravity_world=self._imu.gravity_world,
        )
        return self._imu.hold_back(inp, result)

    def take_held_back(self) -> list[tuple[int, np.ndarray, int]]:
        """(stamp_ns, world_from_cam, map_id) of the frames tracked but held back since the
        last call (their map had no scale yet: the poses are at the map's first scale)."""
        return self._imu.take_held_back()

    def map_scale(self, map_id: int) -> float:
        """The product of the scales the IMU applied to map ``map_id`` (1: none): a pose given
        out when it was ``a`` is ``map_scale / a`` times too small now."""
        return self._imu.map_scale(map_id)

    @property
    def metric_scale(self) -> bool:
        """Whether the current map's poses are in metres (a monocular map once the IMU has
        measured its scale)."""
        metric = self._imu.metric
        return metric if metric is not None else self._mode != "mono"

    def keyframes(self) -> list[Keyframe]:
        """The keyframes currently in the local window, oldest first."""
        return self._maps.keyframes()

    def keyframes_after(self, keyframe_id: int) -> list[Keyframe]:
        """The keyframes made after ``keyframe_id``, oldest first, as last stored."""
        return self._maps.keyframes_after(keyframe_id)

    def apply_optimized(self, poses: OptimizedPoses) -> None:
        """Take the back end's corrected keyframe poses (and merged maps): every keyframe of
        the atlas moves, and the window follows its newest corrected keyframe."""
        self._follow(self._maps.apply_optimized(poses))

    def reanchor(self, keyframe_id: int, corrected_world_from_cam: np.ndarray) -> bool:
        """Move the local map so that ``keyframe_id`` sits at its corrected pose: the live
        pose follows the corrected keyframe instead of jumping back to the drifted frame.
        False if the keyframe left the window."""
        return self._follow(self._maps.reanchor(keyframe_id, corrected_world_from_cam))

    def _follow(self, correction: np.ndarray | None) -> bool:
        """The motion model and the IMU moved with the window by ``correction``."""
        if correction is None:
            return False
        self._motion.transform(correction)
        self._imu.transform(correction)
        return True

    def _lost_too_long(self, stamp_ns: int) -> bool:
        if self._state != TrackingState.LOST or self._lost_since_ns is None:
            return False
        lost_s = (stamp_ns - self._lost_since_ns) * 1e-9
        return lost_s > self._config.relocalization.new_map_after_s

    def _leave_map(self) -> None:
        """Give up the map tracking was lost in (it stays in the atlas): the next frames
        relocalise in any map or start a new one."""
        self._maps.leave()
        self._start.reset()
        self._motion.reset()
        self._imu.reset()
        self._state = TrackingState.INITIALIZING
        self._lost_since_ns = None
        self._frames_since_keyframe = 0
        self._last_inliers = 0

    def _restart(self, captured: FrameInput) -> tuple[Outcome, FrameInput]:
        """A frame with no window: placed in a map of the atlas if it recognises one, else the
        start of a new map (the first map of a run starts directly); and the input it was
        placed by."""
        rate = self._motion.rate_at(captured.frame)
        if len(self._maps.atlas):
            inp = to_global_shutter(captured, rate)
            found = self._relocalize(inp)
            if found.state == TrackingState.OK:
                return found, inp
            self._maps.begin_new()
        outcome, inp = self._start(captured, rate)
        self._maps.started(outcome.keyframe)
        if outcome.keyframe is not None:
            self._imu.map_started(inp)
        return outcome, inp

    def _track(self, captured: FrameInput) -> tuple[Outcome, FrameInput]:
        """The frame tracked in the window, and the (global-shutter) input it was tracked on."""
        cfg, frame, window = self._config, captured.frame, self._maps.window
        reference = window.reference
        prediction = self._motion.predict(frame.stamp_ns)
        # without a velocity the motion model's translation is a guess (no motion): the IMU
        # then predicts nothing rather than a pose that stood still
        inertial = self._imu.predict(prediction if self._motion.has_velocity else None)
        anchors = window.anchors()
        rate = self._motion.rate_at(frame)
        inp = to_global_shutter(captured, rate)
        search_first = not cfg.match_every_frame and (
            self._motion.has_velocity or inertial is not None
        )
        prediction = inertial if inertial is not None else prediction
        attempt, solved = solve_in_window(
            window, inp, prediction, anchors, self._matcher, cfg,
            search_first=search_first, last_inliers=self._last_inliers,
        )  # fmt: skip
        if isinstance(solved, FrameIssue):
            return self._lose(attempt, solved), inp
        solved_rate = None
        if gyro_rate_cam(frame) is None:
            pose = invert_pose(solved.estimate.cam_from_world)
            solved_rate = self._motion.rate_to(frame.stamp_ns, pose)
        fit, inp = resolve_shutter(
            window, captured, inp, solved, anchors, cfg, rate=rate, solved_rate=solved_rate
        )
        world_from_cam = invert_pose(fit.estimate.cam_from_world)
        if (
            prediction is not None
            and self._motion.is_recent(frame.stamp_ns, cfg.motion.max_gap_s)
            and strays_from_prediction(inp, prediction, world_from_cam, fit, cfg)
        ):
            return self._lose(attempt, FrameIssue.MOTION_GATE), inp
        return self._accept(inp, fit, world_from_cam, attempt, reference), inp

    def _relocalize(self, inp: FrameInput) -> Outcome:
        window = self._maps.window
        found = relocalize(window, inp, self._matcher, self._config, self._maps.atlas)
        if found.lmap is None or found.keyframe is None or found.fit is None:
            return Outcome(TrackingState.LOST, found.attempt, issue=FrameIssue.NOT_RELOCALIZED)
        if found.lmap is not window:  # recognised outside the window: resume there
            self._maps.use(found.lmap, found.keyframe.keyframe.map_id)
        # resume with that keyframe as the reference
        self._maps.window.keyframes.remove(found.keyframe)
        self._maps.window.keyframes.append(found.keyframe)
        self._motion.reset()
        world_from_cam = invert_pose(found.fit.estimate.cam_from_world)
        return self._accept(inp, found.fit, world_from_cam, found.attempt, found.keyframe)

    def _lose(self, attempt: MatchAttempt, issue: FrameIssue) -> Outcome:
        self._motion.stop()
        return Outcome(TrackingState.LOST, attempt, issue=issue)

    def _accept(
        self,
        inp: FrameInput,
        fit: PoseFit,
        world_from_cam: np.ndarray,
        attempt: MatchAttempt,
        reference: MapKeyframe,
    ) -> Outcome:
        self._frames_since_keyframe += 1
        keyframe = self._maps.extend(
            inp, world_from_cam, fit, reference, frames_since_keyframe=self._frames_since_keyframe
        )
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        self._last_inliers = fit.num_inliers
        return Outcome(TrackingState.OK, attempt, world_from_cam, fit, keyframe)


def _track_result(
    inp: FrameInput, outcome: Outcome, lmap: LocalMap, map_id: int, config: TrackerConfig
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
