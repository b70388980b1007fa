"""The start of a map: its first keyframe from measured depth (in a saved map's frame when
that map recognises the view), or its first two from a monocular two-view start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.base import Matcher
from slamfront.frontend.depth import KeypointDepth, keypoint_depth
from slamfront.frontend.keyframe_match import estimate_pose, match_keyframe
from slamfront.frontend.local_map import LocalMap
from slamfront.frontend.mapping import KeyframeMapper, refresh_keyframe
from slamfront.frontend.mono_init import MonoInitializer
from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam
from slamfront.frontend.records import Correspondences, FrameInput, Outcome
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import invert_pose, so3_log
from slamfront.types import CameraModel, Features, FrameIssue, MapPlacement, TrackingState

Localizer = Callable[[Features, CameraModel], MapPlacement | None]


class MapStart:
    """Starts maps into the tracker's ``mapper`` and ``motion`` model; remembers the frames a
    start is waiting on."""

    def __init__(
        self,
        config: TrackerConfig,
        matcher: Matcher,
        mapper: KeyframeMapper,
        motion: MotionModel,
        localize: Localizer | None = None,
    ) -> None:
        """``localize`` places a first frame in a saved map (None while it cannot): the map
        then continues in that map's frame instead of starting at the first camera."""
        self._config = config
        self._matcher = matcher
        self._mapper = mapper
        self._motion = motion
        self._localize = localize
        self._mono_init = MonoInitializer(config, matcher)
        self._waiting: FrameInput | None = None  # a rolling-shutter start's first frame
        self._unplaced_since_ns: int | None = None  # first frame the saved map did not place

    def reset(self) -> None:
        """Forget the frames a start was waiting on (the tracker left its map)."""
        self._mono_init = MonoInitializer(self._config, self._matcher)
        self._waiting = None

    def __call__(self, captured: FrameInput, rate: np.ndarray) -> tuple[Outcome, FrameInput]:
        """The start tried on ``captured`` (whose camera turns at ``rate``), and the
        global-shutter input it was tried on."""
        if captured.mono:
            inp = to_global_shutter(captured, rate)
            return self._two_view(inp), inp
        return self._metric(captured, rate)

    def _metric(self, captured: FrameInput, rate: np.ndarray) -> tuple[Outcome, FrameInput]:
        """A metric start. Its keyframe anchors the map, so a rolling shutter without a gyro
        first needs the rate the camera turns at: the first frame waits, and the next one
        starts the map, corrected by its motion since the first."""
        frame = captured.frame
        first = first_from_cam = None
        if frame.camera.readout_s > 0.0 and gyro_rate_cam(frame) is None:
            first, self._waiting = self._waiting, captured
            if first is not None:
                first_from_cam = self._probe(first, captured)
            if first is None or first_from_cam is None:
                return Outcome(TrackingState.INITIALIZING, issue=FrameIssue.SHUTTER_RATE), captured
            dt = (frame.stamp_ns - first.frame.stamp_ns) * 1e-9
            rate = so3_log(first_from_cam[:3, :3]) / max(dt, 1e-3)
        inp = to_global_shutter(captured, rate)
        outcome = self._first_keyframe(inp)
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
        depth = keypoint_depth(first.frame, first.features, first.mode, first.grey, cfg)
        if int(depth.valid.sum()) < cfg.min_map_points:
            return None
        lmap = LocalMap(1)
        mapper = KeyframeMapper(cfg)
        mapper.use(lmap, 0)
        entry = mapper.insert(
            first.frame, first.features, np.eye(4), depth, Correspondences.empty(), first.grey
        )
        _, corr = match_keyframe(lmap, entry, second, self._matcher, cfg)
        estimate = estimate_pose(corr, second.camera, cfg)
        if estimate is None or estimate.num_inliers < cfg.min_inliers:
            return None
        return invert_pose(estimate.cam_from_world)

    def _first_keyframe(self, inp: FrameInput) -> Outcome:
        """The first keyframe of a metric rig, its landmarks from measured depth."""
        world_from_cam = np.eye(4)
        found = None
        if self._localize is not None:
            found = self._localize(inp.features, inp.camera)
            if found is not None:
                world_from_cam = found.world_from_cam
                self._mapper.use(self._mapper.lmap, found.map_id)
            elif not self._waited_too_long(inp.frame.stamp_ns):
                # not yet recognised in the saved map: no pose (for a while; then a map of
                # its own, which a loop may later join to the saved one)
                return Outcome(TrackingState.INITIALIZING, issue=FrameIssue.NOT_IN_MAP)
        depth = keypoint_depth(inp.frame, inp.features, inp.mode, inp.grey, self._config)
        if int(depth.valid.sum()) < self._config.min_map_points:
            return Outcome(TrackingState.INITIALIZING, issue=FrameIssue.NO_DEPTH)
        entry = self._mapper.insert(
            inp.frame, inp.features, world_from_cam, depth, Correspondences.empty(), inp.grey
        )
        if found is not None and found.keyframe_id is not None:
            # the back end ties the keyframe to the saved one that placed it
            entry.keyframe = replace(
                entry.keyframe,
                reference_keyframe_id=found.keyframe_id,
                reference_from_cam=found.keyframe_from_cam,
                reference_information=found.information,
            )
        self._unplaced_since_ns = None
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        return Outcome(TrackingState.OK, world_from_cam=world_from_cam, keyframe=entry.keyframe)

    def _waited_too_long(self, stamp_ns: int) -> bool:
        """Whether the saved map has failed to place the frames for longer than
        ``relocalization.new_map_after_s``."""
        if self._unplaced_since_ns is None:
            self._unplaced_since_ns = stamp_ns
        waited_s = (stamp_ns - self._unplaced_since_ns) * 1e-9
        return waited_s > self._config.relocalization.new_map_after_s

    def _two_view(self, inp: FrameInput) -> Outcome:
        """The first two keyframes of a monocular map, from a two-view start."""
        tried = self._mono_init(inp)
        start = tried.start
        if start is None:
            return Outcome(
                TrackingState.INITIALIZING, tried.attempt, issue=FrameIssue.MONO_PARALLAX
            )
        mapper, lmap = self._mapper, self._mapper.lmap
        ref_features = start.reference_features
        reference = mapper.insert(
            start.reference_frame,
            ref_features,
            np.eye(4),
            KeypointDepth.none(len(ref_features)),
            Correspondences.empty(),
            start.reference_grey,
        )
        ids = lmap.add_landmarks(
            start.points_world, ref_features.descriptors[start.reference_index]
        )
        reference.landmark_ids[start.reference_index] = ids
        refresh_keyframe(lmap, reference)
        world_from_cam = invert_pose(start.cam1_from_cam0)
        corr = Correspondences(
            start.current_index, ids, start.points_world, start.current_px, start.current_aligned
        )
        entry = mapper.insert(
            inp.frame,
            inp.features,
            world_from_cam,
            KeypointDepth.none(len(inp.features)),
            corr,
            inp.grey,
        )
        self._motion.update(start.reference_frame.stamp_ns, np.eye(4))
        self._motion.update(inp.frame.stamp_ns, world_from_cam)
        return Outcome(TrackingState.OK, tried.attempt, world_from_cam, keyframe=entry.keyframe)
