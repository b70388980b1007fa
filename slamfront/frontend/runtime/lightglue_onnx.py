"""LightGlue stages on ONNX Runtime (CPU); the host loop in ``lightglue_loop`` drives them.

:class:`OrtGlueStages` runs the plain graphs at the exact point counts (the CPU production
path). :class:`OrtGraphRunner` runs the masked graphs on bucket-padded inputs through
:class:`~slamfront.frontend.runtime.lightglue_loop.PaddedStages`, exactly as the TensorRT
runtime feeds its engines: that is how what TensorRT consumes is verified without a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.runtime import intra_op_threads
from slamfront.frontend.runtime.lightglue_loop import GlueConfidence

if TYPE_CHECKING:
    from slamfront.frontend.runtime.lightglue_export import GlueGraphs


def _session(path: Any, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise RuntimeUnavailableError("onnxruntime is not installed") from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads(threads)
    options.inter_op_num_threads = 1
    # The stages run back to back from one thread; idle pools spinning after their run would
    # steal the cores of the session that runs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Sessions:
    def __init__(self, graphs: GlueGraphs, threads: int) -> None:
        n = graphs.n_layers
        self.graphs = graphs
        # Per-point graphs are tiny: one thread, no pool wake-ups.
        self.input = _session(graphs.path("input"), 1)
        self.layers = [_session(graphs.path("layer", i), threads) for i in range(n)]
        self.confidence = [_session(graphs.path("confidence", i), 1) for i in range(n - 1)]
        self.assign = [_session(graphs.path("assign", i), threads) for i in range(n)]

    def get(self, kind: str, index: int | None) -> Any:
        if kind == "input":
            return self.input
        table = {"layer": self.layers, "confidence": self.confidence, "assign": self.assign}
        return table[kind][index or 0]


class OrtGlueStages:
    """:class:`~slamfront.frontend.runtime.lightglue_loop.GlueStages` on ONNX Runtime.

    ``threads``: intra-op threads of the layer and assignment graphs (0 = half of the
    cores, see ``intra_op_threads``).
    """

    def __init__(self, graphs: GlueGraphs, threads: int = 0) -> None:
        if graphs.masked:
            raise ValueError("OrtGlueStages runs the plain graphs; use OrtGraphRunner for masked")
        self._s = _Sessions(graphs, threads)

    @property
    def n_layers(self) -> int:
        return self._s.graphs.n_layers

    def encode(self, kpts: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, enc = self._s.input.run(None, {"kpts": kpts, "desc": desc})
        return x, enc

    def layer(
        self, index: int, x0: np.ndarray, x1: np.ndarray, enc0: np.ndarray, enc1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        y0, y1 = self._s.layers[index].run(None, {"x0": x0, "x1": x1, "enc0": enc0, "enc1": enc1})
        return y0, y1

    def confidence(self, index: int, x0: np.ndarray, x1: np.ndarray) -> GlueConfidence:
        t0, m0, t1, m1 = self._s.confidence[index].run(None, {"x0": x0, "x1": x1})
        return GlueConfidence(t0, m0, t1, m1)

    def assign(
        self, index: int, x0: np.ndarray, x1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        match0, score0, mutual0 = self._s.assign[index].run(None, {"x0": x0, "x1": x1})
        return match0, score0, mutual0


class OrtGraphRunner:
    """:class:`~slamfront.frontend.runtime.lightglue_loop.GraphRunner` on the masked graphs."""

    def __init__(self, graphs: GlueGraphs, threads: int = 0) -> None:
        if not graphs.masked:
            raise ValueError("OrtGraphRunner runs the masked graphs")
        self._s = _Sessions(graphs, threads)

    @property
    def n_layers(self) -> int:
        return self._s.graphs.n_layers

    def run(
        self, kind: str, index: int | None, feed: dict[str, np.ndarray], points: int
    ) -> list[np.ndarray]:
        return list(self._s.get(kind, index).run(None, feed))
