"""Extractor benchmark: median and p90 wall time per preset, runtime and image size.

Each measurement times ``extractor(image)`` — host pre-processing, the network and the
post-processing, i.e. what a caller pays per frame — for ``runs`` calls after ``warmup``
untimed ones. The image is a synthetic textured RGB frame (deterministic), or the caller's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.bench.common import TimingStats, machine_info
from slamfront.config import load_config
from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.extractors import build_extractor

if TYPE_CHECKING:
    from slamfront.frontend.base import Extractor

log = logging.getLogger(__name__)

SIZES_PX = ((640, 480), (752, 480))
PRESETS = ("fast", "classic")
RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class ExtractorTiming:
    """One (preset, runtime, size): timings and the mean keypoint count."""

    preset: str
    model: str
    runtime: str
    width_px: int
    height_px: int
    keypoints: float
    stats: TimingStats
    cpu_median_ms: float
    """Median process CPU time per call (all threads): the cost, less sensitive than wall
    time to other work on the machine (but it counts threads spinning while they wait)."""


@dataclass(frozen=True)
class ExtractorBenchmark:
    """All measurements, the settings they were taken with, the machine, and what was skipped."""

    timings: tuple[ExtractorTiming, ...]
    runs: int
    warmup: int
    max_keypoints: int
    machine: dict[str, object]
    skipped: tuple[str, ...] = ()
    load_average: tuple[float, float] = (float("nan"), float("nan"))
    """1-minute load average before and after: other work on the machine skews timings."""

    def lines(self) -> list[str]:
        m = self.machine
        out = [
            f"extractor benchmark: {self.runs} runs after {self.warmup} warm-up, "
            f"max_keypoints {self.max_keypoints}",
            f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('platform')}, "
            f"python {m.get('python')}, commit {m.get('git_commit')}",
            f"load average (1 min) before/after: {self.load_average[0]:.2f} / "
            f"{self.load_average[1]:.2f} (above 0 = other work was running)",
            f"{'preset':<10} {'model':<10} {'runtime':<12} {'size':>9} {'kpts':>6} "
            f"{'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'cpu ms':>8}",
        ]
        for t in self.timings:
            out.append(
                f"{t.preset:<10} {t.model:<10} {t.runtime:<12} "
                f"{f'{t.width_px}x{t.height_px}':>9} {t.keypoints:>6.0f} "
                f"{t.stats.median_ms:>10.1f} {t.stats.p90_ms:>8.1f} {t.stats.min_ms:>8.1f} "
                f"{t.cpu_median_ms:>8.1f}"
            )
        out.extend(f"skipped: {reason}" for reason in self.skipped)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "warmup": self.warmup,
            "max_keypoints": self.max_keypoints,
            "machine": self.machine,
            "load_average": list(self.load_average),
            "skipped": list(self.skipped),
            "timings": [
                {
                    "preset": t.preset,
                    "model": t.model,
                    "runtime": t.runtime,
                    "size_px": [t.width_px, t.height_px],
                    "keypoints": t.keypoints,
                    "cpu_median_ms": t.cpu_median_ms,
                    **dataclasses.asdict(t.stats),
                }
                for t in self.timings
            ],
        }


def synthetic_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured RGB uint8 frame: smoothed noise at several scales plus sharp shapes."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for scale, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        small = rng.random((height // scale + 2, width // scale + 2)).astype(np.float32)
        image += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(5, 40))
        shade = int(rng.integers(0, 256))
        cv2.rectangle(canvas, (x, y), (x + size, y + size // 2 + 3), shade, thickness=-1)
    return np.ascontiguousarray(np.repeat(canvas[:, :, None], 3, axis=2))


def bench_extractor(
    presets: Sequence[str] = PRESETS,
    runtimes: Sequence[str] = RUNTIMES,
    sizes_px: Sequence[tuple[int, int]] = SIZES_PX,
    *,
    max_keypoints: int = 1024,
    runs: int = 20,
    warmup: int = 5,
    image_for_size: Callable[[int, int], np.ndarray] = synthetic_image,
    overrides: Sequence[str] = (),
) -> ExtractorBenchmark:
    """Time every (preset, runtime, size). ORB presets run once, on OpenCV, with their own
    feature count; the learned ones with ``max_keypoints``.

    A runtime that is not usable here is listed under ``skipped`` with the reason.
    ``overrides`` are config ``key=value`` strings applied to every preset.
    """
    timings: list[ExtractorTiming] = []
    skipped: list[str] = []
    load_before = _load_average()
    images = {size: image_for_size(*size) for size in sizes_px}
    for preset in presets:
        config = load_config(preset, overrides)
        learned = config.extractor.model != "orb"
        for runtime in runtimes if learned else ("opencv",):
            cfg = config.extractor
            if learned:
                cfg = dataclasses.replace(
                    cfg,
                    max_keypoints=max_keypoints,
                    runtime=runtime,  # type: ignore[arg-type]
                )
            try:
                extractor = build_extractor(cfg)
            except RuntimeUnavailableError as exc:
                skipped.append(f"{preset}/{runtime}: {exc}")
                continue
            for width, height in sizes_px:
                image = images[(width, height)]
                counts: list[int] = []

                def call(
                    image: np.ndarray = image,
                    counts: list[int] = counts,
                    extractor: Extractor = extractor,
                ) -> None:
                    counts.append(len(extractor(image)))

                log.info("timing %s/%s at %dx%d", preset, runtime, width, height)
                stats, cpu_ms = _time(call, runs, warmup)
                timings.append(
                    ExtractorTiming(
                        preset=preset,
                        model=cfg.model,
                        runtime=runtime,
                        width_px=width,
                        height_px=height,
                        keypoints=float(np.mean(counts)),
                        stats=stats,
                        cpu_median_ms=cpu_ms,
                    )
                )
    return ExtractorBenchmark(
        timings=tuple(timings),
        runs=runs,
        warmup=warmup,
        max_keypoints=max_keypoints,
        machine=machine_info(),
        skipped=tuple(skipped),
        load_average=(load_before, _load_average()),
    )


def _time(call: Callable[[], None], runs: int, warmup: int) -> tuple[TimingStats, float]:
    """Wall-time statistics and the median process CPU time of ``runs`` calls after warm-up."""
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(runs):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        call()
        wall.append((time.perf_counter() - wall_start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    return TimingStats.of(wall), float(np.median(cpu))


def _load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return float("nan")


__all__ = ["ExtractorBenchmark", "ExtractorTiming", "bench_extractor", "synthetic_image"]
