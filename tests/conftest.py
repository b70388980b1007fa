"""Shared fixtures. Real data and weights come from $SLAMFRONT_SHARED (default ../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("SLAMFRONT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only ../shared folder; tests needing it skip cleanly when it is absent."""
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set SLAMFRONT_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_weights(shared: Path) -> Path:
    path = Path(os.environ.get("SLAMFRONT_WEIGHTS", shared / "weights"))
    if not (path / "xfeat" / "xfeat.pt").is_file():
        pytest.skip(f"published weights not found under {path} (set SLAMFRONT_WEIGHTS)")
    return path
