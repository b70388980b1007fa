"""The CPU production runtime: the exported detector graph on ONNX Runtime."""

from __future__ import annotations

import os

import numpy as np

from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.runtime import intra_op_threads
from slamfront.frontend.runtime.extractor_base import INPUT_NAME, DetectorOutputs


class OnnxDetector:
    """An ONNX Runtime CPU session over one exported detector graph (see ``export.py``).

    ``threads`` is the intra-op thread count (0: half of the cores, see
    ``intra_op_threads``); inter-op is 1 (the graph is a chain). All graph optimisations are on.
    """

    def __init__(self, onnx_path: str | os.PathLike[str], threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise RuntimeUnavailableError(f"onnxruntime is not importable: {exc}") from exc
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = intra_op_threads(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle workers sleep instead of spinning on the core the tracking thread needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            os.fspath(onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, network_input: np.ndarray) -> DetectorOutputs:
        return DetectorOutputs.of(self._session.run(None, {INPUT_NAME: network_input}))
