"""The architecture's size limits: the front end's modules stay readable, and the tracker an
orchestrator that hands its work to the stage modules."""

from __future__ import annotations

import ast
from pathlib import Path

import slamfront

FRONTEND = Path(slamfront.__file__).parent / "frontend"
MAX_MODULE_LINES = 500
MAX_TRACKER_CLASS_LINES = 250


def test_front_end_modules_stay_under_the_line_limit() -> None:
    # the network definitions in models/ may stay whole, as their published sources are
    sizes = {
        path.relative_to(FRONTEND).as_posix(): len(path.read_text().splitlines())
        for path in FRONTEND.rglob("*.py")
        if "models" not in path.relative_to(FRONTEND).parts
    }
    assert len(sizes) > 20  # the walk found the package
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not too_long


def test_the_tracker_class_is_a_short_orchestrator() -> None:
    tree = ast.parse((FRONTEND / "tracker.py").read_text())
    (tracker,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tracker"]
    assert tracker.end_lineno is not None
    assert tracker.end_lineno - tracker.lineno + 1 <= MAX_TRACKER_CLASS_LINES
