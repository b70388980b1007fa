"""Fixtures of tests/backend (the suite runs with --import-mode=importlib, so the synthetic
scene helpers come in as a fixture rather than an import)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="session")
def scenes() -> ModuleType:
    """tests/backend/synthetic_scenes.py: synthetic rooms, keyframes and a matcher."""
    path = Path(__file__).with_name("synthetic_scenes.py")
    spec = importlib.util.spec_from_file_location("slamfront_tests_backend_scenes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def training_scene(scenes: ModuleType) -> object:
    """A room (its own seed) whose keyframes train the test vocabularies."""
    return scenes.Scene.room(np.random.default_rng(100))
