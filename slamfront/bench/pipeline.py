"""End-to-end pipeline benchmark: per-stage latency, frames/s and peak memory of real runs.

Every figure comes from :meth:`slamfront.pipeline.Pipeline.run` — the two-thread pipeline of
``slamfront run`` (a reader thread reads frame t+1 from the source and extracts its features
while frame t is matched and tracked), with the trajectory sink of ``slamfront run`` writing
to a temporary folder. The source is read live, so reading (the simulator's rendering, or
decoding and rectifying EuRoC images) is part of the end-to-end rate and reported as its own
stage, ``read``.

Each variant runs in its own child process (so its peak resident memory is its own and the
other variant's models do not count): the preset as configured, and — for learned presets —
the reference point, a straightforward torch implementation of the same networks
(:data:`REFERENCE_OVERRIDES`: torch runtimes, no early exit, no pruning, the matcher on
every frame). Per input, each
child first does ``warmup_runs`` untimed runs, then the timed runs alternate between the
variants (preset, reference, reference, preset, ...) so that a change of load on a shared
machine hits both alike. Models are loaded once per child; each run builds a fresh pipeline
(fresh tracker, back end and sink) and a fresh source.

Per run: ``fps`` is the steady rate, frames after the first ``warmup_frames`` results over
the time between the ``warmup_frames``-th and the last result; ``fps_run`` is every frame
over the whole run, from the first read to ``Pipeline.close`` returning (pipeline fill,
initialisation and the back end's final flush included). Stage latencies (median, p90, max)
pool the frames after the first ``warmup_frames`` of every timed run, and so does the frame
time, the interval between consecutive results (what a viewer or a controller feels).
``read`` and ``extract`` run on the reader thread, the other stages on the tracking thread,
so the stages overlap: with two free cores the frame period is near the larger of the two
sums, not the sum of all.
Peak resident memory is the child's high-water mark during the runs (reset after the models
are loaded, so a one-off ONNX export does not count).

The library part returns records and text; only the command line prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.bench.common import machine_info
from slamfront.config import Config, config_to_dict, load_config
from slamfront.errors import ConfigError
from slamfront.frontend.extractors import build_extractor
from slamfront.frontend.matchers import build_matcher
from slamfront.frontend.runtime import limit_library_threads
from slamfront.frontend.runtime.availability import pick_runtime
from slamfront.pipeline import Pipeline, build_wide_extractor, build_wide_matcher
from slamfront.sinks.trajectory import TrajectorySink
from slamfront.sources import open_source
from slamfront.types import Frame, TrackingState

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from slamfront.frontend.base import Extractor, Matcher

log = logging.getLogger(__name__)

STAGES = ("read", "extract", "match", "pose", "backend", "sinks")

REFERENCE_OVERRIDES = (
    "extractor.runtime=torch",
    "matcher.runtime=torch",
    "matcher.depth_confidence=-1",
    "matcher.width_confidence=-1",
    "tracker.match_every_frame=true",
    "pipeline.read_thread=false",
)
"""The reference point: the same networks on plain torch, every layer, every point, the
matcher on every frame, the source read on the extractor's thread."""

SIM_INPUTS = {
    "sim-rgbd": ("rgbd", 640, 480),
    "sim-stereo": ("stereo", 640, 480),
    "sim-mono": ("mono", 640, 480),
}
"""Named synthetic inputs: ``sim:loop`` with this sensor and image size."""

DEFAULT_INPUTS = ("sim-rgbd", "sim-stereo")


@dataclass(frozen=True)
class BenchInput:
    """One input sequence: a source spec and the config overrides that select it."""

    label: str
    spec: str
    overrides: tuple[str, ...] = ()


def parse_input(text: str, frames: int) -> BenchInput:
    """``sim-rgbd``, ``sim-stereo``, ``sim-mono`` (``sim:loop`` at 640x480) or any source
    spec (``euroc:PATH``, ``sim:figure8``, ``tum:PATH``), limited to ``frames`` frames."""
    if frames < 1:
        raise ConfigError(f"frames must be at least 1, got {frames}")
    name = text.strip()
    if name in SIM_INPUTS:
        sensor, width, height = SIM_INPUTS[name]
        return BenchInput(
            f"sim:loop {sensor}",
            "sim:loop",
            (
                f"sim.sensor={sensor}",
                f"sim.width_px={width}",
                f"sim.height_px={height}",
                f"sim.frames={frames}",
            ),
        )
    if ":" not in name and not name.startswith("sim"):
        known = ", ".join(SIM_INPUTS)
        raise ConfigError(f"input {text!r}: expected {known} or a source spec (euroc:PATH, ...)")
    scheme, _, rest = name.partition(":")
    label = f"{scheme}:{Path(rest).name}" if rest and scheme != "sim" else name
    overrides = [f"source.max_frames={frames}"]
    if scheme == "sim":
        overrides.append(f"sim.frames={frames}")
    return BenchInput(label, name, tuple(overrides))


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RunSample:
    """What one timed run measured (sent from the child process)."""

    frames: int
    frames_lost: int
    fps: float
    fps_run: float
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    sensor: str
    """rgbd, stereo or mono: what the frames carried."""
    width_px: int
    height_px: int
    stage_ms: tuple[tuple[float, ...], ...]
    """Per frame after the warm-up frames: the six stages of :data:`STAGES`, ms."""
    frame_ms: tuple[float, ...] = ()
    """Per frame after the warm-up frames: time since the previous result, ms."""


@dataclass(frozen=True)
class StageFigures:
    median_ms: float
    p90_ms: float
    max_ms: float

    @staticmethod
    def of(values_ms: np.ndarray) -> StageFigures:
        if values_ms.size == 0:
            nan = float("nan")
            return StageFigures(nan, nan, nan)
        return StageFigures(
            float(np.median(values_ms)),
            float(np.percentile(values_ms, 90)),
            float(values_ms.max()),
        )

    @property
    def text(self) -> str:
        return f"{self.median_ms:.1f}/{self.p90_ms:.1f}/{self.max_ms:.0f}"


@dataclass(frozen=True)
class VariantResult:
    """One (input, variant): figures over its timed runs."""

    input: str
    spec: str
    variant: str
    """``preset`` (as configured) or ``reference`` (plain torch, no early exit/pruning)."""
    sensor: str
    width_px: int
    height_px: int
    extractor_runtime: str
    matcher_runtime: str
    runs: int
    frames_per_run: int
    fps_median: float
    fps_min: float
    fps_max: float
    fps_run_median: float
    cpu_ms_per_frame: float
    """Median over runs of this process's CPU time (all threads) per frame."""
    peak_rss_mb: float
    """Largest resident-memory high-water mark of the runs (child process, models loaded)."""
    rss_after_load_mb: float
    frames_lost: int
    """Frames lost, summed over the timed runs."""
    stages: dict[str, StageFigures]
    config: dict[str, Any] = field(repr=False)
    frame: StageFigures = StageFigures(float("nan"), float("nan"), float("nan"))
    """Frame time (interval between consecutive results): median, p90, max."""


@dataclass(frozen=True)
class PipelineBenchmark:
    """Every (input, variant), the settings, the machine and what was skipped."""

    preset: str
    results: tuple[VariantResult, ...]
    runs: int
    warmup_runs: int
    warmup_frames: int
    frames: int
    overrides: tuple[str, ...]
    machine: dict[str, object]
    load_average: tuple[float, float]
    skipped: tuple[str, ...] = ()
    preload: bool = False
    """Every input's frames were read into memory before each timed run (read costs ~0)."""
    uncommitted: tuple[str, ...] = ()
    """Tracked files of the package with uncommitted changes when it ran (the commit alone
    does not describe the code measured then)."""

    def ratios(self) -> list[dict[str, Any]]:
        """Per input with both variants: preset over reference (FPS), reference over preset
        (extract and match latency)."""
        out = []
        for inp in dict.fromkeys(r.input for r in self.results):
            got = {r.variant: r for r in self.results if r.input == inp}
            if "preset" not in got or "reference" not in got:
                continue
            p, ref = got["preset"], got["reference"]
            out.append(
                {
                    "input": inp,
                    "fps_ratio": _ratio(p.fps_median, ref.fps_median),
                    "fps_run_ratio": _ratio(p.fps_run_median, ref.fps_run_median),
                    "extract_speedup": _ratio(
                        ref.stages["extract"].median_ms, p.stages["extract"].median_ms
                    ),
                    "match_speedup": _ratio(
                        ref.stages["match"].median_ms, p.stages["match"].median_ms
                    ),
                }
            )
        return out

    def lines(self) -> list[str]:
        m = self.machine
        load = " / ".join(f"{v:.2f}" for v in self.load_average)
        out = [
            f"pipeline benchmark: preset {self.preset}, {self.runs} timed runs of {self.frames} "
            f"frames per input and variant after {self.warmup_runs} warm-up run(s); "
            f"stage figures over frames after the first {self.warmup_frames} of each run"
            + ("; frames read into memory before each run (not timed)" if self.preload else ""),
            f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('platform')}, "
            f"python {m.get('python')}, commit {m.get('git_commit')}"
            + (
                f" + uncommitted changes in {', '.join(self.uncommitted)}"
                if self.uncommitted
                else ""
            ),
            f"load average (1 min) before/after: {load} (above 0 = other work was running: "
            "the figures are noisy, compare medians)",
            "fps: steady rate after the warm-up frames (median of runs, min-max); fps run: "
            "whole run incl. start-up and close; frame: time between results, stages: "
            "median/p90/max ms; read+extract run on one thread (read on its own with "
            "pipeline.read_thread), match..sinks on another",
            f"{'input':<26} {'frames':<15} {'variant':<10} {'runtimes':<24} {'fps':>6} "
            f"{'min-max':>11} "
            f"{'fps run':>7} {'frame':>16} "
            + " ".join(f"{s:>16}" for s in STAGES)
            + f" {'cpu ms/f':>8} {'peak MB':>8} {'lost':>5}",
        ]
        for r in self.results:
            runtimes = f"{r.extractor_runtime}/{r.matcher_runtime}"
            stages = " ".join(f"{r.stages[s].text:>16}" for s in STAGES)
            out.append(
                f"{r.input:<26} {f'{r.sensor} {r.width_px}x{r.height_px}':<15} {r.variant:<10} "
                f"{runtimes:<24} {r.fps_median:>6.2f} "
                f"{f'{r.fps_min:.1f}-{r.fps_max:.1f}':>11} {r.fps_run_median:>7.2f} "
                f"{r.frame.text:>16} {stages} "
                f"{r.cpu_ms_per_frame:>8.1f} {r.peak_rss_mb:>8.0f} {r.frames_lost:>5}"
            )
        for ratio in self.ratios():
            speedups = [
                f"{stage} {ratio[key]:.2f}x"
                for stage, key in (("extraction", "extract_speedup"), ("matching", "match_speedup"))
                if math.isfinite(ratio[key])
            ]
            line = (
                f"{ratio['input']}: preset/reference fps x{ratio['fps_ratio']:.2f} "
                f"(whole run x{ratio['fps_run_ratio']:.2f})"
            )
            if speedups:
                line += "; " + " and ".join(speedups) + " faster than the reference"
            if not math.isfinite(ratio["match_speedup"]):
                line += "; the preset's matcher did not run on the median frame"
            out.append(line)
        out.extend(f"skipped: {reason}" for reason in self.skipped)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "pipeline",
            "preset": self.preset,
            "runs": self.runs,
            "warmup_runs": self.warmup_runs,
            "warmup_frames": self.warmup_frames,
            "frames": self.frames,
            "preload": self.preload,
            "overrides": list(self.overrides),
            "reference_overrides": list(REFERENCE_OVERRIDES),
            "git_commit": self.machine.get("git_commit"),
            "uncommitted": list(self.uncommitted),
            "machine": self.machine,
            "load_average": list(self.load_average),
            "skipped": list(self.skipped),
            "ratios": self.ratios(),
            "results": [
                {
                    **{
                        f.name: getattr(r, f.name)
                        for f in dataclasses.fields(r)
                        if f.name not in ("stages", "config", "frame")
                    },
                    "stages": {s: dataclasses.asdict(v) for s, v in r.stages.items()},
                    "frame": dataclasses.asdict(r.frame),
                    "config": r.config,
                }
                for r in self.results
            ],
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# ----------------------------------------------------------------------------- public


def bench_pipeline(
    preset: str = "fast",
    inputs: Sequence[BenchInput] | None = None,
    *,
    frames: int = 60,
    runs: int = 3,
    warmup_runs: int = 1,
    warmup_frames: int = 5,
    reference: bool = True,
    overrides: Sequence[str] = (),
    preload: bool = False,
) -> PipelineBenchmark:
    """Benchmark ``preset`` (a name or YAML file, with config ``overrides``) end to end on
    ``inputs`` (default: synthetic RGB-D and stereo at 640x480), against the torch
    reference when the preset's extractor is a network and ``reference`` is set.

    Overrides apply in this order: the input's own (sensor, size, frames), then
    ``overrides`` (so ``sim.width_px=320`` shrinks a named input), then the reference's.
    An input or variant that cannot run here (missing folder, runtime not usable) is listed
    under ``skipped`` with the reason; the rest are still measured.

    ``preload``: read each input's frames into memory before a timed run, so that the
    figures are the pipeline's alone (no decoding or rendering on the reader thread).
    """
    import multiprocessing

    if runs < 1 or warmup_runs < 0 or warmup_frames < 0:
        raise ConfigError("runs must be >= 1, warmup_runs and warmup_frames >= 0")
    if frames <= warmup_frames:
        raise ConfigError(f"frames ({frames}) must exceed warmup_frames ({warmup_frames})")
    chosen = (
        list(inputs) if inputs is not None else [parse_input(n, frames) for n in DEFAULT_INPUTS]
    )
    config = load_config(preset, overrides)  # fails here, not in a child, on a bad config
    for inp in chosen:
        load_config(preset, [*inp.overrides, *overrides])
    variants: dict[str, tuple[str, ...]] = {"preset": ()}
    skipped: list[str] = []
    if reference and config.extractor.model != "orb":
        variants["reference"] = REFERENCE_OVERRIDES
    elif reference:
        skipped.append(f"reference: preset {preset} has no network (ORB); nothing to compare")

    load_before = _load_average()
    context = multiprocessing.get_context("spawn")
    workers: dict[str, _Worker] = {}
    samples: dict[tuple[int, str], list[RunSample]] = {}
    failed: set[tuple[int, str]] = set()

    def one_run(index: int, name: str) -> RunSample | None:
        if (index, name) in failed:
            return None
        sample = workers[name].run(index)
        if isinstance(sample, str):
            skipped.append(f"{chosen[index].label} / {name}: {sample}")
            failed.add((index, name))
            return None
        return sample

    try:
        for name, extra in variants.items():
            worker = _Worker(
                context, str(preset), [*overrides, *extra], chosen, warmup_frames, preload
            )
            error = worker.start()
            if error is None:
                workers[name] = worker
            else:
                skipped.append(f"{name}: {error}")
                worker.stop()
        for index in range(len(chosen)):
            for _ in range(warmup_runs):
                for name in workers:
                    one_run(index, name)
            for rep in range(runs):
                for name in list(workers) if rep % 2 == 0 else list(reversed(workers)):
                    sample = one_run(index, name)
                    if sample is not None:
                        samples.setdefault((index, name), []).append(sample)
    finally:
        for worker in workers.values():
            worker.stop()
    results = [
        _summarise(chosen[index], name, workers[name], runs_of)
        for (index, name), runs_of in sorted(
            samples.items(), key=lambda kv: (kv[0][0], list(variants).index(kv[0][1]))
        )
        if (index, name) not in failed
    ]
    return PipelineBenchmark(
        preset=config.preset,
        results=tuple(results),
        runs=runs,
        warmup_runs=warmup_runs,
        warmup_frames=warmup_frames,
        frames=frames,
        overrides=tuple(overrides),
        machine=machine_info(),
        load_average=(load_before, _load_average()),
        skipped=tuple(skipped),
        preload=preload,
        uncommitted=uncommitted_files(),
    )


def uncommitted_files() -> tuple[str, ...]:
    """Tracked files under slamfront/ and configs/ that differ from the commit (git)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent.parent
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "slamfront", "configs"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line[3:] for line in out.stdout.splitlines() if len(line) > 3)


def summarise_samples(
    samples: Sequence[RunSample],
) -> tuple[dict[str, StageFigures], dict[str, float]]:
    """Stage median/p90/max over every frame of ``samples`` (and the frame time's, under
    ``"frame"``) and run-level figures (FPS median, min, max; whole-run FPS median; CPU ms
    per frame median; peak memory max; frames lost)."""
    if not samples:
        raise ValueError("no runs to summarise")
    rows = np.array([row for s in samples for row in s.stage_ms], np.float64).reshape(
        -1, len(STAGES)
    )
    if rows.shape[0] == 0:
        raise ValueError("no frames after the warm-up frames")
    stages = {name: StageFigures.of(rows[:, i]) for i, name in enumerate(STAGES)}
    stages["frame"] = StageFigures.of(np.array([t for s in samples for t in s.frame_ms]))
    fps = np.array([s.fps for s in samples])
    figures = {
        "fps_median": float(np.median(fps)),
        "fps_min": float(fps.min()),
        "fps_max": float(fps.max()),
        "fps_run_median": float(np.median([s.fps_run for s in samples])),
        "cpu_ms_per_frame": float(np.median([1e3 * s.cpu_s / s.frames for s in samples])),
        "peak_rss_mb": float(max(s.peak_rss_mb for s in samples)),
        "frames_lost": float(sum(s.frames_lost for s in samples)),
    }
    return stages, figures


def _summarise(
    inp: BenchInput, variant: str, worker: _Worker, samples: Sequence[RunSample]
) -> VariantResult:
    stages, figures = summarise_samples(samples)
    frame = stages.pop("frame")
    info = worker.info
    return VariantResult(
        input=inp.label,
        spec=inp.spec,
        variant=variant,
        sensor=samples[0].sensor,
        width_px=samples[0].width_px,
        height_px=samples[0].height_px,
        extractor_runtime=str(info["extractor_runtime"]),
        matcher_runtime=str(info["matcher_runtime"]),
        runs=len(samples),
        frames_per_run=samples[0].frames,
        fps_median=figures["fps_median"],
        fps_min=figures["fps_min"],
        fps_max=figures["fps_max"],
        fps_run_median=figures["fps_run_median"],
        cpu_ms_per_frame=figures["cpu_ms_per_frame"],
        peak_rss_mb=figures["peak_rss_mb"],
        rss_after_load_mb=float(info["rss_after_load_mb"]),
        frames_lost=int(figures["frames_lost"]),
        stages=stages,
        config=worker.configs.get(inp.label, {}),
        frame=frame,
    )


# ------------------------------------------------------------------------ child process


class _Worker:
    """A child process holding one variant's models; runs one input per request."""

    def __init__(
        self,
        context: Any,
        preset: str,
        overrides: list[str],
        inputs: list[BenchInput],
        warmup_frames: int,
        preload: bool,
    ) -> None:
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main,
            args=(child, preset, overrides, inputs, warmup_frames, preload),
            name="slamfront-bench-pipeline",
            daemon=True,
        )
        self._child = child
        self.info: dict[str, Any] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self._inputs = inputs

    def start(self) -> str | None:
        """Start the child and wait for its models; an error message if it failed."""
        self._process.start()
        self._child.close()
        reply = self._receive()
        if reply[0] != "ready":
            return str(reply[1])
        self.info = dict(reply[1])
        return None

    def run(self, index: int) -> RunSample | str:
        """One run of input ``index``: its sample, or an error message."""
        self._conn.send(index)
        reply = self._receive()
        if reply[0] == "sample":
            sample, config = reply[1]
            self.configs[self._inputs[index].label] = config
            return sample
        return str(reply[1])

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()

    def _receive(self) -> tuple[str, Any]:
        try:
            reply: tuple[str, Any] = self._conn.recv()
            return reply
        except EOFError:
            self._process.join(timeout=5)
            return ("error", f"benchmark process died (exit code {self._process.exitcode})")


def _worker_main(
    conn: Connection,
    preset: str,
    overrides: list[str],
    inputs: list[BenchInput],
    warmup_frames: int,
    preload: bool,
) -> None:
    """Child process: load the variant's models, then serve run requests until None."""
    models: dict[tuple[object, object], _Models] = {}
    limit_library_threads()  # as `slamfront run` does
    try:
        base = load_config(preset, overrides)
        models[(base.extractor, base.matcher)] = _build_models(base)
        conn.send(
            (
                "ready",
                {
                    "extractor_runtime": _runtime_name(
                        base.extractor.model, base.extractor.runtime
                    ),
                    "matcher_runtime": _runtime_name(base.matcher.model, base.matcher.runtime),
                    "rss_after_load_mb": _rss_mb("VmRSS"),
                },
            )
        )
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            index = conn.recv()
        except EOFError:
            return
        if index is None:
            return
        inp = inputs[index]
        try:
            config = load_config(preset, [*inp.overrides, *overrides])
            key = (config.extractor, config.matcher)
            if key not in models:
                models[key] = _build_models(config)
            extractor, matcher, wide_extractor, wide_matcher = models[key]
            sample = run_once(
                config,
                inp.spec,
                extractor,
                matcher,
                warmup_frames=warmup_frames,
                preload=preload,
                wide_extractor=wide_extractor,
                wide_matcher=wide_matcher,
            )
            conn.send(("sample", (sample, config_to_dict(config))))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


_Models = tuple["Extractor", "Matcher", "Extractor | None", "Matcher | None"]


def _build_models(config: Config) -> _Models:
    extractor = build_extractor(config.extractor)
    matcher = build_matcher(config.matcher, extractor_model=config.extractor.model)
    wide_extractor = build_wide_extractor(config.extractor)
    return extractor, matcher, wide_extractor, build_wide_matcher(config)


def _runtime_name(model: str, runtime: str) -> str:
    if model in ("orb", "orb_bf"):
        return "opencv"
    if model == "mnn":
        return "numpy"

    return pick_runtime(runtime, tensorrt_needs_torch_cuda=model == "lightglue")


def run_once(
    config: Config,
    spec: str,
    extractor: Extractor,
    matcher: Matcher,
    *,
    warmup_frames: int,
    preload: bool = False,
    wide_extractor: Extractor | None = None,
    wide_matcher: Matcher | None = None,
) -> RunSample:
    """One timed run of the real pipeline (:meth:`Pipeline.run`, trajectory sink to a
    temporary folder) over the source ``spec``. Opening the source (building the simulated
    scene, listing files) is not timed; reading every frame is, unless ``preload`` reads
    them all into memory first."""
    import tempfile

    stamps: list[float] = []
    rows: list[tuple[float, ...]] = []
    lost = 0
    shape_out: list[tuple[str, int, int]] = []
    with (
        tempfile.TemporaryDirectory(prefix="slamfront-bench-") as tmp,
        open_source(spec, config) as source,
    ):
        raw = Path(tmp) / "trajectory_raw.tum" if config.backend.enabled else None
        sink = TrajectorySink(Path(tmp) / "trajectory.tum", raw)
        frames: Iterable[Frame] = list(source) if preload else source
        pipeline = Pipeline(
            config,
            sinks=[sink],
            extractor=extractor,
            matcher=matcher,
            wide_extractor=wide_extractor,
            wide_matcher=wide_matcher,
        )
        reset_peak_rss()
        cpu_start, start = time.process_time(), time.perf_counter()
        try:
            for result in pipeline.run(_noting_shape(frames, shape_out)):
                stamps.append(time.perf_counter())
                t = result.timings
                rows.append(
                    (t.read_ms, t.extract_ms, t.match_ms, t.pose_ms, t.backend_ms, t.sinks_ms)
                )
                lost += result.state == TrackingState.LOST
        finally:
            pipeline.close()
        end = time.perf_counter()
        cpu_s = time.process_time() - cpu_start
        peak = _rss_mb("VmHWM")
    shape = shape_out[0] if shape_out else ("none", 0, 0)
    n = len(stamps)
    if n <= warmup_frames:
        raise ConfigError(f"{spec}: only {n} frames, not more than warmup_frames {warmup_frames}")
    first = stamps[warmup_frames - 1] if warmup_frames > 0 else start
    steady = stamps[-1] - first
    return RunSample(
        frames=n,
        frames_lost=int(lost),
        fps=(n - warmup_frames) / steady if steady > 0 else float("nan"),
        fps_run=n / (end - start),
        wall_s=end - start,
        cpu_s=cpu_s,
        peak_rss_mb=peak,
        sensor=shape[0],
        width_px=shape[1],
        height_px=shape[2],
        stage_ms=tuple(rows[warmup_frames:]),
        frame_ms=tuple(1e3 * float(d) for d in np.diff(stamps[max(warmup_frames - 1, 0) :])),
    )


def _noting_shape(frames: Iterable[Frame], out: list[tuple[str, int, int]]) -> Iterator[Frame]:
    """The frames, unchanged; the first one's sensor and image size are appended to ``out``."""
    for frame in frames:
        if not out:
            sensor = (
                "rgbd"
                if frame.depth_m is not None
                else "stereo"
                if frame.image_right is not None
                else "mono"
            )
            out.append((sensor, int(frame.image.shape[1]), int(frame.image.shape[0])))
        yield frame


def reset_peak_rss() -> bool:
    """Reset this process's resident-memory high-water mark (Linux); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_mb(field_name: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux), else the peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


__all__ = [
    "DEFAULT_INPUTS",
    "REFERENCE_OVERRIDES",
    "BenchInput",
    "PipelineBenchmark",
    "RunSample",
    "StageFigures",
    "VariantResult",
    "bench_pipeline",
    "parse_input",
    "reset_peak_rss",
    "run_once",
    "summarise_samples",
]
