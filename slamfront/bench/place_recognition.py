"""Benchmark of place recognition: top-k queries on an index of N keyframes, VLAD encoding.

Run ``python -m slamfront.bench.place_recognition [--keyframes 10000] [--runs 300]``; it
prints medians and p90 with the machine description. The library part (:func:`run`,
:func:`format_report`) returns records and text; only ``main`` prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from slamfront.backend.place_recognition import PlaceIndex, vlad
from slamfront.backend.vocabulary import load_vocabulary
from slamfront.bench.common import TimingStats, machine_info, time_calls


@dataclass(frozen=True)
class PlaceRecognitionBench:
    """Timings: ``query`` is one top-k query against ``num_keyframes`` stored descriptors of
    ``global_dim`` values; ``add`` one insertion; ``encode`` one VLAD vector from
    ``num_local`` local descriptors with ``vocabulary``."""

    num_keyframes: int
    global_dim: int
    top_k: int
    num_local: int
    vocabulary: str
    query: TimingStats
    add: TimingStats
    encode: TimingStats
    machine: dict[str, object]
    load_average: tuple[float, float, float]
    """1/5/15-minute load average at the end of the run (a busy machine inflates timings)."""


def run(
    *,
    num_keyframes: int = 10_000,
    top_k: int = 5,
    runs: int = 300,
    vocabulary: str = "xfeat",
    num_local: int = 1024,
    seed: int = 0,
) -> PlaceRecognitionBench:
    """Fill an index with ``num_keyframes`` unit vectors of the vocabulary's size, then time."""
    voc = load_vocabulary(vocabulary)
    rng = np.random.default_rng(seed)
    dim = voc.global_dim
    index = PlaceIndex(dim)
    vectors = rng.normal(size=(num_keyframes, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    add_samples = []
    import time

    for i, v in enumerate(vectors):
        start = time.perf_counter()
        index.add(i, v)
        add_samples.append((time.perf_counter() - start) * 1e3)
    queries = vectors[rng.integers(0, num_keyframes, runs + 10)] + 0.1 * rng.normal(
        size=(runs + 10, dim)
    ).astype(np.float32)
    position = iter(range(runs + 10))
    gap_excluded = num_keyframes - 15

    def one_query() -> None:
        index.query(queries[next(position)], top_k=top_k, max_keyframe_id=gap_excluded)

    query_stats = time_calls(one_query, runs=runs, warmup=10)
    if voc.binary:
        local = rng.integers(0, 256, (num_local, voc.input_dim), dtype=np.uint8)
    else:
        local = rng.normal(size=(num_local, voc.input_dim)).astype(np.float32)
    encode_stats = time_calls(lambda: vlad(voc, local), runs=max(20, runs // 5), warmup=3)
    return PlaceRecognitionBench(
        num_keyframes=num_keyframes,
        global_dim=dim,
        top_k=top_k,
        num_local=num_local,
        vocabulary=voc.vocabulary_id,
        query=query_stats,
        add=TimingStats.of(add_samples),
        encode=encode_stats,
        machine=machine_info(),
        load_average=_load_average(),
    )


def _load_average() -> tuple[float, float, float]:
    import os

    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover - platforms without it
        return (float("nan"), float("nan"), float("nan"))
    return (one, five, fifteen)


def format_report(result: PlaceRecognitionBench) -> str:
    lines = [
        f"place recognition: {result.num_keyframes} keyframes x {result.global_dim} float32, "
        f"top-{result.top_k}, vocabulary {result.vocabulary}",
    ]
    for name, stats in (
        ("query", result.query),
        ("add", result.add),
        (f"encode ({result.num_local} local)", result.encode),
    ):
        lines.append(
            f"  {name:<22} median {stats.median_ms:8.3f} ms   p90 {stats.p90_ms:8.3f} ms   "
            f"({stats.runs} runs)"
        )
    machine = result.machine
    lines.append(
        f"  machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"python {machine.get('python')}, commit {machine.get('git_commit')}, "
        f"load average {result.load_average[0]:.1f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keyframes", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--vocabulary", default="xfeat", help="packaged name or .npz file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(
        num_keyframes=args.keyframes, top_k=args.top_k, runs=args.runs, vocabulary=args.vocabulary
    )
    print(json.dumps(asdict(result), indent=1) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
