"""``slamfront run|demo --rerun MODE`` and ``slamfront view`` end to end: a synthetic run saved
as .rrd and checked with Rerun's own tools; the served viewer and the processes it starts are
gone after Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from slamfront.cli import main

pytest.importorskip("rerun")

from slamfront.sinks.rerun_session import RerunSession, parse_mode
from slamfront.sinks.rerun_sink import RerunSink

SIM = ["sim.frames=30", "sim.width_px=320", "sim.height_px=240"]
PER_FRAME = [
    "/world/cam/image",
    "/world/cam/image/keypoints",
    "/plot/latency_ms",
    "/plot/tracking",
    "/plot/state",
]


@pytest.mark.slow
def test_run_saves_a_recording_with_the_whole_tree(
    tmp_path: Path, rrd: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["run", "sim:loop", *SIM, "rerun.queue_size=64", "--config", "classic"]
    assert main([*args, "--out", str(out), "--quiet", "--rerun", "save"]) == 0
    path = out / "recording.rrd"  # `save` without a file: the run directory's recording.rrd
    captured = capsys.readouterr()
    assert "rerun: recording to" in captured.err
    outputs = next(line for line in captured.out.splitlines() if line.startswith("outputs:"))
    assert "recording.rrd" in outputs and "groundtruth.tum" in outputs
    stats = json.loads((out / "stats.json").read_text())
    assert stats["viewer_frames_dropped"] == 0  # the queue holds the whole run here
    assert "mode: save" in (out / "config.yaml").read_text()

    rrd.verify(path)
    listed = rrd.stats_entities(path)
    logs = rrd.read_rrd(path)
    keyframes = stats["keyframes"]
    assert keyframes >= 2
    expected = [
        *PER_FRAME,
        "/world",
        "/world/cam",
        "/world/trajectory/raw/0",
        "/matches",
        "/matches/lines",
        "/plot/fps",
        "/plot/reprojection_rmse_px",
        *[f"/world/keyframes/{k}" for k in range(keyframes)],
        *[f"/world/map/points/{k}" for k in range(keyframes)],
    ]
    assert not [p for p in expected if p not in listed]
    assert f"/world/keyframes/{keyframes}" not in listed
    for entity in PER_FRAME:
        assert logs[entity].frames == list(range(30)), entity
    tracked = stats["frames_tracked"]
    assert len(logs["/world/cam"].frames_with("Transform3D:translation")) == tracked
    raw = logs["/world/trajectory/raw/0"]
    assert sum(len(s) for s in raw.last("LineStrips3D:strips")) == tracked
    assert [len(p) for p in logs["/world/cam/image/keypoints"].column("Points2D:positions")] == [
        row[0] for row in logs["/plot/tracking"].column("Scalars:scalars")
    ]
    for k in range(keyframes):
        points = logs[f"/world/map/points/{k}"].last("Points3D:positions")
        assert len(points) > 100, k  # RGB-D keyframes: most keypoints have depth
    assert len(logs["/matches"].frames) >= 30 - keyframes - 1
    # the tracker's own trajectory file and the recording agree on the last live pose
    last = (out / "trajectory_raw.tum").read_text().splitlines()[-1].split()
    t = logs["/world/cam"].last("Transform3D:translation")[0]
    assert [float(v) for v in last[1:4]] == pytest.approx(t, abs=1e-5)


def _group_members(pgid: int) -> list[str]:
    """Processes still alive in a process group (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {stat.split(' ', 2)[1]}")
    return members


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the rerun server runs in a group of its own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if _alive(c)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


def _default_sigint() -> None:
    """A job started from a terminal takes Ctrl-C; a suite started in the background of a
    non-interactive shell (``cmd &``, as CI may run it) passes SIGINT on as ignored, and
    Python then never raises KeyboardInterrupt. Start the CLI as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Cli:
    """``python -m slamfront.cli ...`` in its own process group (like a terminal job)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "slamfront.cli", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float = 120.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in output:\n" + "\n".join(self.seen))

    def finish(self, timeout_s: float = 180.0) -> int:  # generous: a loaded CI machine
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)


def _url_in(line: str) -> str:
    return next(word for word in line.split() if word.startswith("http://"))


def _assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 10
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_members(pgid), _group_members(pgid)


@pytest.mark.slow
def test_ctrl_c_during_a_served_run_leaves_no_process(tmp_path: Path) -> None:
    args = ["run", "sim:loop", "sim.frames=300", "sim.width_px=320", "sim.height_px=240"]
    ports = ["rerun.web_port=0", "rerun.grpc_port=0"]
    cli = _Cli([*args, *ports, "--config", "classic", "--out", "run", "--rerun", "serve"], tmp_path)
    url = _url_in(cli.wait_for("rerun: open"))
    with urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200
    server = _children(cli.process.pid)
    assert len(server) == 1
    cli.wait_for("frame/s")  # the progress bar: tracking is under way
    os.killpg(cli.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert cli.finish() == 130
    _assert_group_gone(cli.process.pid)
    _assert_gone(server)
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert 0 < stats["frames_read"] < 300


@pytest.mark.slow
def test_served_viewer_stays_after_the_run_until_sigterm(tmp_path: Path) -> None:
    ports = ["rerun.web_port=0", "rerun.grpc_port=0"]
    cli = _Cli(
        ["demo", *SIM, *ports, "--config", "classic", "--out", "demo", "--rerun", "serve"],
        tmp_path,
    )
    url = _url_in(cli.wait_for("rerun: open"))
    cli.wait_for("the viewer stays at")
    time.sleep(1.0)
    with urllib.request.urlopen(url, timeout=10) as page:  # still served after the run
        assert page.status == 200
    server = _children(cli.process.pid)
    assert len(server) == 1  # its rerun server
    os.kill(cli.process.pid, signal.SIGTERM)  # slamfront alone: it stops the server itself
    assert cli.finish() == 0
    _assert_group_gone(cli.process.pid)
    _assert_gone(server)


def test_view_serves_a_saved_recording_until_ctrl_c(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RerunSession(parse_mode("save", run_dir=run)) as session:
        RerunSink(session.recording).close()
    cli = _Cli(["view", str(run), "--web", "--web-port", "0", "--grpc-port", "0"], tmp_path)
    line = cli.wait_for("in a browser")
    assert str(run / "recording.rrd") in line
    with urllib.request.urlopen(_url_in(line), timeout=10) as page:
        assert page.status == 200
    os.killpg(cli.process.pid, signal.SIGINT)
    assert cli.finish() == 130
    _assert_group_gone(cli.process.pid)


def test_view_without_a_recording_is_an_error(tmp_path: Path) -> None:
    assert main(["view", str(tmp_path)]) == 2


def test_view_of_a_file_that_is_not_a_recording_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n")
    assert main(["view", str(notes), "--web", "--web-port", "0", "--grpc-port", "0"]) == 2
    assert "notes.txt: not a Rerun recording (.rrd)" in capsys.readouterr().err


def test_bad_rerun_mode_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "sim:loop", "--out", str(tmp_path), "--rerun", "display"])
    assert code == 2
    assert "rerun.mode" in capsys.readouterr().err
