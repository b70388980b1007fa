"""Matcher benchmark: median and p90 wall time per preset, runtime, keypoint count and mode.

Each measurement times ``matcher(features0, features1)`` — normalisation, the network (or
the nearest-neighbour search) and the match filtering, i.e. what a caller pays per pair —
for ``runs`` calls after ``warmup`` untimed ones, cycling over the pairs of consecutive
frames of the synthetic rig (``sim:loop``). Features come from each preset's own extractor
(torch), extracted once at the largest keypoint count; smaller counts keep each frame's
highest-scoring keypoints. Mode ``adaptive`` is early exit and pruning as the preset sets
them, ``full`` switches both off (all layers, all points).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.bench.common import TimingStats, machine_info
from slamfront.config import load_config
from slamfront.errors import RuntimeUnavailableError, WeightsError
from slamfront.frontend import load_extractor
from slamfront.frontend.matchers import build_matcher
from slamfront.sources import open_source
from slamfront.types import Features

if TYPE_CHECKING:
    from slamfront.frontend.base import Matcher

log = logging.getLogger(__name__)

PRESETS = ("fast", "accurate")
RUNTIMES = ("torch", "onnxruntime")
KEYPOINTS = (512, 1024, 2048)
MODES = ("adaptive", "full")


@dataclass(frozen=True, slots=True)
class MatcherRuns:
    """What :func:`time_matcher` measured over its runs."""

    stats: TimingStats
    """Wall time per call."""
    cpu_median_ms: float
    mean_layers: float
    mean_matches: float
    mean_points_last_layer: float


@dataclass(frozen=True)
class MatcherTiming:
    """One (preset, runtime, keypoints, mode): timings and what the matcher did on average."""

    preset: str
    model: str
    runtime: str
    keypoints: int
    mode: str
    depth_confidence: float
    width_confidence: float
    mean_layers: float
    mean_matches: float
    mean_points_last_layer: float
    stats: TimingStats
    cpu_median_ms: float
    """Median process CPU time per call (all threads): the cost, less sensitive than wall
    time to other work on the machine (but it counts threads spinning while they wait)."""


@dataclass(frozen=True)
class MatcherBenchmark:
    """All measurements, the settings, the machine (with its load), and what was skipped."""

    timings: tuple[MatcherTiming, ...]
    source: str
    pairs: int
    runs: int
    warmup: int
    machine: dict[str, object]
    load_average: tuple[float, float]
    """1-minute load average before and after the runs (above 0: other work was running)."""
    skipped: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        m = self.machine
        load = " / ".join(f"{v:.2f}" for v in self.load_average)
        out = [
            f"matcher benchmark: {self.runs} runs after {self.warmup} warm-up, "
            f"{self.pairs} consecutive-frame pairs of {self.source} (cycled)",
            f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('platform')}, "
            f"python {m.get('python')}, commit {m.get('git_commit')}",
            f"load average (1 min) before/after: {load} (above 0 = other work was running)",
            f"{'preset':<9} {'model':<10} {'runtime':<12} {'kpts':>5} {'mode':<9} "
            f"{'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'cpu ms':>8} {'layers':>7} "
            f"{'matches':>8} {'pts last':>9}",
        ]
        for t in self.timings:
            out.append(
                f"{t.preset:<9} {t.model:<10} {t.runtime:<12} {t.keypoints:>5} {t.mode:<9} "
                f"{t.stats.median_ms:>10.1f} {t.stats.p90_ms:>8.1f} {t.stats.min_ms:>8.1f} "
                f"{t.cpu_median_ms:>8.1f} {t.mean_layers:>7.2f} {t.mean_matches:>8.0f} "
                f"{t.mean_points_last_layer:>9.0f}"
            )
        out.extend(f"skipped: {reason}" for reason in self.skipped)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "pairs": self.pairs,
            "runs": self.runs,
            "warmup": self.warmup,
            "machine": self.machine,
            "load_average": list(self.load_average),
            "skipped": list(self.skipped),
            "timings": [
                {
                    **{k: v for k, v in dataclasses.asdict(t).items() if k != "stats"},
                    **dataclasses.asdict(t.stats),
                }
                for t in self.timings
            ],
        }


def consecutive_features(
    preset: str, max_keypoints: int, frames: int, source: str = "sim:loop"
) -> list[Features]:
    """Features of ``frames`` consecutive frames of ``source`` from the preset's extractor."""
    config = load_config(preset)
    learned = config.extractor.model != "orb"
    extractor = load_extractor(
        config, runtime="torch" if learned else None, max_keypoints=max_keypoints
    )
    with open_source(source, config) as src:
        images = [frame.image for _, frame in zip(range(frames), src, strict=False)]
    return [extractor(image) for image in images]


def time_matcher(
    matcher: Matcher, pairs: Sequence[tuple[Features, Features]], *, runs: int, warmup: int
) -> MatcherRuns:
    """Wall timings, median CPU ms, mean layers run, mean matches and mean points in the
    last layer run of ``runs`` calls after ``warmup`` untimed ones."""
    for i in range(warmup):
        matcher(*pairs[i % len(pairs)])
    samples, cpu, layers, matches, last = [], [], [], [], []
    for i in range(runs):
        f0, f1 = pairs[i % len(pairs)]
        cpu_start, start = time.process_time(), time.perf_counter()
        out = matcher(f0, f1)
        samples.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
        layers.append(out.layers_run)
        matches.append(len(out))
        last.append(out.points_kept[-1] if out.points_kept else len(f0) + len(f1))
    return MatcherRuns(
        stats=TimingStats.of(samples),
        cpu_median_ms=float(np.median(cpu)),
        mean_layers=float(np.mean(layers)),
        mean_matches=float(np.mean(matches)),
        mean_points_last_layer=float(np.mean(last)),
    )


def bench_matcher(
    presets: Sequence[str] = PRESETS,
    runtimes: Sequence[str] = RUNTIMES,
    keypoints: Sequence[int] = KEYPOINTS,
    modes: Sequence[str] = MODES,
    *,
    runs: int = 20,
    warmup: int = 3,
    frames: int = 6,
    source: str = "sim:loop",
    overrides: Sequence[str] = (),
) -> MatcherBenchmark:
    """Time every (preset, runtime, keypoints, mode).

    Non-iterative matchers (mnn, orb_bf) run once per keypoint count, on numpy/OpenCV.
    A runtime that is not usable here is listed under ``skipped`` with the reason.
    ``overrides`` are config ``key=value`` strings applied to every preset.
    """
    timings: list[MatcherTiming] = []
    skipped: list[str] = []
    load_before = os.getloadavg()[0]
    for preset in presets:
        config = load_config(preset, overrides)
        try:
            base = consecutive_features(preset, max(keypoints), frames, source)
        except (RuntimeUnavailableError, WeightsError) as exc:
            skipped.append(f"{preset}: {exc}")
            continue
        iterative = config.matcher.model == "lightglue"
        for runtime in runtimes if iterative else ("numpy",):
            for mode in modes if iterative else ("full",):
                cfg = config.matcher
                if iterative:
                    adaptive = mode == "adaptive"
                    cfg = dataclasses.replace(
                        cfg,
                        runtime=runtime,  # type: ignore[arg-type]
                        depth_confidence=cfg.depth_confidence if adaptive else -1.0,
                        width_confidence=cfg.width_confidence if adaptive else -1.0,
                    )
                try:
                    matcher = build_matcher(cfg, config.extractor.model)
                except (RuntimeUnavailableError, WeightsError) as exc:
                    skipped.append(f"{preset}/{runtime}: {exc}")
                    continue
                for n in keypoints:
                    feats = [f.subset(f.strongest(n)) for f in base]
                    pairs = [(feats[i], feats[i + 1]) for i in range(len(feats) - 1)]
                    log.info("timing %s/%s %d keypoints %s", preset, runtime, n, mode)
                    measured = time_matcher(matcher, pairs, runs=runs, warmup=warmup)
                    timings.append(
                        MatcherTiming(
                            preset=preset,
                            model=cfg.model,
                            runtime=runtime,
                            keypoints=n,
                            mode=mode,
                            depth_confidence=cfg.depth_confidence,
                            width_confidence=cfg.width_confidence,
                            mean_layers=measured.mean_layers,
                            mean_matches=measured.mean_matches,
                            mean_points_last_layer=measured.mean_points_last_layer,
                            stats=measured.stats,
                            cpu_median_ms=measured.cpu_median_ms,
                        )
                    )
    return MatcherBenchmark(
        timings=tuple(timings),
        source=source,
        pairs=frames - 1,
        runs=runs,
        warmup=warmup,
        machine=machine_info(),
        load_average=(load_before, os.getloadavg()[0]),
        skipped=tuple(skipped),
    )


__all__ = [
    "MatcherBenchmark",
    "MatcherRuns",
    "MatcherTiming",
    "bench_matcher",
    "consecutive_features",
    "time_matcher",
]
