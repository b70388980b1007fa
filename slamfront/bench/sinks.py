"""Benchmark of the Rerun viewer sink's cost: end-to-end FPS of a run with and without it.

Run ``python -m slamfront.bench.sinks [--config classic] [--frames 60] [--runs 5]
[--mode save] [--image-scale 1.0] [--jpeg-quality Q]``. The frames of ``sim:loop`` are
rendered once and held in memory, so both variants track the very same frames; each
repetition runs the pipeline without the sink and with it (order alternating), from the
first frame until everything is flushed (``Pipeline.close`` and, with the sink, the
recording closed). It prints medians with the machine and its load; timings on a shared
machine are noisy, so compare medians, and read ``viewer_frames_dropped`` with them (a sink
that drops frames costs less but shows less). The library part (:func:`run`,
:func:`format_report`) returns records and text; only ``main`` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slamfront.bench.common import machine_info
from slamfront.config import Config, load_config
from slamfront.frontend.extractors import build_extractor
from slamfront.frontend.matchers import build_matcher
from slamfront.pipeline import Pipeline, QueuedSink
from slamfront.sinks import Sink
from slamfront.sinks.rerun_session import RerunSession, parse_mode
from slamfront.sinks.rerun_sink import RerunSink, default_blueprint
from slamfront.sources import open_source

if TYPE_CHECKING:
    from slamfront.frontend.base import Extractor, Matcher
    from slamfront.types import Frame


@dataclass(frozen=True)
class SinkOverheadBench:
    """FPS per repetition (frames / wall seconds until flushed) without and with the sink.

    ``drop_pct`` compares the medians; ``paired_drop_pct`` is the median of the drops of
    back-to-back pairs (less sensitive to the machine's load drifting during the run).
    ``cpu_ms_per_frame_*`` is this process's CPU time (all threads, Rerun's own included) per
    frame; ``cpu_overhead_pct`` the extra CPU the sink costs. On a machine busy with other
    work FPS hides the sink's cost; the CPU time does not, and it bounds the FPS drop when the
    pipeline is CPU-bound on every core.
    """

    preset: str
    mode: str
    frames: int
    width_px: int
    height_px: int
    image_scale: float
    jpeg_quality: int | None
    fps_without: tuple[float, ...]
    fps_with: tuple[float, ...]
    median_fps_without: float
    median_fps_with: float
    drop_pct: float
    paired_drop_pct: float
    viewer_frames_dropped: tuple[int, ...]
    cpu_ms_per_frame_without: float
    cpu_ms_per_frame_with: float
    cpu_overhead_pct: float
    recording_bytes_per_frame: float
    machine: dict[str, object]
    load_average: tuple[float, float, float]


def run(
    preset: str = "classic",
    *,
    frames: int = 60,
    runs: int = 5,
    width_px: int = 640,
    height_px: int = 480,
    mode: str = "save",
    image_scale: float | None = None,
    jpeg_quality: int | None = None,
    overrides: Sequence[str] = (),
) -> SinkOverheadBench:
    """Track the same in-memory frames ``runs`` times without and with the Rerun sink.

    ``image_scale`` / ``jpeg_quality`` default to the config's ``rerun`` section.
    ``mode`` is ``save`` (to a temporary file) or ``serve`` (a local server on free ports).
    """
    config = load_config(
        preset,
        [
            f"sim.frames={frames}",
            f"sim.width_px={width_px}",
            f"sim.height_px={height_px}",
            "rerun.web_port=0",
            "rerun.grpc_port=0",
            *overrides,
        ],
    )
    rerun_cfg = config.rerun
    if image_scale is not None:
        rerun_cfg = replace(rerun_cfg, image_scale=image_scale)
    if jpeg_quality is not None:
        rerun_cfg = replace(rerun_cfg, jpeg_quality=jpeg_quality)
    config = replace(config, rerun=rerun_cfg)
    with open_source("sim:loop", config) as source:
        held = list(source)
    extractor = build_extractor(config.extractor)
    matcher = build_matcher(config.matcher, extractor_model=config.extractor.model)

    without: list[float] = []
    with_sink: list[float] = []
    cpu_without: list[float] = []
    cpu_with: list[float] = []
    dropped: list[int] = []
    sizes: list[float] = []
    with tempfile.TemporaryDirectory(prefix="slamfront-bench-sinks-") as tmp:
        _one_run(config, held, extractor, matcher, Path(tmp), mode=None)  # warm-up, untimed
        _one_run(config, held, extractor, matcher, Path(tmp), mode=mode)
        for rep in range(runs):
            order = (None, mode) if rep % 2 == 0 else (mode, None)
            for variant in order:
                fps, cpu_s, lost, size = _one_run(
                    config, held, extractor, matcher, Path(tmp), mode=variant
                )
                if variant is None:
                    without.append(fps)
                    cpu_without.append(1e3 * cpu_s / len(held))
                else:
                    with_sink.append(fps)
                    cpu_with.append(1e3 * cpu_s / len(held))
                    dropped.append(lost)
                    sizes.append(size / len(held))
    med_without = float(np.median(without))
    med_with = float(np.median(with_sink))
    pairs = [100.0 * (1.0 - w / wo) for w, wo in zip(with_sink, without, strict=True)]
    return SinkOverheadBench(
        preset=config.preset,
        mode=mode,
        frames=len(held),
        width_px=width_px,
        height_px=height_px,
        image_scale=rerun_cfg.image_scale,
        jpeg_quality=rerun_cfg.jpeg_quality,
        fps_without=tuple(without),
        fps_with=tuple(with_sink),
        median_fps_without=med_without,
        median_fps_with=med_with,
        drop_pct=100.0 * (1.0 - med_with / med_without),
        paired_drop_pct=float(np.median(pairs)),
        viewer_frames_dropped=tuple(dropped),
        cpu_ms_per_frame_without=float(np.median(cpu_without)),
        cpu_ms_per_frame_with=float(np.median(cpu_with)),
        cpu_overhead_pct=100.0 * (float(np.median(cpu_with)) / float(np.median(cpu_without)) - 1),
        recording_bytes_per_frame=float(np.median(sizes)) if sizes else 0.0,
        machine=machine_info(),
        load_average=_load_average(),
    )


def _one_run(
    config: Config,
    frames: list[Frame],
    extractor: Extractor,
    matcher: Matcher,
    tmp: Path,
    *,
    mode: str | None,
) -> tuple[float, float, int, int]:
    """(FPS until flushed, process CPU seconds, viewer frames dropped, recording bytes) of
    one pipeline run, with the Rerun sink in ``mode`` (None: without it)."""
    path = tmp / "bench.rrd"
    session = None
    sinks: list[Sink] = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    if mode is not None:
        session = RerunSession(
            parse_mode(f"save:{path}" if mode == "save" else mode),
            config.rerun,
            blueprint=default_blueprint(),
        )
        sinks = [QueuedSink(RerunSink(session.recording, config.rerun), config.rerun.queue_size)]
    pipeline = Pipeline(config, sinks=sinks, extractor=extractor, matcher=matcher)
    try:
        for _ in pipeline.run(frames):
            pass
    finally:
        pipeline.close()
        if session is not None:
            session.close()
    wall = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    dropped = pipeline.stats().viewer_frames_dropped
    size = path.stat().st_size if mode == "save" and path.exists() else 0
    return len(frames) / wall, cpu_s, dropped, size


def _load_average() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover - platforms without it
        return (float("nan"), float("nan"), float("nan"))
    return (one, five, fifteen)


def format_report(result: SinkOverheadBench) -> str:
    jpeg = f"JPEG q{result.jpeg_quality}" if result.jpeg_quality else "raw pixels"
    lines = [
        f"Rerun sink overhead: preset {result.preset}, sim:loop {result.frames} frames "
        f"{result.width_px}x{result.height_px}, --rerun {result.mode}, images x"
        f"{result.image_scale:g} {jpeg}, {len(result.fps_with)} runs each",
        f"  without sink  median {result.median_fps_without:6.2f} fps   "
        f"({', '.join(f'{v:.2f}' for v in result.fps_without)})",
        f"  with sink     median {result.median_fps_with:6.2f} fps   "
        f"({', '.join(f'{v:.2f}' for v in result.fps_with)})",
        f"  FPS drop      {result.drop_pct:5.1f} % of the median "
        f"(paired median {result.paired_drop_pct:5.1f} %)",
        f"  CPU per frame median {result.cpu_ms_per_frame_without:.1f} ms without, "
        f"{result.cpu_ms_per_frame_with:.1f} ms with the sink "
        f"({result.cpu_overhead_pct:+.1f} %, all threads of this process)",
        f"  viewer frames dropped per run: {list(result.viewer_frames_dropped)}",
    ]
    if result.recording_bytes_per_frame:
        lines.append(f"  recording: {result.recording_bytes_per_frame / 1024:.0f} KiB per frame")
    machine = result.machine
    lines.append(
        f"  machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"python {machine.get('python')}, commit {machine.get('git_commit')}, "
        f"load average {result.load_average[0]:.1f} (shared machines: noisy)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", default="classic", help="preset (default classic)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each variant")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--mode", default="save", choices=("save", "serve"))
    parser.add_argument("--image-scale", type=float, help="default: the config's")
    parser.add_argument("--jpeg-quality", type=int, help="default: the config's")
    parser.add_argument("--json", metavar="FILE", help="also write the result to this file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    result = run(
        args.config,
        frames=args.frames,
        runs=args.runs,
        width_px=args.width,
        height_px=args.height,
        mode=args.mode,
        image_scale=args.image_scale,
        jpeg_quality=args.jpeg_quality,
        overrides=args.overrides,
    )
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
