"""Resolution scaling: frames/s and CPU per frame of the whole pipeline at several image sizes.

One synthetic sequence (``sim:loop``, the same scene and path, the field of view held) is
rendered at each size and run through :func:`~slamfront.bench.pipeline.bench_pipeline`
(the preset only, frames read into memory before each run, so rendering does not count).
The table says what a camera's resolution costs: with ``extractor.max_area_px`` the detector
input stops growing past that area, and the per-frame CPU with it.

The library part returns records and text; only the command line prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slamfront.bench.pipeline import (
    BenchInput,
    PipelineBenchmark,
    StageFigures,
    bench_pipeline,
)
from slamfront.config import load_config
from slamfront.errors import ConfigError
from slamfront.frontend.extractors import network_size
from slamfront.frontend.models.specs import MODEL_SPECS

SIZES: tuple[tuple[str, int, int], ...] = (
    ("QVGA", 320, 240),
    ("VGA", 640, 480),
    ("KITTI", 1241, 376),
    ("720p", 1280, 720),
)
"""(name, width, height) of the default table."""


@dataclass(frozen=True)
class ScalingRow:
    """One image size: what the pipeline did with it (medians over the timed runs)."""

    name: str
    width_px: int
    height_px: int
    detector_px: tuple[int, int] | None
    """(width, height) of the network input (None: not a learned extractor)."""
    fps: float
    cpu_ms_per_frame: float
    frame: StageFigures
    extract: StageFigures
    pose: StageFigures
    frames_lost: int


@dataclass(frozen=True)
class ScalingBenchmark:
    preset: str
    sensor: str
    rows: tuple[ScalingRow, ...]
    pipeline: PipelineBenchmark
    """The underlying runs (machine, commit, load, settings, anything skipped)."""

    def lines(self) -> list[str]:
        """A Markdown table and the conditions it was measured in."""
        p = self.pipeline
        m = p.machine
        load = " / ".join(f"{v:.2f}" for v in p.load_average)
        out = [
            f"resolution scaling: preset {self.preset}, sim:loop {self.sensor}, {p.runs} timed "
            f"runs of {p.frames} frames per size after {p.warmup_runs} warm-up run(s), frames "
            "read into memory first",
            f"machine: {m.get('cpu')}, {m.get('cores')} cores, commit {m.get('git_commit')}"
            + (f" + uncommitted changes in {', '.join(p.uncommitted)}" if p.uncommitted else "")
            + f", load average before/after {load}",
            "",
            "| size | pixels | detector input | fps | CPU ms/frame | frame ms med/p90/max "
            "| extract ms med/p90 | pose ms med/p90 | lost |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            detector = f"{r.detector_px[0]}×{r.detector_px[1]}" if r.detector_px else "-"
            out.append(
                f"| {r.name} {r.width_px}×{r.height_px} | {r.width_px * r.height_px / 1e3:.0f} k "
                f"| {detector} | {r.fps:.1f} | {r.cpu_ms_per_frame:.0f} "
                f"| {r.frame.text} "
                f"| {r.extract.median_ms:.1f}/{r.extract.p90_ms:.1f} "
                f"| {r.pose.median_ms:.1f}/{r.pose.p90_ms:.1f} | {r.frames_lost} |"
            )
        out.extend(f"skipped: {reason}" for reason in p.skipped)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "scaling",
            "preset": self.preset,
            "sensor": self.sensor,
            "rows": [asdict(r) for r in self.rows],
            "pipeline": self.pipeline.to_dict(),
        }


def parse_size(text: str) -> tuple[str, int, int]:
    """``WIDTHxHEIGHT`` (or a name of :data:`SIZES`) as (name, width, height)."""
    named = {name.lower(): (name, w, h) for name, w, h in SIZES}
    key = text.strip().lower()
    if key in named:
        return named[key]
    width, sep, height = key.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ConfigError(f"size {text!r}: expected WIDTHxHEIGHT or one of {', '.join(named)}")
    return (f"{width}×{height}", int(width), int(height))


def bench_scaling(
    preset: str = "fast",
    sizes: Sequence[tuple[str, int, int]] = SIZES,
    *,
    sensor: str = "rgbd",
    frames: int = 60,
    runs: int = 3,
    warmup_runs: int = 1,
    warmup_frames: int = 5,
    overrides: Sequence[str] = (),
) -> ScalingBenchmark:
    """Run ``preset`` (with ``overrides``) on ``sim:loop`` with ``sensor`` at each of
    ``sizes``; one row per size that ran (the others are listed under ``skipped``)."""
    if not sizes:
        raise ConfigError("no image sizes to measure")
    inputs = [
        BenchInput(
            f"{name} {width}x{height}",
            "sim:loop",
            (
                f"sim.sensor={sensor}",
                f"sim.width_px={width}",
                f"sim.height_px={height}",
                f"sim.frames={frames}",
            ),
        )
        for name, width, height in sizes
    ]
    result = bench_pipeline(
        preset,
        inputs,
        frames=frames,
        runs=runs,
        warmup_runs=warmup_runs,
        warmup_frames=warmup_frames,
        reference=False,
        overrides=overrides,
        preload=True,
    )
    extractor = load_config(preset, overrides).extractor
    spec = MODEL_SPECS.get(extractor.model)
    by_label = {r.input: r for r in result.results}
    rows = []
    for (name, width, height), inp in zip(sizes, inputs, strict=True):
        got = by_label.get(inp.label)
        if got is None:
            continue
        detector = (
            network_size(width, height, spec.stride_px, extractor.max_area_px)
            if spec is not None
            else None
        )
        rows.append(
            ScalingRow(
                name=name,
                width_px=width,
                height_px=height,
                detector_px=detector,
                fps=got.fps_median,
                cpu_ms_per_frame=got.cpu_ms_per_frame,
                frame=got.frame,
                extract=got.stages["extract"],
                pose=got.stages["pose"],
                frames_lost=got.frames_lost,
            )
        )
    return ScalingBenchmark(result.preset, sensor, tuple(rows), result)


__all__ = ["SIZES", "ScalingBenchmark", "ScalingRow", "bench_scaling", "parse_size"]
