#!/usr/bin/env python
"""Soak test: a long synthetic run that must not leak memory, threads or file handles.

    python tools/soak.py [--source sim:still] [--config fast] [--frames 10000]
                         [--baseline-frames 500] [--every 100] [--json FILE] [key=value ...]
    python tools/soak.py --matrix [--frames 2000] ...   # every scenario of MATRIX

The run is the real pipeline (``Pipeline.run``: reader thread + tracking thread, the
trajectory sink of ``slamfront run`` writing to a folder). Before it, a short warm-up run of
the same configuration is made and thrown away, so one-off start-up costs (thread pools of
OpenCV, torch and ONNX Runtime, imports, caches) are in the baseline, not counted as leaks.

Checks (exit code 1 when one fails):

- ``rss``: resident memory at the end within ``--rss-tolerance`` (10 %) of resident memory
  after ``--baseline-frames`` (500) frames;
- ``in_flight``: frames between the source and the tracker (read but not yet tracked) never
  exceed the queues plus the frames being worked on in each thread. That bound is the whole check:
  a bounded queue sits anywhere between empty and full from one sample to the next (full
  whenever the reader is the faster side), so comparing its level early and late in the run
  says nothing about a leak; the quarter means are reported;
- ``backend_queue``: keyframes waiting for the back-end thread are no more in the last
  quarter than the most of the first quarter after the baseline (read from the pipeline's
  internals; reported as unavailable if they change);
- ``threads`` and ``fds``: after ``Pipeline.close`` and dropping the pipeline, the threads of
  the process (Python threads by name and OS threads in /proc/self/task) and its open file
  descriptors (/proc/self/fd) are back to what they were before the run.

The slope of resident memory over the frames after the baseline (linear fit, MiB per 1000
frames) is reported too; ``--max-slope`` turns it into a check. Default ``sim:still``: the
camera never moves, so no new keyframe is made and memory should be flat; ``sim:figure8`` and
``sim:loop`` (periodic, they repeat past their natural length) keep making keyframes and
closing loops, so the map and the back end grow by design: the ``rss`` check then allows
``--mb-per-keyframe`` (2 MiB) for each keyframe made after the baseline, and the report
gives the loops closed. ``--matrix`` runs :data:`MATRIX`: the still camera and laps with
loop closures under other queue sizes, the reader thread, motion-model tracking and without
the back end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SoakSample:
    """The process and the pipeline after ``frames`` frames."""

    frames: int
    elapsed_s: float
    rss_mb: float
    in_flight: int
    """Frames read from the source but not yet tracked (reader queue + frames in hand)."""
    backend_queue: int | None
    """Keyframes waiting for the back-end thread (None: no back end / not observable)."""
    keyframes: int
    frames_lost: int
    python_threads: int
    os_threads: int
    fds: int


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SoakReport:
    source: str
    preset: str
    frames: int
    baseline_frames: int
    wall_s: float
    fps: float
    close_s: float
    """Time ``Pipeline.close`` took (the back end draining what was left)."""
    keyframes: int
    frames_lost: int
    loops: int
    """Loop closures the back end accepted."""
    keyframes_after_baseline: int
    rss_baseline_mb: float
    rss_end_mb: float
    rss_change_pct: float
    rss_slope_mb_per_1000: float
    threads_before: tuple[str, ...]
    threads_after: tuple[str, ...]
    os_threads_before: int
    os_threads_after: int
    fds_before: tuple[str, ...]
    fds_after: tuple[str, ...]
    checks: tuple[Check, ...]
    samples: tuple[SoakSample, ...] = field(repr=False)
    overrides: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [
            f"soak: {self.source}, preset {self.preset}, {self.frames} frames in "
            f"{self.wall_s:.0f} s ({self.fps:.1f} fps), {self.keyframes} keyframes, "
            f"{self.loops} loops, {self.frames_lost} lost, close {self.close_s:.2f} s"
            + (f", overrides {' '.join(self.overrides)}" if self.overrides else ""),
            f"resident memory: {self.rss_baseline_mb:.1f} MiB after {self.baseline_frames} "
            f"frames, {self.rss_end_mb:.1f} MiB at the end ({self.rss_change_pct:+.2f} %), "
            f"slope {self.rss_slope_mb_per_1000:+.3f} MiB per 1000 frames",
            f"threads before/after: {len(self.threads_before)}/{len(self.threads_after)} "
            f"python, {self.os_threads_before}/{self.os_threads_after} OS; "
            f"file descriptors {len(self.fds_before)}/{len(self.fds_after)}",
        ]
        out.extend(f"{'PASS' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


# ----------------------------------------------------------------------------- process


def _release_free_heap() -> None:
    """Hand free heap pages back to the OS (glibc ``malloc_trim``), so that memory freed by
    earlier work and reused by new allocations cannot hide growth in a sample."""
    import contextlib
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(name).malloc_trim(0)


def rss_mb() -> float:
    """Resident memory of this process, MiB (Linux /proc; elsewhere the peak)."""
    _release_free_heap()
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def python_threads() -> tuple[str, ...]:
    return tuple(sorted(t.name for t in threading.enumerate()))


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def open_fds() -> tuple[str, ...]:
    """What each open descriptor points to (sorted), from /proc/self/fd."""
    out = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return ()
    for name in names:
        try:
            out.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # the descriptor listdir itself used, closed by now
    return tuple(sorted(out))


def backend_backlog(pipeline: object) -> int | None:
    """Keyframes waiting for the pipeline's back-end thread. Reads internals of
    slamfront.pipeline (no public accessor); None when there is none or they changed."""
    thread = getattr(pipeline, "_back_end", None)
    inbox = getattr(thread, "_inbox", None)
    qsize = getattr(inbox, "qsize", None)
    return int(qsize()) if callable(qsize) else None


class _LoopCounter:
    """A sink that remembers how many loops the back end has accepted."""

    def __init__(self) -> None:
        self.loops = 0

    def on_result(self, frame: object, result: object) -> None:
        return None

    def on_keyframe(self, keyframe: object) -> None:
        return None

    def on_optimized(self, poses: Any) -> None:
        self.loops = max(self.loops, int(poses.num_loops))

    def close(self) -> None:
        return None


class _Counting:
    """Counts the frames the pipeline's reader pulls from the source."""

    def __init__(self, frames: Iterable[Any]) -> None:
        self._frames = frames
        self.pulled = 0

    def __iter__(self) -> Iterator[Any]:
        for frame in self._frames:
            self.pulled += 1
            yield frame


# ------------------------------------------------------------------------------- soak


def soak(
    source: str = "sim:still",
    preset: str = "fast",
    frames: int = 10_000,
    overrides: Sequence[str] = (),
    *,
    baseline_frames: int = 500,
    every: int = 100,
    warmup_frames: int = 20,
    rss_tolerance: float = 0.10,
    max_mb_per_keyframe: float = 2.0,
    max_slope_mb_per_1000: float | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    extra_sinks: Callable[[], Sequence[Any]] = lambda: (),
    on_sample: Callable[[SoakSample], None] | None = None,
) -> SoakReport:
    """Run ``frames`` frames of ``source`` through a fresh pipeline and check for leaks.

    ``extra_sinks`` makes additional sinks for the measured run (tests use it to plant a
    leak). The trajectory goes to ``out_dir`` (a temporary folder when None). When the run
    makes keyframes after the baseline (a moving camera: the map grows by design), memory
    may grow by ``max_mb_per_keyframe`` per new keyframe on top of ``rss_tolerance``.
    """
    from slamfront.config import load_config
    from slamfront.pipeline import READ_QUEUE_SIZE, Pipeline
    from slamfront.sinks.trajectory import TrajectorySink
    from slamfront.sources import open_source, split_spec
    from slamfront.types import TrackingState

    if not 0 < baseline_frames < frames:
        raise ValueError(f"baseline_frames must be in (0, frames), got {baseline_frames}")
    if every < 1 or baseline_frames % every:
        raise ValueError(f"every must divide baseline_frames ({baseline_frames}), got {every}")
    scheme = split_spec(source)[0]
    length_key = "sim.frames" if scheme == "sim" else "source.max_frames"
    config = load_config(preset, [f"{length_key}={frames}", *overrides])
    short = load_config(preset, [*overrides, f"{length_key}={warmup_frames}"])

    with tempfile.TemporaryDirectory(prefix="slamfront-soak-") as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)

        # Warm-up: same configuration, thrown away.
        with open_source(source, short) as warm_source:
            warm = Pipeline(short, sinks=[TrajectorySink(Path(tmp) / "warmup.tum")])
            try:
                for _ in warm.run(warm_source):
                    pass
            finally:
                warm.close()
        del warm, warm_source
        gc.collect()
        threads_before, os_before, fds_before = python_threads(), os_threads(), open_fds()

        samples: list[SoakSample] = []
        keyframes = lost = 0
        raw = out / "trajectory_raw.tum" if config.backend.enabled else None
        opened = open_source(source, config)
        counting = _Counting(opened)
        loops = _LoopCounter()
        pipeline = Pipeline(
            config, sinks=[TrajectorySink(out / "trajectory.tum", raw), loops, *extra_sinks()]
        )
        start = time.perf_counter()
        count = 0
        try:
            for result in pipeline.run(counting):
                count += 1
                keyframes += result.is_keyframe
                lost += result.state == TrackingState.LOST
                if count % every == 0:
                    sample = SoakSample(
                        frames=count,
                        elapsed_s=time.perf_counter() - start,
                        rss_mb=rss_mb(),
                        in_flight=counting.pulled - count,
                        backend_queue=backend_backlog(pipeline),
                        keyframes=keyframes,
                        frames_lost=lost,
                        python_threads=threading.active_count(),
                        os_threads=os_threads(),
                        fds=len(open_fds()),
                    )
                    samples.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
            wall = time.perf_counter() - start
            close_start = time.perf_counter()
        finally:
            try:
                pipeline.close()
            finally:
                opened.close()
        close_s = time.perf_counter() - close_start
        del pipeline, opened, counting
        gc.collect()
        threads_after, os_after, fds_after = python_threads(), os_threads(), open_fds()

    if count < frames:
        raise RuntimeError(f"{source}: only {count} of {frames} frames were tracked")
    return _report(
        source=source,
        preset=config.preset,
        frames=count,
        baseline_frames=baseline_frames,
        wall_s=wall,
        close_s=close_s,
        samples=samples,
        queue_bound=config.pipeline.queue_size
        + 2
        + (READ_QUEUE_SIZE + 1 if config.pipeline.read_thread else 0),
        rss_tolerance=rss_tolerance,
        mb_per_keyframe=max_mb_per_keyframe,
        loops=loops.loops,
        max_slope=max_slope_mb_per_1000,
        before=(threads_before, os_before, fds_before),
        after=(threads_after, os_after, fds_after),
        overrides=tuple(overrides),
    )


def _report(
    *,
    source: str,
    preset: str,
    frames: int,
    baseline_frames: int,
    wall_s: float,
    close_s: float,
    samples: list[SoakSample],
    queue_bound: int,
    rss_tolerance: float,
    mb_per_keyframe: float,
    loops: int,
    max_slope: float | None,
    before: tuple[tuple[str, ...], int, tuple[str, ...]],
    after: tuple[tuple[str, ...], int, tuple[str, ...]],
    overrides: tuple[str, ...],
) -> SoakReport:
    base = next(s for s in samples if s.frames == baseline_frames)
    end = samples[-1]
    tail = [s for s in samples if s.frames >= baseline_frames]
    x = np.array([s.frames for s in tail], np.float64)
    y = np.array([s.rss_mb for s in tail], np.float64)
    slope = float(np.polyfit(x, y, 1)[0] * 1000.0) if len(tail) >= 2 else 0.0
    change = 100.0 * (end.rss_mb - base.rss_mb) / base.rss_mb
    quarter = max(1, len(tail) // 4)
    first, last = tail[:quarter], tail[-quarter:]
    new_keyframes = end.keyframes - base.keyframes
    allowance_pct = 100.0 * mb_per_keyframe * new_keyframes / base.rss_mb
    limit_pct = 100.0 * rss_tolerance + allowance_pct
    checks = [
        Check(
            "rss",
            abs(change) <= limit_pct,
            f"{change:+.2f} % from frame {baseline_frames} to {end.frames} "
            f"(limit ±{limit_pct:.0f} %"
            + (
                f": {100 * rss_tolerance:.0f} % + {mb_per_keyframe:g} MiB for each of "
                f"{new_keyframes} new keyframes)"
                if new_keyframes
                else ")"
            ),
        ),
        Check(
            "in_flight",
            max(s.in_flight for s in samples) <= queue_bound,
            f"max {max(s.in_flight for s in samples)} (bound {queue_bound}); mean "
            f"{np.mean([s.in_flight for s in first]):.1f} in the first quarter, "
            f"{np.mean([s.in_flight for s in last]):.1f} in the last",
        ),
    ]
    backlog = [s.backend_queue for s in tail]
    if all(b is None for b in backlog):
        checks.append(Check("backend_queue", True, "no back-end thread observed (none started)"))
    else:
        head = max(b or 0 for b in backlog[:quarter])
        rear = max(b or 0 for b in backlog[-quarter:])
        checks.append(
            Check(
                "backend_queue",
                rear <= head,
                f"keyframes waiting: first quarter max {head}, last quarter max {rear}, "
                f"at the end {backlog[-1]}",
            )
        )
    threads_before, os_before, fds_before = before
    threads_after, os_after, fds_after = after
    checks.append(
        Check(
            "threads",
            threads_after == threads_before and os_after == os_before,
            f"python {list(threads_before)} -> {list(threads_after)}; "
            f"OS threads {os_before} -> {os_after}",
        )
    )
    new_fds = sorted((Counter(fds_after) - Counter(fds_before)).elements())
    checks.append(
        Check(
            "fds",
            fds_after == fds_before,
            f"{len(fds_before)} -> {len(fds_after)} open"
            + (f"; new: {new_fds[:5]}" if new_fds else ""),
        )
    )
    if max_slope is not None:
        checks.append(
            Check(
                "rss_slope",
                slope <= max_slope,
                f"{slope:+.3f} MiB per 1000 frames (limit {max_slope:g})",
            )
        )
    return SoakReport(
        source=source,
        preset=preset,
        frames=frames,
        baseline_frames=baseline_frames,
        wall_s=wall_s,
        fps=frames / wall_s if wall_s > 0 else 0.0,
        close_s=close_s,
        keyframes=end.keyframes,
        frames_lost=end.frames_lost,
        loops=loops,
        keyframes_after_baseline=new_keyframes,
        rss_baseline_mb=base.rss_mb,
        rss_end_mb=end.rss_mb,
        rss_change_pct=change,
        rss_slope_mb_per_1000=slope,
        threads_before=threads_before,
        threads_after=threads_after,
        os_threads_before=os_before,
        os_threads_after=os_after,
        fds_before=fds_before,
        fds_after=fds_after,
        checks=tuple(checks),
        samples=tuple(samples),
        overrides=overrides,
    )


# ----------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class Scenario:
    """One soak configuration of ``--matrix``."""

    name: str
    source: str
    overrides: tuple[str, ...] = ()


MATRIX: tuple[Scenario, ...] = (
    Scenario("still, defaults", "sim:still"),
    Scenario("still, queue 1", "sim:still", ("pipeline.queue_size=1",)),
    Scenario(
        "still, queue 16, read thread",
        "sim:still",
        ("pipeline.queue_size=16", "pipeline.read_thread=true"),
    ),
    Scenario("still, motion-model tracking", "sim:still", ("tracker.match_every_frame=false",)),
    Scenario("loop, defaults (loop closures)", "sim:loop"),
    Scenario(
        "loop, motion-model tracking, queue 2",
        "sim:loop",
        ("tracker.match_every_frame=false", "pipeline.queue_size=2"),
    ),
    Scenario("loop, no back end", "sim:loop", ("backend.enabled=false",)),
)
"""Queue sizes, the reader thread, tracking from the motion model or the matcher, the back end
on or off, a still camera and laps that close loops (the map grows: memory may grow with the
keyframes, see :func:`soak`)."""


def soak_matrix(
    preset: str = "fast",
    frames: int = 2_000,
    overrides: Sequence[str] = (),
    scenarios: Sequence[Scenario] = MATRIX,
    **options: Any,
) -> list[tuple[Scenario, SoakReport]]:
    """:func:`soak` of every scenario (``overrides`` apply to all; options as for soak)."""
    return [
        (sc, soak(sc.source, preset, frames, [*sc.overrides, *overrides], **options))
        for sc in scenarios
    ]


# ------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source", default="sim:still", help="sim:still | sim:figure8 | ...")
    parser.add_argument("--config", default="fast", help="preset or YAML file (fast)")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--baseline-frames", type=int, default=500)
    parser.add_argument("--every", type=int, default=100, help="sample every N frames")
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--max-slope", type=float, help="MiB per 1000 frames (a check)")
    parser.add_argument(
        "--mb-per-keyframe", type=float, default=2.0, help="memory allowed per new keyframe"
    )
    parser.add_argument("--out", metavar="DIR", help="keep the trajectory here")
    parser.add_argument("--json", metavar="FILE", help="write the report (with samples)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="run every scenario of MATRIX (queue sizes, motion model, back end, sim:still "
        "and sim:loop) instead of --source; the report lists each",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    def progress(sample: SoakSample) -> None:
        if args.quiet or sample.frames % (10 * args.every):
            return
        print(
            f"frames {sample.frames}  {sample.frames / sample.elapsed_s:5.1f} fps  "
            f"rss {sample.rss_mb:7.1f} MiB  in flight {sample.in_flight}  "
            f"back end queue {sample.backend_queue}  keyframes {sample.keyframes}  "
            f"lost {sample.frames_lost}  threads {sample.os_threads}  fds {sample.fds}",
            file=sys.stderr,
            flush=True,
        )

    options: dict[str, Any] = {
        "baseline_frames": args.baseline_frames,
        "every": args.every,
        "rss_tolerance": args.rss_tolerance,
        "max_mb_per_keyframe": args.mb_per_keyframe,
        "max_slope_mb_per_1000": args.max_slope,
        "out_dir": args.out,
        "on_sample": progress,
    }
    if args.matrix:
        results = soak_matrix(args.config, args.frames, args.overrides, **options)
    else:
        report = soak(args.source, args.config, args.frames, args.overrides, **options)
        results = [(Scenario(args.source, args.source, tuple(args.overrides)), report)]
    for scenario, report in results:
        if args.matrix:
            print(f"== {scenario.name}: {'ok' if report.ok else 'FAILED'}")
        print("\n".join(report.lines()))
    if args.json:
        data = [r.to_dict() | {"scenario": sc.name} for sc, r in results]
        Path(args.json).write_text(json.dumps(data if args.matrix else data[0], indent=1) + "\n")
    return 0 if all(r.ok for _, r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
