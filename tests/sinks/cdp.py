"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in NUL, commands on fd 3, replies on fd 4). No websocket library and no
debugging port needed. The browser runs in its own process group, ended on close."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-zygote",  # helpers are children of the browser, reaped by it (no orphans)
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _high_fd(fd: int) -> int:
    """The same pipe end on a descriptor >= 10 (so it cannot collide with fd 3/4)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    def __init__(self, executable: str, user_data_dir: Path, size: tuple[int, int]) -> None:
        to_chrome_r, to_chrome_w = (_high_fd(fd) for fd in os.pipe())
        from_chrome_r, from_chrome_w = (_high_fd(fd) for fd in os.pipe())
        args = [
            executable,
            *FLAGS,
            f"--user-data-dir={user_data_dir}",
            f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # bash moves the pipe ends onto fd 3 and 4 of the browser (dash cannot name fds > 9)
        script = (
            f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        )
        self.log_path = user_data_dir.with_suffix(".log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", script, "chromium", *args],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._out = to_chrome_w
        self._in = from_chrome_r
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self._target = ""

    @property
    def pgid(self) -> int:
        return self.process.pid

    def call(self, method: str, timeout_s: float = 60.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self._in], [], [], remaining)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise EOFError(f"Chromium closed the pipe; log: {self.log_path}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def open(self, url: str) -> None:
        """A new tab showing ``url``, waited for until its page has loaded."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        self._target = target
        self._attach()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.call("Runtime.evaluate", expression="document.readyState")
            if state.get("result", {}).get("value") == "complete":
                return
            time.sleep(0.5)
        raise TimeoutError(f"{url} did not load within 60 s")

    def _attach(self) -> None:
        self._session = None
        self._session = self.call("Target.attachToTarget", targetId=self._target, flatten=True)[
            "sessionId"
        ]

    def screenshot_png(self) -> bytes:
        try:
            reply = self.call("Page.captureScreenshot", format="png")
        except RuntimeError as exc:
            if "Not attached" not in str(exc):
                raise
            self._attach()  # the tab moved to another renderer process: attach again
            reply = self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(reply["data"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout_s=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)  # helpers (zygote, GPU, renderers) too
        self.process.wait()
        for fd in (self._out, self._in):
            with contextlib.suppress(OSError):
                os.close(fd)
