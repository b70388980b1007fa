"""Process owners give numpy's BLAS and OpenCV one thread each (the pipeline's own threads
keep the cores busy); checked in a child process, since the limits are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json
import cv2
from threadpoolctl import threadpool_info
from slamfront.frontend.runtime import limit_library_threads
cv2.setNumThreads(2)
limit_library_threads()
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps([cv2.getNumThreads(), blas]))
"""


def test_library_threads_are_limited_to_one() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    opencv_threads, blas_threads = json.loads(out)
    assert opencv_threads == 1
    assert blas_threads and set(blas_threads) == {1}
