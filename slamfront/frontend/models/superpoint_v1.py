"""Classic SuperPoint v1 (the ``superpoint`` preset), from a checkpoint the user supplies.

Written from the paper (DeTone et al., "SuperPoint: Self-Supervised Interest Point Detection
and Description", CVPRW 2018) with the official key names: a VGG-style encoder
``conv1a..conv4b`` (3x3 convs with ReLU, 2x2 max-pool after each pair but the last: 1/8
resolution, 128 channels), a detector head ``convPa`` (3x3, 256) + ``convPb`` (1x1, 65 = 64
cells + dustbin) and a descriptor head ``convDa`` (3x3, 256) + ``convDb`` (1x1, 256).

The weights are never downloaded or bundled (Magic Leap's licence is non-commercial): give
their path as ``extractor.weights``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from slamfront.frontend.models.checkpoint import load_checked, read_checkpoint

CELL_PX = 8
STRIDE_PX = 8
DESCRIPTOR_DIM = 256
_ENCODER = (
    ("conv1a", 1, 64),
    ("conv1b", 64, 64),
    ("conv2a", 64, 64),
    ("conv2b", 64, 64),
    ("conv3a", 64, 128),
    ("conv3b", 128, 128),
    ("conv4a", 128, 128),
    ("conv4b", 128, 128),
)


class SuperPointV1Net(nn.Module):
    """Dense SuperPoint v1.

    ``forward(image)``: image (B, 1, H, W) float32 grey in [0, 1], H and W multiples of 8.
    Returns ``(heatmap, reliability, descriptors)``: heatmap (B, 1, H, W) keypoint probability;
    reliability is the heatmap again (unused); descriptors (B, 256, H/8, W/8) L2-normalised.
    """

    has_reliability = False
    input_channels = 1
    stride_px = STRIDE_PX
    descriptor_dim = DESCRIPTOR_DIM

    def __init__(self) -> None:
        super().__init__()
        for name, in_ch, out_ch in _ENCODER:
            self.add_module(name, nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.convPa = nn.Conv2d(128, 256, 3, padding=1)
        self.convPb = nn.Conv2d(256, CELL_PX * CELL_PX + 1, 1)
        self.convDa = nn.Conv2d(128, 256, 3, padding=1)
        self.convDb = nn.Conv2d(256, DESCRIPTOR_DIM, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image
        for index, (name, _, _) in enumerate(_ENCODER):
            x = F.relu(getattr(self, name)(x))
            if index in (1, 3, 5):
                x = F.max_pool2d(x, 2)
        logits = self.convPb(F.relu(self.convPa(x)))
        exp = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        cells = exp[:, : CELL_PX * CELL_PX] / exp.sum(dim=1, keepdim=True)
        heatmap = F.pixel_shuffle(cells, CELL_PX)
        descriptors = F.normalize(self.convDb(F.relu(self.convDa(x))), p=2.0, dim=1)
        return heatmap, heatmap, descriptors


def remap_superpoint_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept checkpoints saved from a wrapper (``module.`` / ``net.`` prefixes) too."""
    for prefix in ("module.", "net."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_superpoint_v1(path: str | os.PathLike[str]) -> SuperPointV1Net:
    """SuperPointV1Net in eval mode with the official-key-name weights of ``path``."""
    loaded = read_checkpoint(path)
    state = loaded["state_dict"] if isinstance(loaded.get("state_dict"), dict) else loaded
    net = SuperPointV1Net()
    load_checked(net, remap_superpoint_keys(dict(state)), path)
    return net.eval()


__all__ = ["SuperPointV1Net", "load_superpoint_v1", "remap_superpoint_keys"]
