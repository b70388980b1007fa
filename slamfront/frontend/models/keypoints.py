"""Dense maps -> a fixed number of keypoints, inside the network graph.

:class:`SparseDetector` wraps a dense network (XFeat, DISK, SuperPoint v1) and turns its
heatmap and dense descriptors into ``max_keypoints`` candidates: non-maximum suppression
(max-pool), threshold, border removal, top-k by score, sub-pixel refinement of each peak and
bilinear descriptor sampling. The same module is what ``slamfront export`` writes to ONNX, so
torch, ONNX Runtime and TensorRT run the same post-processing; only dropping the invalid slots
and mapping back to the caller's pixels happen on the host (``extractors.py``).

Pixel convention: integer coordinates are pixel centres of the network's input image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

SUBPIXEL_MAX_OFFSET_PX = 0.5
"""Sub-pixel offsets are clamped to this: the refined point stays in its peak pixel."""
_INVALID_SCORE = -1.0e4


@dataclass(frozen=True)
class DetectionParams:
    """Fixed at export time: they are baked into the graph.

    threshold applies to the detection heatmap (probability for XFeat/SuperPoint, logit for
    DISK); nms_radius_px r suppresses non-maxima in a (2r+1)^2 window; border_px drops peaks
    that close to the input image's edge.
    """

    max_keypoints: int
    threshold: float
    nms_radius_px: int
    border_px: int
    subpixel: bool


class DenseNetwork(Protocol):
    """What SparseDetector needs from a network (XFeatNet, DiskNet, SuperPointV1Net)."""

    has_reliability: bool
    input_channels: int
    stride_px: int
    descriptor_dim: int

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(heatmap (B,1,H,W), reliability (B,1,h,w) or unused, descriptors (B,D,h',w'))."""
        ...


class SparseDetector(nn.Module):
    """``forward(image)`` with image (1, C, H, W) float32 in [0, 1] returns fixed-size tensors.

    keypoints (K, 2) float32 (x, y) input pixels, sub-pixel when enabled; scores (K,) float32;
    descriptors (K, D) float32 L2-normalised; valid (K,) bool — slots beyond the number of
    detections are invalid. K = ``params.max_keypoints``; rows are sorted by score.
    """

    def __init__(self, network: nn.Module, params: DetectionParams) -> None:
        super().__init__()
        self.network = network
        self.params = params

    def forward(
        self, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params
        heatmap, reliability, descriptors = self.network(image)
        height, width = heatmap.shape[-2], heatmap.shape[-1]
        heat = heatmap[0, 0]

        candidate = heat > p.threshold
        if p.nms_radius_px > 0:
            window = 2 * p.nms_radius_px + 1
            local_max = F.max_pool2d(heatmap, window, stride=1, padding=p.nms_radius_px)[0, 0]
            candidate = candidate & (heat == local_max)
        if p.border_px > 0:
            ys = torch.arange(height, device=heat.device).unsqueeze(1)
            xs = torch.arange(width, device=heat.device).unsqueeze(0)
            inside_y = (ys >= p.border_px) & (ys < height - p.border_px)
            inside_x = (xs >= p.border_px) & (xs < width - p.border_px)
            candidate = candidate & inside_y & inside_x

        if bool(getattr(self.network, "has_reliability", False)):
            weight = F.interpolate(
                reliability, size=(height, width), mode="bilinear", align_corners=False
            )[0, 0]
            score = heat * weight
        else:
            score = heat
        ranked = torch.where(candidate, score, torch.full_like(score, _INVALID_SCORE))

        k = p.max_keypoints
        # Pad with k invalid slots so top-k is defined on images with fewer than k pixels.
        flat = torch.cat([ranked.reshape(-1), torch.full((k,), _INVALID_SCORE, device=heat.device)])
        flat_mask = torch.cat(
            [candidate.reshape(-1), torch.zeros(k, dtype=torch.bool, device=heat.device)]
        )
        top_scores, top_index = torch.topk(flat, k, dim=0, largest=True, sorted=True)
        valid = flat_mask[top_index]
        index = torch.clamp(top_index, max=height * width - 1)
        y = torch.div(index, width, rounding_mode="floor")
        x = index - y * width
        xy = torch.stack([x, y], dim=1).to(heat.dtype)
        if p.subpixel:
            xy = xy + _parabola_offsets(heat, x, y)
        sampled = _sample_descriptors(descriptors, xy, width, height)
        return xy, top_scores, sampled, valid


def _parabola_offsets(heat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K, 2) sub-pixel offsets from a parabola through each peak and its 4 neighbours.

    Per axis, the vertex of the parabola through (-1, a), (0, c), (1, b) lies at
    (a - b) / (2 (a - 2c + b)); it is used when the curvature is negative (a true peak), else 0,
    and clamped to +-SUBPIXEL_MAX_OFFSET_PX.
    """
    height, width = heat.shape[-2], heat.shape[-1]
    flat = heat.reshape(-1)
    # Neighbours outside the map repeat the edge (replicate padding, by clamped indices).
    row = y * width
    c = flat[row + x]
    left = flat[row + (x - 1).clamp(min=0)]
    right = flat[row + (x + 1).clamp(max=width - 1)]
    up = flat[(y - 1).clamp(min=0) * width + x]
    down = flat[(y + 1).clamp(max=height - 1) * width + x]
    offsets = []
    for a, b in ((left, right), (up, down)):
        curvature = a - 2.0 * c + b
        safe = torch.where(curvature < -1e-12, curvature, torch.full_like(curvature, -1.0))
        delta = torch.where(curvature < -1e-12, 0.5 * (a - b) / safe, torch.zeros_like(c))
        offsets.append(delta.clamp(-SUBPIXEL_MAX_OFFSET_PX, SUBPIXEL_MAX_OFFSET_PX))
    return torch.stack(offsets, dim=1)


def _sample_descriptors(
    descriptors: torch.Tensor, xy: torch.Tensor, width: int, height: int
) -> torch.Tensor:
    """Bilinear samples (K, D) of dense descriptors at input-pixel points, re-normalised.

    The dense map (1, D, h, w) covers the same extent as the (width, height) input whatever
    its resolution, so a point's position relative to the image edges locates it in the map
    (``grid_sample`` with ``align_corners=False`` and border padding). Written as four
    gathers on the flattened map: several times faster than GridSample in ONNX Runtime.
    """
    dense = descriptors[0]
    dim, rows, cols = dense.shape[0], dense.shape[1], dense.shape[2]
    table = dense.reshape(dim, rows * cols)
    u = ((xy[:, 0] + 0.5) * (cols / width) - 0.5).clamp(0.0, cols - 1.0)
    v = ((xy[:, 1] + 0.5) * (rows / height) - 0.5).clamp(0.0, rows - 1.0)
    u0 = torch.floor(u).clamp(max=cols - 2.0)
    v0 = torch.floor(v).clamp(max=rows - 2.0)
    fu, fv = u - u0, v - v0
    corner = (v0 * cols + u0).to(torch.int64)
    top = table[:, corner] * (1.0 - fu) + table[:, corner + 1] * fu
    bottom = table[:, corner + cols] * (1.0 - fu) + table[:, corner + cols + 1] * fu
    sampled = top * (1.0 - fv) + bottom * fv
    return F.normalize(sampled.transpose(0, 1), p=2.0, dim=1)


__all__ = ["SUBPIXEL_MAX_OFFSET_PX", "DenseNetwork", "DetectionParams", "SparseDetector"]
