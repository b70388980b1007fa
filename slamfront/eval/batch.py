"""Batch evaluation: every sequence x preset of a SPEC file, run and evaluated, on a local
process pool or a Ray cluster, into one results table.

The SPEC format is described in :mod:`slamfront.eval.batch_spec`.

Each job runs the pipeline (:func:`slamfront.pipeline.run_to_directory`) into
``OUT/<sequence>/<preset>/`` (trajectory.tum, config.yaml, stats.json, groundtruth.tum,
evaluation.json; error.txt when it failed), then evaluates the trajectory against the
source's ground truth (ATE and RPE via :mod:`slamfront.eval.trajectory_metrics`). A job that
fails — a missing folder, an exception, a process that dies — becomes a row with its status
and error; the other jobs go on. ``results.csv`` and ``results.md`` are rewritten atomically
after every finished job, rows in SPEC order.

Executors: locally, a pool of ``workers`` slots, each job in a fresh process (spawned, so a
crash takes only its own job down); with Ray, one task per job (``ray`` is the optional
extra ``[ray]``, imported only then). Everything a row reports is deterministic except the
timings (fps, wall_s), so both executors give the same accuracy columns.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slamfront.config import load_config
from slamfront.errors import ConfigError, SlamfrontError
from slamfront.eval.batch_spec import BatchSpec, Evaluation, load_batch_spec
from slamfront.eval.trajectory_metrics import evaluate_trajectories, three_significant
from slamfront.io.trajectory import read_trajectory, write_tum_trajectory
from slamfront.pipeline import run_to_directory
from slamfront.sources import open_source

Status = Literal["ok", "failed", "crashed"]


# ------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Job:
    """Everything one worker needs (plain values: it travels to other processes)."""

    index: int
    sequence: str
    preset: str
    source: str
    config: str
    overrides: tuple[str, ...]
    evaluation: Evaluation
    out_dir: str
    threads: int = 1
    """Threads the job may use: ONNX Runtime's (config) and OpenMP's (torch), set alike by
    both executors so that their results are bit-identical."""


@dataclass(frozen=True)
class JobResult:
    """One row of the results table. Figures are None when the job did not get that far."""

    sequence: str
    preset: str
    status: Status
    align: str | None = None
    frames: int | None = None
    frames_tracked: int | None = None
    frames_lost: int | None = None
    keyframes: int | None = None
    ate_rmse_m: float | None = None
    ate_rmse_deg: float | None = None
    rpe_rmse_m: float | None = None
    rpe_rmse_deg: float | None = None
    fps: float | None = None
    wall_s: float | None = None
    out_dir: str = ""
    error: str = ""

    def accuracy(self) -> tuple[object, ...]:
        """The deterministic columns (everything but fps, wall_s and the folder)."""
        skip = {"fps", "wall_s", "out_dir"}
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip)


COLUMNS = tuple(f.name for f in dataclasses.fields(JobResult))


@dataclass(frozen=True)
class BatchResult:
    rows: tuple[JobResult, ...]
    csv_path: Path
    markdown_path: Path
    executor: str
    wall_s: float

    @property
    def failed(self) -> int:
        return sum(r.status != "ok" for r in self.rows)


def plan_jobs(spec: BatchSpec, out_dir: str | os.PathLike[str], threads: int = 1) -> list[Job]:
    """One job per (sequence, preset), sequences outermost, in SPEC order, each with
    ``threads`` threads (ONNX Runtime's through the config, unless the SPEC sets them)."""
    if threads < 1:
        raise ConfigError(f"threads per job must be at least 1, got {threads}")
    root = Path(out_dir).resolve()
    pinned = (f"extractor.threads={threads}", f"matcher.threads={threads}")
    return [
        Job(
            index=i * len(spec.presets) + j,
            sequence=seq.name,
            preset=pre.name,
            source=seq.source,
            config=pre.config,
            overrides=(*pinned, *spec.overrides, *seq.overrides, *pre.overrides),
            evaluation=spec.evaluation,
            out_dir=str(root / seq.name / pre.name),
            threads=threads,
        )
        for i, seq in enumerate(spec.sequences)
        for j, pre in enumerate(spec.presets)
    ]


# -------------------------------------------------------------------------------- a job


def run_job(job: Job) -> JobResult:
    """Run and evaluate one job in this process. Never raises for a failure of the job
    itself: the row carries the status and the error (the traceback goes to error.txt)."""
    out = Path(job.out_dir)
    base = JobResult(job.sequence, job.preset, "failed", out_dir=job.out_dir)
    stage = "setup"
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").unlink(missing_ok=True)

        config = load_config(job.config, job.overrides)
        stage = "run"
        sensor: list[str] = []
        start = time.perf_counter()
        with open_source(job.source, config) as source:
            stats = run_to_directory(
                _noting_sensor(source, sensor),
                config,
                out,
                frames_skipped=lambda: source.frames_skipped,
            )
            truth = source.groundtruth()
        wall = time.perf_counter() - start
        base = dataclasses.replace(
            base,
            frames=stats.frames_read,
            frames_tracked=stats.frames_tracked,
            frames_lost=stats.frames_lost,
            keyframes=stats.keyframes,
            fps=stats.fps,
            wall_s=wall,
        )
        stage = "eval"
        if truth is None or len(truth) == 0:
            raise SlamfrontError(f"{job.source}: the source has no ground truth")
        write_tum_trajectory(out / "groundtruth.tum", truth)
        align = job.evaluation.align
        if align == "auto":
            align = "sim3" if sensor == ["mono"] else "se3"
        base = dataclasses.replace(base, align=align)
        evaluation = evaluate_trajectories(
            reference=truth,
            estimate=read_trajectory(out / "trajectory.tum"),
            align=align,
            max_time_diff_s=job.evaluation.max_time_diff_s,
            rpe_delta=job.evaluation.rpe_delta,
            rpe_delta_unit=job.evaluation.rpe_delta_unit,
        )
        _write_text(out / "evaluation.json", json.dumps(evaluation.summary(), indent=2) + "\n")
        return dataclasses.replace(
            base,
            status="ok",
            ate_rmse_m=evaluation.ate_m.rmse,
            ate_rmse_deg=evaluation.ate_deg.rmse,
            rpe_rmse_m=evaluation.rpe_m.rmse if evaluation.rpe_m else None,
            rpe_rmse_deg=evaluation.rpe_deg.rmse if evaluation.rpe_deg else None,
        )
    except Exception as exc:
        message = f"{stage}: {type(exc).__name__}: {exc}".replace("\n", " ")
        try:
            out.mkdir(parents=True, exist_ok=True)
            _write_text(out / "error.txt", traceback.format_exc())
        except OSError:
            pass
        return dataclasses.replace(base, status="failed", error=message)


def _noting_sensor(frames: Any, out: list[str]) -> Any:
    for frame in frames:
        if not out:
            out.append(
                "rgbd"
                if frame.depth_m is not None
                else "stereo"
                if frame.image_right is not None
                else "mono"
            )
        yield frame


def _job_process(job: Job, result_path: str) -> None:
    """Entry point of a local worker process: run the job, leave its row in a file.

    The process is ours alone, so it takes the job's thread count as Ray's workers do
    (OMP_NUM_THREADS, read by torch when it is first imported, which happens after this)."""
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    parent = os.getppid()
    watchdog = threading.Thread(
        target=_exit_when_orphaned, args=(parent,), name="slamfront-batch-watchdog", daemon=True
    )
    watchdog.start()
    result = run_job(job)
    _write_text(Path(result_path), json.dumps(dataclasses.asdict(result)))


def _exit_when_orphaned(parent: int) -> None:
    """In a local worker process: end it when the batch that started it is gone (killed),
    rather than run on unseen."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


# ----------------------------------------------------------------------------- executors


def run_batch(
    spec: BatchSpec,
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    threads_per_job: int = 1,
    ray_address: str | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> BatchResult:
    """Run every job of ``spec`` into ``out_dir`` and write ``results.csv``/``results.md``.

    ``ray_address`` None: a local pool of ``workers`` processes (default: CPU count).
    Otherwise Ray: when Ray is already initialised in this process its cluster is used as
    it is; else ``ray.init(address=ray_address)`` ("local" starts a one-machine cluster with
    ``workers`` CPUs and workers at normal priority), shut down again at the end. With Ray,
    ``workers`` caps the jobs in flight (default: all) and each task asks for
    ``threads_per_job`` CPUs. Every job runs with ``threads_per_job`` threads in both
    executors (ONNX Runtime through ``extractor.threads``/``matcher.threads`` unless the SPEC
    sets them, torch through OMP_NUM_THREADS), so the two give identical accuracy columns.
    ``on_result`` sees each row as its job finishes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(spec, out, threads_per_job)
    table = _Table(out, jobs)
    start = time.perf_counter()

    def finished(job: Job, result: JobResult) -> None:
        table.set(job.index, result)
        if on_result is not None:
            on_result(result)

    if ray_address is None:
        _run_local(jobs, workers or os.cpu_count() or 1, finished)
        executor = f"local pool ({workers or os.cpu_count() or 1} workers)"
    else:
        executor = _run_ray(jobs, ray_address, workers, threads_per_job, finished)
    return BatchResult(
        rows=table.rows(),
        csv_path=table.csv_path,
        markdown_path=table.markdown_path,
        executor=executor,
        wall_s=time.perf_counter() - start,
    )


def _run_local(
    jobs: Sequence[Job], workers: int, finished: Callable[[Job, JobResult], None]
) -> None:
    """Each job in a fresh spawned process; ``workers`` of them at a time. An interrupt
    (Ctrl-C) cancels the jobs not started and terminates the running ones."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    running: set[Any] = set()
    lock = threading.Lock()

    def one(job: Job) -> None:
        result_path = Path(job.out_dir + ".result.json")
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.unlink(missing_ok=True)
        process = context.Process(
            target=_job_process,
            args=(job, str(result_path)),
            name=f"slamfront-batch-{job.index}",
        )
        with lock:
            if stopping.is_set():
                return
            process.start()
            running.add(process)
        process.join()
        with lock:
            running.discard(process)
        if stopping.is_set():
            return
        try:
            result = JobResult(**json.loads(result_path.read_text()))
            result_path.unlink()
        except (OSError, ValueError, TypeError):
            result = _crashed(job, f"worker process died ({_exit_reason(process.exitcode)})")
        finished(job, result)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slamfront-batch")
    try:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
    except BaseException:
        stopping.set()
        with lock:
            for process in running:
                process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _crashed(job: Job, error: str) -> JobResult:
    """The row of a job whose worker never reported back."""
    return JobResult(job.sequence, job.preset, "crashed", out_dir=job.out_dir, error=error)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _ray_job(job: Job) -> JobResult:
    return run_job(job)


def _run_ray(
    jobs: Sequence[Job],
    address: str,
    workers: int | None,
    threads: int,
    finished: Callable[[Job, JobResult], None],
) -> str:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--ray needs the optional extra [ray]: pip install 'slamfront[ray]'"
        ) from exc

    started = False
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith("SLAMFRONT_")}
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
        try:
            if address == "local":  # Ray's workers run at niceness 15 unless told otherwise
                ray.init(
                    num_cpus=(workers * threads) if workers else None,
                    _system_config={"worker_niceness": 0},
                    **kwargs,
                )
            else:
                ray.init(address=address, **kwargs)
        except Exception as exc:  # ConnectionError, AuthenticationError, ValueError, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(
                f"ray {address}: cannot start or join the cluster: {type(exc).__name__}: {reason}"
            ) from exc
        started = True
    try:
        # Ray sets OMP_NUM_THREADS to the task's CPUs, as the local pool does.
        remote = ray.remote(num_cpus=threads, max_retries=0)(_ray_job)
        limit = workers or len(jobs)
        pending: dict[Any, Job] = {}
        queue = list(jobs)
        while queue or pending:
            while queue and len(pending) < limit:
                job = queue.pop(0)
                pending[remote.remote(job)] = job
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died, or Ray lost the task
                    result = _crashed(job, f"ray: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                finished(job, result)
        resources = ray.cluster_resources()
        return f"ray ({int(resources.get('CPU', 0))} CPUs in the cluster)"
    finally:
        if started:
            ray.shutdown()


# -------------------------------------------------------------------------------- table


class _Table:
    """The results so far, rewritten atomically (CSV and Markdown) at every change."""

    def __init__(self, out: Path, jobs: Sequence[Job]) -> None:
        self.csv_path = out / "results.csv"
        self.markdown_path = out / "results.md"
        self._root = out.resolve()
        self._results: dict[int, JobResult] = {}
        self._total = len(jobs)
        self._lock = threading.Lock()

    def set(self, index: int, result: JobResult) -> None:
        with self._lock:
            self._results[index] = result
            rows = self.rows()
            _write_text(self.csv_path, format_csv(rows, self._root))
            _write_text(self.markdown_path, format_markdown(rows, self._total))

    def rows(self) -> tuple[JobResult, ...]:
        return tuple(self._results[i] for i in sorted(self._results))


def format_csv(rows: Sequence[JobResult], root: Path | None = None) -> str:
    """One line per row, every column, floats at full precision (``repr``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = dataclasses.asdict(row)
        if root is not None and values["out_dir"]:
            with contextlib.suppress(ValueError):
                values["out_dir"] = str(Path(values["out_dir"]).relative_to(root))
        writer.writerow([_csv_cell(values[c]) for c in COLUMNS])
    return buffer.getvalue()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def format_markdown(rows: Sequence[JobResult], total: int | None = None) -> str:
    """A Markdown table: sequence, preset, status, ATE/RPE RMSE, FPS, frames, lost, error."""
    head = (
        "| sequence | preset | status | align | ATE mm | ATE deg | RPE mm | RPE deg | FPS | "
        "frames | lost | error |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        cells = [
            r.sequence,
            r.preset,
            r.status,
            r.align or "",
            _significant(r.ate_rmse_m, 1e3),
            _significant(r.ate_rmse_deg),
            _significant(r.rpe_rmse_m, 1e3),
            _significant(r.rpe_rmse_deg),
            _fmt(r.fps, 1),
            "" if r.frames is None else str(r.frames),
            "" if r.frames_lost is None else str(r.frames_lost),
            r.error.replace("|", "\\|")[:200],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if total is not None and len(rows) < total:
        lines.append(f"\n{len(rows)} of {total} jobs finished so far.")
    return "\n".join(lines) + "\n"


def _significant(value: float | None, factor: float = 1.0) -> str:
    if value is None or math.isnan(value):
        return ""
    return three_significant(value * factor)


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


__all__ = [
    "COLUMNS",
    "BatchResult",
    "BatchSpec",
    "Evaluation",
    "Job",
    "JobResult",
    "format_csv",
    "format_markdown",
    "load_batch_spec",
    "plan_jobs",
    "run_batch",
    "run_job",
]
