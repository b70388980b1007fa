"""A shortened soak run (tools/soak.py): no leak of memory, threads or file descriptors,
bounded queues — and the same checks catch leaks planted on purpose."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.fakes import IgnoringSink

REPO = Path(__file__).resolve().parent.parent
SMALL = ["sim.width_px=160", "sim.height_px=120"]


@pytest.fixture(scope="module")
def soak_tool() -> ModuleType:
    name = "slamfront_tools_soak"
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_short_soak_still_is_flat_and_leaves_nothing_behind(soak_tool: ModuleType) -> None:
    report = soak_tool.soak(
        "sim:still",
        "classic",
        frames=300,
        overrides=SMALL,
        baseline_frames=100,
        every=20,
        max_slope_mb_per_1000=5.0,
    )
    checks = {c.name: c for c in report.checks}
    assert set(checks) == {"rss", "in_flight", "backend_queue", "threads", "fds", "rss_slope"}
    assert report.ok, "\n".join(report.lines())
    assert report.frames == 300 and len(report.samples) == 15
    assert report.frames_lost == 0 and report.keyframes <= 2  # the camera never moves
    assert report.threads_after == report.threads_before
    assert report.os_threads_after == report.os_threads_before
    assert report.fds_after == report.fds_before
    assert max(s.in_flight for s in report.samples) <= 4 + 2  # pipeline.queue_size + 2
    assert abs(report.rss_change_pct) < 10.0 and report.rss_slope_mb_per_1000 < 5.0


def test_short_soak_loop_closes_loops_under_other_settings(soak_tool: ModuleType) -> None:
    """One lap and a bit of sim:loop (loop closures, a growing map) with a queue of one and
    frames tracked from the motion model first."""
    lap = ["sim.fps=10", "backend.final_adjustment=false"]
    other = ["pipeline.queue_size=1", "tracker.match_every_frame=false"]
    report = soak_tool.soak(
        "sim:loop",
        "classic",
        frames=180,
        overrides=[*SMALL, *lap, *other],
        baseline_frames=40,
        every=20,
    )
    assert report.ok, "\n".join(report.lines())
    assert report.loops >= 1 and report.frames_lost == 0
    assert report.keyframes_after_baseline > 10  # the map grew: the rss check allowed for it
    assert "new keyframes" in next(c.detail for c in report.checks if c.name == "rss")
    assert max(s.in_flight for s in report.samples) <= 1 + 2  # pipeline.queue_size + 2


def test_the_matrix_covers_queues_motion_model_and_loops(soak_tool: ModuleType) -> None:
    scenarios = soak_tool.MATRIX
    overrides = [o for sc in scenarios for o in sc.overrides]
    assert {sc.source for sc in scenarios} == {"sim:still", "sim:loop"}
    assert {"pipeline.queue_size=1", "pipeline.queue_size=16"} <= set(overrides)
    assert "tracker.match_every_frame=false" in overrides
    assert any(sc.source == "sim:loop" and not sc.overrides for sc in scenarios)
    two = [soak_tool.Scenario("a", "sim:still"), scenarios[1]]
    results = soak_tool.soak_matrix(
        "classic", 40, SMALL, scenarios=two, baseline_frames=20, every=20
    )
    assert [sc.name for sc, _ in results] == ["a", scenarios[1].name]
    assert all(report.ok for _, report in results)
    assert results[1][1].overrides[0] == "pipeline.queue_size=1"


class _LeakySink(IgnoringSink):
    """Keeps ``bytes_per_frame`` per frame, opens a file every 50 frames, leaves a thread at
    close."""

    def __init__(self, bytes_per_frame: int) -> None:
        self.bytes_per_frame = bytes_per_frame
        self.kept: list[np.ndarray] = []
        self.files: list[Any] = []
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def on_result(self, frame: object, result: object) -> None:
        self.kept.append(np.ones(self.bytes_per_frame, np.uint8))
        if len(self.kept) % 50 == 0:
            self.files.append(open(os.devnull))  # noqa: SIM115 - the planted leak

    def close(self) -> None:
        self.thread = threading.Thread(target=self.release.wait, name="leaked", daemon=True)
        self.thread.start()


def test_soak_checks_catch_planted_leaks(soak_tool: ModuleType) -> None:
    # the rss check is relative: the 140 frames after the baseline must leak more than 10 % of
    # whatever this process already holds (much more inside a long test session)
    leak_mib_per_frame = max(0.5, 0.3 * soak_tool.rss_mb() / 140)
    leaky = _LeakySink(int(leak_mib_per_frame * 2**20))
    try:
        report = soak_tool.soak(
            "sim:still",
            "classic",
            frames=200,
            overrides=SMALL,
            baseline_frames=60,
            every=20,
            extra_sinks=lambda: [leaky],
            max_slope_mb_per_1000=5.0,
        )
    finally:
        leaky.release.set()
        if leaky.thread is not None:
            leaky.thread.join()
        for f in leaky.files:
            f.close()
        leaky.kept.clear()
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {"rss", "rss_slope", "threads", "fds"}, "\n".join(report.lines())
    assert not report.ok
    assert "leaked" in report.threads_after and "leaked" not in report.threads_before
    assert len(report.fds_after) == len(report.fds_before) + 4
    assert report.rss_slope_mb_per_1000 > 200  # 512 MiB per 1000 frames planted
    assert any(line.startswith("FAIL fds") and os.devnull in line for line in report.lines())


def test_soak_rejects_bad_sampling(soak_tool: ModuleType) -> None:
    with pytest.raises(ValueError, match="baseline_frames"):
        soak_tool.soak("sim:still", "classic", frames=100, baseline_frames=100)
    with pytest.raises(ValueError, match="every"):
        soak_tool.soak("sim:still", "classic", frames=100, baseline_frames=50, every=20)
