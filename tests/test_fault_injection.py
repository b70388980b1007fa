"""Runs of ``slamfront run`` interrupted by SIGINT, SIGTERM, SIGHUP and SIGKILL at start-up,
mid-run and while the run ends (back end, --save-map): afterwards every output that exists
is complete and parseable, a signal the CLI handles leaves stats.json and exits with
128 + its number, a map file is the old one or the new one, never torn, and an earlier
run's outputs elsewhere are untouched (issue 24). Also: the Rerun server a run starts does
not outlive a killed run.

Each case is a real process (``python -m slamfront.cli``) on short synthetic runs with the
``classic`` preset. Where a signal lands is found by watching the process's output and its
folder, so the checks are on what must hold wherever it lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from slamfront.backend.map_store import load_map
from slamfront.io.trajectory import read_tum_trajectory

pytestmark = pytest.mark.slow

SIM = ["sim.width_px=320", "sim.height_px=240", "--config", "classic"]
PROGRESS = ["pipeline.progress_interval_s=0.2"]


class Cli:
    """``python -m slamfront.cli run ...`` in a session of its own; its output read on a
    thread."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "slamfront.cli", "run", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _wait_until(self, found: Callable[[str], bool], what: str, timeout_s: float) -> None:
        """Read output lines until one satisfies ``found``; AssertionError on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if found(line):
                return
        raise AssertionError(f"{what} in the output:\n" + "\n".join(self.seen))

    def wait_for(self, text: str, timeout_s: float = 120.0) -> None:
        self._wait_until(lambda line: text in line, f"no {text!r}", timeout_s)

    def wait_for_frames(self, count: int, timeout_s: float = 120.0) -> None:
        """Until the progress bar shows at least ``count`` frames done."""

        def done(line: str) -> bool:
            frames = re.search(r"(\d+)/\d+ \[", line)
            return frames is not None and int(frames.group(1)) >= count

        self._wait_until(done, f"not {count} frames", timeout_s)

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if condition():
                return True
            time.sleep(0.002)
        return False

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def finish(self, timeout_s: float = 180.0) -> int:
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_outputs_whole(out: Path, handled: bool) -> None:
    """Every file of the run folder parses; with a handled signal stats.json is there."""
    if not out.exists():
        return
    names = {p.name for p in out.iterdir()}
    if handled:  # after SIGKILL an atomic write's temporary file may stay, never the target
        assert not [n for n in names if n.endswith(".tmp")], names
    names = {n for n in names if not n.endswith(".tmp")}
    if "config.yaml" in names:
        assert isinstance(yaml.safe_load((out / "config.yaml").read_text()), dict)
    for name in names:
        if name.endswith(".tum"):
            read_tum_trajectory_or_empty(out / name)
    if handled:
        assert "stats.json" in names, names
    if "stats.json" in names:
        stats = json.loads((out / "stats.json").read_text())
        tracked = stats["frames_tracked"]
        written = sum(
            read_tum_trajectory_or_empty(out / n)
            for n in names
            if n.startswith("trajectory")
            and n.endswith(".tum")
            and not n.startswith("trajectory_raw")
        )
        assert written == tracked, (written, tracked)


def read_tum_trajectory_or_empty(path: Path) -> int:
    """Poses in a TUM file (0 for a file holding its header alone)."""
    lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
    if not lines:
        return 0
    assert path.read_text().endswith("\n"), f"{path}: last line cut"
    return len(read_tum_trajectory(path))


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An earlier run (its folder and map), which no interrupted run may change."""
    base = tmp_path_factory.mktemp("earlier")
    cli = Cli(["sim:loop", "sim.frames=30", *SIM, "--out", "run", "--save-map", "old.map"], base)
    assert cli.finish() == 0, cli.seen
    return base, digest(base)


def old_map(earlier: tuple[Path, dict[str, str]], folder: Path) -> Path:
    """A copy of the earlier run's map in ``folder``, to be overwritten by --save-map."""
    target = folder / "room.map"
    target.write_bytes((earlier[0] / "old.map").read_bytes())
    return target


def assert_map_old_or_new(path: Path, old: bytes) -> str:
    data = path.read_bytes()
    if data == old:
        return "old"
    assert len(load_map(path).keyframes) >= 1
    return "new"


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_run_ends_it_like_the_end_of_its_source(
    tmp_path: Path, earlier: tuple[Path, dict[str, str]], number: int
) -> None:
    """SIGTERM used to kill the run without stats.json or optimised trajectory; Ctrl-C
    printed no summary and wrote no groundtruth.tum nor map."""
    target = old_map(earlier, tmp_path)
    args = ["sim:loop", "sim.frames=300", *SIM, *PROGRESS, "--out", "run"]
    cli = Cli([*args, "--save-map", target.name], tmp_path)
    cli.wait_for_frames(20)  # a few keyframes: the back end has something to optimise
    cli.signal(number)
    assert cli.finish() == 128 + number, cli.seen
    out = tmp_path / "run"
    assert_outputs_whole(out, handled=True)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stopped_early"] is True and 0 < stats["frames_read"] < 300
    assert {"groundtruth.tum", "trajectory_raw.tum"} <= {p.name for p in out.iterdir()}
    # the back end finished: trajectory.tum holds its poses, not the tracker's
    assert not [note for note in stats["notes"] if "stopped at once" in note]
    raw = read_tum_trajectory(out / "trajectory_raw.tum")
    final = read_tum_trajectory(out / "trajectory.tum")
    assert len(final) == len(raw) == stats["frames_tracked"]
    assert not np.array_equal(final.world_from_body, raw.world_from_body)
    assert any(line.startswith("outputs:") for line in cli.seen)
    assert any(f"stopped by {signal.Signals(number).name}" in line for line in cli.seen)
    assert assert_map_old_or_new(target, (earlier[0] / "old.map").read_bytes()) == "new"
    assert digest(earlier[0]) == earlier[1]


def test_a_second_signal_stops_at_once_and_keeps_the_old_map(
    tmp_path: Path, earlier: tuple[Path, dict[str, str]]
) -> None:
    target = old_map(earlier, tmp_path)
    args = ["sim:loop", "sim.frames=300", *SIM, *PROGRESS, "--out", "run"]
    cli = Cli([*args, "--save-map", target.name], tmp_path)
    cli.wait_for("frame/s")
    cli.signal(signal.SIGTERM)
    cli.wait_for("ending the run")
    cli.signal(signal.SIGTERM)
    assert cli.finish() == 128 + signal.SIGTERM, cli.seen
    out = tmp_path / "run"
    assert_outputs_whole(out, handled=True)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stopped_early"] is True
    # the second signal may come after the run had ended by itself: then the map is new
    state = assert_map_old_or_new(target, (earlier[0] / "old.map").read_bytes())
    assert state == "old" or stats["map_saved_to"]
    assert digest(earlier[0]) == earlier[1]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_start_up_writes_nothing_over_an_earlier_run(
    tmp_path: Path, earlier: tuple[Path, dict[str, str]], number: int, shared_weights: Path
) -> None:
    """Before the output folder is claimed a signal ends the command at once: the earlier
    run in --out stays as it was, even with --overwrite. The ``fast`` preset, whose networks
    take seconds to load after the mode is printed, puts the signal in start-up."""
    del shared_weights  # the fixture only makes sure the published weights are reachable
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.yaml", "trajectory.tum"):  # an earlier run's: --overwrite takes it
        (out / name).write_bytes((earlier[0] / "run" / name).read_bytes())
    before = digest(out)
    args = ["sim:loop", "sim.frames=30", *SIM[:2], "--out", "run", "--overwrite"]
    cli = Cli(args, tmp_path)
    cli.wait_for("mode: ")  # printed after the source opened, before the networks load
    cli.signal(number)
    code = cli.finish()
    assert code == 128 + number, cli.seen
    if any("outputs:" in line for line in cli.seen):  # the run was under way already
        assert_outputs_whole(out, handled=True)
    else:
        assert digest(out) == before
        assert any("interrupted" in line for line in cli.seen)
    assert digest(earlier[0]) == earlier[1]


@pytest.mark.parametrize("moment", ["mid-run", "ending", "saving the map"])
def test_sigkill_leaves_whole_files_and_the_old_or_new_map(
    tmp_path: Path, earlier: tuple[Path, dict[str, str]], moment: str
) -> None:
    """SIGKILL cannot be handled: what was written stays whole (trajectory lines flushed one
    by one, everything else replaced atomically) and the map is never torn."""
    target = old_map(earlier, tmp_path)
    old = target.read_bytes()
    frames = "sim.frames=300" if moment == "mid-run" else "sim.frames=40"
    args = ["sim:loop", frames, *SIM, *PROGRESS, "--out", "run", "--save-map", target.name]
    cli = Cli(args, tmp_path)
    if moment == "mid-run":
        cli.wait_for("frame/s")
    elif moment == "ending":
        cli.wait_for("frame/s")
        cli.signal(signal.SIGTERM)
        cli.wait_for("ending the run")
    else:  # the map's temporary file appears beside it
        cli.wait_until(lambda: any(p.name.startswith(".room.map.") for p in tmp_path.iterdir()))
    cli.signal(signal.SIGKILL)
    assert cli.finish() == -signal.SIGKILL
    assert_outputs_whole(tmp_path / "run", handled=False)
    assert_map_old_or_new(target, old)
    assert digest(earlier[0]) == earlier[1]


def test_the_rerun_server_does_not_outlive_a_killed_run(tmp_path: Path) -> None:
    pytest.importorskip("rerun")
    ports = ["rerun.web_port=0", "rerun.grpc_port=0"]
    args = ["sim:loop", "sim.frames=300", *SIM, *PROGRESS, *ports, "--out", "run"]
    cli = Cli([*args, "--rerun", "serve"], tmp_path)
    cli.wait_for("rerun: open")
    children = Path(f"/proc/{cli.process.pid}/task/{cli.process.pid}/children")
    server = [int(pid) for pid in children.read_text().split()]
    assert len(server) == 1
    cli.signal(signal.SIGKILL)
    assert cli.finish() == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while _alive(server[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not _alive(server[0])
    finally:
        if _alive(server[0]):  # not left holding its ports when the check fails
            os.kill(server[0], signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
