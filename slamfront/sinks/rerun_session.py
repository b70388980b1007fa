"""Where a Rerun recording goes: a file, a web viewer served on localhost, or a running viewer.

``parse_mode("save:run.rrd" | "save" | "serve" | "connect[:ADDR]" | "off")`` gives a
:class:`RerunMode`; :class:`RerunSession` opens it and owns everything it starts:

- ``save``: the recording is written to the ``.rrd`` file as the run goes (footer on close).
  ``save`` without a path needs ``run_dir`` and writes ``RUN_DIR/recording.rrd``.
- ``serve``: starts the ``rerun`` binary (the one inside the rerun-sdk wheel, not the Python
  wrapper on PATH) as ``rerun --serve-web --bind 127.0.0.1``: a gRPC server and the web
  viewer over HTTP, localhost only, no internet needed. The recording streams to it;
  :attr:`RerunSession.viewer_url` is the address to open in a browser. The server is a
  child in a process group of its own: ``close()`` terminates it (SIGTERM, then SIGKILL),
  and it gets SIGTERM when the caller dies (see :class:`RerunProcess`).
- ``connect``: streams to a viewer (or server) already running at ADDR
  (``rerun+http://HOST:PORT/proxy``, ``HOST:PORT`` or ``PORT``; default port 9876).

Ports: ``rerun.web_port`` / ``rerun.grpc_port`` (0 picks free ones). ``rerun`` is imported
only here and in the sink, lazily.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

from slamfront.config import RerunConfig
from slamfront.errors import ConfigError, InputError, SlamfrontError

log = logging.getLogger(__name__)

ModeKind = Literal["off", "save", "serve", "connect"]

DEFAULT_RECORDING_NAME = "recording.rrd"
"""File name of ``save`` without a path, inside the run directory."""
DEFAULT_VIEWER_PORT = 9876
"""Rerun's default gRPC port (a native viewer listens there)."""
_START_TIMEOUT_S = 20.0
_FLUSH_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RerunMode:
    """A parsed ``rerun.mode``: ``path`` for save, ``address`` (a gRPC URL) for connect."""

    kind: ModeKind
    path: Path | None = None
    address: str | None = None


def parse_mode(text: str, run_dir: str | os.PathLike[str] | None = None) -> RerunMode:
    """``off`` | ``save[:FILE.rrd]`` | ``serve`` | ``connect[:ADDR]``; errors name rerun.mode."""
    scheme, sep, rest = text.strip().partition(":")
    if scheme == "off" and not sep:
        return RerunMode("off")
    if scheme == "serve" and not sep:
        return RerunMode("serve")
    if scheme == "save":
        if rest:
            return RerunMode("save", path=Path(rest))
        if run_dir is None:
            raise ConfigError(f"rerun.mode {text!r}: give a file (save:FILE.rrd)")
        return RerunMode("save", path=Path(run_dir) / DEFAULT_RECORDING_NAME)
    if scheme == "connect":
        return RerunMode("connect", address=grpc_url(rest))
    raise ConfigError(
        f"rerun.mode {text!r}: expected off, save[:FILE.rrd], serve or connect[:ADDR]"
    )


def grpc_url(address: str) -> str:
    """``rerun+http://HOST:PORT/proxy`` from a URL, ``HOST:PORT``, ``PORT`` or ``""``."""
    address = address.strip()
    if not address:
        return f"rerun+http://127.0.0.1:{DEFAULT_VIEWER_PORT}/proxy"
    if "://" in address:
        if not address.startswith(("rerun://", "rerun+http://", "rerun+https://")):
            raise ConfigError(
                f"rerun.mode connect:{address}: the URL must start with rerun+http:// "
                "(e.g. rerun+http://127.0.0.1:9876/proxy)"
            )
        return address
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", address
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"rerun.mode connect:{address}: expected HOST:PORT or PORT")
    return f"rerun+http://{host or '127.0.0.1'}:{int(port)}/proxy"


def web_viewer_url(web_port: int, grpc_port: int) -> str:
    """The page to open: the web viewer on ``web_port`` reading the gRPC server on
    ``grpc_port`` (both on this machine; ``localhost`` is an origin the server accepts)."""
    source = quote(f"rerun+http://localhost:{grpc_port}/proxy", safe="")
    return f"http://localhost:{web_port}/?url={source}"


def find_recording(target: str | os.PathLike[str]) -> Path:
    """The ``.rrd`` of a run directory (``recording.rrd``, else its only ``.rrd``) or the
    file itself; InputError when there is none or the file is not a Rerun recording."""
    path = Path(target)
    if path.is_file():
        return _check_recording(path)
    if path.is_dir():
        default = path / DEFAULT_RECORDING_NAME
        if default.is_file():
            return _check_recording(default)
        found = sorted(path.glob("*.rrd"))
        if len(found) == 1:
            return _check_recording(found[0])
        if found:
            names = ", ".join(p.name for p in found)
            raise InputError(f"{path}: several recordings ({names}); name one")
        raise InputError(f"{path}: no .rrd recording here (record one with --rerun save)")
    raise InputError(f"{path}: no such file or directory")


RRD_MAGIC = b"RRF"
"""Every Rerun recording file starts with these bytes (then a format digit)."""


def _check_recording(path: Path) -> Path:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    if not head.startswith(RRD_MAGIC):
        what = "an empty file" if not head else "not a Rerun recording (.rrd)"
        raise InputError(f"{path}: {what}; record one with --rerun save")
    return path


def rerun_binary() -> Path:
    """The real ``rerun`` executable: ``$RERUN_CLI_PATH``, else the one inside the
    ``rerun_cli`` package of the rerun-sdk wheel, else ``rerun`` on PATH.

    The ``rerun`` on a venv's PATH is a Python wrapper that starts the binary as its own
    child; ending the wrapper alone would leave that child running, so it is a last resort.
    """
    env = os.environ.get("RERUN_CLI_PATH")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("rerun_cli")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "rerun"
        if candidate.is_file():
            return candidate
    found = shutil.which("rerun")
    if found is None:
        raise SlamfrontError("the rerun binary was not found (pip install rerun-sdk)")
    return Path(found)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS's choice)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now: held open together while
    the OS picks them, so that it cannot hand out the same one twice."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class RerunProcess:
    """A ``rerun`` binary run as a child process, in a process group of its own: a Ctrl-C
    in the terminal reaches the caller, which ends the run and then stops the child.

    On Linux the child gets SIGTERM when the caller dies (``PR_SET_PDEATHSIG``; strictly,
    when the thread that started it ends: start it from a thread that lives as long as it
    should), so that it never outlives a killed caller and holds on to its ports. Its
    output goes to an anonymous temporary file (shown in errors). ``stop()`` sends SIGTERM,
    waits, then SIGKILL; it is safe to call twice.
    """

    def __init__(self, args: list[str]) -> None:
        self.args = [str(rerun_binary()), *args]
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the process)
        try:
            self._process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # only async-signal-safe calls
            )
        except OSError as exc:
            self._output.close()
            raise SlamfrontError(f"cannot start {self.args[0]}: {exc}") from exc
        # a safety net for a forgotten stop(): the child ends when the interpreter exits
        self._finalizer = weakref.finalize(self, _terminate, self._process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._process.poll() is None

    def wait_listening(self, ports: list[int], timeout_s: float = _START_TIMEOUT_S) -> None:
        """Block until every port accepts connections on 127.0.0.1; stop and raise if the
        process exits or the ports stay closed."""
        deadline = time.monotonic() + timeout_s
        pending = list(ports)
        while pending:
            if not self.running():
                raise SlamfrontError(
                    f"{' '.join(self.args)} exited with code {self._process.returncode}:\n"
                    f"{self.output_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise SlamfrontError(
                    f"rerun did not open port(s) {pending} within {timeout_s:.0f} s:\n"
                    f"{self.output_tail()}"
                )
            pending = [p for p in pending if not port_open("127.0.0.1", p, 0.2)]
            if pending:
                time.sleep(0.05)

    def wait(self) -> int:
        """Wait for the process to end on its own; returns its exit code."""
        return self._process.wait()

    def output_tail(self, max_chars: int = 2000) -> str:
        try:
            self._output.seek(0)
            text = self._output.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text[-max_chars:]

    def stop(self) -> None:
        self._finalizer.detach()
        _terminate(self._process)
        with contextlib.suppress(OSError, ValueError):
            self._output.close()


def _die_with_parent() -> Callable[[], None] | None:
    """For ``preexec_fn`` on Linux: the child asks the kernel for SIGTERM when its parent
    thread dies, and exits at once if the parent is already gone. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent_pid = os.getpid()
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_death_signal


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a few seconds' grace, then SIGKILL; reaps the child."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RerunSession:
    """An open Rerun recording stream and whatever it writes or streams to.

    ``recording`` is an ``rr.RecordingStream`` (never the SDK's global recording). Use as a
    context manager, or call ``close()``: it flushes, disconnects (writing the ``.rrd``
    footer) and stops a server it started.
    """

    def __init__(
        self,
        mode: RerunMode,
        config: RerunConfig | None = None,
        application_id: str = "slamfront",
        recording_name: str | None = None,
        blueprint: Any = None,
    ) -> None:
        import rerun as rr

        if mode.kind == "off":
            raise ConfigError("rerun.mode is off: there is no session to open")
        self.mode = mode
        self.config = config if config is not None else RerunConfig()
        self.viewer_url: str | None = None
        self.grpc_url: str | None = None
        self.server: RerunProcess | None = None
        self._closed = False
        self.recording = rr.RecordingStream(application_id, send_properties=True)
        if recording_name:
            self.recording.send_recording_name(recording_name)
        try:
            self._open(blueprint)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> Path | None:
        return self.mode.path

    def _open(self, blueprint: Any) -> None:
        mode, cfg = self.mode, self.config
        if mode.kind == "save":
            assert mode.path is not None
            mode.path.parent.mkdir(parents=True, exist_ok=True)
            self.recording.save(mode.path, default_blueprint=blueprint)
            return
        if mode.kind == "connect":
            assert mode.address is not None
            _require_listening(mode.address)
            self.grpc_url = mode.address
            self.recording.connect_grpc(mode.address, default_blueprint=blueprint)
            return
        if cfg.web_port and cfg.web_port == cfg.grpc_port:
            raise SlamfrontError(
                f"rerun.web_port and rerun.grpc_port are both {cfg.web_port}; they must differ"
            )
        spare = iter(p for p in free_ports(3) if p not in (cfg.web_port, cfg.grpc_port))
        web_port = cfg.web_port or next(spare)
        grpc_port = cfg.grpc_port or next(spare)
        for port, key in ((web_port, "web_port"), (grpc_port, "grpc_port")):
            if port_open("127.0.0.1", port, 0.2):
                raise SlamfrontError(
                    f"port {port} (rerun.{key}) is already in use on localhost; "
                    f"pick another with rerun.{key}=PORT (0: any free port)"
                )
        self.server = RerunProcess(
            [
                "--serve-web",
                "--bind",
                "127.0.0.1",
                "--port",
                str(grpc_port),
                "--web-viewer-port",
                str(web_port),
                "--server-memory-limit",
                cfg.server_memory_limit,
                "--cors-allow-origin",
                f"http://127.0.0.1:{web_port}",
            ]
        )
        self.server.wait_listening([grpc_port, web_port])
        self.grpc_url = f"rerun+http://127.0.0.1:{grpc_port}/proxy"
        self.viewer_url = web_viewer_url(web_port, grpc_port)
        self.recording.connect_grpc(self.grpc_url, default_blueprint=blueprint)

    def flush(self) -> None:
        """Block until everything logged so far has reached the file or server."""
        self.recording.flush(timeout_sec=_FLUSH_TIMEOUT_S)

    def close(self) -> None:
        """Flush, disconnect, stop the server. Safe to call twice; never raises for a
        viewer that went away (logged instead)."""
        if self._closed:
            return
        self._closed = True
        server_gone = self.server is not None and not self.server.running()
        try:
            if not server_gone:  # after Ctrl-C the server may have ended with us
                self.recording.flush(timeout_sec=_FLUSH_TIMEOUT_S)
        except Exception as exc:  # a closed viewer or full disk must not hide the run's result
            log.warning("rerun: flushing the recording failed: %s", exc)
        try:
            self.recording.disconnect()
        except Exception as exc:
            log.warning("rerun: disconnecting failed: %s", exc)
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> RerunSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_listening(url: str) -> None:
    """Fail fast (the SDK would wait 5 s, then drop everything) when nothing listens."""
    rest = url.split("://", 1)[1]
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        return  # a URL without an explicit port: let the SDK resolve it
    host = host.strip("[]") or "127.0.0.1"
    if not port_open(host, int(port), timeout_s=1.0):
        raise SlamfrontError(
            f"no Rerun viewer is listening at {url}; start one first (`rerun`, or "
            f"`rerun --port {port}`), or use --rerun serve / --rerun save:FILE.rrd"
        )
