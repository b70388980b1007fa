"""Fixtures of tests/sinks (the suite runs with --import-mode=importlib, so helpers come in as
fixtures rather than imports)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load(name: str) -> ModuleType:
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"slamfront_tests_sinks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rrd() -> ModuleType:
    """tests/sinks/rrd_tools.py: read .rrd files back with Rerun's own tools."""
    pytest.importorskip("rerun")
    return _load("rrd_tools")


@pytest.fixture(scope="session")
def cdp() -> ModuleType:
    """tests/sinks/cdp.py: headless Chromium driven over the DevTools pipe."""
    return _load("cdp")
