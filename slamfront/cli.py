"""Command line: ``slamfront run|demo|eval|...``. Thin: argv -> config -> library calls.

The only module that prints, parses argv, sets up logging or exits the process.
Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args) -> int``.
What loads the pipeline or the network runtimes is imported where a subcommand uses it, so
``slamfront --help`` stays quick; everything else is imported here at the top.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slamfront import __version__
from slamfront.backend.map_store import is_map_file
from slamfront.config import Config, load_config
from slamfront.doctor import diagnose
from slamfront.errors import ConfigError, SlamfrontError, SourceError
from slamfront.eval.batch_spec import __doc__ as batch_spec_doc
from slamfront.eval.matching import (
    MutualNearestNeighbour,
    evaluate_consecutive_frames,
    evaluate_hpatches,
    evaluate_self_pairs,
    read_hpatches,
)
from slamfront.eval.plot import plot_evaluation
from slamfront.eval.run_files import (
    check_order,
    choose_alignment,
    evaluate_run,
    kitti_times_beside,
)
from slamfront.eval.trajectory_metrics import evaluate_files, format_evaluation, format_length_m
from slamfront.frontend import load_extractor, load_matcher
from slamfront.frontend.runtime import limit_library_threads
from slamfront.io.trajectory import TrajectoryFormat, convert_tum_file, write_tum_trajectory
from slamfront.run_folder import (
    check_file_target,
    check_output_folder,
    check_writable_folder,
    claim_output_folder,
)
from slamfront.sim.trajectories import TRAJECTORY_NAMES
from slamfront.sinks.rerun_session import (
    RerunProcess,
    RerunSession,
    find_recording,
    free_port,
    parse_mode,
    web_viewer_url,
)
from slamfront.sinks.rerun_sink import RerunSink, default_blueprint
from slamfront.sources import open_source, resolve_spec, source_examples, split_spec
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
        description="SOURCE: "
        + ", ".join(f"{scheme}:..." for scheme, _ in source_examples())
        + " (slamfront --help shows one example of each). With ground truth, the run ends "
        "with its ATE/RPE and trajectory.png, as slamfront eval.",
    )
    p.add_argument(
        "source", metavar="SOURCE", nargs="?", help="optional with a --profile naming one"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<source>-<time>)")
    _add_overwrite_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--profile", metavar="FILE", help="a launch profile (launch/*.yaml): config + source.spec"
    )
    _add_format_arg(p)
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
    _add_overwrite_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_format_arg(p)
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


class _ProgressBar:
    """The run's progress on stderr (tqdm): frames, rate, and for a finite source the ETA;
    tracking state and lost frames after it. Appears with the first frame."""

    def __init__(self, total: int | None) -> None:
        self._total = total
        self._bar: Any = None

    def __call__(self, p: Progress) -> None:
        if self._bar is None:
            import shutil

            from tqdm import tqdm  # the progress bar library, only when a bar is shown

            # a terminal of unknown (0 x 0) size would make tqdm hide the bar: assume 80 x 24
            columns, lines = shutil.get_terminal_size((0, 0))
            sized = columns > 0 and lines > 0
            self._bar = tqdm(
                total=self._total,
                unit="frame",
                file=sys.stderr,
                dynamic_ncols=sized,
                ncols=None if sized else 80,
                nrows=None if sized else 24,
                mininterval=0.2,
                smoothing=0.1,
            )
        self._bar.set_postfix_str(f"{p.state.value}, lost {p.frames_lost}", refresh=False)
        self._bar.update(p.frames - self._bar.n)

    def close(self, frames: int | None = None) -> None:
        """End the bar, at ``frames`` when the run's count is known."""
        if self._bar is not None:
            if frames is not None and frames > self._bar.n:
                self._bar.update(frames - self._bar.n)
            self._bar.close()
            self._bar = None


def _add_map_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load-map", metavar="FILE", help="start in a saved map (the run is in its frame)"
    )
    parser.add_argument(
        "--save-map", metavar="FILE", help="save the map at the end (keyframes, landmarks, graph)"
    )


def _add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out folder whole (refused otherwise)",
    )


def _add_format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        default="tum",
        metavar="tum|kitti|euroc|all",
        help="trajectory formats written (comma-separated): TUM always; kitti adds .kitti and "
        "_times.txt, euroc adds .csv (default tum)",
    )


def _trajectory_formats(text: str) -> list[TrajectoryFormat]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return ["tum", "kitti", "euroc"]
    known: dict[str, TrajectoryFormat] = {"tum": "tum", "kitti": "kitti", "euroc": "euroc"}
    if not names or any(n not in known for n in names):
        raise ConfigError(
            f"--format takes tum, kitti, euroc (comma-separated) or all, got {text!r}"
        )
    return [known[n] for n in names]


def _run_source(
    spec: str,
    config: Config,
    out: Path,
    args: argparse.Namespace,
    signals: _RunSignals,
    viewer: _RerunViewer,
    *,
    overwrite: bool = False,
) -> RunStats:
    """Check everything a run needs (output folder, map target, source, tracker mode, map,
    weights) before writing anything; then claim ``out``, open the viewer and run."""
    # the pipeline loads the tracker, back end and network runtimes: on a run, not for --help
    from slamfront.pipeline import choose_mode, load_run_parts, run_to_directory

    formats = _trajectory_formats(getattr(args, "format", "tum"))
    save_map = getattr(args, "save_map", None)
    check_output_folder(out, overwrite, inputs=_run_inputs(spec, config, args))
    _check_file_targets(out, config, save_map, overwrite)
    if not args.quiet:
        _say(f"{spec} -> {out}/ (preset {config.preset}); opening the source")
    with open_source(spec, config) as source:
        description = getattr(source, "description", None)  # what a source chose (bag topics)
        if description and not args.quiet:
            print(f"source: {description}")
        try:
            total: int | None = len(source)  # type: ignore[arg-type]
        except TypeError:
            total = None
        frames = iter(source)
        first = next(frames, None)
        if first is None:
            skipped = source.frames_skipped
            raise SourceError(
                f"{spec}: the source gave no frame: all {skipped} were skipped as unreadable "
                "(the warnings above say why)"
                if skipped
                else f"{spec}: the source gave no frame (source.start_frame past its end?)"
            )
        choice = choose_mode(first, config.tracker.mode)
        if not args.quiet:
            _say(f"mode: {choice.mode} ({choice.reason})")
            count = f"{total} frames" if total is not None else "frames until the source ends"
            _say(f"{count}; loading the networks")
        parts = load_run_parts(config, getattr(args, "load_map", None))
        with signals.claiming():  # the folder swap is never cut in half
            claim_output_folder(out, overwrite)
        viewer.open()
        bar = None if args.quiet else _ProgressBar(total)
        stats = None
        try:
            stats = run_to_directory(
                itertools.chain([first], frames),
                config,
                out,
                frames_skipped=lambda: source.frames_skipped,
                total=total,
                on_progress=bar,
                extra_sinks=viewer.sinks,
                stop=signals.stop,
                hurry=signals.hurry,
                save_map=save_map,
                parts=parts,
            )
        finally:
            if bar is not None:
                bar.close(stats.frames_read if stats is not None else None)
        truth = source.groundtruth()
        if truth is not None and len(truth):
            write_tum_trajectory(out / "groundtruth.tum", truth)
    others = [kind for kind in formats if kind != "tum"]
    for tum in sorted(out.glob("*.tum")) if others else ():
        if _has_poses(tum):  # a run that tracked nothing leaves a header alone
            convert_tum_file(tum, others)
    return stats


def _run_inputs(spec: str, config: Config, args: argparse.Namespace) -> list[str]:
    """The files and folders a run reads (as far as its arguments name them), which
    ``--overwrite`` must never delete with the folder it replaces."""
    rest = spec.partition(":")[2]
    named = [
        rest,
        rest.rpartition(":")[0],  # kitti:PATH:SEQUENCE
        getattr(args, "load_map", None),
        getattr(args, "profile", None),
        getattr(args, "config", None),
        config.camera.calibration,
        config.source.groundtruth,
        config.extractor.weights,
        config.matcher.weights,
    ]
    return [path for path in named if path and Path(path).exists()]


def _check_file_targets(out: Path, config: Config, save_map: str | None, overwrite: bool) -> None:
    """The files a run writes outside ``out`` (the map, a Rerun recording) can be written
    there, and replace no file that is not theirs: a map replaces a map (the point of
    ``--load-map M --save-map M``), anything else only with ``--overwrite``."""
    if save_map and not _inside(Path(save_map), out):  # the run's folder is checked already
        check_file_target(
            save_map, "--save-map", None if overwrite else lambda path: is_map_file(path)
        )
    if config.rerun.mode.strip().startswith("save"):
        recording = parse_mode(config.rerun.mode, run_dir=out).path
        if recording is not None and not _inside(recording, out):
            check_file_target(recording, "--rerun save:", None if overwrite else lambda _: False)


def _inside(path: Path, folder: Path) -> bool:
    return path.absolute().is_relative_to(folder.absolute())


def _has_poses(tum: Path) -> bool:
    with tum.open() as lines:
        return any(line.strip() and not line.startswith("#") for line in lines)


def _say(message: str) -> None:
    print(f"slamfront: {message}", file=sys.stderr, flush=True)


def _print_accuracy(out: Path) -> None:
    """ATE and RPE of the run in ``out`` against its ground truth (when the source has one),
    and their picture in ``out/trajectory.png``."""
    try:
        result = evaluate_run(out)
    except SlamfrontError as exc:
        print(f"accuracy: not evaluated ({exc})")
        return
    if result is None:
        return
    print(format_evaluation(result))
    try:
        plot_evaluation(result, out / "trajectory.png", title=f"{out.name}: trajectory.tum")
    except (OSError, ValueError) as exc:
        print(f"note: trajectory.png not drawn ({exc})")


def _print_stats(stats: RunStats, out: Path, signals: _RunSignals | None = None) -> None:
    med = stats.median_ms
    if signals is not None and signals.signum is not None and stats.stopped_early:
        print(f"stopped by {signal_name(signals.signum)} after {stats.frames_read} frames")
    propagated = stats.frames_imu_propagated
    bridged = f"{propagated} IMU-propagated, " if propagated else ""
    print(
        f"{stats.frames_read} frames ({stats.frames_tracked} tracked, {bridged}"
        f"{stats.frames_lost} lost, "
        f"{stats.frames_skipped} skipped), {stats.keyframes} keyframes, {stats.fps:.1f} fps, "
        f"mode {stats.mode or '-'}"
    )
    print(
        f"median ms: read {med.read_ms:.1f}  extract {med.extract_ms:.1f}  "
        f"match {med.match_ms:.1f}  pose {med.pose_ms:.1f}  sinks {med.sinks_ms:.1f}"
    )
    print(
        f"frame time ms: median {stats.frame_median_ms:.1f}  p90 {stats.frame_p90_ms:.1f}  "
        f"max {stats.frame_max_ms:.1f}"
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
    if stats.map_saved_to:
        print(f"map: {stats.map_saved_to}")
    _print_accuracy(out)
    written = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    print(f"outputs: {out}/ " + ", ".join(written), flush=True)


def _exit_status(stats: RunStats, signals: _RunSignals) -> int:
    """128 + the signal's number for a run a signal ended; 3 for a run that tracked no
    frame; else 0."""
    if signals.signum is not None:
        return 128 + signals.signum
    if stats.frames_tracked == 0:
        print(
            f"slamfront: error: the run tracked no frame of {stats.frames_read} "
            "(see the causes above)",
            file=sys.stderr,
        )
        return EXIT_NOTHING_TRACKED
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _source_and_overrides(args)
    config = _config_from_args(args)
    spec = resolve_spec(args.source, config)
    out = Path(args.out) if args.out else _default_out(spec)
    with _RunSignals() as signals, _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args, signals, viewer, overwrite=args.overwrite)
        _print_stats(stats, out, signals)
        status = _exit_status(stats, signals)
        viewer.linger(signals)
    return status


def _cmd_live(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    spec = resolve_spec(None, config)
    if split_spec(spec)[0] != "realsense":
        raise SlamfrontError(
            f"{args.profile}: source.spec is {spec!r}; `live` needs a camera (realsense[:SERIAL])"
        )
    out = Path(args.out) if args.out else _default_out("live")
    with _RunSignals() as signals, _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args, signals, viewer, overwrite=args.overwrite)
        _print_stats(stats, out, signals)
        status = _exit_status(stats, signals)
        viewer.linger(signals)
    return status


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run the synthetic loop end to end and evaluate it against ground truth"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=DEMO_OUT,
        help=f"output folder (default {DEMO_OUT}, replaced)",
    )
    _add_overwrite_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_format_arg(p)
    _add_rerun_arg(p)
    _add_config_args(p)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    out = Path(args.out)
    spec = f"sim:{config.sim.trajectory}"
    if not args.quiet:
        _say(f"demo: the synthetic {config.sim.trajectory} ({config.sim.sensor} rig), then its ATE")
    # the demo's own folder is replaced on each run; another one must be empty
    overwrite = args.overwrite or args.out == DEMO_OUT
    with _RunSignals() as signals, _RerunViewer(config, out) as viewer:
        stats = _run_source(spec, config, out, args, signals, viewer, overwrite=overwrite)
        _print_stats(stats, out, signals)
        status = _exit_status(stats, signals)
        viewer.linger(signals)
    return status


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
        help="ATE and RPE of an estimated trajectory against a reference (evo)",
        description="REF EST, the reference (ground truth) first, as evo_ape and the TUM "
        "benchmark scripts take them: slamfront eval runs/X/groundtruth.tum "
        "runs/X/trajectory.tum. TUM, KITTI or EuRoC csv files (detected). Poses pair up by "
        "timestamp; KITTI files are stamped by line index unless a times file is given (a "
        "run's trajectory.kitti finds its trajectory_times.txt). A run's trajectory given as "
        "REF is refused as a swap.",
    )
    p.add_argument("reference", metavar="REF", help="the reference (ground truth)")
    p.add_argument("estimate", metavar="EST", help="the estimate (e.g. a run's trajectory.tum)")
    p.add_argument(
        "--align",
        choices=("auto", "se3", "sim3", "none"),
        default="auto",
        help="alignment of EST onto REF: se3 for metric rigs, sim3 for monocular; auto (the "
        "default): sim3 when the run that wrote EST was monocular (its stats.json), else se3",
    )
    p.add_argument(
        "--align-origin",
        action="store_true",
        help="align the first poses instead of all positions (evo's --align_origin; with a "
        "monocular run the scale is still fitted): for paths too short or too straight",
    )
    p.add_argument("--max-diff", type=float, default=0.02, metavar="S", help="pairing window")
    p.add_argument("--offset", type=float, default=0.0, metavar="S", help="added to EST stamps")
    p.add_argument("--delta", type=float, default=1.0, help="RPE pair spacing (default 1)")
    p.add_argument("--delta-unit", choices=("frames", "m", "deg"), default="frames")
    p.add_argument("--all-pairs", action="store_true", help="RPE over all pairs, not consecutive")
    p.add_argument("--ref-times", "--gt-times", metavar="FILE", help="times file of a KITTI REF")
    p.add_argument("--est-times", metavar="FILE", help="times file of a KITTI EST")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the top view and the error")
    p.add_argument("--json", metavar="FILE", help="also write every figure to this JSON file")
    p.add_argument(
        "--no-order-check",
        action="store_true",
        help="accept a run's own trajectory as REF (comparing it with another estimate)",
    )
    p.set_defaults(handler=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    if not args.no_order_check:
        check_order(args.reference, args.estimate)
    align = args.align
    if align == "auto":
        choice = choose_alignment(args.estimate)
        align = choice.align
        print(f"alignment {choice.reason}")
    times = {
        "reference_times": args.ref_times or kitti_times_beside(args.reference),
        "estimate_times": args.est_times or kitti_times_beside(args.estimate),
    }
    result = evaluate_files(
        reference=args.reference,
        estimate=args.estimate,
        align=align,
        align_origin=args.align_origin,
        max_time_diff_s=args.max_diff,
        time_offset_s=args.offset,
        rpe_delta=args.delta,
        rpe_delta_unit=args.delta_unit,
        rpe_pairs="all" if args.all_pairs else "consecutive",
        **times,
    )
    print(format_evaluation(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.summary(), indent=2) + "\n")
    if args.plot:
        print(f"plot: {plot_evaluation(result, args.plot, title=Path(args.estimate).name)}")
    return 0


def _add_eval_batch(sub: Any) -> None:
    p = sub.add_parser(
        "eval-batch",
        help="run and evaluate every sequence x preset of SPEC.yaml (process pool or Ray)",
        description=_wrapped(
            "Each job runs the pipeline and the evaluation (ATE/RPE; SE(3), Sim(3) for "
            "monocular) in OUT/<sequence>/<preset>/; OUT/results.csv and results.md are "
            "rewritten as jobs finish. A failing job is a row with its error; the others go on."
        ),
        epilog=_wrapped(
            "The SPEC file, as slamfront/eval/batch_spec.py documents it (a walk-through: "
            "docs/how-it-works.md, 'Batch evaluation'):"
        )
        + "\n\n"
        + (batch_spec_doc or "").partition("\n\n")[2].replace("::\n", ":\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def _wrapped(text: str) -> str:
    import shutil
    import textwrap

    width = min(shutil.get_terminal_size().columns, 100) - 2
    return textwrap.fill(text, width=width)


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
    check_writable_folder(out, "--out")
    total = len(spec.sequences) * len(spec.presets)
    done = [0]

    def show(row: JobResult) -> None:
        done[0] += 1
        ate = row.ate_rmse_m
        detail = f"ATE {format_length_m(ate)}" if ate is not None else row.error
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
    if args.out:
        check_writable_folder(args.out, "--out")
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


def _add_bench_scaling(targets: Any) -> None:
    p = targets.add_parser(
        "scaling",
        help="frames/s and CPU per frame of the pipeline at several image sizes",
        description="Renders the same synthetic sequence (sim:loop, field of view held) at "
        "each size and runs the pipeline over it (frames read into memory first), several "
        "times after warm-up; prints a Markdown table. Sizes: QVGA, VGA, KITTI, 720p or "
        "WIDTHxHEIGHT.",
    )
    p.add_argument("--config", default="fast", metavar="PRESET|FILE", help="preset (fast)")
    p.add_argument(
        "--sizes", default="qvga,vga,kitti,720p", help="comma-separated sizes (see above)"
    )
    p.add_argument("--sensor", choices=("rgbd", "stereo", "mono"), default="rgbd")
    p.add_argument("--frames", type=int, default=60, help="frames per run")
    p.add_argument("--runs", type=int, default=3, help="timed runs per size")
    p.add_argument("--warmup-runs", type=int, default=1, help="untimed runs first")
    p.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(handler=_cmd_bench_scaling)


def _cmd_bench_scaling(args: argparse.Namespace) -> int:
    import json

    # subcommand implementation: loads the pipeline, so only when the subcommand runs
    from slamfront.bench.scaling import bench_scaling, parse_size

    result = bench_scaling(
        args.config,
        [parse_size(s) for s in args.sizes.split(",") if s.strip()],
        sensor=args.sensor,
        frames=args.frames,
        runs=args.runs,
        warmup_runs=args.warmup_runs,
        overrides=args.overrides,
    )
    print("\n".join(result.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.rows else 1


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
    _add_bench_scaling,
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


class _RunSignals:
    """SIGINT, SIGTERM and SIGHUP during a run (installed on the main thread only).

    Before the output folder is claimed a signal aborts at once (nothing was written). After
    it, the first one sets ``stop``: the run ends after the frame being tracked and finishes
    like a run whose source ended (back end, every output, the summary). A second one sets
    ``hurry``: the end of the run stops waiting for the back end. A third raises at once.
    The process then exits with 128 + the first signal's number.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self.signum: int | None = None
        self._received = 0  # signals since the folder was claimed (``stop`` is also set
        # by the pipeline itself when its frames end)
        self._claimed = False
        self._held = False
        self._pending: int | None = None
        self._early: int | None = None  # a signal before the claim (its exception may be
        # swallowed by library code that catches broadly; the claim then refuses to start)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _RunSignals:
        if threading.current_thread() is threading.main_thread():
            for number in _STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Around claiming the output folder: a signal meanwhile waits until it is done,
        then counts as one during the run (which then ends after its first frame). A signal
        that came earlier ends the command here, before anything is written."""
        if self._early is not None:
            raise _Interrupted(self._early)
        self._held = True
        try:
            yield
        except BaseException:
            self._held = False
            raise
        self._held = False
        self._claimed = True
        if self._pending is not None:
            self._handle(self._pending, None)

    def ignore_from_now(self) -> None:
        """The run is over (its summary printed): a later signal only ends the viewer."""
        self._claimed = False

    def _handle(self, signum: int, frame: object) -> None:
        if self._held:
            self._pending = signum
            return
        if not self._claimed:
            self._early = signum
            raise _Interrupted(signum)
        if self.signum is None:
            self.signum = signum
        if self._received >= 2:
            raise _Interrupted(signum)
        self._received += 1
        name = signal_name(signum)
        if self._received == 1:
            self.stop.set()
            message = f"slamfront: {name}: ending the run (again to stop at once)\n"
        else:
            self.hurry.set()
            message = f"slamfront: {name}: stopping at once\n"
        os.write(sys.stderr.fileno(), message.encode())


class _Interrupted(KeyboardInterrupt):
    """A signal that ends the command at once; the exit status is 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_ERROR = 2
"""Exit status of a run refused or failed with an error message."""
EXIT_NOTHING_TRACKED = 3
"""Exit status of a run that went through its source and tracked no frame."""
DEMO_OUT = "runs/demo"


class _RerunViewer:
    """The Rerun side of one CLI run: :meth:`open` opens the session (``config.rerun.mode``)
    once the output folder is the run's, and hands the queued sink to the pipeline; keeps a
    served viewer up after the run until a signal (``rerun.keep_serving``), and on exit
    flushes the recording and stops the server it started."""

    def __init__(self, config: Config, out: Path) -> None:
        self._config = config
        self._out = out
        self._session: RerunSession | None = None
        self.sinks: list[Sink] = []

    def __enter__(self) -> _RerunViewer:
        return self

    def open(self) -> None:
        cfg = self._config.rerun
        if cfg.mode == "off":
            return
        # the pipeline loads the tracker, back end and network runtimes: on a run, not for --help
        from slamfront.pipeline import QueuedSink

        mode = parse_mode(cfg.mode, run_dir=self._out)
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

    def linger(self, signals: _RunSignals) -> None:
        """After a served run that ended on its own: wait for a signal (or the server's
        end) before stopping it."""
        signals.ignore_from_now()
        session = self._session
        if session is None or session.server is None or not self._config.rerun.keep_serving:
            return
        if signals.signum is not None:
            return  # a signal ended the run: it ends the viewer too
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


def _sources_epilog() -> str:
    lines = ["sources (SOURCE of run; the same strings as slamfront.open_source):"]
    lines += [f"  {scheme:<15} {example}" for scheme, example in source_examples()]
    lines += [
        f"synthetic scenes (sim:NAME): {', '.join(TRAJECTORY_NAMES)}",
        "",
        "first steps:",
        "  slamfront demo                      the synthetic loop, end to end, with its ATE",
        "  slamfront run tum:PATH              a recording; ATE/RPE when it has ground truth",
        "  slamfront eval REF EST              reference (ground truth) first, as evo",
        "  slamfront doctor                    what is usable here (runtimes, weights, caches)",
        "slamfront COMMAND --help documents each command.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slamfront",
        description="Real-time visual SLAM front end.",
        epilog=_sources_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"slamfront {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


# Loggers whose INFO lines say what a slow first use is doing: fetching the weights,
# exporting the networks to ONNX, building TensorRT engines.
_FIRST_USE_LOGGERS = (
    "slamfront.weights",
    "slamfront.frontend.export",
    "slamfront.frontend.runtime.lightglue_export",
    "slamfront.frontend.runtime.extractor_tensorrt",
    "slamfront.frontend.runtime.lightglue_tensorrt",
)


class _StderrLines(logging.Handler):
    """Log records as ``slamfront: message`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"slamfront: {record.getMessage()}", file=sys.stderr, flush=True)


def _show_first_use_steps() -> None:
    for name in _FIRST_USE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not any(isinstance(h, _StderrLines) for h in logger.handlers):
            logger.addHandler(_StderrLines())


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
        _show_first_use_steps()
        # torch's ONNX exporter warns, once per operator, that torchvision (which this
        # project does not use) is missing, the first time the networks are exported
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    handler: Command = args.handler
    limit_library_threads()
    try:
        _check_extra_files(args)
        return handler(args)
    except SlamfrontError as exc:
        print(f"slamfront: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except _Interrupted as exc:
        print(f"slamfront: interrupted ({signal_name(exc.signum)})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("slamfront: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _check_extra_files(args: argparse.Namespace) -> None:
    """The extra files a command writes on request (``--json``, ``--plot``) can be written,
    checked before the command's work rather than failing after it."""
    for option in ("json", "plot"):
        target = getattr(args, option, None)
        if isinstance(target, str) and target:
            check_file_target(target, f"--{option}")


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
