"""`slamfront eval-matching hpatches:PATH`: the command-line face of evaluate_hpatches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slamfront.cli import main


def test_eval_matching_prints_per_pair_and_overall(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = shared / "data" / "hpatches" / "v_churchill"
    out = tmp_path / "report.json"
    code = main(
        ["eval-matching", f"hpatches:{sequence}", "--config", "classic", "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "MMA@1/3/5px" in printed and "H ok@1/3/5px" in printed
    rows = [line for line in printed.splitlines() if line.startswith("v_churchill")]
    assert [row.split()[1] for row in rows] == ["1-2", "1-3", "1-4", "1-5", "1-6"]
    assert any(line.startswith("overall") for line in printed.splitlines())
    data = json.loads(out.read_text())
    assert len(data["pairs"]) == 5 and len(data["mma"]) == 3


def test_eval_matching_rejects_other_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-matching", "kitti:/nowhere", "--config", "classic"]) == 2
    assert "hpatches:PATH" in capsys.readouterr().err
