"""Wires source -> extractor -> matcher -> tracker -> sinks. Threads and queues live here only.

``Pipeline.step(frame)`` is the synchronous form. ``Pipeline.run(frames)`` overlaps work on
both cores: a reader thread pulls frame t+1 from the source and extracts its features while
the caller's thread matches and tracks frame t (numpy, OpenCV, torch and ONNX Runtime release
the GIL); with ``pipeline.read_thread`` a third thread reads frame t+2 meanwhile. The queues
between them are bounded, so memory stays flat when the tracker is the slower side.

On ONNX Runtime with ``extractor.threads: 0`` the reader thread holds two sessions of the
same graph (identical outputs): one thread while the tracker has frames waiting (it is the
bottleneck and keeps its core), every core when the tracker has nothing queued and would
otherwise wait for extraction. Likewise the tracker's matcher runs on every core while the
reader thread is blocked on a full queue (its core is free), on one otherwise. Right images
of a stereo rig are never extracted: keyframes search their rows for the left keypoints.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from slamfront.backend.back_end import BackEnd
from slamfront.backend.frame_refit import TrackedFrame, TrackedFrames
from slamfront.backend.map_session import MapLocalizer, map_records
from slamfront.backend.map_store import SavedMap, save_map
from slamfront.backend.map_store import load_map as read_map
from slamfront.backend.vocabulary import Vocabulary, load_vocabulary
from slamfront.config import Config, ExtractorConfig, dump_config
from slamfront.errors import ConfigError, MapFileError, SlamfrontError
from slamfront.frontend.base import Extractor, Matcher
from slamfront.frontend.extractors import build_extractor
from slamfront.frontend.keyframe_imu import KeyframeImuLinks
from slamfront.frontend.matchers import build_matcher
from slamfront.frontend.runtime.availability import pick_runtime
from slamfront.frontend.tracker import Tracker, sensing_mode
from slamfront.sinks import Sink
from slamfront.sinks.trajectory import TrajectorySink
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    Keyframe,
    MapPlacement,
    Matches,
    OptimizedPoses,
    StageTimings,
    TrackingState,
    TrackResult,
    Trajectory,
)

log = logging.getLogger(__name__)

_STAGES = ("read_ms", "extract_ms", "match_ms", "pose_ms", "backend_ms", "sinks_ms")


@dataclass(frozen=True)
class RunStats:
    """What a run did. Latencies are over processed frames, milliseconds."""

    frames_read: int
    frames_skipped: int
    frames_tracked: int
    frames_lost: int
    frames_initializing: int
    keyframes: int
    wall_s: float
    fps: float
    median_ms: StageTimings
    p90_ms: StageTimings
    max_ms: StageTimings = field(default_factory=StageTimings)
    frame_median_ms: float = 0.0
    """Frame time: the interval between consecutive results (median, p90, max)."""
    frame_p90_ms: float = 0.0
    frame_max_ms: float = 0.0
    viewer_frames_dropped: int = 0
    loops_closed: int = 0
    notes: tuple[str, ...] = ()
    frames_lost_by_cause: dict[str, int] = field(default_factory=dict)
    """Frames without a pose after tracking had started, by ``FrameIssue`` value."""
    frames_initializing_by_cause: dict[str, int] = field(default_factory=dict)
    """Frames without a pose before a map was started, by ``FrameIssue`` value."""
    maps_made: int = 1
    """Maps started (a run starts another when it stays lost)."""
    maps_merged: int = 0
    """Maps joined into an older one (a loop closure connected them)."""
    poses_per_map: dict[int, int] = field(default_factory=dict)
    """Frames with a pose in each final map (after merges), by map id."""
    final_map_id: int = 0
    """The map the run ended in: ``trajectory.tum`` holds its poses."""
    mode: str = ""
    """The mode the tracker ran in (rgbd, stereo, mono; "" before any frame)."""
    stopped_early: bool = False
    """The run was stopped (a signal, a ``stop`` event) before the source ended."""
    map_saved_to: str = ""
    """Where the map was saved (``--save-map``), "" when not saved."""
    frames_imu_propagated: int = 0
    """Frames vision lost whose pose the IMU propagated (not in ``frames_tracked``)."""

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["poses_per_map"] = {str(k): v for k, v in self.poses_per_map.items()}
        return out


@dataclass(frozen=True)
class Progress:
    """Periodic progress of a run, for a progress line."""

    frames: int
    total: int | None
    fps: float
    state: TrackingState
    frames_lost: int


@dataclass(frozen=True, eq=False)
class _Extracted:
    """A frame and its features, handed from the reader thread to the tracking thread."""

    frame: Frame
    features: Features
    read_ms: float
    extract_ms: float


@dataclass
class _Counters:
    read: int = 0
    tracked: int = 0
    lost: int = 0
    imu_propagated: int = 0
    initializing: int = 0
    keyframes: int = 0
    timings: list[tuple[float, ...]] = field(default_factory=list)
    result_times_s: list[float] = field(default_factory=list)
    lost_by_cause: Counter[str] = field(default_factory=Counter)
    initializing_by_cause: Counter[str] = field(default_factory=Counter)
    poses_per_map: Counter[int] = field(default_factory=Counter)
    last_map_id: int = 0
    mode: str = ""
    map_ids: set[int] = field(default_factory=set)  # the maps this run's keyframes started in


class Pipeline:
    """The whole front end for one rig. Owns the stages; nothing holds a reference back."""

    def __init__(
        self,
        config: Config,
        *,
        sinks: Sequence[Sink] = (),
        extractor: Extractor | None = None,
        matcher: Matcher | None = None,
        prior_map: SavedMap | None = None,
        wide_extractor: Extractor | None = None,
        wide_matcher: Matcher | None = None,
    ) -> None:
        """``prior_map``: a saved map to start in. The tracker first localises in it, so
        the run is expressed in that map's frame; its keyframes join the back end.
        ``wide_extractor``: the same extractor on every core, used by :meth:`run` while the
        tracker has no frame waiting (built from the config when ``extractor`` is not given;
        see :func:`build_wide_extractor`); ``wide_matcher`` likewise, used by the tracker while
        the reader thread waits (:func:`build_wide_matcher`)."""
        self.config = config
        # built on the first run (step alone never needs it)
        self._wide_pending = extractor is None and wide_extractor is None
        self._wide_matcher_pending = matcher is None and wide_matcher is None
        self._extractor = extractor if extractor is not None else build_extractor(config.extractor)
        self._wide_extractor = wide_extractor
        self._matcher = (
            matcher
            if matcher is not None
            else build_matcher(config.matcher, extractor_model=config.extractor.model)
        )
        # set while the reader thread is blocked on a full queue: its core is free
        self._reader_waits = threading.Event()
        self._tracker_matcher = _WideWhenIdle(self._matcher, wide_matcher, self._reader_waits)
        self._prior_map = prior_map
        localize = None
        first_keyframe_id = first_map_id = 0
        if prior_map is not None:
            localize = self._map_localizer(prior_map)
            first_keyframe_id = 1 + max((kf.keyframe_id for kf in prior_map.keyframes), default=-1)
            first_map_id = 1 + max((kf.map_id for kf in prior_map.keyframes), default=-1)
        self._tracker = Tracker(
            config.tracker,
            self._extractor,
            self._tracker_matcher,
            localize=localize,
            first_keyframe_id=first_keyframe_id,
            vocabulary=_place_vocabulary(config),
            first_map_id=first_map_id,
        )
        self._final_poses: OptimizedPoses | None = None
        self._back_end: _BackEndThread | None = None
        # what the back end's finish needs to give every tracked frame its final pose
        self._tracked_frames = TrackedFrames() if config.backend.enabled else None
        self._last_keyframe_id = -1
        self._imu_links = KeyframeImuLinks(config.tracker.imu)
        self._sinks = list(sinks)
        self._counters = _Counters()
        self._start = time.perf_counter()
        self._first_step: float | None = None
        self._closed = False
        self._mono = False
        self._depth_watch = _DepthWatch()
        # monocular: every pose given out, with its map's scale then (the IMU may correct the
        # scale later: the final trajectory takes the correction), and the poses held back
        # while the map waited for its scale (at its first scale, 1)
        self._mono_poses: list[tuple[int, np.ndarray, int, float]] = []
        self._stopped = False
        self._back_end_failure = ""

    # ------------------------------------------------------------------ public

    def step(self, frame: Frame, features: Features | None = None) -> TrackResult:
        """Track one frame (extracting its features unless given) and feed the sinks."""
        if self._first_step is None:
            self._first_step = time.perf_counter()
        result = self._tracker.step(frame, features)
        return self._after_tracking(frame, result)

    def run(
        self, frames: Iterable[Frame], stop: threading.Event | None = None
    ) -> Iterator[TrackResult]:
        """Track every frame: a reader thread extracts the features of frame t+1 (reading it
        too, unless ``pipeline.read_thread`` gives the source a thread of its own) while frame
        t is tracked here. Exceptions of the source or the extractor are re-raised here,
        after the frames read before them were tracked."""
        stop = stop if stop is not None else threading.Event()
        read_thread = self.config.pipeline.read_thread
        read: queue.Queue[object] = queue.Queue(maxsize=READ_QUEUE_SIZE)
        items: queue.Queue[object] = queue.Queue(maxsize=self.config.pipeline.queue_size)

        def timed(iterator: Iterator[Frame]) -> Iterator[tuple[Frame, float]]:
            while True:
                t0 = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    return
                yield frame, (time.perf_counter() - t0) * 1e3

        def queued() -> Iterator[tuple[Frame, float]]:
            while not stop.is_set():
                try:
                    got = read.get(timeout=0.1)
                except queue.Empty:
                    continue
                if got is None:
                    return
                if isinstance(got, BaseException):
                    raise got
                assert isinstance(got, tuple)
                yield got

        def read_frames() -> None:
            try:
                for got in timed(iter(frames)):
                    if stop.is_set():
                        return
                    _put(read, got, stop)
            except BaseException as exc:  # handed on to the consumer, which re-raises it
                _put(read, exc, stop)
                return
            _put(read, None, stop)

        if self._wide_pending:
            self._wide_pending = False
            self._wide_extractor = build_wide_extractor(self.config.extractor)
        if self._wide_matcher_pending:
            self._wide_matcher_pending = False
            self._tracker_matcher.wide = build_wide_matcher(self.config)
        reader_waits = self._reader_waits
        reader_waits.clear()

        def extract() -> None:
            wide = self._wide_extractor
            try:
                for frame, read_ms in queued() if read_thread else timed(iter(frames)):
                    if stop.is_set():
                        return
                    # every core only while the tracker has nothing queued (it would wait)
                    waiting = items.empty()
                    extractor = wide if wide is not None and waiting else self._extractor
                    t0 = time.perf_counter()
                    features = extractor(frame.image)
                    extract_ms = (time.perf_counter() - t0) * 1e3
                    if items.full():
                        reader_waits.set()
                    _put(items, _Extracted(frame, features, read_ms, extract_ms), stop)
                    reader_waits.clear()
            except BaseException as exc:  # handed to the consumer, which re-raises it
                _put(items, exc, stop)
                return
            _put(items, None, stop)
            reader_waits.set()  # every frame extracted: the core is the tracker's

        threads = [threading.Thread(target=extract, name="slamfront-reader", daemon=True)]
        if read_thread:
            threads.append(
                threading.Thread(target=read_frames, name="slamfront-source", daemon=True)
            )
        if self._first_step is None:
            self._first_step = time.perf_counter()
        for thread in threads:
            thread.start()
        try:
            while True:
                try:
                    item = items.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():  # stopped from outside: end after the frame tracked
                        self._stopped = True
                        break
                    continue
                if item is None:
                    break
                if stop.is_set():
                    self._stopped = True
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, _Extracted)
                result = self._tracker.step(item.frame, item.features)
                timings = replace(result.timings, read_ms=item.read_ms, extract_ms=item.extract_ms)
                yield self._after_tracking(item.frame, replace(result, timings=timings))
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def stats(self, frames_skipped: int = 0) -> RunStats:
        c = self._counters
        wall = time.perf_counter() - (self._first_step or self._start)
        timings = np.array(c.timings, dtype=np.float64).reshape(-1, len(_STAGES))
        if timings.shape[0]:
            med = StageTimings(*np.median(timings, axis=0).tolist())
            p90 = StageTimings(*np.percentile(timings, 90, axis=0).tolist())
            top = StageTimings(*timings.max(axis=0).tolist())
        else:
            med = p90 = top = StageTimings()
        frame_ms = 1e3 * np.diff(np.asarray(c.result_times_s, np.float64))
        frame = (
            (np.median(frame_ms), np.percentile(frame_ms, 90), frame_ms.max())
            if frame_ms.size
            else (0.0, 0.0, 0.0)
        )
        notes: tuple[str, ...] = ()
        if self._mono and self._tracker.metric_scale:
            notes = ("monocular-inertial: metric scale measured by the IMU",)
        elif self._mono:
            notes = ("monocular: trajectory scale is arbitrary",)
        if self._depth_watch.note is not None:
            notes = (*notes, self._depth_watch.note)
        if self._back_end_failure:
            notes = (
                *notes,
                f"the back end failed ({self._back_end_failure}): the trajectories hold the "
                "tracker's poses, not optimised ones",
            )
        final = self._final_poses
        per_map: Counter[int] = Counter()
        for map_id, count in c.poses_per_map.items():
            per_map[final.merged_map_of(map_id) if final is not None else map_id] += count
        final_map = final.merged_map_of(c.last_map_id) if final is not None else c.last_map_id
        return RunStats(
            frames_read=c.read,
            frames_skipped=frames_skipped,
            frames_tracked=c.tracked,
            frames_lost=c.lost,
            frames_initializing=c.initializing,
            keyframes=c.keyframes,
            wall_s=wall,
            fps=c.read / wall if wall > 0 else 0.0,
            median_ms=med,
            p90_ms=p90,
            max_ms=top,
            frame_median_ms=float(frame[0]),
            frame_p90_ms=float(frame[1]),
            frame_max_ms=float(frame[2]),
            loops_closed=self._back_end.num_loops if self._back_end is not None else 0,
            viewer_frames_dropped=sum(s.dropped for s in self._sinks if isinstance(s, QueuedSink)),
            notes=notes,
            frames_lost_by_cause=dict(c.lost_by_cause),
            frames_initializing_by_cause=dict(c.initializing_by_cause),
            # with a saved map the tracker also counts the saved maps: only this run's here
            maps_made=(
                self._tracker.maps_made if self._prior_map is None else max(1, len(c.map_ids))
            ),
            maps_merged=self._back_end.maps_merged if self._back_end is not None else 0,
            poses_per_map=dict(sorted(per_map.items())),
            final_map_id=final_map,
            mode=c.mode,
            stopped_early=self._stopped,
            frames_imu_propagated=c.imu_propagated,
        )

    def close(self, hurry: threading.Event | None = None) -> bool:
        """Let the back end finish, then flush and close the sinks. Safe to call twice.

        The back end finishes on a thread of its own while this one waits (so a signal
        handler on this thread still runs); when ``hurry`` is set before it is done, its
        final poses are given up (it is left to end with the process) and the sinks keep
        the tracker's. Returns False then, else True."""
        if self._closed:
            return True
        self._closed = True
        errors: list[BaseException] = []
        final = None
        finished = True
        try:
            back_end = self._back_end
            if back_end is not None:
                frames = self._tracked_frames if self._tracked_frames is not None else ()
                final, finished = _wait_for(lambda: back_end.finish(frames), hurry)
        except RuntimeError as exc:  # gtsam's numerical failures: the tracker's poses stay
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self._back_end_failure = f"{type(exc).__name__}: {first_line}"
            log.warning("the back end failed: %s", exc)
        except Exception as exc:  # the sinks still get closed and write their files
            errors.append(exc)
        finally:
            if self._tracked_frames is not None and finished:
                self._tracked_frames.close()
        if final is None and self._mono:
            final = self._rescaled_mono_poses()
        self._final_poses = final
        for sink in self._sinks:
            if final is not None:
                try:
                    sink.on_optimized(final)
                except Exception as exc:
                    errors.append(exc)
            try:
                sink.close()
            except Exception as exc:  # close every sink even if one fails
                errors.append(exc)
        if errors:
            raise errors[0]
        return finished

    def save_map(self, path: str | os.PathLike[str]) -> int:
        """Write the run's map (after :meth:`close`): keyframes on their optimised poses,
        landmarks and pose-graph edges, on top of the map the run started from; atomically.
        Returns the number of keyframes saved."""
        if not self._closed:
            raise MapFileError(f"{path}: close the pipeline before saving its map")
        if self._back_end is None:
            reason = "monocular" if self._mono else "the back end was off or made no keyframe"
            raise MapFileError(f"{path}: no map to save ({reason}; maps need a metric rig)")
        back_end = self._back_end.back_end
        keyframes, landmarks = map_records(self._prior_map, back_end.keyframes, self._final_poses)
        save_map(
            path,
            keyframes,
            landmarks,
            back_end.edges,
            descriptor_kind=self.config.extractor.model,
            vocabulary_id=back_end.vocabulary_id,
        )
        return len(keyframes)

    def _rescaled_mono_poses(self) -> OptimizedPoses | None:
        """A monocular run's poses with the scale corrections made after they were given out,
        as final poses (the frames held back for the scale included); None when no correction
        came after any of them."""
        poses = self._mono_poses
        factors = [self._tracker.map_scale(map_id) / then for _, _, map_id, then in poses]
        if not poses or np.allclose(factors, 1.0, rtol=1e-9, atol=0.0):
            return None
        world_from_cam = np.array([pose for _, pose, _, _ in poses])
        world_from_cam[:, :3, 3] *= np.asarray(factors)[:, None]
        stamps = np.array([stamp for stamp, _, _, _ in poses], np.int64)
        return OptimizedPoses(
            revision=0,
            keyframe_ids=(),
            world_from_cam=np.zeros((0, 4, 4)),
            frame_trajectory=Trajectory(stamps, world_from_cam),
            frame_map_ids=np.array([map_id for _, _, map_id, _ in poses], np.int64),
        )

    def _map_localizer(
        self, prior_map: SavedMap
    ) -> Callable[[Features, CameraModel], MapPlacement | None]:
        model = self.config.extractor.model
        if prior_map.descriptor_kind and prior_map.descriptor_kind != model:
            raise MapFileError(
                f"the map holds {prior_map.descriptor_kind!r} descriptors; this run extracts "
                f"{model!r} (use the preset the map was made with)"
            )
        loop = self.config.backend.loop_closure
        vocabulary = load_vocabulary(loop.vocabulary or model)
        return MapLocalizer(prior_map.keyframes, self._matcher, vocabulary, loop)

    # ---------------------------------------------------------------- internals

    def _exchange_with_back_end(self, keyframes: list[Keyframe]) -> OptimizedPoses | None:
        """Hand a new keyframe to the back end; apply a correction it finished, if any: the
        tracker's local map moves onto the corrected keyframe poses (re-anchoring)."""
        if not self.config.backend.enabled or self._mono:
            return None
        if keyframes and self._back_end is None:
            prior = self._prior_map.keyframes if self._prior_map is not None else ()
            self._back_end = _BackEndThread(
                BackEnd(self.config.backend, self._matcher, self.config.extractor.model, prior)
            )
        if self._back_end is None:
            return None
        for keyframe in keyframes:
            self._back_end.submit(keyframe)
        poses = self._back_end.poll()
        if poses is not None:
            self._tracker.apply_optimized(poses)
        return poses

    def _after_tracking(self, frame: Frame, result: TrackResult) -> TrackResult:
        c = self._counters
        c.read += 1
        cause = result.issue.value if result.issue is not None else "unknown"
        if result.state == TrackingState.OK:
            c.tracked += 1
            c.poses_per_map[result.map_id] += 1
            c.last_map_id = result.map_id
        elif result.state == TrackingState.LOST:
            c.lost += 1
            c.lost_by_cause[cause] += 1
        elif result.state == TrackingState.IMU_PROPAGATED:
            c.imu_propagated += 1
            c.poses_per_map[result.map_id] += 1
            c.last_map_id = result.map_id
        else:
            c.initializing += 1
            c.initializing_by_cause[cause] += 1
        mode = sensing_mode(frame, self.config.tracker.mode)
        if not c.mode:
            c.mode = mode
        if mode == "mono":
            self._mono = True  # also a stereo or RGB-D source forced to tracker.mode=mono
        elif mode == "rgbd":
            warning = self._depth_watch(frame)
            if warning is not None:
                log.warning("%s", warning)
        new_keyframes = []
        # a monocular map held back until the IMU gave its scale hands on its keyframes when
        # it is released
        released = self._mono and result.state == TrackingState.OK
        if result.is_keyframe or released:
            # usually one; a monocular start makes its first two at once
            new_keyframes = self._tracker.keyframes_after(self._last_keyframe_id)
            c.keyframes += len(new_keyframes)
            c.map_ids.update(kf.map_id for kf in new_keyframes)
            if new_keyframes:
                self._last_keyframe_id = new_keyframes[-1].keyframe_id
        if self.config.backend.imu_factors:
            new_keyframes = self._imu_links.step(frame, result, new_keyframes)
        t0 = time.perf_counter()
        corrected = self._exchange_with_back_end(new_keyframes)
        if self._tracked_frames is not None and not self._mono:  # mono: never a back end
            self._tracked_frames.append(result)
        for stamp_ns, world_from_cam, map_id in self._tracker.take_held_back():
            self._mono_poses.append((stamp_ns, world_from_cam, map_id, 1.0))
        if self._mono and result.world_from_cam is not None:
            scale = self._tracker.map_scale(result.map_id)
            self._mono_poses.append((result.stamp_ns, result.world_from_cam, result.map_id, scale))
        t1 = time.perf_counter()
        for sink in self._sinks:
            sink.on_result(frame, result)
            for keyframe in new_keyframes:
                sink.on_keyframe(keyframe)
            if corrected is not None:
                sink.on_optimized(corrected)
        t2 = time.perf_counter()
        result = replace(
            result,
            timings=replace(result.timings, backend_ms=(t1 - t0) * 1e3, sinks_ms=(t2 - t1) * 1e3),
        )
        c.timings.append(tuple(getattr(result.timings, name) for name in _STAGES))
        c.result_times_s.append(time.perf_counter())
        return result


class _WideWhenIdle:
    """The tracker's matcher: ``wide`` (every core) while ``idle`` is set, else ``narrow``.
    Both give the same matches."""

    def __init__(self, narrow: Matcher, wide: Matcher | None, idle: threading.Event) -> None:
        self.narrow = narrow
        self.wide = wide
        self._idle = idle

    def __call__(self, features0: Features, features1: Features) -> Matches:
        wide = self.wide
        if wide is not None and self._idle.is_set():
            return wide(features0, features1)
        return self.narrow(features0, features1)


def build_wide_matcher(config: Config) -> Matcher | None:
    """The LightGlue matcher of ``config`` with its ONNX Runtime sessions on every usable
    core; None unless it runs there with ``matcher.threads: 0`` on more than one core."""
    cores = len(os.sched_getaffinity(0))
    cfg = config.matcher
    if cfg.model != "lightglue" or cfg.threads != 0 or cores < 2:
        return None
    if pick_runtime(cfg.runtime, tensorrt_needs_torch_cuda=True) != "onnxruntime":
        return None
    return build_matcher(replace(cfg, threads=cores), extractor_model=config.extractor.model)


def build_wide_extractor(config: ExtractorConfig) -> Extractor | None:
    """The extractor of ``config`` with an ONNX Runtime session on every usable core, for the
    frames the tracker waits for; None unless it runs on ONNX Runtime with ``threads: 0``
    (the default, one thread) on more than one core."""
    cores = len(os.sched_getaffinity(0))
    if config.model == "orb" or config.threads != 0 or cores < 2:
        return None
    if pick_runtime(config.runtime) != "onnxruntime":
        return None
    return build_extractor(replace(config, threads=cores))


def _place_vocabulary(config: Config) -> Vocabulary | None:
    """The vocabulary relocalisation recognises places with (None: none packaged for this
    extractor and none configured; relocalisation then tries keyframes newest first)."""
    try:
        return load_vocabulary(config.backend.loop_closure.vocabulary or config.extractor.model)
    except ConfigError:
        return None


class _BackEndThread:
    """Runs the back end on its own thread: keyframes in (never dropped), corrected poses out.

    ``submit`` never blocks; ``poll`` returns the newest correction not yet collected;
    ``finish`` drains the keyframes, stops the thread and returns the final poses (with the
    final pose of each of the tracked ``frames`` it is given).
    """

    def __init__(self, back_end: BackEnd) -> None:
        self.back_end = back_end
        self._inbox: queue.SimpleQueue[Keyframe | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[OptimizedPoses] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="slamfront-backend", daemon=True)
        self._thread.start()

    @property
    def num_loops(self) -> int:
        return self.back_end.num_loops

    @property
    def maps_merged(self) -> int:
        return self.back_end.maps_merged

    def submit(self, keyframe: Keyframe) -> None:
        self._inbox.put(keyframe)

    def poll(self) -> OptimizedPoses | None:
        newest = None
        while True:
            try:
                newest = self._outbox.get_nowait()
            except queue.Empty:
                return newest

    def finish(self, frames: Iterable[TrackedFrame] = ()) -> OptimizedPoses | None:
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.back_end.finish(frames)

    def _work(self) -> None:
        while True:
            keyframe = self._inbox.get()
            if keyframe is None:
                return
            if self._error is not None:
                continue
            try:
                poses = self.back_end.step(keyframe)
            except Exception as exc:  # reported at finish; tracking goes on without it
                self._error = exc
                continue
            if poses is not None:
                self._outbox.put(poses)


class QueuedSink:
    """Runs a sink on its own thread behind a bounded queue; nothing here ever blocks.

    At most ``maxsize`` per-frame results wait for the sink; further ones are dropped and
    counted in ``dropped``, so a slow viewer never stalls tracking. Keyframes and optimised
    poses are rare and kept, up to ``keep_limit`` waiting (then dropped and counted too).
    ``close`` drains the queue, stops the thread, closes the sink and re-raises its first error.
    """

    def __init__(self, sink: Sink, maxsize: int = 8, keep_limit: int = 256) -> None:
        self.sink = sink
        self.dropped = 0
        self.errors: list[BaseException] = []
        self._maxsize = maxsize
        self._keep_limit = keep_limit
        self._pending_results = 0
        self._lock = threading.Lock()
        self._items: queue.SimpleQueue[tuple[str, tuple[object, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="slamfront-sink", daemon=True)
        self._thread.start()

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        with self._lock:
            if self._pending_results >= self._maxsize:
                self.dropped += 1
                return
            self._pending_results += 1
        self._items.put(("on_result", (frame, result)))

    def on_keyframe(self, keyframe: Keyframe) -> None:
        self._keep(("on_keyframe", (keyframe,)))

    def on_optimized(self, poses: OptimizedPoses) -> None:
        self._keep(("on_optimized", (poses,)))

    def close(self) -> None:
        if self._thread.is_alive():
            self._items.put(None)
            self._thread.join()
        self.sink.close()
        if self.errors:
            raise self.errors[0]

    def _keep(self, item: tuple[str, tuple[object, ...]]) -> None:
        if self._items.qsize() >= self._keep_limit:
            with self._lock:
                self.dropped += 1
            return
        self._items.put(item)

    def _work(self) -> None:
        while True:
            item = self._items.get()
            if item is None:
                return
            name, args = item
            if name == "on_result":
                with self._lock:
                    self._pending_results -= 1
            if self.errors:
                continue  # a failed sink stops consuming work but never blocks the tracker
            try:
                getattr(self.sink, name)(*args)
            except Exception as exc:
                self.errors.append(exc)


READ_QUEUE_SIZE = 2
"""Frames read ahead of the extractor (the source thread holds one more while it waits)."""


def _put(items: queue.Queue[object], item: object, stop: threading.Event) -> None:
    """Blocking put that gives up when the consumer has stopped."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


@dataclass(frozen=True, eq=False)
class RunParts:
    """What a run loads before it writes anything: its networks and the saved map it starts
    in (see :func:`load_run_parts`)."""

    extractor: Extractor
    matcher: Matcher
    prior_map: SavedMap | None = None


def load_run_parts(config: Config, load_map: str | os.PathLike[str] | None = None) -> RunParts:
    """Load and check the saved map (if any) and the networks (weights), so that a fault in
    either is an error before a run touches its output folder."""
    prior_map = read_map(load_map) if load_map is not None else None
    model = config.extractor.model
    if prior_map is not None and prior_map.descriptor_kind not in ("", model):
        raise MapFileError(
            f"{load_map}: the map holds {prior_map.descriptor_kind!r} descriptors; this run "
            f"extracts {model!r} (use the preset the map was made with)"
        )
    extractor = build_extractor(config.extractor)
    if prior_map is not None and prior_map.keyframes:
        _check_map_descriptors(load_map, prior_map, extractor)
    matcher = build_matcher(config.matcher, extractor_model=model)
    return RunParts(extractor, matcher, prior_map)


def _check_map_descriptors(
    load_map: str | os.PathLike[str] | None, prior_map: SavedMap, extractor: Extractor
) -> None:
    """A MapFileError unless the map's descriptors are of the kind ``extractor`` makes (the
    header's name alone does not say their size): a blank image shows it at no cost."""
    try:
        made = extractor(np.zeros((64, 64), np.uint8)).descriptors
    except (SlamfrontError, ValueError, RuntimeError):
        return  # a runtime that takes no such image (a fixed-size engine): the matcher checks
    saved = prior_map.keyframes[0].features.descriptors
    if saved.shape[1:] != made.shape[1:] or saved.dtype != made.dtype:
        raise MapFileError(
            f"{load_map}: the map's descriptors are {saved.dtype.str}{list(saved.shape[1:])}, "
            f"this run's extractor makes {made.dtype.str}{list(made.shape[1:])} (use the "
            "preset and extractor settings the map was made with)"
        )


@dataclass(frozen=True)
class ModeChoice:
    """The tracker mode a source's frames are tracked in, and why (for ``auto``)."""

    mode: str
    reason: str


def choose_mode(frame: Frame, configured: str) -> ModeChoice:
    """The mode ``frame`` will be tracked in; a ConfigError naming the missing stream when
    the configured mode needs one the frame lacks (depth for rgbd, a right image for
    stereo)."""
    has_depth = frame.depth_m is not None
    has_right = frame.image_right is not None and frame.stereo is not None
    if configured == "rgbd" and not has_depth:
        raise ConfigError(
            "tracker.mode is rgbd but the source has no depth stream (its first frame "
            "carries no depth image); use tracker.mode=auto or mono"
        )
    if configured == "stereo" and not has_right:
        raise ConfigError(
            "tracker.mode is stereo but the source has no right image stream (its first "
            "frame is not a rectified stereo pair); use tracker.mode=auto or mono"
        )
    if configured != "auto":
        return ModeChoice(configured, "tracker.mode")
    mode = sensing_mode(frame, configured)
    reason = {
        "rgbd": "auto: the source gives depth images",
        "stereo": "auto: the source gives a rectified stereo pair",
        "mono": "auto: the source gives neither depth nor a right image",
    }[mode]
    return ModeChoice(mode, reason)


class _DepthWatch:
    """Notices early a depth stream tracking cannot use: in each of the first frames that
    carry depth, (almost) no valid pixel or all of it within a few centimetres (an 8-bit
    image read as depth, or a wrong depth scale). Returns its warning once."""

    FRAMES = 10
    MIN_VALID_SHARE = 0.01
    MIN_MEDIAN_M = 0.1

    def __init__(self) -> None:
        self._seen = 0
        self._bad = 0
        self._valid_share = 0.0
        self._median_m = 0.0
        self.note: str | None = None

    def __call__(self, frame: Frame) -> str | None:
        depth = frame.depth_m
        if depth is None or self._seen >= self.FRAMES:
            return None
        self._seen += 1
        valid = depth[depth > 0]
        share = valid.size / max(depth.size, 1)
        median_m = float(np.median(valid)) if valid.size else 0.0
        self._valid_share = max(self._valid_share, share)
        self._median_m = max(self._median_m, median_m)
        if share < self.MIN_VALID_SHARE or median_m < self.MIN_MEDIAN_M:
            self._bad += 1
        if self._seen < self.FRAMES or self._bad < self.FRAMES:
            return None
        self.note = (
            f"depth: none of the first {self.FRAMES} frames has usable depth (at most "
            f"{100 * self._valid_share:.1f} % valid pixels, median at most "
            f"{self._median_m:.3f} m): an empty or 8-bit depth stream, or a wrong depth scale "
            "(source.tum_depth_scale)?"
        )
        return self.note


def run_to_directory(
    frames: Iterable[Frame],
    config: Config,
    out_dir: str | os.PathLike[str],
    *,
    frames_skipped: Callable[[], int] = lambda: 0,
    total: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    extra_sinks: Sequence[Sink] = (),
    stop: threading.Event | None = None,
    load_map: str | os.PathLike[str] | None = None,
    save_map: str | os.PathLike[str] | None = None,
    parts: RunParts | None = None,
    hurry: threading.Event | None = None,
) -> RunStats:
    """Run the pipeline over ``frames`` and write the run's outputs to ``out_dir``:
    ``config.yaml`` (the resolved config, first), ``trajectory.tum`` (one flushed line per
    tracked frame, so a crash keeps every pose so far; with the back end it is rewritten at
    the end with the optimised poses and ``trajectory_raw.tum`` keeps the tracker's) and
    ``stats.json`` (at the end, also when the run fails part-way).

    ``parts`` (:func:`load_run_parts`, which otherwise runs here with ``load_map``) are
    loaded before the folder is touched; a caller that wants the folder to itself claims it
    first (:func:`slamfront.run_folder.claim_output_folder`). ``stop`` ends the run after the
    frame being tracked, which then finishes as if the source had ended. ``hurry`` (or a
    ``KeyboardInterrupt``) while the run ends stops at once: the back end's final poses are
    dropped, ``trajectory.tum`` keeps the tracker's poses, no map is saved and
    ``stats.json`` says so. A map ``save_map`` cannot take is written into ``out_dir``
    instead (``RunStats.map_saved_to``)."""
    if parts is None:
        parts = load_run_parts(config, load_map)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    with_back_end = config.backend.enabled
    trajectory = TrajectorySink(
        out / "trajectory.tum", out / "trajectory_raw.tum" if with_back_end else None
    )
    pipeline = Pipeline(
        config,
        sinks=[trajectory, *extra_sinks],
        extractor=parts.extractor,
        matcher=parts.matcher,
        prior_map=parts.prior_map,
    )
    last_report: float | None = None  # the first frame is reported at once
    interval = config.pipeline.progress_interval_s
    forced = False
    try:
        for result in pipeline.run(frames, stop):
            now = time.perf_counter()
            if on_progress is not None and (last_report is None or now - last_report >= interval):
                last_report = now
                s = pipeline.stats()
                on_progress(Progress(s.frames_read, total, s.fps, result.state, s.frames_lost))
    except KeyboardInterrupt:
        forced = True
        raise
    finally:
        try:
            if not forced:
                forced = not pipeline.close(hurry)
        except KeyboardInterrupt:
            forced = True
            raise
        finally:
            stats = pipeline.stats(frames_skipped())
            if forced:
                note = (
                    "stopped at once (interrupted again while ending): trajectory.tum holds "
                    "the tracker's poses, not the back end's"
                    + ("; no map saved" if save_map is not None else "")
                )
                stats = replace(stats, notes=(*stats.notes, note), stopped_early=True)
            _write_json(out / "stats.json", stats.to_json())
    if save_map is not None and not forced:
        try:
            saved_to = _save_map_somewhere(pipeline, Path(save_map), out)
        except MapFileError as exc:
            if not stats.stopped_early:
                raise
            # a run stopped before its first keyframe has no map: said, not an error
            stats = replace(stats, notes=(*stats.notes, f"no map saved: {exc}"))
        else:
            stats = replace(stats, map_saved_to=str(saved_to))
            if saved_to != Path(save_map):
                note = f"the map could not be saved to {save_map}; it is in {saved_to}"
                stats = replace(stats, notes=(*stats.notes, note))
        _write_json(out / "stats.json", stats.to_json())
    return stats


def _wait_for(
    work: Callable[[], OptimizedPoses | None], hurry: threading.Event | None
) -> tuple[OptimizedPoses | None, bool]:
    """``work()`` on a daemon thread, waited for in short steps; ``(result, True)``, or
    ``(None, False)`` when ``hurry`` was set first. Its exception is re-raised here."""
    results: list[OptimizedPoses | None] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # re-raised on the waiting thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="slamfront-finish", daemon=True)
    thread.start()
    while thread.is_alive():
        if hurry is not None and hurry.is_set():
            return None, False
        thread.join(0.1)
    if errors:
        raise errors[0]
    return results[0], True


def _save_map_somewhere(pipeline: Pipeline, target: Path, out: Path) -> Path:
    """Save the map to ``target``, or when that place cannot take it, into ``out``."""
    if (target.parent if str(target.parent) else Path(".")).is_dir():
        try:
            pipeline.save_map(target)
            return target
        except OSError as exc:
            reason = str(exc.strerror or exc)
    else:
        reason = "its folder does not exist"
    fallback = out / (target.name or "map.map")
    log.warning("cannot save the map to %s (%s); saving it to %s", target, reason, fallback)
    pipeline.save_map(fallback)
    return fallback


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
