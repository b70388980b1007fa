"""The torch detector of an extractor config: its network with the in-graph post-processing.

Both the torch runtime and the ONNX export start from :func:`build_detector`; importing this
module imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from slamfront.frontend.models.disk import load_disk
from slamfront.frontend.models.keypoints import DetectionParams, SparseDetector
from slamfront.frontend.models.specs import extractor_weights
from slamfront.frontend.models.superpoint_v1 import load_superpoint_v1
from slamfront.frontend.models.xfeat import load_xfeat

if TYPE_CHECKING:
    from slamfront.config import ExtractorConfig


def build_detector(cfg: ExtractorConfig) -> SparseDetector:
    """The torch detector module (network + in-graph post-processing) of ``cfg``, eval mode."""
    path = extractor_weights(cfg)
    network: nn.Module
    if cfg.model == "xfeat":
        network = load_xfeat(path)
    elif cfg.model == "disk":
        network = load_disk(path)
    else:
        network = load_superpoint_v1(path)
    params = DetectionParams(
        max_keypoints=cfg.max_keypoints,
        threshold=cfg.detection_threshold,
        nms_radius_px=cfg.nms_radius_px,
        border_px=cfg.border_px,
        subpixel=cfg.subpixel,
    )
    return SparseDetector(network, params).eval()


__all__ = ["build_detector"]
