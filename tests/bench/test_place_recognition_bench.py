"""The place-recognition benchmark runs end to end on a small index (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slamfront.backend.vocabulary import train_vocabulary
from slamfront.bench.place_recognition import format_report, main, run


def test_benchmark_reports_every_stage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(200, 64)).astype(np.float32) for _ in range(4)]
    path = tmp_path / "voc.npz"
    train_vocabulary(sets, "bench", num_words=8).save(path)
    result = run(num_keyframes=300, top_k=5, runs=20, vocabulary=str(path), num_local=100)
    assert result.num_keyframes == 300 and result.global_dim == 8 * 64
    assert result.query.runs == 20 and result.add.runs == 300
    assert 0 < result.query.median_ms <= result.query.p90_ms
    report = format_report(result)
    assert "300 keyframes x 512" in report and "query" in report and "encode" in report
    assert main(["--keyframes", "50", "--runs", "5", "--vocabulary", str(path)]) == 0
