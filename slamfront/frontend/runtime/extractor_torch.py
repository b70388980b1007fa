"""The reference extractor runtime: the detector module in PyTorch (CPU or CUDA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.runtime.extractor_base import DetectorOutputs

if TYPE_CHECKING:
    from torch import nn


class TorchDetector:
    """Runs a :class:`~slamfront.frontend.models.keypoints.SparseDetector` under inference mode.

    Thread settings are left to the caller's process (the library sets no global torch flags).
    """

    def __init__(self, detector: nn.Module, device: str = "cpu") -> None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailableError(
                "extractor.device is 'cuda' but torch sees no CUDA device"
            )
        self._device = torch.device(device)
        self._detector = detector.to(self._device).eval()

    def __call__(self, network_input: np.ndarray) -> DetectorOutputs:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(network_input).to(self._device)
            outputs = self._detector(tensor)
            return DetectorOutputs.of([t.cpu().numpy() for t in outputs])
