"""Rerun sessions: mode strings, the served web viewer and its shutdown, connecting to a
running viewer, finding a run's recording."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from slamfront.config import RerunConfig, load_config
from slamfront.errors import ConfigError, InputError, SlamfrontError
from slamfront.types import OptimizedPoses

pytest.importorskip("rerun")

from slamfront.sinks.rerun_session import (
    RerunMode,
    RerunProcess,
    RerunSession,
    find_recording,
    free_port,
    free_ports,
    grpc_url,
    parse_mode,
    port_open,
    rerun_binary,
)
from slamfront.sinks.rerun_sink import RerunSink


def test_parse_mode() -> None:
    assert parse_mode("off") == RerunMode("off")
    assert parse_mode("serve") == RerunMode("serve")
    assert parse_mode("save:out/run.rrd") == RerunMode("save", path=Path("out/run.rrd"))
    assert parse_mode("save", run_dir="runs/x") == RerunMode(
        "save", path=Path("runs/x/recording.rrd")
    )
    assert parse_mode("connect").address == "rerun+http://127.0.0.1:9876/proxy"
    assert parse_mode("connect:9000").address == "rerun+http://127.0.0.1:9000/proxy"
    assert parse_mode("connect:box:9000").address == "rerun+http://box:9000/proxy"
    url = "rerun+http://10.0.0.2:9877/proxy"
    assert parse_mode(f"connect:{url}").address == url


@pytest.mark.parametrize(
    "text", ["save", "serve:1", "show", "connect:http://x:1/proxy", "connect:x:y", "off:1"]
)
def test_bad_modes_name_rerun_mode(text: str) -> None:
    with pytest.raises(ConfigError, match=r"rerun\.mode"):
        parse_mode(text)  # "save" alone needs a run directory


def test_grpc_url_rejects_bad_ports() -> None:
    with pytest.raises(ConfigError):
        grpc_url("70000")
    with pytest.raises(ConfigError):
        grpc_url("0")


def test_config_validates_the_rerun_section() -> None:
    assert load_config("fast", ["rerun.mode=save:x.rrd"]).rerun.mode == "save:x.rrd"
    with pytest.raises(ConfigError, match=r"rerun\.mode"):
        load_config("fast", ["rerun.mode=display"])
    with pytest.raises(ConfigError, match=r"rerun\.image_scale"):
        load_config("fast", ["rerun.image_scale=0"])
    with pytest.raises(ConfigError, match=r"rerun\.jpeg_quality"):
        load_config("fast", ["rerun.jpeg_quality=101"])
    with pytest.raises(ConfigError, match=r"rerun\.queue_size"):
        load_config("fast", ["rerun.queue_size=0"])


def test_find_recording(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \.rrd"):
        find_recording(tmp_path)
    other = tmp_path / "other.rrd"
    other.write_bytes(b"RRF2\0\0")
    assert find_recording(tmp_path) == other
    (tmp_path / "more.rrd").write_bytes(b"RRF2\0\0")
    with pytest.raises(InputError, match="several"):
        find_recording(tmp_path)
    default = tmp_path / "recording.rrd"
    default.write_bytes(b"RRF2\0\0")
    assert find_recording(tmp_path) == default
    assert find_recording(other) == other
    with pytest.raises(InputError, match="no such"):
        find_recording(tmp_path / "missing")


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    random = tmp_path / "random.rrd"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match=r"random\.rrd: not a Rerun recording"):
        find_recording(random)
    empty = tmp_path / "run" / "recording.rrd"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="an empty file"):
        find_recording(empty.parent)


def test_rerun_binary_is_the_real_executable() -> None:
    binary = rerun_binary()
    assert binary.is_file()
    with binary.open("rb") as f:
        assert f.read(4) == b"\x7fELF"  # not the Python wrapper script on PATH


def test_serve_starts_a_localhost_viewer_and_stops_it() -> None:
    config = RerunConfig(web_port=0, grpc_port=0)
    session = RerunSession(parse_mode("serve"), config)
    try:
        assert session.server is not None and session.server.running()
        assert session.viewer_url is not None and session.grpc_url is not None
        assert session.viewer_url.startswith("http://localhost:")
        with urllib.request.urlopen(session.viewer_url, timeout=10) as page:
            assert page.status == 200
            assert b"wasm" in page.read().lower()
        grpc_port = int(session.grpc_url.rsplit(":", 1)[1].split("/")[0])
        web_port = int(session.viewer_url.split(":")[2].split("/")[0])
        sink = RerunSink(session.recording, config)
        sink.on_optimized(OptimizedPoses(0, (), np.zeros((0, 4, 4))))
        sink.close()
    finally:
        session.close()
    assert not session.server.running()
    assert not port_open("127.0.0.1", grpc_port) and not port_open("127.0.0.1", web_port)
    session.close()  # twice is fine


def test_free_ports_are_distinct() -> None:
    # picked one at a time, the OS may hand out a port it just released: web and gRPC
    # servers then collide on one port
    ports = free_ports(8)
    assert len(set(ports)) == 8


def test_serve_refuses_a_port_in_use() -> None:
    config = RerunConfig(web_port=0, grpc_port=0)
    first = RerunSession(parse_mode("serve"), config)
    try:
        assert first.grpc_url is not None
        taken = int(first.grpc_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(SlamfrontError, match=f"port {taken}"):
            RerunSession(parse_mode("serve"), RerunConfig(web_port=0, grpc_port=taken))
    finally:
        first.close()


@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # the receiver was SIGTERMed
def test_connect_streams_to_a_running_viewer(tmp_path: Path, rrd: ModuleType) -> None:
    port = free_port()
    saved = tmp_path / "received.rrd"
    # a running "viewer": the rerun binary receiving on a port and saving what it gets
    receiver = RerunProcess(["--port", str(port), "--bind", "127.0.0.1", "--save", str(saved)])
    try:
        receiver.wait_listening([port])
        with RerunSession(parse_mode(f"connect:{port}")) as session:
            sink = RerunSink(session.recording)
            sink.close()
        # the receiver writes what it got on its own time: wait for the file to settle
        deadline, last = time.monotonic() + 15, -1
        while time.monotonic() < deadline:
            size = saved.stat().st_size if saved.exists() else 0
            if size > 0 and size == last:
                break
            last = size
            time.sleep(0.5)
    finally:
        receiver.stop()
    assert not receiver.running()
    logs = rrd.read_rrd(saved)
    assert logs["/world"].static["ViewCoordinates:xyz"] == [[3, 2, 5]]


def test_connect_fails_fast_without_a_viewer() -> None:
    start = time.perf_counter()
    with pytest.raises(SlamfrontError, match="no Rerun viewer is listening"):
        RerunSession(parse_mode(f"connect:{free_port()}"))
    assert time.perf_counter() - start < 3.0


def test_off_has_no_session() -> None:
    with pytest.raises(ConfigError):
        RerunSession(parse_mode("off"))


def test_a_session_never_closed_still_stops_its_server_at_exit(tmp_path: Path) -> None:
    script = (
        "from slamfront.config import RerunConfig\n"
        "from slamfront.sinks.rerun_session import RerunSession, parse_mode\n"
        "s = RerunSession(parse_mode('serve'), RerunConfig(web_port=0, grpc_port=0))\n"
        "print(s.server.pid, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), f"rerun server {pid} outlived its session"
