"""Command line: ``slamfront run|demo|eval|...``. Thin: argv -> config -> library calls.

The only module that prints, parses argv, sets up logging or exits the process.
Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args) -> int``.
What loads the pipeline or the network runtimes is imported where a subcommand uses it, so
``slamfront --help`` stays quick; everything else is imported here at the top.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slamfront.config import Config, load_config
from slamfront.doctor import diagnose
from slamfront.errors import ConfigError, SlamfrontError, SourceError
from slamfront.eval.matching import (
    MutualNearestNeighbour,
    evaluate_consecutive_frames,
    evaluate_hpatches,
    evaluate_self_pairs,
    read_hpatches,
)
from slamfront.eval.trajectory_metrics import evaluate_files, format_evaluation
from slamfront.frontend import load_extractor, load_matcher
from slamfront.io.trajectory import write_tum_trajectory
from slamfront.sinks.rerun_session import (
    RerunProcess,
    RerunSession,
    find_recording,
    free_port,
    parse_mode,
    web_viewer_url,
)
from slamfront.sinks.rerun_sink import RerunSink, default_blueprint
from slamfront.sources import open_source, resolve_spec, split_spec
from slamfront.sources.realsense_record import record

if TYPE_CHECKING:
    from slamfront.pipeline import Progress, RunStats
    from slamfront.sinks import Sink

Command = Callable[[argparse.Namespace], int]


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="fast",
        metavar="PRESET|FILE",
        help="preset name from configs/ (fast, accurate, classic, ...) or a YAML file",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides (tracker.min_inliers=30)",
    )


def _config_from_args(args: argparse.Namespace) -> Config:
    profile = getattr(args, "profile", None)
    if profile and args.config != "fast":
        raise SlamfrontError("give either --profile or --config, not both")
    config = load_config(profile or args.config, args.overrides)
    return _with_rerun_mode(config, getattr(args, "rerun", None))


def _source_and_overrides(args: argparse.Namespace) -> None:
    """An optional SOURCE that looks like key=value is really the first override."""
    if args.source and "=" in args.source.partition(":")[0]:
        args.overrides = [args.source, *args.overrides]
        args.source = None


# ------------------------------------------------------------------------------ run


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the pipeline on a source and write trajectory, config and stats",
        description="SOURCE: tum:PATH, euroc:PATH, kitti:PATH[:SEQ], images:PATH, video:PATH, "
        "sim[:NAME], realsense[:SERIAL], realsense-file:PATH",
    )
    p.add_argument(
        "source", metavar="SOURCE", nargs="?", help="optional with a --profile naming one"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<source>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--profile", metavar="FILE", help="a launch profile (launch/*.yaml): config + source.spec"
    )
    _add_map_args(p)
    _add_rerun_arg(p)
    _add_config_args(p)
    p.set_defaults(handler=_cmd_run)


def _add_live(sub: Any) -> None:
    p = sub.add_parser(
        "live",
        help="run the pipeline on a live RealSense camera (Ctrl-C ends the run cleanly)",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        default="launch/d435i_rgbd.yaml",
        help="launch profile (default launch/d435i_rgbd.yaml)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/live-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_map_args(p)
    _add_rerun_arg(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_live, config="fast", source=None)


def _default_out(source: str) -> Path:
    import time

    name = source.split(":", 1)[0] or "run"
    tail = Path(source.split(":", 1)[1]).name if ":" in source else ""
    label = f"{name}-{tail}" if tail else name
    return Path("runs") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"


def _progress_printer(quiet: bool) -> Callable[[Progress], None] | None:
    if quiet:
        return None

    def show(p: Progress) -> None:
        total = f"/{p.total}" if p.total else ""
        print(
            f"frames {p.frames}{total}  {p.fps:5.1f} fps  state {p.state.value}  "
            f"lost {p.frames_lost}",
            file=sys.stderr,
            flush=True,
        )

    return show


def _add_map_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load-map", metavar="FILE", help="start in a saved map (the run is in its frame)"
    )
    parser.add_argument(
        "--save-map", metavar="FILE", help="save the map at the end (keyframes, landmarks, graph)"
    )


def _run_source(
    spec: str,
    config: Config,
    out: Path,
    quiet: bool,
    extra_sinks: Sequence[Sink] = (),
    args: argparse.Namespace | None = None,
) -> RunStats:
    # the pipeline loads the tracker, back end and network runtimes: on a run, not for --help
    from slamfront.pipeline import run_to_directory

    with open_source(spec, config) as source:
        try:
            total: int | None = len(source)  # type: ignore[arg-type]
        except TypeError:
            total = None
        stats = run_to_directory(
            source,
            config,
            out,
            frames_skipped=lambda: source.frames_skipped,
            total=total,
            on_progress=_progress_printer(quiet),
            extra_sinks=extra_sinks,
            load_map=getattr(args, "load_map", None),
            save_map=getattr(args, "save_map", None),
        )
        truth = source.groundtruth()
        if truth is not None and len(truth):
            write_tum_trajectory(out / "groundtruth.tum", truth)
    return stats


def _print_stats(stats: RunStats, out: Path) -> None:
    med = stats.median_ms
    propagated = stats.frames_imu_propagated
    bridged = f"{propagated} IMU-propagated, " if propagated else ""
    print(
        f"{stats.frames_read} frames ({stats.frames_tracked} tracked, {bridged}"
        f"{stats.frames_lost} lost, {stats.frames_skipped} skipped), {stats.keyframes} keyframes, "
        f"{stats.fps:.1f} fps"
    )
    print(
        f"median ms: read {med.read_ms:.1f}  extract {med.extract_ms:.1f}  "
        f"match {med.match_ms:.1f}  pose {med.pose_ms:.1f}  sinks {med.sinks_ms:.1f}"
    )
    for title, causes in (
        ("lost", stats.frames_lost_by_cause),
        ("initialising", stats.frames_initializing_by_cause),
    ):
        if causes:
            listed = ", ".join(f"{name} {count}" for name, count in sorted(causes.items()))
            print(f"frames {title} by cause: {listed}")
    if stats.maps_made > 1:
        print(
            f"maps: {stats.maps_made} made, {stats.maps_merged} merged; the run ended in map "
            f"{stats.final_map_id} (trajectory.tum); poses per map: "
            + ", ".join(f"{m}: {n}" for m, n in stats.poses_per_map.items())
        )
    for note in stats.notes:
        print(f"note: {note}")
    written = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    print(f"outputs: {out}/ " + ", ".join(written))


def _cmd_run(args: argparse.Namespace) -> int:
    _source_and_overrides(args)
    config = _config_from_args(args)
    spec = resolve_spec(args.source, config)
    out = Path(args.out) if args.out else _default_out(spec)
    with _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args.quiet, viewer.sinks, args)
        _print_stats(stats, out)
        viewer.linger()
    return 0


def _cmd_live(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    spec = resolve_spec(None, config)
    if split_spec(spec)[0] != "realsense":
        raise SlamfrontError(
            f"{args.profile}: source.spec is {spec!r}; `live` needs a camera (realsense[:SERIAL])"
        )
    out = Path(args.out) if args.out else _default_out("live")
    with _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args.quiet, viewer.sinks, args)
        _print_stats(stats, out)
        viewer.linger()
    return 0


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run the synthetic loop end to end and evaluate it against ground truth"
    )
    p.add_argument("--out", metavar="DIR", default="runs/demo")
    p.add_argument("--quiet", action="store_true")
    _add_rerun_arg(p)
    _add_config_args(p)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    out = Path(args.out)
    spec = f"sim:{config.sim.trajectory}"
    print(f"slamfront demo: {spec} ({config.sim.sensor}, preset {config.preset}) -> {out}")
    with _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args.quiet, viewer.sinks)
        _print_stats(stats, out)
        mono = config.sim.sensor == "mono"
        result = evaluate_files(
            out / "trajectory.tum", out / "groundtruth.tum", align="sim3" if mono else "se3"
        )
        print(format_evaluation(result))
        viewer.linger()
    return 0


def _add_doctor(sub: Any) -> None:
    p = sub.add_parser("doctor", help="which optional parts are usable here, and why not")
    p.set_defaults(handler=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    for check in diagnose():
        mark = "ok " if check.usable else "-- "
        print(f"{mark} {check.name:<14} {check.detail}")
    return 0


# ----------------------------------------------------------------------------- eval


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="ATE and RPE of an estimated trajectory against ground truth (evo)",
        description="EST and GT: TUM, KITTI or EuRoC csv trajectory files (detected). "
        "Poses pair up by timestamp; KITTI files are stamped by line index unless a times "
        "file is given.",
    )
    p.add_argument("estimate", metavar="EST")
    p.add_argument("groundtruth", metavar="GT")
    p.add_argument(
        "--align",
        choices=("se3", "sim3", "none"),
        default="se3",
        help="alignment of EST onto GT: se3 for metric rigs, sim3 for monocular (default se3)",
    )
    p.add_argument("--max-diff", type=float, default=0.02, metavar="S", help="pairing window")
    p.add_argument("--offset", type=float, default=0.0, metavar="S", help="added to EST stamps")
    p.add_argument("--delta", type=float, default=1.0, help="RPE pair spacing (default 1)")
    p.add_argument("--delta-unit", choices=("frames", "m", "deg"), default="frames")
    p.add_argument("--all-pairs", action="store_true", help="RPE over all pairs, not consecutive")
    p.add_argument("--est-times", metavar="FILE", help="times file of a KITTI estimate")
    p.add_argument("--gt-times", metavar="FILE", help="times file of a KITTI ground truth")
    p.add_argument("--json", metavar="FILE", help="also write every figure to this JSON file")
    p.set_defaults(handler=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    result = evaluate_files(
        args.estimate,
        args.groundtruth,
        align=args.align,
        max_time_diff_s=args.max_diff,
        estimate_times=args.est_times,
        groundtruth_times=args.gt_times,
        time_offset_s=args.offset,
        rpe_delta=args.delta,
        rpe_delta_unit=args.delta_unit,
        rpe_pairs="all" if args.all_pairs else "consecutive",
    )
    print(format_evaluation(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.summary(), indent=2) + "\n")
    return 0


def _add_eval_batch(sub: Any) -> None:
    p = sub.add_parser(
        "eval-batch",
        help="run and evaluate every sequence x preset of SPEC.yaml (process pool or Ray)",
        description="SPEC.yaml lists sequences (source specs) and presets (names or YAML "
        "files, with optional overrides); see slamfront/eval/batch.py. Each job runs the "
        "pipeline and the evaluation (ATE/RPE, SE(3), Sim(3) for monocular) in OUT/<sequence>/"
        "<preset>/; OUT/results.csv and results.md are rewritten as jobs finish. A failing "
        "job is a row with its error; the others go on.",
    )
    p.add_argument("spec", metavar="SPEC.yaml")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the jobs on a Ray cluster (auto, HOST:PORT, ray://HOST:10001; local: a "
        "one-machine cluster); needs the extra [ray]",
    )
    p.add_argument(
        "--workers", type=int, help="jobs at a time (local default: CPU count; Ray: all)"
    )
    p.add_argument(
        "--threads-per-job",
        type=int,
        default=1,
        metavar="N",
        help="threads of each job (ONNX Runtime, torch), the same under both executors (1)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/batch-<time>)")
    p.set_defaults(handler=_cmd_eval_batch)


def _cmd_eval_batch(args: argparse.Namespace) -> int:
    import time

    # subcommand implementation: loads the pipeline, so only when the subcommand runs
    from slamfront.eval.batch import JobResult, format_markdown, load_batch_spec, run_batch

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.threads_per_job < 1:
        raise ConfigError(f"--threads-per-job must be at least 1, got {args.threads_per_job}")
    spec = load_batch_spec(args.spec)
    out = Path(args.out) if args.out else Path("runs") / f"batch-{time.strftime('%Y%m%d-%H%M%S')}"
    total = len(spec.sequences) * len(spec.presets)
    done = [0]

    def show(row: JobResult) -> None:
        done[0] += 1
        detail = f"ATE {row.ate_rmse_m:.4f} m" if row.ate_rmse_m is not None else row.error
        print(
            f"[{done[0]}/{total}] {row.sequence} / {row.preset}: {row.status}  {detail}",
            file=sys.stderr,
            flush=True,
        )

    print(f"eval-batch: {total} jobs -> {out}", file=sys.stderr, flush=True)
    with _sigterm_interrupts():  # SIGTERM stops the running jobs too, like Ctrl-C
        result = run_batch(
            spec,
            out,
            workers=args.workers,
            threads_per_job=args.threads_per_job,
            ray_address=args.ray,
            on_result=show,
        )
    print(format_markdown(result.rows), end="")
    print(
        f"{len(result.rows) - result.failed} of {len(result.rows)} jobs ok on {result.executor} "
        f"in {result.wall_s:.0f} s; tables: {result.csv_path}, {result.markdown_path}"
    )
    return 0 if result.failed == 0 else 1


# --------------------------------------------------------------------------- record


def _add_record(sub: Any) -> None:
    p = sub.add_parser(
        "record",
        help="record a live RealSense into OUT.db3 (replay it as realsense-file:OUT.db3)",
        description="Records the streams the profile's realsense section selects (colour + "
        "depth, or both infrared imagers, and the IMU) until Ctrl-C or --duration.",
    )
    p.add_argument("out", metavar="OUT.db3")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--serial", help="device serial (default: the profile's, else the first)")
    p.add_argument(
        "--profile",
        dest="config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="a launch profile, e.g. launch/d435i_rgbd.yaml (same as --config)",
    )
    _add_config_args(p)
    p.set_defaults(handler=_cmd_record)


def _cmd_record(args: argparse.Namespace) -> int:
    import signal
    import threading

    config = _config_from_args(args)
    serial = args.serial
    if serial is None and config.source.spec:
        scheme, rest = split_spec(config.source.spec)
        serial = rest or None if scheme == "realsense" else None
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        until = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
        print(f"recording to {args.out} {until}", file=sys.stderr, flush=True)
        result = record(args.out, config, serial=serial, duration_s=args.duration, stop=stop)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(
        f"{result.frames} frames, {result.imu_readings} IMU readings, {result.dropped} dropped "
        f"in {result.duration_s:.1f} s from {result.device.describe()}"
    )
    print(f"outputs: {result.path}, {result.sidecar}")
    print(f"replay: slamfront run --config launch/replay_realsense.yaml {result.path}")
    return 0


# ------------------------------------------------------------------- extractor tools


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write the preset's networks as ONNX (and TensorRT engines with --tensorrt)",
        description="Exports a single-file ONNX model per network with dynamic image size, "
        "into --out or the ONNX cache (extractor.onnx_dir) where the runtimes look for them.",
    )
    p.add_argument("--out", metavar="DIR", help="write here instead of the ONNX cache")
    p.add_argument(
        "--tensorrt",
        action="store_true",
        help="also build the TensorRT engines (needs TensorRT 10 and a CUDA device)",
    )
    _add_config_args(p)
    p.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    # subcommand implementation: loads the network runtimes, so only when the subcommand runs
    from slamfront.frontend.export import export_models

    config = _config_from_args(args)
    exported = export_models(config, args.out)
    if not exported:
        print(f"preset {config.preset}: nothing to export (model {config.extractor.model})")
    for model in exported:
        print(f"{model.name}: {model.path} (sha256 {model.sha256[:16]})")
    if args.tensorrt and exported:
        # subcommand implementation (the TensorRT engine builders), loaded only when it runs
        from slamfront.frontend.runtime.extractor_tensorrt import build_extractor_engine

        print(f"tensorrt engine: {build_extractor_engine(config.extractor)}")
    if args.tensorrt and any(model.name.startswith("matcher/") for model in exported):
        # subcommand implementation (the TensorRT engine builders), loaded only when it runs
        from slamfront.frontend.runtime.lightglue_tensorrt import build_matcher_engines

        engines = build_matcher_engines(config.matcher, config.extractor.model)
        print(f"tensorrt matcher engines: {engines}")
    return 0


def _add_eval_matching(sub: Any) -> None:
    p = sub.add_parser(
        "eval-matching",
        help="MMA and homography accuracy at 1/3/5 px on HPatches (hpatches:PATH)",
        description="PATH is one HPatches sequence folder (1.ppm..6.ppm, H_1_2..H_1_6) or a "
        "folder of them. Pairs (1, k) are matched and a RANSAC homography is estimated.",
    )
    p.add_argument("dataset", metavar="hpatches:PATH")
    p.add_argument(
        "--matcher",
        choices=("mnn", "preset"),
        default="mnn",
        help="mnn: mutual nearest neighbours (the baseline); preset: the preset's matcher",
    )
    p.add_argument("--min-cosine", type=float, default=0.0, help="mnn: minimum cosine similarity")
    p.add_argument("--runtime", help="override extractor.runtime (and matcher.runtime)")
    p.add_argument("--json", metavar="FILE", help="also write every figure to this JSON file")
    p.add_argument(
        "--early-exit",
        type=float,
        metavar="CONFIDENCE",
        help="also compare the preset's LightGlue at full depth with depth_confidence = "
        "width_confidence = CONFIDENCE (e.g. 0.95) on easy pairs: each HPatches image against "
        "itself with pixel noise, and consecutive frames of the synthetic rig",
    )
    _add_config_args(p)
    p.set_defaults(handler=_cmd_eval_matching)


def _cmd_eval_matching(args: argparse.Namespace) -> int:
    import json

    scheme, _, path = args.dataset.partition(":")
    if scheme != "hpatches" or not path:
        raise SourceError(f"expected hpatches:PATH, got {args.dataset!r}")
    config = _config_from_args(args)
    extractor = load_extractor(config, runtime=args.runtime)
    matcher = (
        load_matcher(config, runtime=args.runtime)
        if args.matcher == "preset"
        else MutualNearestNeighbour(args.min_cosine)
    )
    report = evaluate_hpatches(path, extractor, matcher)
    print(f"preset {config.preset}, extractor {config.extractor.model}, matcher {args.matcher}")
    print("\n".join(report.lines()))
    figures = report.to_dict()
    if args.early_exit is not None:
        figures["early_exit"] = _eval_early_exit(args, config, path, extractor)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _eval_early_exit(
    args: argparse.Namespace, config: Config, path: str, extractor: Any
) -> list[dict[str, Any]]:
    if config.matcher.model != "lightglue":
        raise ConfigError(f"--early-exit needs matcher.model=lightglue, not {config.matcher.model}")
    level = args.early_exit
    full = load_matcher(config, runtime=args.runtime, depth_confidence=-1, width_confidence=-1)
    adaptive = load_matcher(
        config, runtime=args.runtime, depth_confidence=level, width_confidence=level
    )
    images = [image for sequence in read_hpatches(path) for image in sequence.images]
    reports = [
        evaluate_self_pairs(images, extractor, full, adaptive),
        evaluate_consecutive_frames(config.sim, extractor, full, adaptive),
    ]
    for report in reports:
        print("\n".join(report.lines()))
    return [report.to_dict() for report in reports]


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks: median and p90 wall times with the machine")
    targets = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    for add in _BENCH_TARGETS:
        add(targets)


def _add_bench_extractor(targets: Any) -> None:
    p = targets.add_parser(
        "extractor",
        help="extractor time per frame, per preset, runtime and image size",
        description="Times load_extractor(preset)(image) on a synthetic textured frame. "
        "Timings on a machine shared with other work are noisy: compare medians.",
    )
    p.add_argument("--presets", default="fast,classic", help="comma-separated presets")
    p.add_argument("--runtimes", default="torch,onnxruntime", help="comma-separated runtimes")
    p.add_argument("--sizes", default="640x480,752x480", help="comma-separated WxH")
    p.add_argument("--keypoints", type=int, default=1024, help="max_keypoints (learned models)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per case (>= 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    p.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_bench_extractor)


def _cmd_bench_extractor(args: argparse.Namespace) -> int:
    import json

    # subcommand implementation: loads the network runtimes, so only when the subcommand runs
    from slamfront.bench.extractor import bench_extractor

    try:
        sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(size) != 2 or min(size) <= 0 for size in sizes):
        raise ConfigError(f"--sizes must be like 640x480,752x480, got {args.sizes!r}")
    if args.runs < 20:
        raise ConfigError(f"--runs must be at least 20, got {args.runs}")
    result = bench_extractor(
        presets=[p for p in args.presets.split(",") if p],
        runtimes=[r for r in args.runtimes.split(",") if r],
        sizes_px=[(w, h) for w, h in sizes],
        max_keypoints=args.keypoints,
        runs=args.runs,
        warmup=args.warmup,
        overrides=args.overrides,
    )
    print("\n".join(result.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


def _add_bench_matcher(targets: Any) -> None:
    p = targets.add_parser(
        "matcher",
        help="matcher time per pair, per preset, runtime, keypoint count, with/without early exit",
        description="Times load_matcher(preset)(features0, features1) on consecutive frames of "
        "the synthetic rig, with the preset's early exit and pruning (adaptive) and without "
        "(full); reports the mean layers run. Timings on a machine shared with other work are "
        "noisy: compare medians.",
    )
    p.add_argument("--presets", default="fast,accurate", help="comma-separated presets")
    p.add_argument("--runtimes", default="torch,onnxruntime", help="comma-separated runtimes")
    p.add_argument("--keypoints", default="512,1024,2048", help="comma-separated counts")
    p.add_argument("--modes", default="adaptive,full", help="adaptive and/or full")
    p.add_argument("--runs", type=int, default=20, help="timed runs per case (>= 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--frames", type=int, default=6, help="consecutive frames (pairs = frames-1)")
    p.add_argument("--source", default="sim:loop", help="source of the frames")
    p.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_bench_matcher)


def _cmd_bench_matcher(args: argparse.Namespace) -> int:
    import json

    # subcommand implementation: loads the network runtimes, so only when the subcommand runs
    from slamfront.bench.matcher import bench_matcher

    try:
        keypoints = [int(v) for v in args.keypoints.split(",") if v]
    except ValueError:
        keypoints = []
    if not keypoints or min(keypoints) <= 0:
        raise ConfigError(f"--keypoints must be like 512,1024,2048, got {args.keypoints!r}")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in ("adaptive", "full") for m in modes):
        raise ConfigError(f"--modes takes adaptive and/or full, got {args.modes!r}")
    if args.runs < 20:
        raise ConfigError(f"--runs must be at least 20, got {args.runs}")
    if args.frames < 2:
        raise ConfigError(f"--frames must be at least 2, got {args.frames}")
    result = bench_matcher(
        presets=[p for p in args.presets.split(",") if p],
        runtimes=[r for r in args.runtimes.split(",") if r],
        keypoints=keypoints,
        modes=modes,
        runs=args.runs,
        warmup=args.warmup,
        frames=args.frames,
        source=args.source,
        overrides=args.overrides,
    )
    print("\n".join(result.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


def _add_bench_pipeline(targets: Any) -> None:
    p = targets.add_parser(
        "pipeline",
        help="end-to-end frames/s, per-stage latency and peak memory of real pipeline runs",
        description="Runs the pipeline (two threads, as `slamfront run`) over each input "
        "several times after warm-up, the preset and the reference point (the same networks "
        "on plain torch, no early exit or pruning) alternating, each variant in its own "
        "process. INPUTS: sim-rgbd, sim-stereo, sim-mono (sim:loop at 640x480) or source "
        "specs such as euroc:PATH. Timings on a machine shared with other work are noisy: "
        "compare medians.",
    )
    p.add_argument("--config", default="fast", metavar="PRESET|FILE", help="preset (fast)")
    p.add_argument(
        "--inputs", default="sim-rgbd,sim-stereo", help="comma-separated inputs (see above)"
    )
    p.add_argument("--euroc", metavar="PATH", help="also run this EuRoC sequence (euroc:PATH)")
    p.add_argument("--frames", type=int, default=60, help="frames per run")
    p.add_argument("--runs", type=int, default=3, help="timed runs per input and variant")
    p.add_argument("--warmup-runs", type=int, default=1, help="untimed runs first")
    p.add_argument("--warmup-frames", type=int, default=5, help="first frames of each run left out")
    p.add_argument("--no-reference", action="store_true", help="skip the torch reference")
    p.add_argument(
        "--preload",
        action="store_true",
        help="read each input's frames into memory before a timed run (the pipeline alone, "
        "without decoding or rendering)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_bench_pipeline)


def _cmd_bench_pipeline(args: argparse.Namespace) -> int:
    import json

    # subcommand implementation: loads the pipeline, so only when the subcommand runs
    from slamfront.bench.pipeline import bench_pipeline, parse_input

    names = [n for n in args.inputs.split(",") if n.strip()]
    if args.euroc:
        names.append(f"euroc:{args.euroc}")
    result = bench_pipeline(
        args.config,
        [parse_input(name, args.frames) for name in names],
        frames=args.frames,
        runs=args.runs,
        warmup_runs=args.warmup_runs,
        warmup_frames=args.warmup_frames,
        reference=not args.no_reference,
        preload=args.preload,
        overrides=args.overrides,
    )
    print("\n".join(result.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.results else 1


def _add_bench_sinks(targets: Any) -> None:
    p = targets.add_parser(
        "sinks",
        help="cost of the Rerun viewer sink: end-to-end FPS and CPU with and without it",
        description="Same as python -m slamfront.bench.sinks.",
    )
    p.add_argument("--config", default="classic", help="preset (default classic)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--runs", type=int, default=5, help="repetitions of each variant")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--mode", default="save", choices=("save", "serve"))
    p.add_argument("--image-scale", type=float, help="default: the config's")
    p.add_argument("--jpeg-quality", type=int, help="default: the config's")
    p.add_argument("--json", metavar="FILE", help="also write the result to this file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_bench_sinks)


def _cmd_bench_sinks(args: argparse.Namespace) -> int:
    # subcommand implementation: loads the pipeline, so only when the subcommand runs
    from slamfront.bench import sinks

    argv = [
        *("--config", args.config, "--frames", str(args.frames), "--runs", str(args.runs)),
        *("--width", str(args.width), "--height", str(args.height), "--mode", args.mode),
        *(("--image-scale", str(args.image_scale)) if args.image_scale is not None else ()),
        *(("--jpeg-quality", str(args.jpeg_quality)) if args.jpeg_quality is not None else ()),
        *(("--json", args.json) if args.json else ()),
        *args.overrides,
    ]
    return sinks.main(argv)


# Each entry adds one ``slamfront bench TARGET`` (matcher and pipeline go next to extractor).
_BENCH_TARGETS: list[Callable[[Any], None]] = [
    _add_bench_extractor,
    _add_bench_matcher,
    _add_bench_pipeline,
    _add_bench_sinks,
]


# ---------------------------------------------------------------------------- rerun


def _add_rerun_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rerun",
        metavar="MODE",
        help="watch in Rerun: save[:FILE.rrd] (save alone: OUT/recording.rrd), serve (web "
        "viewer on localhost, URL printed; kept up after the run until Ctrl-C), "
        "connect[:ADDR] (a viewer already running, default port 9876), off",
    )


def _with_rerun_mode(config: Config, mode: str | None) -> Config:
    if mode is None:
        return config
    from dataclasses import replace

    try:
        return replace(config, rerun=replace(config.rerun, mode=mode))
    except ValueError as exc:
        raise ConfigError(f"--rerun {mode}: rerun.{exc}") from exc


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the command like Ctrl-C (``finally`` blocks run, servers stop)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _RerunViewer:
    """The Rerun side of one CLI run: opens the session (``config.rerun.mode``), hands the
    queued sink to the pipeline, keeps a served viewer up after the run until Ctrl-C
    (``rerun.keep_serving``), and on exit (also Ctrl-C / SIGTERM) flushes the recording and
    stops the server it started."""

    def __init__(self, config: Config, out: Path) -> None:
        self._config = config
        self._out = out
        self._session: RerunSession | None = None
        self._signals = contextlib.ExitStack()
        self.sinks: list[Sink] = []

    def __enter__(self) -> _RerunViewer:
        cfg = self._config.rerun
        if cfg.mode == "off":
            return self
        # the pipeline loads the tracker, back end and network runtimes: on a run, not for --help
        from slamfront.pipeline import QueuedSink

        mode = parse_mode(cfg.mode, run_dir=self._out)
        self._signals.enter_context(_sigterm_interrupts())
        try:
            self._session = RerunSession(
                mode, cfg, recording_name=self._out.name, blueprint=default_blueprint()
            )
            self.sinks = [QueuedSink(RerunSink(self._session.recording, cfg), cfg.queue_size)]
        except BaseException:
            self.__exit__()
            raise
        if mode.kind == "save":
            print(f"rerun: recording to {mode.path}", file=sys.stderr, flush=True)
        elif mode.kind == "serve":
            url = self._session.viewer_url
            print(f"rerun: open {url} in a browser", file=sys.stderr, flush=True)
        else:
            print(f"rerun: streaming to {mode.address}", file=sys.stderr, flush=True)
        return self

    def linger(self) -> None:
        """After a served run: wait for Ctrl-C (or the server's end) before stopping it."""
        session = self._session
        if session is None or session.server is None or not self._config.rerun.keep_serving:
            return
        import time

        print(
            f"rerun: run finished; the viewer stays at {session.viewer_url} until Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        try:
            while session.server.running():
                time.sleep(0.2)
        except KeyboardInterrupt:
            return  # the way to end serving, not an interrupted run

    def __exit__(self, *exc: object) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            self._session = None
            self._signals.close()


def _add_view(sub: Any) -> None:
    p = sub.add_parser(
        "view",
        help="open a saved recording (RUN_DIR or FILE.rrd) in the Rerun viewer",
        description="Opens the native Rerun viewer, or with --web (automatic without a "
        "display) serves the web viewer on localhost and prints its URL. The viewer runs as "
        "a child of this command: closing it, Ctrl-C or SIGTERM ends both.",
    )
    p.add_argument("target", metavar="RUN_DIR|FILE.rrd")
    p.add_argument("--web", action="store_true", help="serve the web viewer on localhost")
    p.add_argument("--web-port", type=int, default=9090, help="web viewer port (0: a free one)")
    p.add_argument("--grpc-port", type=int, default=9876, help="data port (0: a free one)")
    p.set_defaults(handler=_cmd_view)


def _cmd_view(args: argparse.Namespace) -> int:
    import os

    path = find_recording(args.target)
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    web = args.web or headless
    with _sigterm_interrupts():
        if web:
            if headless and not args.web:
                print("view: no display here, serving the web viewer", file=sys.stderr)
            web_port = args.web_port or free_port()
            grpc_port = args.grpc_port or free_port()
            process = RerunProcess(
                [
                    "--serve-web",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(grpc_port),
                    "--web-viewer-port",
                    str(web_port),
                    "--cors-allow-origin",
                    f"http://127.0.0.1:{web_port}",
                    str(path),
                ]
            )
        else:
            process = RerunProcess([str(path)])
        try:
            if web:
                process.wait_listening([grpc_port, web_port])
                url = web_viewer_url(web_port, grpc_port)
                print(f"{path}: open {url} in a browser; Ctrl-C stops the viewer", flush=True)
            code = process.wait()
            if code != 0:
                print(
                    f"view: rerun exited with code {code}:\n{process.output_tail()}",
                    file=sys.stderr,
                )
        finally:
            process.stop()
    return 0 if code == 0 else 1


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slamfront", description="Real-time visual SLAM front end."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options (argparse stops collecting positionals
    # at the first option)
    if extra and hasattr(args, "overrides") and all("=" in x and x[0] != "-" for x in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # torch's ONNX exporter warns, once per operator, that torchvision (which this
        # project does not use) is missing, the first time the networks are exported
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    handler: Command = args.handler
    try:
        return handler(args)
    except SlamfrontError as exc:
        print(f"slamfront: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slamfront: interrupted", file=sys.stderr)
        return 130


# Each entry adds one subcommand: a parser whose defaults carry ``handler=_cmd_<name>``.
_SUBCOMMANDS: list[Callable[[Any], None]] = [
    _add_run,
    _add_live,
    _add_demo,
    _add_eval,
    _add_eval_batch,
    _add_doctor,
    _add_record,
    _add_export,
    _add_eval_matching,
    _add_bench,
    _add_view,
]


if __name__ == "__main__":
    sys.exit(main())
