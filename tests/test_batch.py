"""eval-batch: strict SPEC loading, the local process pool and Ray give the same table, and a
failing or crashing job is a row that never stops the others."""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path

import pytest

from slamfront.cli import main
from slamfront.errors import ConfigError
from slamfront.eval.batch import (
    COLUMNS,
    JobResult,
    format_markdown,
    load_batch_spec,
    plan_jobs,
    run_batch,
)

SHORT = "{sim.frames: 20, sim.width_px: 320, sim.height_px: 240}"

THREE_AND_A_BROKEN_ONE = f"""\
# three short synthetic sequences and a folder that does not exist
sequences:
  - sim:loop
  - source: sim:loop
    name: loop-stereo
    overrides: {{sim.sensor: stereo}}
  - {{source: "sim:figure8", name: fig8}}
  - tum:no/such/folder
presets:
  - classic
overrides: {SHORT}
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------- SPEC


def test_spec_reads_strings_mappings_and_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("extends: classic\nsim:\n  frames: 7\n")
    spec = load_batch_spec(
        _write(
            tmp_path,
            """\
sequences:
  - sim:loop
  - {source: "euroc:data/V1", overrides: [source.max_frames=30]}
  - kitti:../kitti:5
presets:
  - classic
  - {config: mine.yaml, name: mine-full, overrides: {sim.sensor: mono, source.spec: null}}
overrides: {sim.frames: 12}
evaluation: {align: sim3, rpe_delta: 0.5, rpe_delta_unit: m}
""",
        )
    )
    assert [s.name for s in spec.sequences] == ["sim-loop", "euroc-V1", "kitti-kitti-05"]
    assert spec.sequences[1].source == f"euroc:{tmp_path / 'data' / 'V1'}"
    assert spec.sequences[2].source == f"kitti:{tmp_path.parent / 'kitti'}:05"
    assert spec.sequences[1].overrides == ("source.max_frames=30",)
    assert [p.name for p in spec.presets] == ["classic", "mine-full"]
    assert spec.presets[1].config == str(tmp_path / "mine.yaml")
    assert spec.presets[1].overrides == ('sim.sensor="mono"', "source.spec=null")
    assert spec.overrides == ("sim.frames=12",)
    assert (spec.evaluation.align, spec.evaluation.rpe_delta_unit) == ("sim3", "m")
    jobs = plan_jobs(spec, tmp_path / "out")
    assert len(jobs) == 6 and [j.index for j in jobs] == list(range(6))
    assert jobs[3].out_dir == str(tmp_path / "out" / "euroc-V1" / "mine-full")
    assert jobs[3].overrides == (
        "extractor.threads=1",
        "matcher.threads=1",
        "sim.frames=12",
        "source.max_frames=30",
        'sim.sensor="mono"',
        "source.spec=null",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sequences: [sim:loop]\npresets: [classic]\nworkers: 2\n", ":3: unknown key 'workers'"),
        ("sequences: [sim:loop]\n", ":1: missing 'presets'"),
        ("sequences: []\npresets: [classic]\n", ":1: sequences must be a non-empty list"),
        ("sequences:\n  - sim:loop\n  - {src: x}\npresets: [classic]\n", ":3: unknown key 'src'"),
        ("sequences: [sim:loop]\npresets:\n  - fastest\n", ":3: presets[0]: unknown preset"),
        ("sequences:\n  - nope:x\npresets: [classic]\n", ":2: sequences[0]: unknown source"),
        (
            "sequences: [sim:loop]\npresets: [classic]\nevaluation:\n  align: se2\n",
            ":4: evaluation.align must be one of",
        ),
        (
            "sequences: [sim:loop]\npresets: [classic]\nevaluation: {rpe_delta: -1}\n",
            ":3: evaluation.rpe_delta must be a positive number",
        ),
        (
            "sequences: [sim:loop]\npresets:\n  - classic\n  - {config: classic}\n",
            ":4: preset name 'classic' is already used at line 3",
        ),
        (
            "sequences: [sim:loop]\npresets:\n  - {config: classic, name: a/b}\n",
            ":3: presets[0].name 'a/b'",
        ),
        (
            "sequences: [sim:loop]\npresets:\n  - {config: classic, overrides: [sim.frames]}\n",
            ":3: presets[0].overrides: expected key=value",
        ),
        (
            "sequences: [sim:loop]\npresets:\n  - classic\n  - {config: classic, name: b,"
            " overrides: {tracker.min_inlier: 3}}\n",
            ":4: preset 'b': override 'tracker.min_inlier=3': unknown key",
        ),
        (
            "sequences:\n  - sim:loop\n  - {source: sim:loop, name: x, overrides: "
            "{sim.width_px: 8}}\npresets: [classic]\n",
            ":3: sequence 'x' with preset 'classic' (line 4)",
        ),
        ("sequences: [sim:loop]\npresets: [classic]\nsequences: [sim:still]\n", ":3: duplicate"),
        ("sequences: [sim:loop\n", "invalid YAML"),
    ],
)
def test_spec_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_batch_spec(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_markdown_table_has_every_row_and_marks_progress() -> None:
    rows = [
        JobResult("a", "fast", "ok", "se3", 10, 10, 0, 2, 0.01234, 0.5, 0.001, 0.02, 12.3),
        JobResult("b", "fast", "failed", error="run: SourceError: x | y"),
    ]
    text = format_markdown(rows, total=3)
    lines = text.splitlines()
    assert lines[0].startswith("| sequence | preset | status |") and "ATE mm" in lines[0]
    assert lines[2] == "| a | fast | ok | se3 | 12.3 | 0.500 | 1.00 | 0.0200 | 12.3 | 10 | 0 |  |"
    assert "x \\| y" in lines[3] and "2 of 3 jobs finished" in text


# ------------------------------------------------------------------------------ running


def _accuracy_columns(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [
            {k: v for k, v in row.items() if k not in ("fps", "wall_s")}
            for row in csv.DictReader(f)
        ]


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, list[str]]:
    tmp = tmp_path_factory.mktemp("batch")
    spec = load_batch_spec(_write(tmp, THREE_AND_A_BROKEN_ONE))
    seen: list[str] = []
    result = run_batch(spec, tmp / "local", workers=2, on_result=lambda r: seen.append(r.sequence))
    return tmp, result, seen


@pytest.mark.slow
def test_local_pool_runs_every_job_and_reports_the_broken_one(
    local_batch: tuple[Path, object, list[str]],
) -> None:
    tmp, result, seen = local_batch
    rows = result.rows  # type: ignore[attr-defined]
    assert [(r.sequence, r.status) for r in rows] == [
        ("sim-loop", "ok"),
        ("loop-stereo", "ok"),
        ("fig8", "ok"),
        ("tum-folder", "failed"),
    ]
    assert sorted(seen) == sorted(r.sequence for r in rows)
    for row in rows[:3]:
        assert row.align == "se3" and row.frames == 20 and row.frames_lost == 0
        assert row.ate_rmse_m is not None and 0 < row.ate_rmse_m < 0.05
        assert row.rpe_rmse_m is not None and row.fps is not None and row.fps > 0
        folder = Path(row.out_dir)
        for name in ("trajectory.tum", "config.yaml", "stats.json", "groundtruth.tum"):
            assert (folder / name).is_file(), name
        assert (folder / "evaluation.json").is_file() and not (folder / "error.txt").exists()
    broken = rows[3]
    assert "SourceError" in broken.error and "no/such/folder" in broken.error
    assert broken.error.startswith("run: ") and broken.ate_rmse_m is None
    assert "Traceback" in (Path(broken.out_dir) / "error.txt").read_text()
    table = _accuracy_columns(tmp / "local" / "results.csv")
    assert list(table[0]) == [c for c in COLUMNS if c not in ("fps", "wall_s")]
    assert [row["sequence"] for row in table] == ["sim-loop", "loop-stereo", "fig8", "tum-folder"]
    assert table[0]["out_dir"] == "sim-loop/classic"
    assert float(table[0]["ate_rmse_m"]) == rows[0].ate_rmse_m  # full precision
    markdown = (tmp / "local" / "results.md").read_text()
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 5  # header + 4
    assert "finished so far" not in markdown


@pytest.mark.slow
def test_ray_gives_the_same_table_as_the_local_pool(
    local_batch: tuple[Path, object, list[str]],
) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'slamfront[ray]')")
    tmp, local, _ = local_batch
    spec = load_batch_spec(tmp / "spec.yaml")
    # Ray runs its workers at niceness 15 by default: on a busy machine they would crawl.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _system_config={"worker_niceness": 0},
    )
    try:
        result = run_batch(spec, tmp / "ray", workers=2, ray_address="auto")
    finally:
        ray.shutdown()
    assert result.executor.startswith("ray")
    local_rows = local.rows  # type: ignore[attr-defined]
    assert [r.accuracy() for r in result.rows] == [r.accuracy() for r in local_rows]
    assert _accuracy_columns(tmp / "ray" / "results.csv") == _accuracy_columns(
        tmp / "local" / "results.csv"
    )
    assert result.rows[3].status == "failed" and result.rows[0].status == "ok"


def _spawned_children() -> list[int]:
    """Pids of this process's multiprocessing children that run a job (not the tracker)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_crashed_worker_is_a_row_and_the_others_go_on(tmp_path: Path) -> None:
    spec = load_batch_spec(
        _write(
            tmp_path,
            """\
sequences:
  - {source: "sim:still", name: long, overrides: {sim.frames: 100000}}
  - {source: "sim:loop", name: short, overrides: {sim.frames: 6}}
presets: [classic]
overrides: {sim.width_px: 160, sim.height_px: 120}
""",
        )
    )
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _spawned_children():
                os.kill(pid, 9)
                killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    try:
        result = run_batch(spec, tmp_path / "out", workers=1)
    finally:
        killer.join()
    assert killed, "no worker process seen"
    crashed, short = result.rows
    assert crashed.status == "crashed" and "SIGKILL" in crashed.error
    assert short.status == "ok" and short.frames == 6
    assert "crashed" in (tmp_path / "out" / "results.md").read_text()


def test_cli_eval_batch_bad_spec_and_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "sequences: [sim:loop]\npresets: [classic]\nextra: 1\n")
    assert main(["eval-batch", str(path)]) == 2
    assert f"{path}:3: unknown key 'extra'" in capsys.readouterr().err
    good = _write(tmp_path, "sequences: [sim:loop]\npresets: [classic]\n", "good.yaml")
    assert main(["eval-batch", str(good), "--workers", "0"]) == 2
