"""`slamfront export`: what it writes per preset, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from slamfront.cli import main


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", "classic", "--out", str(tmp_path)]) == 0
    assert "nothing to export" in capsys.readouterr().out
    # SuperPoint weights are never downloaded: without extractor.weights it is an error.
    assert main(["export", "--config", "superpoint", "--out", str(tmp_path)]) == 2
    assert "extractor.weights" in capsys.readouterr().err
