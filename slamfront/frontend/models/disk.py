"""DISK, the network of the ``accurate`` preset, loading ``disk-depth-save.pth``.

Written from the DISK paper (Tyszkiewicz et al., "DISK: Learning local features with policy
gradient", NeurIPS 2020) and the key layout of the published checkpoint (a dict
``{'extractor': state_dict}``):

- a U-Net over the RGB image with 5x5 convolutions: 5 encoder stages (16, 32, 64, 64, 64
  channels; every stage after the first starts with a 2x2 average pool) and 4 decoder stages
  (64, 64, 64, 129 channels), each upsampling its input 2x (bilinear), concatenating the
  encoder feature of that resolution and convolving;
- every convolution except the first is preceded by instance norm (no affine) and a PReLU with
  one slope per input channel (keys ``<stage>.1.1.weight``), and has a bias;
- the 129 output channels at full resolution are 128 descriptor channels and one detection
  logit (the last channel).

Input height and width must be multiples of 16 (four 2x pools).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from slamfront.errors import WeightsError
from slamfront.frontend.models.checkpoint import load_checked, read_checkpoint
from slamfront.frontend.models.layers import InstanceNorm

STRIDE_PX = 16
DESCRIPTOR_DIM = 128
KERNEL = 5
_ENCODER = (16, 32, 64, 64, 64)
_DECODER = (64, 64, 64, DESCRIPTOR_DIM + 1)


class _NormGateConv(nn.Sequential):
    """[instance norm, PReLU, (no dropout), conv 5x5]; ``plain`` keeps only the conv."""

    def __init__(self, in_ch: int, out_ch: int, plain: bool = False) -> None:
        gate: nn.Module = nn.Identity() if plain else nn.PReLU(in_ch)
        norm: nn.Module = nn.Identity() if plain else InstanceNorm()
        super().__init__(norm, gate, nn.Identity(), nn.Conv2d(in_ch, out_ch, KERNEL, padding=2))


class _Down(nn.Sequential):
    """Keys ``path_down.i.1.*``: index 0 is the (parameter-free) pooling."""

    def __init__(self, in_ch: int, out_ch: int, first: bool) -> None:
        pool: nn.Module = nn.Identity() if first else nn.AvgPool2d(2)
        super().__init__(pool, _NormGateConv(in_ch, out_ch, plain=first))


class _Up(nn.Module):
    """Keys ``path_up.i.conv.*``: upsample the deeper map 2x, concatenate the skip, convolve."""

    def __init__(self, deep_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = _NormGateConv(deep_ch + skip_ch, out_ch)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(deep, scale_factor=2.0, mode="bilinear", align_corners=False)
        out: torch.Tensor = self.conv(torch.cat([up, skip], dim=1))
        return out


class _UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        ins = (3, *_ENCODER[:-1])
        self.path_down = nn.ModuleList(
            _Down(i, o, first=n == 0) for n, (i, o) in enumerate(zip(ins, _ENCODER, strict=True))
        )
        deep = (_ENCODER[-1], *_DECODER[:-1])
        skips = tuple(reversed(_ENCODER[:-1]))
        self.path_up = nn.ModuleList(
            _Up(d, s, o) for d, s, o in zip(deep, skips, _DECODER, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for stage in self.path_down:
            x = stage(x)
            features.append(x)
        out = features[-1]
        for stage, skip in zip(self.path_up, reversed(features[:-1]), strict=True):
            out = stage(out, skip)
        return out


class DiskNet(nn.Module):
    """Dense DISK network.

    ``forward(image)``: image (B, 3, H, W) float32 RGB in [0, 1], H and W multiples of 16.
    Returns ``(heatmap, reliability, descriptors)``: heatmap (B, 1, H, W) detection logits;
    reliability is the heatmap again (DISK has none; unused); descriptors (B, 128, H, W)
    L2-normalised.
    """

    has_reliability = False
    input_channels = 3
    stride_px = STRIDE_PX
    descriptor_dim = DESCRIPTOR_DIM

    def __init__(self) -> None:
        super().__init__()
        self.unet = _UNet()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.unet(image)
        heatmap = out[:, DESCRIPTOR_DIM:]
        descriptors = F.normalize(out[:, :DESCRIPTOR_DIM], p=2.0, dim=1)
        return heatmap, heatmap, descriptors


def load_disk(path: str | os.PathLike[str]) -> DiskNet:
    """DiskNet in eval mode with the weights of ``path`` (``{'extractor': state_dict}``)."""
    loaded = read_checkpoint(path)
    state = loaded.get("extractor", loaded)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: 'extractor' is not a state dict")
    net = DiskNet()
    load_checked(net, state, path)
    return net.eval()


__all__ = ["DiskNet", "load_disk"]
