"""The command line as a new user meets it: version, help, progress, first-use messages, and a
run that ends with its accuracy, its picture and its trajectory in every format."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slamfront
from slamfront.cli import _show_first_use_steps, main
from slamfront.errors import OutputError
from slamfront.frontend.export import ensure_extractor_onnx
from slamfront.geometry import make_pose, so3_exp
from slamfront.io.trajectory import read_trajectory, write_tum_trajectory
from slamfront.sim import TRAJECTORY_NAMES
from slamfront.sources import source_examples
from slamfront.types import Trajectory

REPO = Path(__file__).resolve().parent.parent
SIM = ["--config", "classic", "sim.frames=30", "sim.width_px=320", "sim.height_px=240"]


def _python_m(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "slamfront", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_version_and_python_m() -> None:
    done = _python_m("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"slamfront {slamfront.__version__}"
    assert _python_m("eval").returncode == 2  # the same parser: REF and EST are required


def test_help_lists_every_source_scheme_and_sim_scene(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for scheme, example in source_examples():
        assert re.search(rf"^  {re.escape(scheme)} +{re.escape(example)}$", text, re.M), scheme
    assert f"synthetic scenes (sim:NAME): {', '.join(TRAJECTORY_NAMES)}" in text


def test_eval_batch_help_shows_the_spec_format_from_where_it_is_documented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["eval-batch", "--help"])
    text = capsys.readouterr().out
    named = re.findall(r"(slamfront/\S+\.py|docs/\S+\.md)", text)
    assert named and all((REPO / path).is_file() for path in named), named
    assert "sequences:" in text and "presets:" in text and "rpe_delta_unit" in text


def test_first_use_steps_are_said_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    _show_first_use_steps()
    _show_first_use_steps()  # twice in one process: still one line per message
    logging.getLogger("slamfront.weights").info("weights %s: downloading %s", "x.pt", "URL")
    logging.getLogger("slamfront.frontend.export").info("exporting the extractor to ONNX")
    logging.getLogger("slamfront.frontend.export").debug("not for users")
    err = capsys.readouterr().err
    assert err == (
        "slamfront: weights x.pt: downloading URL\nslamfront: exporting the extractor to ONNX\n"
    )


@pytest.mark.slow
def test_run_reports_accuracy_draws_it_and_writes_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", "sim:loop", *SIM, "--out", str(out), "--format", "all"]) == 0
    captured = capsys.readouterr()
    # says what happens from the start, then a progress bar with rate and ETA
    first = captured.err.splitlines()[0]
    assert first.startswith("slamfront: sim:loop -> ") and "opening the source" in first
    assert "30 frames; loading the networks" in captured.err
    assert re.search(r"30/30 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+frame/s", captured.err)
    # the accuracy, in millimetres, as `eval` prints it
    assert re.search(r"ATE \(SE\(3\) aligned\)\n  trans +rmse \d+\.?\d* mm", captured.out)
    assert (out / "trajectory.png").read_bytes().startswith(b"\x89PNG")
    tum = read_trajectory(out / "trajectory.tum")
    for name in ("trajectory.kitti", "trajectory.csv", "groundtruth.kitti", "groundtruth.csv"):
        assert (out / name).is_file(), name
    times = read_trajectory(out / "trajectory.kitti", times_path=out / "trajectory_times.txt")
    euroc = read_trajectory(out / "trajectory.csv")
    assert (times.stamps_ns == tum.stamps_ns).all() and (euroc.stamps_ns == tum.stamps_ns).all()
    assert abs(times.world_from_body - tum.world_from_body).max() < 1e-8
    listed = captured.out.splitlines()[-1]
    assert listed.startswith("outputs: ") and "trajectory.png" in listed
    # quiet: no bar, no status lines; a format that does not exist is an error before anything runs
    assert main(["run", "sim:loop", *SIM, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert "frame/s" not in (err := capsys.readouterr().err) and "slamfront:" not in err
    assert not (tmp_path / "q" / "trajectory.kitti").exists()  # TUM alone by default
    assert main(["run", "sim:loop", *SIM, "--out", str(tmp_path / "x"), "--format", "g2o"]) == 2
    assert "--format takes tum, kitti, euroc" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("option", "where", "message"),
    [
        ("--plot", "nowhere/x.png", "--plot nowhere/x.png: folder nowhere does not exist"),
        ("--json", "/proc/x.json", "--json /proc/x.json: cannot write in /proc"),
        ("--plot", ".", "--plot .: is a folder"),
    ],
)
def test_eval_checks_the_files_it_is_asked_to_write_before_evaluating(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    where: str,
    message: str,
) -> None:
    """These ended in PermissionError / FileNotFoundError tracebacks after the figures."""
    monkeypatch.chdir(tmp_path)
    angles = np.linspace(0.0, 2.0, 20)
    poses = np.stack(
        [
            make_pose(so3_exp(np.array([0.0, a, 0.0])), [np.cos(a), 0.1 * a, np.sin(a)])
            for a in angles
        ]
    )
    stamps = (np.arange(20) * 50_000_000 + 10**18).astype(np.int64)
    for name in ("ref.tum", "est.tum"):
        write_tum_trajectory(tmp_path / name, Trajectory(stamps, poses))
    assert main(["eval", "ref.tum", "est.tum", option, where]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "ATE" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est.tum", "ref.tum"]


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--config", "classic", "--out", "/proc/slamfront-x"],
        ["eval-batch", "spec.yaml", "--out", "/proc/slamfront-x"],
        ["export", "--config", "classic", "--out", "spec.yaml"],
    ],
)
def test_output_folders_of_export_and_eval_batch_are_checked_first(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """These ended in PermissionError / FileExistsError tracebacks."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(
        "sequences: [{name: a, source: 'sim:still'}]\npresets: [classic]\n"
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--out " in err and ("cannot write in /proc" in err or "not a folder" in err)


def test_an_onnx_cache_it_cannot_write_is_named_by_its_key(
    tmp_path: Path, shared_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    config = slamfront.load_config("fast", ["extractor.onnx_dir=/proc/slamfront-onnx"])
    with pytest.raises(OutputError, match=r"^extractor.onnx_dir /proc/slamfront-onnx: cannot"):
        ensure_extractor_onnx(config.extractor)
