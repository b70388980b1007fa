from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from slamfront.pipeline import QueuedSink
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    Keyframe,
    Matches,
    OptimizedPoses,
    TrackingState,
    TrackResult,
)
from tests.fakes import IgnoringSink

CAMERA = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)


class SlowSink:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.results: list[int] = []
        self.keyframes: list[int] = []
        self.closed = False
        self.release = threading.Event()

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        self.release.wait(timeout=5)
        time.sleep(self.delay_s)
        self.results.append(result.frame_index)

    def on_keyframe(self, keyframe: Keyframe) -> None:
        self.keyframes.append(keyframe.keyframe_id)

    def on_optimized(self, poses: OptimizedPoses) -> None:
        raise RuntimeError("viewer broke")

    def close(self) -> None:
        self.closed = True


def frame(i: int) -> tuple[Frame, TrackResult]:
    f = Frame(i, i * 1000, np.zeros((48, 64), np.uint8), CAMERA)
    return f, TrackResult(i, i * 1000, TrackingState.OK, np.eye(4))


def keyframe(i: int) -> Keyframe:
    feats = Features(
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, 8), np.float32),
        (64, 48),
    )
    return Keyframe(i, i, i, np.eye(4), CAMERA, feats, np.zeros((0, 3)))


def test_slow_sink_drops_results_never_blocks_and_keeps_keyframes() -> None:
    sink = SlowSink(delay_s=0.001)
    queued = QueuedSink(sink, maxsize=4)
    start = time.perf_counter()
    for i in range(100):
        queued.on_result(*frame(i))
        if i % 25 == 0:
            queued.on_keyframe(keyframe(i))
    elapsed = time.perf_counter() - start
    sink.release.set()
    queued.close()
    assert elapsed < 1.0  # 100 frames handed over while the sink was blocked
    assert sink.closed
    assert queued.dropped > 0
    assert len(sink.results) + queued.dropped == 100
    assert len(sink.results) <= 5  # the queue bound (4) plus the one the sink was holding
    assert sink.results == sorted(sink.results)
    assert sink.keyframes == [0, 25, 50, 75]  # rare records are kept


def test_sink_error_is_raised_at_close() -> None:
    sink = SlowSink(0.0)
    sink.release.set()
    queued = QueuedSink(sink)
    queued.on_optimized(OptimizedPoses(0, (), np.zeros((0, 4, 4))))
    queued.on_result(*frame(0))
    with pytest.raises(RuntimeError, match="viewer broke"):
        queued.close()
    assert sink.closed


@pytest.mark.parametrize("read_thread", [False, True])
def test_run_tracks_every_frame_read_then_raises_the_source_error(read_thread: bool) -> None:
    """With the source read on the reader thread or on its own: every frame read before a
    source error is tracked, in order, then the error is raised here and no thread is left."""
    import slamfront as sf
    from slamfront.errors import SourceError
    from slamfront.pipeline import Pipeline

    config = sf.load_config(
        "classic",
        [
            "sim.width_px=160",
            "sim.height_px=120",
            "backend.enabled=false",
            f"pipeline.read_thread={str(read_thread).lower()}",
        ],
    )

    def frames() -> Iterator[Frame]:
        with sf.open_source("sim:still", config) as source:
            for count, item in enumerate(source):
                if count == 12:
                    raise SourceError("sim:still: frame 12 is corrupt")
                yield item

    before = {t.name for t in threading.enumerate()}
    pipeline = Pipeline(config)
    seen: list[int] = []
    with pytest.raises(SourceError, match="frame 12 is corrupt"):
        for result in pipeline.run(frames()):
            seen.append(result.frame_index)
    pipeline.close()
    assert seen == list(range(12))
    assert {t.name for t in threading.enumerate()} == before


def test_stereo_run_never_extracts_right_images() -> None:
    """Stereo keyframes search the right image's rows for the left keypoints: no thread
    extracts a right image, and the keyframes still carry stereo depth."""
    import slamfront as sf
    from slamfront.frontend.extractors import build_extractor
    from slamfront.pipeline import Pipeline

    config = sf.load_config(
        "classic", ["sim.sensor=stereo", "backend.enabled=false", "tracker.mode=stereo"]
    )
    with sf.open_source("sim:loop", config) as source:
        frames = [f for _, f in zip(range(8), source, strict=False)]
    rights = {id(f.image_right) for f in frames}
    inner = build_extractor(config.extractor)
    calls: list[int] = []

    def extractor(image: np.ndarray) -> Features:
        calls.append(id(image))
        return inner(image)

    class Keyframes(IgnoringSink):
        def __init__(self) -> None:
            self.depths: list[int] = []

        def on_keyframe(self, keyframe: Keyframe) -> None:
            self.depths.append(int((keyframe.depth_m > 0).sum()))

    sink = Keyframes()
    pipeline = Pipeline(config, sinks=[sink], extractor=extractor)
    results = list(pipeline.run(frames))
    pipeline.close()
    assert [r.frame_index for r in results] == list(range(8))
    assert len(calls) == 8 and not rights & set(calls)
    assert sink.depths and min(sink.depths) > 50, sink.depths


def test_tracker_matches_on_the_wide_matcher_while_the_reader_waits() -> None:
    """Once the reader thread has nothing left to do (here: every frame extracted), every
    matcher call of the tracker goes to the wide matcher (every core)."""
    import slamfront as sf
    from slamfront.frontend.matchers import build_matcher
    from slamfront.pipeline import Pipeline

    config = sf.load_config(
        "classic",
        [
            "sim.width_px=160",
            "sim.height_px=120",
            "backend.enabled=false",
            "tracker.match_every_frame=true",
            "pipeline.queue_size=16",
        ],
    )
    with sf.open_source("sim:loop", config) as source:
        frames = [f for _, f in zip(range(8), source, strict=False)]
    inner = build_matcher(config.matcher, config.extractor.model)
    used: list[tuple[str, int]] = []
    current = [0]

    def counting(name: str) -> Callable[[Features, Features], Matches]:
        def match(f0: Features, f1: Features) -> Matches:
            used.append((name, current[0]))
            return inner(f0, f1)

        return match

    class Hold(IgnoringSink):
        pipeline: Pipeline

        def on_result(self, frame: Frame, result: TrackResult) -> None:
            current[0] = frame.index + 1
            if frame.index == 0:  # let the reader finish every frame first
                assert self.pipeline._reader_waits.wait(timeout=30)

    hold = Hold()
    pipeline = Pipeline(
        config, sinks=[hold], matcher=counting("narrow"), wide_matcher=counting("wide")
    )
    hold.pipeline = pipeline
    results = list(pipeline.run(frames))
    pipeline.close()
    assert len(results) == 8
    stats = pipeline.stats()
    assert 0 < stats.frame_median_ms <= stats.frame_p90_ms <= stats.frame_max_ms
    assert stats.max_ms.pose_ms >= stats.p90_ms.pose_ms >= stats.median_ms.pose_ms > 0
    assert all(name == "wide" for name, index in used if index >= 1)
    assert sum(1 for name, _ in used if name == "wide") >= 5
