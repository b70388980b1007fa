"""A real browser on the served web viewer: headless Chromium opens ``--rerun serve``'s URL
after a short synthetic run and the screenshot shows the recording (not a blank page, not
the viewer's welcome screen). Skipped where Chromium is absent (Debian: apt-get install -y
chromium). Set SLAMFRONT_SCREENSHOT_DIR to keep the screenshot."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront.config import load_config
from slamfront.pipeline import Pipeline, QueuedSink
from slamfront.sources import open_source

pytest.importorskip("rerun")

from slamfront.sinks.rerun_session import RerunSession, parse_mode
from slamfront.sinks.rerun_sink import RerunSink, default_blueprint

SIZE = (1400, 900)


def _measure(png: bytes) -> dict[str, float]:
    """Pixel statistics of a screenshot: overall spread, the share of pixels far from the
    dominant (background) colour, and the share of saturated (coloured) pixels."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    flat = image.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    background = values[np.argmax(counts)]
    off_background = np.abs(flat - background).max(axis=1) > 40
    saturation = flat.max(axis=1) - flat.min(axis=1)
    return {
        "std": float(flat.std()),
        "off_background": float(off_background.mean()),
        "coloured": float((saturation > 60).mean()),
    }


def _shows_the_recording(m: dict[str, float]) -> bool:
    # the welcome screen and the loading page are flat: < 5 % off-background, < 1 % coloured
    return m["off_background"] > 0.15 and m["coloured"] > 0.03 and m["std"] > 30


@pytest.mark.slow
def test_served_viewer_shows_the_run_in_headless_chromium(tmp_path: Path, cdp: ModuleType) -> None:
    executable = cdp.find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    config = load_config(
        "classic",
        [
            "sim.frames=15",
            "sim.width_px=320",
            "sim.height_px=240",
            "rerun.web_port=0",
            "rerun.grpc_port=0",
        ],
    )
    session = RerunSession(parse_mode("serve"), config.rerun, blueprint=default_blueprint())
    assert session.server is not None and session.viewer_url is not None
    try:
        sink = QueuedSink(RerunSink(session.recording, config.rerun), config.rerun.queue_size)
        pipeline = Pipeline(config, sinks=[sink])
        with open_source("sim:loop", config) as source:
            for _ in pipeline.run(source):
                pass
        pipeline.close()

        browser = cdp.Chromium(executable, tmp_path / "profile", SIZE)
        try:
            browser.open(session.viewer_url)
            deadline = time.monotonic() + 120
            png = browser.screenshot_png()
            while time.monotonic() < deadline and not _shows_the_recording(_measure(png)):
                time.sleep(2.0)
                png = browser.screenshot_png()
            time.sleep(3.0)  # let the views settle for the kept screenshot
            png = browser.screenshot_png()
        finally:
            browser.close()
        shot = tmp_path / "viewer.png"
        shot.write_bytes(png)
        keep = os.environ.get("SLAMFRONT_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "rerun_web_viewer.png")
        measures = _measure(png)
        assert _shows_the_recording(measures), f"{measures}, screenshot {shot}"
        assert browser.process.poll() is not None
    finally:
        session.close()
    assert not session.server.running()
