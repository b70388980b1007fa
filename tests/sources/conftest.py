"""Fixtures of tests/sources (the suite runs with --import-mode=importlib, so helpers come in as
fixtures rather than imports)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def recorded() -> ModuleType:
    """tests/sources/recorded_fixtures.py: writers of tiny TUM/EuRoC/KITTI/video sequences."""
    path = Path(__file__).with_name("recorded_fixtures.py")
    spec = importlib.util.spec_from_file_location("slamfront_tests_recorded_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
