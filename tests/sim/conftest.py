"""Fixtures of tests/sim: scenes are built once per session (1-2 s each, the street 10 s)."""

from __future__ import annotations

import pytest

from slamfront.sim.scene import Scene, build_scene


@pytest.fixture(scope="session")
def room_scene() -> Scene:
    return build_scene("room", 0)


@pytest.fixture(scope="session")
def repeated_scene() -> Scene:
    return build_scene("repeated", 0)


@pytest.fixture(scope="session")
def street_scene() -> Scene:
    return build_scene("street", 0)
