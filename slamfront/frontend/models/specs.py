"""What the rest of the front end knows about the networks, without importing torch.

The extractor networks' host-side specs, the LightGlue shapes and exit schedule, and where
each model's weights come from. The network modules beside this one (torch) and the
runtimes above it all read these tables; nothing here depends on either.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slamfront.errors import WeightsError
from slamfront.weights import resolve_weights

if TYPE_CHECKING:
    from slamfront.config import ExtractorConfig, MatcherConfig


@dataclass(frozen=True)
class ModelSpec:
    """What the host side needs to know about an extractor network.

    grey_weights: RGB -> grey weights for single-channel networks.
    """

    name: str
    weights_name: str | None
    input_channels: int
    stride_px: int
    descriptor_dim: int
    grey_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)


MODEL_SPECS: Mapping[str, ModelSpec] = types.MappingProxyType(
    {
        # XFeat averages the colour channels before its instance norm.
        "xfeat": ModelSpec("xfeat", "xfeat/xfeat.pt", 1, 32, 64),
        "disk": ModelSpec("disk", "disk/disk-depth-save.pth", 3, 16, 128),
        # SuperPoint v1 was trained on luminance (ITU-R BT.601) grey images.
        "superpoint": ModelSpec("superpoint", None, 1, 8, 256, (0.299, 0.587, 0.114)),
    }
)


@dataclass(frozen=True)
class LightGlueArch:
    """Shape of a LightGlue network; the published weights fix it per extractor."""

    input_dim: int
    """Descriptor dimension of the extractor."""
    descriptor_dim: int
    n_layers: int
    num_heads: int

    @property
    def head_dim(self) -> int:
        return self.descriptor_dim // self.num_heads


# Published weight layouts, by extractor model (ExtractorConfig.model).
ARCHITECTURES: dict[str, LightGlueArch] = {
    "xfeat": LightGlueArch(input_dim=64, descriptor_dim=96, n_layers=6, num_heads=1),
    "disk": LightGlueArch(input_dim=128, descriptor_dim=256, n_layers=9, num_heads=4),
    "superpoint": LightGlueArch(input_dim=256, descriptor_dim=256, n_layers=9, num_heads=4),
}

# Weight file names (relative to the weights folder) of the published LightGlue weights.
WEIGHT_FILES: dict[str, str] = {
    "xfeat": "xfeat/xfeat-lighterglue.pt",
    "disk": "lightglue/disk_lightglue.pth",
}


def confidence_threshold(layer_index: int, n_layers: int) -> float:
    """LightGlue's early-exit confidence after a layer: 0.9 after the first, towards 0.8."""
    value = 0.8 + 0.1 * math.exp(-4.0 * layer_index / n_layers)
    return min(max(value, 0.0), 1.0)


def extractor_weights(cfg: ExtractorConfig) -> Path:
    """The checked weights file of the configured extractor (see ``slamfront.weights``)."""
    spec = MODEL_SPECS.get(cfg.model)
    if spec is None:
        raise WeightsError(f"extractor model {cfg.model!r} has no network weights")
    if spec.weights_name is None:
        if cfg.weights is None:
            raise WeightsError(
                f"{cfg.model} weights are never downloaded or bundled (non-commercial licence): "
                "give the checkpoint's path as extractor.weights=/path/to/superpoint_v1.pth"
            )
        return resolve_weights(cfg.model, cfg.weights)
    return resolve_weights(spec.weights_name, cfg.weights)


def lightglue_weights(cfg: MatcherConfig, extractor_model: str) -> Path:
    """The checked weights file of the LightGlue for ``extractor_model``."""
    name = WEIGHT_FILES.get(extractor_model)
    if cfg.weights is None and name is None:
        raise WeightsError(
            f"no published LightGlue weights for extractor {extractor_model!r}; set "
            "matcher.weights to a LightGlue file trained for its descriptors, or use "
            "matcher.model=mnn"
        )
    return resolve_weights(name or "explicit", cfg.weights)


__all__ = [
    "ARCHITECTURES",
    "MODEL_SPECS",
    "WEIGHT_FILES",
    "LightGlueArch",
    "ModelSpec",
    "confidence_threshold",
    "extractor_weights",
    "lightglue_weights",
]
