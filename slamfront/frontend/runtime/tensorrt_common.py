"""What the extractor's and the matcher's TensorRT runtimes share.

Importing this module imports neither TensorRT nor torch.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def gpu_tag(gpu_name: str) -> str:
    """The GPU's name as it appears in engine cache file names (lower case, dashes)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"


def torch_dtype(np_dtype: Any) -> Any:
    """The torch dtype of a numpy dtype a TensorRT binding can have (imports torch)."""
    import torch

    table = {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float16): torch.float16,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.bool_): torch.bool,
    }
    return table[np.dtype(np_dtype)]


__all__ = ["gpu_tag", "torch_dtype"]
