"""frontend/runtime"""

from __future__ import annotations

import os


def intra_op_threads(requested: int) -> int:
    """ONNX Runtime intra-op threads for ``requested`` (0 = half of the usable cores, at least
    one): extraction and matching run at the same time on two pipeline threads, and two
    sessions each spreading over every core fight for them."""
    if requested > 0:
        return requested
    return max(1, len(os.sched_getaffinity(0)) // 2)


def limit_library_threads() -> None:
    """One BLAS thread and one OpenCV thread for this process; for process owners (the CLI,
    benchmark children).

    The pipeline's threads keep the cores busy on their own; numpy's OpenBLAS and OpenCV's
    pool would each start a worker per core, whose busy-wait after every larger product,
    remap or optical flow takes the core another pipeline thread needs (the extractor's,
    while the tracker aligns and refines)."""
    import cv2
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    cv2.setNumThreads(1)
