"""LightGlue on torch (CPU or CUDA): the reference runtime.

:class:`TorchGlueReference` runs :meth:`LightGlue.forward` (decisions in torch).
:class:`TorchGlueStages` runs the exported stage modules under the numpy host loop, the same
path ONNX Runtime and TensorRT take; tests use it to tell graph differences from loop ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from slamfront.frontend.runtime.lightglue_loop import GlueConfidence, GlueQuery, GlueResult

if TYPE_CHECKING:
    import torch

    from slamfront.frontend.models.lightglue import LightGlue


class TorchGlueReference:
    """:class:`GlueQuery` (numpy) -> :class:`GlueResult` via the torch model."""

    def __init__(self, net: LightGlue) -> None:
        self.net = net
        self.device = next(net.parameters()).device

    def __call__(self, query: GlueQuery) -> GlueResult:
        import torch

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)

        out = self.net(
            tensor(query.kpts0),
            tensor(query.desc0),
            tensor(query.kpts1),
            tensor(query.desc1),
            depth_confidence=query.depth_confidence,
            width_confidence=query.width_confidence,
            filter_threshold=query.filter_threshold,
        )
        return GlueResult(
            out.indices.cpu().numpy().astype(np.int64),
            out.scores.cpu().numpy().astype(np.float32),
            out.layers_run,
            out.points_kept,
        )


class TorchGlueStages:
    """:class:`~slamfront.frontend.runtime.lightglue_loop.GlueStages` with the torch stages."""

    def __init__(self, net: LightGlue) -> None:
        from slamfront.frontend.models import lightglue as lg  # imports torch

        n = net.arch.n_layers
        self._n_layers = n
        self._input = lg.InputStage(net).eval()
        self._layers = [lg.LayerStage(net, i).eval() for i in range(n)]
        self._confidence = [lg.ConfidenceStage(net, i).eval() for i in range(n - 1)]
        self._assign = [lg.AssignStage(net, i).eval() for i in range(n)]
        self.device = next(net.parameters()).device

    @property
    def n_layers(self) -> int:
        return self._n_layers

    def _t(self, a: np.ndarray) -> torch.Tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def encode(self, kpts: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            x, enc = self._input(self._t(kpts), self._t(desc))
        return x.cpu().numpy(), enc.cpu().numpy()

    def layer(
        self, index: int, x0: np.ndarray, x1: np.ndarray, enc0: np.ndarray, enc1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            y0, y1 = self._layers[index](self._t(x0), self._t(x1), self._t(enc0), self._t(enc1))
        return y0.cpu().numpy(), y1.cpu().numpy()

    def confidence(self, index: int, x0: np.ndarray, x1: np.ndarray) -> GlueConfidence:
        import torch

        with torch.inference_mode():
            out = self._confidence[index](self._t(x0), self._t(x1))
        t0, m0, t1, m1 = (o.cpu().numpy() for o in out)
        return GlueConfidence(t0, m0, t1, m1)

    def assign(
        self, index: int, x0: np.ndarray, x1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            match0, score0, mutual0 = self._assign[index](self._t(x0), self._t(x1))
        return match0.cpu().numpy(), score0.cpu().numpy(), mutual0.cpu().numpy()
