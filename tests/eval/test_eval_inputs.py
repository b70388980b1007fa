"""eval's numeric options: NaN, infinite or negative values are InputErrors, not tracebacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slamfront.errors import InputError
from slamfront.eval.trajectory_metrics import evaluate_files


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"rpe_delta": float("inf")}, "rpe_delta must be positive and finite"),
        ({"rpe_delta": float("nan")}, "rpe_delta must be positive and finite"),
        ({"max_time_diff_s": float("nan")}, "max_time_diff_s must be >= 0"),
        ({"max_time_diff_s": -1.0}, "max_time_diff_s must be >= 0"),
        ({"time_offset_s": 1e30}, "time_offset_s must be finite"),
        ({"time_offset_s": float("nan")}, "time_offset_s must be finite"),
    ],
)
def test_bad_numeric_options_are_input_errors(
    tmp_path: Path, options: dict[str, Any], needle: str
) -> None:
    path = tmp_path / "a.tum"
    points = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 1), (2, 0, 1)]
    path.write_text(
        "".join(f"{i + 1}.0 {x} {y} {z} 0 0 0 1\n" for i, (x, y, z) in enumerate(points))
    )
    assert evaluate_files(reference=path, estimate=path).ate_m.rmse == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match=needle):
        evaluate_files(reference=path, estimate=path, **options)
