"""The Rerun viewer sink: keypoints, matches, trajectories, keyframes, map and plots.

``RerunSink(recording, config)`` logs to an ``rr.RecordingStream`` (see
:mod:`slamfront.sinks.rerun_session` for opening one); the pipeline runs it behind a
``QueuedSink`` so a slow viewer drops viewer frames and never stalls tracking.

Entity tree (timelines ``frame`` = ``Frame.index`` and ``sensor_time`` = ``stamp_ns``, as a
timestamp when the stamps are epoch times after 2000, else as a duration)::

    world                        ViewCoordinates RDF (static)
    world/cam                    Transform3D world_from_cam (tracked frames) + Pinhole (static)
    world/cam/image              the current image (resized by rerun.image_scale, JPEG when
                                 rerun.jpeg_quality is set)
    world/cam/image/keypoints    Points2D; class 1 "tracked" (a landmark the pose was
                                 solved on, green), class 2 "new" (orange)
    world/trajectory/raw/<c>     LineStrips3D of tracker positions, 256 poses per chunk <c>
                                 (a lost stretch breaks the strip)
    world/trajectory/optimized   LineStrips3D through the keyframes after each optimisation
    world/keyframes/<id>         Transform3D (raw, then optimised) + Pinhole frustum (static)
    world/map/points/<id>        Transform3D (as the keyframe) + Points3D: that keyframe's
                                 3-D keypoints in its camera frame, coloured from its image
    world/loops                  LineStrips3D, one segment per loop (needs
                                 ``OptimizedPoses.loop_edges``; absent until the back end
                                 provides it)
    matches                      side-by-side image: reference keyframe | current frame
    matches/lines                LineStrips2D, one per match (the rerun.max_match_lines
                                 highest-scoring ones); on a frame tracked without the
                                 matcher (motion model), one per landmark the pose was
                                 solved on that the keyframe observes (evenly thinned)
    plot/latency_ms              Scalars: read, extract, match, pose, total
    plot/tracking                Scalars: features, matches, inliers
    plot/state                   Scalars: 1 ok, 0 initialising, -1 lost
    status                       TextLog: the state, why a frame has no pose (FrameIssue) and
                                 the map, one line whenever one of them changes
    plot/reprojection_rmse_px    Scalars (tracked frames)
    plot/matcher/layers_run      Scalars (iterative matchers)
    plot/matcher/points_kept     Scalars: points still active after the last layer run
    plot/fps                     Scalars: frames per second seen by the viewer thread
    plot/backend/loops           Scalars: loops in the pose graph (per optimisation)

Keypoints are undistorted pinhole pixels; on a distorted camera they are mapped back onto
the raw image before drawing. Map points get their colours and the matches view its left
image from the keyframe's own frame (``on_result`` with ``is_keyframe``); when the queue
dropped that frame the points are grey and the matches view waits for the next keyframe.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from slamfront.config import RerunConfig
from slamfront.geometry import distort_points
from slamfront.ids import rows_in
from slamfront.types import (
    CameraModel,
    Frame,
    FrameIssue,
    Keyframe,
    OptimizedPoses,
    TrackingState,
    TrackResult,
)

log = logging.getLogger(__name__)

TRAJECTORY_CHUNK = 256
"""Poses per ``world/trajectory/raw/<c>`` entity (each frame re-logs only its chunk)."""
LATENCY_SERIES = ("read", "extract", "match", "pose", "total")
TRACKING_SERIES = ("features", "matches", "inliers")
TRACKED_CLASS = 1
NEW_CLASS = 2
_TRACKED_RGB = (40, 220, 80)
_NEW_RGB = (255, 150, 30)
_GREY_RGB = (170, 170, 170)
_KEYFRAME_RGB = (230, 60, 200)
_WITH_POSE = (TrackingState.OK, TrackingState.IMU_PROPAGATED)
GRAVITY_ARROW_M = 0.3
"""Drawn length of the gravity arrow at the camera."""
_STATE_VALUE = {
    TrackingState.OK: 1.0,
    TrackingState.IMU_PROPAGATED: 0.5,
    TrackingState.INITIALIZING: 0.0,
    TrackingState.LOST: -1.0,
}
_EPOCH_2000_NS = 946_684_800 * 10**9
_FPS_WINDOW = 30
_KEPT_KEYFRAME_IMAGES = 8
_POSE_CHANGE_M = 1e-4
_POSE_CHANGE_RAD = 1e-4
_FLUSH_TIMEOUT_S = 30.0


def keyframe_path(keyframe_id: int) -> str:
    return f"world/keyframes/{keyframe_id}"


def map_points_path(keyframe_id: int) -> str:
    return f"world/map/points/{keyframe_id}"


def raw_trajectory_path(chunk: int) -> str:
    return f"world/trajectory/raw/{chunk}"


@dataclass(frozen=True, eq=False)
class _KeyframeView:
    """What the matches view needs of a keyframe: its logged image, keypoints on it, and the
    landmark each keypoint observes (-1: none)."""

    image: np.ndarray
    keypoints_px: np.ndarray
    landmark_ids: np.ndarray


@dataclass(frozen=True, eq=False)
class _PendingKeyframe:
    """The frame of a keyframe-to-be, kept from ``on_result`` until ``on_keyframe``."""

    frame_index: int
    image: np.ndarray
    colors: np.ndarray


def default_blueprint() -> Any:
    """The viewer layout: 3-D map and plots on the left, image and matches on the right."""
    import rerun.blueprint as rrb

    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(
                rrb.Spatial3DView(origin="world", name="map"),
                rrb.Tabs(
                    rrb.TimeSeriesView(origin="plot/latency_ms", name="latency (ms)"),
                    rrb.TimeSeriesView(origin="plot/tracking", name="features / inliers"),
                    rrb.TimeSeriesView(origin="plot/matcher", name="matcher"),
                    rrb.TimeSeriesView(origin="plot/fps", name="FPS"),
                    rrb.TimeSeriesView(origin="plot/state", name="state"),
                ),
                row_shares=[3, 2],
            ),
            rrb.Vertical(
                rrb.Spatial2DView(origin="world/cam/image", name="image"),
                rrb.Spatial2DView(origin="matches", name="matches"),
            ),
            column_shares=[3, 2],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
    )


class RerunSink:
    """Logs what the pipeline produces to a Rerun recording (entity tree in the module doc).

    Not thread-safe: call it from one thread (``QueuedSink`` does). ``close()`` flushes the
    recording; whoever opened the recording closes it.
    """

    def __init__(self, recording: Any, config: RerunConfig | None = None) -> None:
        import rerun as rr

        self._rr = rr
        self._rec = recording
        self._cfg = config if config is not None else RerunConfig()
        self._camera: CameraModel | None = None
        self._time: tuple[int, int] | None = None
        self._time_as_timestamp: bool | None = None
        self._raw_strips: list[list[np.ndarray]] = []
        self._raw_chunk = 0
        self._raw_in_chunk = 0
        self._raw_broken = True
        self._last_reference_id: int | None = None
        self._last_state: TrackingState | None = None
        self._last_logged_state: TrackingState | None = None
        self._last_issue: FrameIssue | None = None
        self._pending: _PendingKeyframe | None = None
        self._views: OrderedDict[int, _KeyframeView] = OrderedDict()
        self._keyframe_poses: dict[int, np.ndarray] = {}
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=_FPS_WINDOW)
        self._log_static()

    # ------------------------------------------------------------------ Sink protocol

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        rr = self._rr
        self._set_time(result.frame_index, result.stamp_ns)
        camera = frame.camera
        if camera != self._camera:
            self._log_camera(camera)
        scale = self._image_scale(camera)
        image = self._resized(frame.image, scale)
        self._log_image("world/cam/image", image)

        features = result.features
        keypoints_raw = (
            _raw_pixels(camera, features.keypoints)
            if features is not None
            else np.zeros((0, 2), np.float64)
        )
        tracked = np.zeros(keypoints_raw.shape[0], dtype=bool)
        current = result.landmark_keypoints
        if current is None and result.matches is not None:
            current = result.matches.indices[:, 1]
        if current is not None:
            tracked[current[current < tracked.size]] = True
        self._rec.log(
            "world/cam/image/keypoints",
            rr.Points2D(
                keypoints_raw * scale,
                class_ids=np.where(tracked, TRACKED_CLASS, NEW_CLASS).astype(np.uint16),
                radii=rr.Radius.ui_points(1.5),
            ),
        )

        if result.state in _WITH_POSE and result.world_from_cam is not None:
            pose = result.world_from_cam
            self._rec.log(
                "world/cam",
                rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]),
            )
            self._extend_raw_trajectory(pose[:3, 3])
            if result.gravity_world is not None:
                self._rec.log(
                    "world/gravity",
                    rr.Arrows3D(
                        origins=[pose[:3, 3]],
                        vectors=[GRAVITY_ARROW_M * np.asarray(result.gravity_world)],
                    ),
                )
        else:
            self._raw_broken = True

        self._log_matches(result, image, keypoints_raw * scale)
        self._log_plots(result)

        if result.is_keyframe and features is not None:
            self._pending = _PendingKeyframe(
                result.frame_index, image, _colors_at(frame.image, keypoints_raw)
            )
        if result.reference_keyframe_id is not None:
            self._last_reference_id = result.reference_keyframe_id
        self._last_state = result.state

    def on_keyframe(self, keyframe: Keyframe) -> None:
        rr = self._rr
        self._set_time(keyframe.frame_index, keyframe.stamp_ns)
        kid = keyframe.keyframe_id
        camera = keyframe.camera
        self._last_reference_id = kid  # a new keyframe becomes the tracker's reference
        self._rec.log(
            keyframe_path(kid),
            rr.Pinhole(
                image_from_camera=camera.K,
                resolution=[camera.width_px, camera.height_px],
                camera_xyz=rr.ViewCoordinates.RDF,
                image_plane_distance=self._cfg.frustum_depth_m,
                color=_KEYFRAME_RGB,
            ),
            static=True,
        )
        pending = self._pending
        self._pending = None
        if pending is not None and pending.frame_index != keyframe.frame_index:
            pending = None

        points = np.asarray(keyframe.points_cam_m, dtype=np.float64).reshape(-1, 3)
        valid = np.isfinite(points).all(axis=1)
        if pending is not None and pending.colors.shape[0] == points.shape[0]:
            colors = pending.colors[valid]
        else:
            colors = np.tile(np.array(_GREY_RGB, np.uint8), (int(valid.sum()), 1))
        self._rec.log(map_points_path(kid), rr.Points3D(points[valid], colors=colors))
        self._log_keyframe_pose(kid, keyframe.world_from_cam)

        if pending is not None:
            scale = self._image_scale(camera)
            landmark_ids = keyframe.landmark_ids
            if landmark_ids is None:
                landmark_ids = np.full(len(keyframe.features), -1, np.int64)
            self._views[kid] = _KeyframeView(
                pending.image,
                _raw_pixels(camera, keyframe.features.keypoints) * scale,
                landmark_ids,
            )
            while len(self._views) > _KEPT_KEYFRAME_IMAGES:
                self._views.popitem(last=False)

    def on_optimized(self, poses: OptimizedPoses) -> None:
        rr = self._rr
        if self._time is not None:
            self._set_time(*self._time)
        ids = tuple(int(k) for k in poses.keyframe_ids)
        world_from_cam = np.asarray(poses.world_from_cam, dtype=np.float64).reshape(-1, 4, 4)
        for kid, pose in zip(ids, world_from_cam, strict=True):
            previous = self._keyframe_poses.get(kid)
            if previous is None or _pose_changed(previous, pose):
                self._log_keyframe_pose(kid, pose)
        order = np.argsort(np.array(ids, dtype=np.int64), kind="stable")
        positions = world_from_cam[order, :3, 3]
        if positions.shape[0] >= 2:
            self._rec.log("world/trajectory/optimized", rr.LineStrips3D([positions]))
        edges = tuple(getattr(poses, "loop_edges", ()) or ())
        if edges:
            where = {kid: world_from_cam[row, :3, 3] for row, kid in enumerate(ids)}
            segments = [
                np.stack([where[a], where[b]]) for a, b in edges if a in where and b in where
            ]
            if segments:
                self._rec.log("world/loops", rr.LineStrips3D(segments, colors=(255, 60, 60)))
        self._rec.log("plot/backend/loops", rr.Scalars(float(poses.num_loops)))

    def close(self) -> None:
        """Flush what was logged. A viewer or server that went away (Ctrl-C reaches the
        served viewer too) is logged as a warning, not raised: the run's own outputs matter
        more than the last viewer frames."""
        try:
            self._rec.flush(timeout_sec=_FLUSH_TIMEOUT_S)
        except Exception as exc:
            log.warning("rerun: flushing the recording failed: %s", exc)

    # ------------------------------------------------------------------ internals

    def _log_static(self) -> None:
        rr = self._rr
        rec = self._rec
        rec.log("world", rr.ViewCoordinates.RDF, static=True)
        rec.log(
            "world/cam/image/keypoints",
            rr.AnnotationContext(
                [(TRACKED_CLASS, "tracked", _TRACKED_RGB), (NEW_CLASS, "new", _NEW_RGB)]
            ),
            static=True,
        )
        rec.log("plot/latency_ms", rr.SeriesLines(names=list(LATENCY_SERIES)), static=True)
        rec.log("plot/tracking", rr.SeriesLines(names=list(TRACKING_SERIES)), static=True)
        rec.log("plot/state", rr.SeriesLines(names=["state (1 ok, 0 init, -1 lost)"]), static=True)

    def _set_time(self, frame_index: int, stamp_ns: int) -> None:
        self._time = (frame_index, stamp_ns)
        self._rec.set_time("frame", sequence=frame_index)
        if self._time_as_timestamp is None:
            self._time_as_timestamp = stamp_ns >= _EPOCH_2000_NS
        if self._time_as_timestamp:
            self._rec.set_time("sensor_time", timestamp=np.datetime64(stamp_ns, "ns"))
        else:
            self._rec.set_time("sensor_time", duration=np.timedelta64(stamp_ns, "ns"))

    def _image_scale(self, camera: CameraModel) -> float:
        """The factor actually applied: image sizes are rounded to whole pixels."""
        return _scaled_size(camera.width_px, self._cfg.image_scale) / camera.width_px

    def _log_camera(self, camera: CameraModel) -> None:
        rr = self._rr
        self._camera = camera
        s = self._image_scale(camera)
        k = camera.K.copy()
        k[:2] *= s
        self._rec.log(
            "world/cam",
            rr.Pinhole(
                image_from_camera=k,
                resolution=[
                    _scaled_size(camera.width_px, self._cfg.image_scale),
                    _scaled_size(camera.height_px, self._cfg.image_scale),
                ],
                camera_xyz=rr.ViewCoordinates.RDF,
                image_plane_distance=self._cfg.frustum_depth_m,
            ),
            static=True,
        )

    def _resized(self, image: np.ndarray, scale: float) -> np.ndarray:
        if scale == 1.0:
            return image
        import cv2

        h, w = image.shape[:2]
        size = (_scaled_size(w, self._cfg.image_scale), _scaled_size(h, self._cfg.image_scale))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def _log_image(self, path: str, image: np.ndarray) -> None:
        rr = self._rr
        quality = self._cfg.jpeg_quality
        if quality is None:
            self._rec.log(path, rr.Image(image))
            return
        import cv2

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            self._rec.log(path, rr.Image(image))
            return
        self._rec.log(path, rr.EncodedImage(contents=data.tobytes(), media_type="image/jpeg"))

    def _extend_raw_trajectory(self, position: np.ndarray) -> None:
        if self._raw_in_chunk >= TRAJECTORY_CHUNK:
            last = self._raw_strips[-1][-1] if self._raw_strips else None
            self._raw_chunk += 1
            self._raw_in_chunk = 0
            self._raw_strips = [[last]] if last is not None and not self._raw_broken else []
        if self._raw_broken or not self._raw_strips:
            self._raw_strips.append([])
            self._raw_broken = False
        self._raw_strips[-1].append(np.array(position, dtype=np.float64))
        self._raw_in_chunk += 1
        strips = [np.stack(s) for s in self._raw_strips]
        self._rec.log(
            raw_trajectory_path(self._raw_chunk),
            self._rr.LineStrips3D(strips, colors=(255, 210, 60)),
        )

    def _log_keyframe_pose(self, keyframe_id: int, world_from_cam: np.ndarray) -> None:
        rr = self._rr
        pose = np.array(world_from_cam, dtype=np.float64)
        self._keyframe_poses[keyframe_id] = pose
        transform = rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3])
        self._rec.log(keyframe_path(keyframe_id), transform)
        self._rec.log(map_points_path(keyframe_id), transform)

    def _matched_reference(self, result: TrackResult) -> int | None:
        """The keyframe ``result.matches`` refer to. After a step that made a keyframe, or
        one that lost tracking, ``reference_keyframe_id`` no longer names it: then it is the
        reference of the previous frame."""
        if not result.is_keyframe and result.reference_keyframe_id is not None:
            return result.reference_keyframe_id
        return self._last_reference_id

    def _log_matches(self, result: TrackResult, image: np.ndarray, keypoints: np.ndarray) -> None:
        rr = self._rr
        matches = result.matches
        if result.state != TrackingState.OK and self._last_state == TrackingState.LOST:
            return  # relocalisation tries several keyframes: which one is not recorded
        reference = self._matched_reference(result)
        view = self._views.get(reference) if reference is not None else None
        if view is None:
            return
        limit = self._cfg.max_match_lines
        if matches is not None:
            idx = matches.indices
            ok = (idx[:, 0] < view.keypoints_px.shape[0]) & (idx[:, 1] < keypoints.shape[0])
            idx = idx[ok]
            if idx.shape[0] > limit:
                best = np.argsort(-matches.scores[ok], kind="stable")[:limit]
                idx = idx[np.sort(best)]
        elif result.landmark_ids is not None and result.landmark_keypoints is not None:
            idx = _landmark_pairs(view.landmark_ids, result.landmark_ids, result.landmark_keypoints)
            idx = idx[idx[:, 1] < keypoints.shape[0]]
            if idx.shape[0] > limit:
                idx = idx[np.linspace(0, idx.shape[0] - 1, limit).astype(np.int64)]
        else:
            return
        left, right = _as_rgb(view.image), _as_rgb(image)
        height = max(left.shape[0], right.shape[0])
        canvas = np.zeros((height, left.shape[1] + right.shape[1], 3), np.uint8)
        canvas[: left.shape[0], : left.shape[1]] = left
        canvas[: right.shape[0], left.shape[1] :] = right
        self._log_image("matches", canvas)
        shifted = keypoints[idx[:, 1]] + np.array([left.shape[1], 0.0])
        segments = np.stack([view.keypoints_px[idx[:, 0]], shifted], axis=1)
        self._rec.log(
            "matches/lines",
            rr.LineStrips2D(
                segments, colors=_line_colors(idx.shape[0]), radii=rr.Radius.ui_points(0.75)
            ),
        )

    def _log_plots(self, result: TrackResult) -> None:
        rr = self._rr
        rec = self._rec
        t = result.timings
        latency = (t.read_ms, t.extract_ms, t.match_ms, t.pose_ms, t.total_ms)
        rec.log("plot/latency_ms", rr.Scalars(np.array(latency, dtype=np.float64)))
        counts = (result.num_features, result.num_matches, result.num_inliers)
        rec.log("plot/tracking", rr.Scalars(np.array(counts, dtype=np.float64)))
        rec.log("plot/state", rr.Scalars(_STATE_VALUE[result.state]))
        if result.state != self._last_logged_state or result.issue != self._last_issue:
            # a line per change of state or cause, not per frame
            cause = f" ({result.issue.value})" if result.issue is not None else ""
            text = f"{result.state.value}{cause}, map {result.map_id}"
            level = "INFO" if result.state == TrackingState.OK else "WARN"
            rec.log("status", rr.TextLog(text, level=level))
            self._last_logged_state, self._last_issue = result.state, result.issue
        if result.state == TrackingState.OK and math.isfinite(result.reprojection_rmse_px):
            rec.log("plot/reprojection_rmse_px", rr.Scalars(result.reprojection_rmse_px))
        matches = result.matches
        if matches is not None and matches.layers_run > 0:
            rec.log("plot/matcher/layers_run", rr.Scalars(float(matches.layers_run)))
        if matches is not None and matches.points_kept:
            rec.log("plot/matcher/points_kept", rr.Scalars(float(matches.points_kept[-1])))
        now = time.perf_counter()
        self._arrivals.append((now, result.frame_index))
        first_t, first_index = self._arrivals[0]
        if len(self._arrivals) >= 2 and now > first_t:
            fps = (result.frame_index - first_index) / (now - first_t)
            rec.log("plot/fps", rr.Scalars(fps))


def _scaled_size(size_px: int, scale: float) -> int:
    return max(1, round(size_px * scale))


def _raw_pixels(camera: CameraModel, keypoints: np.ndarray) -> np.ndarray:
    """Pinhole keypoints -> pixels of the raw (possibly distorted) image, float64 (N, 2)."""
    pixels = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    return distort_points(camera, pixels) if camera.is_distorted else pixels


def _colors_at(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours of ``image`` at the nearest pixels (grey replicated)."""
    h, w = image.shape[:2]
    if pixels.shape[0] == 0:
        return np.zeros((0, 3), np.uint8)
    col = np.clip(np.rint(pixels[:, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.rint(pixels[:, 1]).astype(np.int64), 0, h - 1)
    values = image[row, col]
    if values.ndim == 1:
        values = np.repeat(values[:, None], 3, axis=1)
    return np.ascontiguousarray(values[:, :3], dtype=np.uint8)


def _line_colors(count: int) -> np.ndarray:
    """(count, 3) uint8 bright colours of well-spread hues, so crossing lines stay apart."""
    hue = (np.arange(count) * 0.618034) % 1.0 * 6.0
    sector = np.floor(hue).astype(np.int64)
    frac = hue - sector
    rising, falling = frac, 1.0 - frac
    one, zero = np.ones(count), np.zeros(count)
    table = np.stack(
        [
            np.stack([one, rising, zero], 1),
            np.stack([falling, one, zero], 1),
            np.stack([zero, one, rising], 1),
            np.stack([zero, falling, one], 1),
            np.stack([rising, zero, one], 1),
            np.stack([one, zero, falling], 1),
        ]
    )
    rgb = table[sector % 6, np.arange(count)]
    return (55 + 200 * rgb).astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def _pose_changed(a: np.ndarray, b: np.ndarray) -> bool:
    if float(np.linalg.norm(a[:3, 3] - b[:3, 3])) > _POSE_CHANGE_M:
        return True
    cos = (float(np.trace(a[:3, :3].T @ b[:3, :3])) - 1.0) / 2.0
    return math.acos(max(-1.0, min(1.0, cos))) > _POSE_CHANGE_RAD


def _landmark_pairs(
    keyframe_landmarks: np.ndarray, landmark_ids: np.ndarray, keypoints: np.ndarray
) -> np.ndarray:
    """(P, 2) int64 (keyframe keypoint, current keypoint) of every landmark in
    ``landmark_ids`` (found at ``keypoints``) that the keyframe observes."""
    observed = np.flatnonzero(keyframe_landmarks >= 0)
    order = np.argsort(keyframe_landmarks[observed])
    rows = rows_in(keyframe_landmarks[observed][order], landmark_ids)
    found = rows >= 0
    return np.stack([observed[order][rows[found]], keypoints[found]], axis=1).astype(np.int64)
