"""frontend/runtime"""

from __future__ import annotations

import os


def intra_op_threads(requested: int) -> int:
    """ONNX Runtime intra-op threads for ``requested`` (0 = half of the usable cores, at least
    one): extraction and matching run at the same time on two pipeline threads, and two
    sessions each spreading over every core fight for them (2 cores, fast preset: 15 instead
    of 9 frames/s)."""
    if requested > 0:
        return requested
    return max(1, len(os.sched_getaffinity(0)) // 2)


def limit_blas_threads() -> None:
    """One BLAS thread for this process; for process owners (the CLI, benchmark children).

    The two pipeline threads keep both cores busy on their own; numpy's OpenBLAS would start a
    worker per core whose busy-wait after every larger product takes the core the other
    pipeline thread needs (the extractor's, while the tracker multiplies matrices)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
