"""The SuperPoint-style network of the ``fast`` preset, with XFeat's published weights.

Written from the XFeat paper (Potje et al., "XFeat: Accelerated Features for Lightweight Image
Matching", CVPR 2024) and the key layout of ``xfeat.pt``:

- the grey input is normalised per image (instance norm, no affine);
- an encoder of conv(3x3 or 1x1, no bias) + BatchNorm(affine=False) + ReLU blocks reaching 1/32
  resolution, with a 1x1 skip from the 4x-average-pooled input into the 1/4 stage;
- the 1/8, 1/16 and 1/32 features are upsampled to 1/8 and fused (``block_fusion``) into
  64-d dense descriptors;
- ``heatmap_head``: a 1-channel reliability map at 1/8 (sigmoid);
- ``keypoint_head``: 65 logits per 8x8 cell computed from the normalised input itself, unfolded
  into 64 channels at 1/8 resolution; softmax over the 65, the dustbin dropped and the 64 cell
  probabilities rearranged into a full-resolution heatmap (SuperPoint's cell detector).

``fine_matcher`` (XFeat's dense mode) is not part of this network; its keys are dropped when
loading.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from slamfront.frontend.models.checkpoint import load_checked, read_checkpoint
from slamfront.frontend.models.layers import instance_norm

CELL_PX = 8
STRIDE_PX = 32
"""Input height and width must be multiples of this."""
DESCRIPTOR_DIM = 64
_LIGHTERGLUE_PREFIX = "extractor.model.net."


class _ConvBnRelu(nn.Module):
    """conv (no bias) -> BatchNorm without affine -> ReLU; keys ``layer.0`` / ``layer.1``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch, affine=False),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layer(x)
        return out


def _stack(*layers: tuple[int, int, int, int]) -> nn.Sequential:
    """Blocks from (in, out, kernel, stride) rows."""
    return nn.Sequential(*(_ConvBnRelu(i, o, k, s) for i, o, k, s in layers))


class XFeatNet(nn.Module):
    """Dense XFeat network.

    ``forward(image)``: image (B, 1, H, W) float32 grey in [0, 1], H and W multiples of 32.
    Returns ``(heatmap, reliability, descriptors)``: heatmap (B, 1, H, W) keypoint probability
    per pixel; reliability (B, 1, H/8, W/8) in [0, 1]; descriptors (B, 64, H/8, W/8),
    L2-normalised over the channel axis.
    """

    has_reliability = True
    input_channels = 1
    stride_px = STRIDE_PX
    descriptor_dim = DESCRIPTOR_DIM

    def __init__(self) -> None:
        super().__init__()
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        self.block1 = _stack((1, 4, 3, 1), (4, 8, 3, 2), (8, 8, 3, 1), (8, 24, 3, 2))
        self.block2 = _stack((24, 24, 3, 1), (24, 24, 3, 1))
        self.block3 = _stack((24, 64, 3, 2), (64, 64, 3, 1), (64, 64, 1, 1))
        self.block4 = _stack((64, 64, 3, 2), (64, 64, 3, 1), (64, 64, 3, 1))
        self.block5 = _stack((64, 128, 3, 2), (128, 128, 3, 1), (128, 128, 3, 1), (128, 64, 1, 1))
        self.block_fusion = nn.Sequential(
            _ConvBnRelu(64, 64), _ConvBnRelu(64, 64), nn.Conv2d(64, 64, 1)
        )
        self.heatmap_head = nn.Sequential(
            _ConvBnRelu(64, 64, 1), _ConvBnRelu(64, 64, 1), nn.Conv2d(64, 1, 1), nn.Sigmoid()
        )
        self.keypoint_head = nn.Sequential(
            _ConvBnRelu(64, 64, 1),
            _ConvBnRelu(64, 64, 1),
            _ConvBnRelu(64, 64, 1),
            nn.Conv2d(64, CELL_PX * CELL_PX + 1, 1),
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = instance_norm(image)

        x1 = self.block1(x)
        x2 = self.block2(x1 + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = (x3.shape[-2], x3.shape[-1])
        fused = x3
        fused = fused + F.interpolate(x4, size=size, mode="bilinear", align_corners=False)
        fused = fused + F.interpolate(x5, size=size, mode="bilinear", align_corners=False)
        features = self.block_fusion(fused)

        reliability: torch.Tensor = self.heatmap_head(features)
        logits = self.keypoint_head[1:](self._first_keypoint_layer(x))
        # Softmax over the 65 cell logits, written out: ONNX Runtime's Softmax on axis 1
        # transposes the whole map, the element-wise form does not.
        exp = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        cells = exp[:, : CELL_PX * CELL_PX] / exp.sum(dim=1, keepdim=True)
        heatmap = F.pixel_shuffle(cells, CELL_PX)
        descriptors = F.normalize(features, p=2.0, dim=1)
        return heatmap, reliability, descriptors

    def _first_keypoint_layer(self, x: torch.Tensor) -> torch.Tensor:
        """``keypoint_head[0]`` applied to the input unfolded into 8x8 cells, as one conv.

        A 1x1 conv over the 64 channels of ``pixel_unshuffle(x, 8)`` (channel i*8+j = pixel
        (i, j) of the cell) is the same sum as an 8x8 stride-8 conv over ``x`` whose kernel is
        the 1x1 weights laid out as 8x8; this avoids materialising the unfolded image.
        """
        block = self.keypoint_head[0]
        assert isinstance(block, _ConvBnRelu)
        conv, norm = block.layer[0], block.layer[1]
        assert isinstance(conv, nn.Conv2d)
        kernel = conv.weight.reshape(conv.out_channels, 1, CELL_PX, CELL_PX)
        out: torch.Tensor = F.relu(norm(F.conv2d(x, kernel, stride=CELL_PX)))
        return out


def remap_xfeat_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Published key layout -> :class:`XFeatNet` keys.

    ``xfeat.pt`` matches except for ``fine_matcher.*`` (dropped); ``xfeat-lighterglue.pt``
    carries the same network under ``extractor.model.net.``.
    """
    if any(k.startswith(_LIGHTERGLUE_PREFIX) for k in state):
        state = {
            k[len(_LIGHTERGLUE_PREFIX) :]: v
            for k, v in state.items()
            if k.startswith(_LIGHTERGLUE_PREFIX)
        }
    return {k: v for k, v in state.items() if not k.startswith("fine_matcher.")}


def load_xfeat(path: str | os.PathLike[str]) -> XFeatNet:
    """XFeatNet in eval mode with the weights of ``path`` (``xfeat.pt`` or the LighterGlue file)."""
    net = XFeatNet()
    load_checked(net, remap_xfeat_keys(read_checkpoint(path)), path)
    return net.eval()


__all__ = ["XFeatNet", "load_xfeat", "remap_xfeat_keys"]
