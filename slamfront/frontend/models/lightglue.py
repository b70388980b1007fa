"""LightGlue-style matcher network (Lindenberger, Sarlin, Pollefeys: "LightGlue: Local Feature
Matching at Light Speed", ICCV 2023), written from the paper and the published weight layouts.

Two descriptor sets go through an input projection, then ``n_layers`` of (self-attention with
rotary encodings of the normalised keypoint positions, cross-attention between the images).
After each layer but the last, a confidence head per point decides early exit (adaptive
depth) and, with the matchability head, which points are confidently unmatchable and can be
dropped from later layers (adaptive width). The assignment head turns the final descriptors
into a log double-softmax assignment weighted by matchability; matches are its mutual
row/column maxima above a score threshold.

Tensors here carry no batch dimension: descriptors are ``(N, D)``, attention works on
``(H, N, D/H)``. One pair at a time is what a tracker needs, and it keeps the exported graphs
(``slamfront.frontend.runtime.lightglue_export``) simple. Keypoints come in normalised:
centred on the image and divided by half its longer side
(``slamfront.frontend.matchers.normalized_keypoints``). The modules work on CPU or CUDA.

The stage modules at the end (:class:`InputStage`, :class:`LayerStage`,
:class:`ConfidenceStage`, :class:`AssignStage`) are the pieces exported as separate ONNX graphs;
:meth:`LightGlue.forward` chains the same pieces with the exit and pruning decisions in torch
and is the reference every other runtime is tested against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from slamfront.errors import WeightsError
from slamfront.frontend.models.specs import ARCHITECTURES, LightGlueArch, confidence_threshold

# ----------------------------------------------------------------------------- layers


def _ffn(dim: int) -> nn.Sequential:
    """The message-update MLP: [x | message] (2D) -> D. Indices 0/1/3 match the weight files."""
    return nn.Sequential(
        nn.Linear(2 * dim, 2 * dim),
        nn.LayerNorm(2 * dim, elementwise_affine=True),
        nn.GELU(),
        nn.Linear(2 * dim, dim),
    )


class RotaryPositions(nn.Module):
    """Learned Fourier features of 2-D positions used as rotary encodings.

    ``forward`` returns (2, N, head_dim): cosines and sines of the projected positions, each
    frequency repeated for the two members of the rotated pair.
    """

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.Wr = nn.Linear(2, head_dim // 2, bias=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        angles = self.Wr(positions)
        encoding = torch.stack([torch.cos(angles), torch.sin(angles)], 0)
        return encoding.repeat_interleave(2, dim=-1)


def rotate_pairs(t: torch.Tensor) -> torch.Tensor:
    """(..., 2k) -> each consecutive pair (a, b) becomes (-b, a)."""
    pairs = t.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(t: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
    """Rotate query/key features (H, N, d) by the per-point angles in ``encoding`` (2, N, d)."""
    return t * encoding[0] + rotate_pairs(t) * encoding[1]


class SelfBlock(nn.Module):
    """Multi-head self-attention with rotary positions, then the residual MLP update."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.Wqkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = _ffn(dim)

    def forward(self, x: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        # The weight files interleave q, k, v per feature: output row = (head, feature, qkv).
        qkv = self.Wqkv(x).unflatten(-1, (self.num_heads, -1, 3)).transpose(0, 1)
        q = apply_rotary(qkv[..., 0], encoding)
        k = apply_rotary(qkv[..., 1], encoding)
        v = qkv[..., 2]
        attention = torch.softmax(torch.matmul(q * self.scale, k.transpose(-1, -2)), -1)
        context = torch.matmul(attention, v)
        message = self.out_proj(context.transpose(0, 1).flatten(-2))
        return x + self.ffn(torch.cat([x, message], -1))


class CrossBlock(nn.Module):
    """Bidirectional cross-attention: one similarity matrix, softmax along each side."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.to_qk = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.ffn = _ffn(dim)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, -1)).transpose(0, 1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qk0 = self._heads(self.to_qk(x0))
        qk1 = self._heads(self.to_qk(x1))
        v0 = self._heads(self.to_v(x0))
        v1 = self._heads(self.to_v(x1))
        sim = torch.matmul(qk0 * self.scale, qk1.transpose(-1, -2))  # (H, N0, N1)
        m0 = torch.matmul(torch.softmax(sim, -1), v1)
        m1 = torch.matmul(torch.softmax(sim, -2).transpose(-1, -2), v0)
        m0 = self.to_out(m0.transpose(0, 1).flatten(-2))
        m1 = self.to_out(m1.transpose(0, 1).flatten(-2))
        x0 = x0 + self.ffn(torch.cat([x0, m0], -1))
        x1 = x1 + self.ffn(torch.cat([x1, m1], -1))
        return x0, x1


class GlueLayer(nn.Module):
    """One LightGlue layer: self-attention in each image, then cross-attention."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = SelfBlock(dim, num_heads)
        self.cross_attn = CrossBlock(dim, num_heads)

    def forward(
        self, x0: torch.Tensor, x1: torch.Tensor, enc0: torch.Tensor, enc1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cross_attn(self.self_attn(x0, enc0), self.self_attn(x1, enc1))


class Assignment(nn.Module):
    """Similarity and matchability heads and the log double-softmax assignment."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.matchability = nn.Linear(dim, 1)
        self.final_proj = nn.Linear(dim, dim)

    def matchable(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) probability that each point has a match."""
        return torch.sigmoid(self.matchability(x)).squeeze(-1)

    def log_scores(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """(N0, N1) log assignment (without the dustbin row/column, which matching ignores)."""
        scale = x0.shape[-1] ** -0.25
        sim = torch.matmul(self.final_proj(x0) * scale, (self.final_proj(x1) * scale).T)
        z0 = F.logsigmoid(self.matchability(x0))  # (N0, 1)
        z1 = F.logsigmoid(self.matchability(x1)).T  # (1, N1)
        return torch.log_softmax(sim, 1) + torch.log_softmax(sim, 0) + z0 + z1


class TokenConfidence(nn.Module):
    """Per-point confidence that its prediction will not change in later layers."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.token(x).squeeze(-1)


def mutual_matches(
    log_scores: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row maxima of a (N0, N1) log assignment with the mutual check.

    Returns ``match0`` (N0,) int64 column of each row's maximum, ``score0`` (N0,) its
    probability (0 where the pair is not mutual) and ``mutual0`` (N0,) bool.
    """
    best0 = log_scores.max(1)
    best1 = log_scores.argmax(0)
    rows = torch.arange(log_scores.shape[0], device=log_scores.device)
    mutual0 = best1[best0.indices] == rows
    score0 = torch.where(mutual0, best0.values.exp(), torch.zeros_like(best0.values))
    return best0.indices, score0, mutual0


# ----------------------------------------------------------------------------- network


@dataclass(frozen=True, eq=False)
class GlueOutput:
    """Result of one matching call, in torch.

    indices: (M, 2) int64 into the original keypoints of both images; scores: (M,) float32;
    layers_run: layers evaluated; points_kept: points of both images entering each layer.
    """

    indices: torch.Tensor
    scores: torch.Tensor
    layers_run: int
    points_kept: tuple[int, ...]


class LightGlue(nn.Module):
    """The network. Parameter names follow the published XFeat LighterGlue layout."""

    def __init__(self, arch: LightGlueArch) -> None:
        super().__init__()
        if arch.descriptor_dim % arch.num_heads or arch.head_dim % 2:
            raise ValueError(f"bad LightGlue architecture {arch}")
        self.arch = arch
        d, h = arch.descriptor_dim, arch.num_heads
        self.input_proj: nn.Module = (
            nn.Linear(arch.input_dim, d) if arch.input_dim != d else nn.Identity()
        )
        self.posenc = RotaryPositions(arch.head_dim)
        self.transformers = nn.ModuleList([GlueLayer(d, h) for _ in range(arch.n_layers)])
        self.log_assignment = nn.ModuleList([Assignment(d) for _ in range(arch.n_layers)])
        self.token_confidence = nn.ModuleList(
            [TokenConfidence(d) for _ in range(arch.n_layers - 1)]
        )

    def layer(self, index: int) -> GlueLayer:
        return cast(GlueLayer, self.transformers[index])

    def assignment(self, index: int) -> Assignment:
        return cast(Assignment, self.log_assignment[index])

    def confidence(self, index: int) -> TokenConfidence:
        return cast(TokenConfidence, self.token_confidence[index])

    def thresholds(self) -> list[float]:
        return [confidence_threshold(i, self.arch.n_layers) for i in range(self.arch.n_layers)]

    @torch.inference_mode()
    def forward(
        self,
        kpts0: torch.Tensor,
        desc0: torch.Tensor,
        kpts1: torch.Tensor,
        desc1: torch.Tensor,
        depth_confidence: float = 0.95,
        width_confidence: float = 0.99,
        filter_threshold: float = 0.1,
    ) -> GlueOutput:
        """Match normalised keypoints (N, 2) with descriptors (N, input_dim); see module doc.

        ``depth_confidence`` / ``width_confidence`` <= 0 switch early exit / pruning off.
        """
        n_total = kpts0.shape[0] + kpts1.shape[0]
        device = kpts0.device
        x0, enc0 = self.input_proj(desc0), self.posenc(kpts0)
        x1, enc1 = self.input_proj(desc1), self.posenc(kpts1)
        ind0 = torch.arange(kpts0.shape[0], device=device)
        ind1 = torch.arange(kpts1.shape[0], device=device)
        thresholds = self.thresholds()
        kept: list[int] = []
        last = self.arch.n_layers - 1
        layer = 0
        for layer in range(self.arch.n_layers):
            kept.append(int(ind0.shape[0] + ind1.shape[0]))
            x0, x1 = self.layer(layer)(x0, x1, enc0, enc1)
            if layer == last:
                break
            token0 = token1 = None
            if depth_confidence > 0:
                token0 = self.confidence(layer)(x0)
                token1 = self.confidence(layer)(x1)
                unsure = (token0 < thresholds[layer]).sum() + (token1 < thresholds[layer]).sum()
                if 1.0 - float(unsure) / n_total > depth_confidence:
                    break
            if width_confidence > 0:
                head = self.assignment(layer)
                keep0 = _keep_mask(head.matchable(x0), token0, width_confidence, thresholds[layer])
                keep1 = _keep_mask(head.matchable(x1), token1, width_confidence, thresholds[layer])
                x0, enc0, ind0 = x0[keep0], enc0[:, keep0], ind0[keep0]
                x1, enc1, ind1 = x1[keep1], enc1[:, keep1], ind1[keep1]
                if x0.shape[0] == 0 or x1.shape[0] == 0:
                    break
        if x0.shape[0] == 0 or x1.shape[0] == 0:
            empty = torch.zeros((0, 2), dtype=torch.int64, device=device)
            return GlueOutput(empty, torch.zeros(0, device=device), layer + 1, tuple(kept))
        match0, score0, mutual0 = mutual_matches(self.assignment(layer).log_scores(x0, x1))
        valid = mutual0 & (score0 > filter_threshold)
        indices = torch.stack([ind0[valid], ind1[match0[valid]]], -1)
        return GlueOutput(indices, score0[valid].float(), layer + 1, tuple(kept))


def _keep_mask(
    matchable: torch.Tensor,
    token: torch.Tensor | None,
    width_confidence: float,
    threshold: float,
) -> torch.Tensor:
    """Points to keep: possibly matchable, or not yet confident about themselves."""
    keep = matchable > (1.0 - width_confidence)
    if token is not None:
        keep |= token <= threshold
    return keep


# ----------------------------------------------------------------------------- stages
#
# The deployed form of the network, cut where the host takes its exit / pruning decisions.
# Same arithmetic as the modules above, with weights rearranged once so that the exported
# graphs are plain Gemm / MatMul / Softmax chains: q, k, v come out of one projection in
# contiguous blocks, and the rotary "rotate pairs" is folded into two extra projections
# (rotating the output of a linear map = the same map with permuted, negated rows).
# ``masked`` stages take per-point additive key biases (0 for real points, ``PAD_BIAS`` for
# padding, see ``lightglue_loop.PAD_BIAS``) so that fixed-size engines can run on padded
# inputs (TensorRT buckets).


def _copy_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _rotated_rows(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a linear map whose output is ``rotate_pairs`` of the original output."""
    w = weight.unflatten(0, (-1, 2))
    b = bias.unflatten(0, (-1, 2))
    return (
        torch.stack((-w[:, 1], w[:, 0]), 1).flatten(0, 1),
        torch.stack((-b[:, 1], b[:, 0]), 1).flatten(0, 1),
    )


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T [+ bias over keys]) v for (H, N, d) tensors; q is already scaled."""
    logits = torch.matmul(q, k.transpose(-1, -2))
    if key_bias is not None:
        logits = logits + key_bias
    return torch.matmul(torch.softmax(logits, -1), v)


class DeploySelfBlock(nn.Module):
    def __init__(self, block: SelfBlock) -> None:
        super().__init__()
        self.num_heads = block.num_heads
        self.scale = block.scale
        dim = block.out_proj.weight.shape[0]
        # Output row (head, feature, c) of the file's Wqkv -> blocks q | k | v, head-major.
        w = block.Wqkv.weight.detach().unflatten(0, (self.num_heads, -1, 3))
        b = block.Wqkv.bias.detach().unflatten(0, (self.num_heads, -1, 3))
        wq, wk, wv = (w[:, :, c].flatten(0, 1) for c in range(3))
        bq, bk, bv = (b[..., c].flatten(0, 1) for c in range(3))
        wqr, bqr = _rotated_rows(wq, bq)
        wkr, bkr = _rotated_rows(wk, bk)
        self.dim = dim
        self.project = _copy_linear(
            torch.cat([wq, wk, wv, wqr, wkr]), torch.cat([bq, bk, bv, bqr, bkr])
        )
        self.out_proj = block.out_proj
        self.ffn = block.ffn

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, -1)).transpose(0, 1)

    def forward(
        self, x: torch.Tensor, encoding: torch.Tensor, key_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        q, k, v, qr, kr = self.project(x).split(self.dim, -1)
        q = (q * encoding[0] + qr * encoding[1]) * self.scale
        k = k * encoding[0] + kr * encoding[1]
        context = _attend(self._heads(q), self._heads(k), self._heads(v), key_bias)
        message = self.out_proj(context.transpose(0, 1).flatten(-2))
        return x + self.ffn(torch.cat([x, message], -1))


class DeployCrossBlock(nn.Module):
    def __init__(self, block: CrossBlock) -> None:
        super().__init__()
        self.num_heads = block.num_heads
        self.scale = block.scale
        self.dim = block.to_out.weight.shape[0]
        self.project = _copy_linear(
            torch.cat([block.to_qk.weight.detach(), block.to_v.weight.detach()]),
            torch.cat([block.to_qk.bias.detach(), block.to_v.bias.detach()]),
        )
        self.to_out = block.to_out
        self.ffn = block.ffn

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, -1)).transpose(0, 1)

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        bias0: torch.Tensor | None = None,
        bias1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        qk0, v0 = self.project(x0).split(self.dim, -1)
        qk1, v1 = self.project(x1).split(self.dim, -1)
        sim = torch.matmul(self._heads(qk0 * self.scale), self._heads(qk1).transpose(-1, -2))
        sim_t = sim.transpose(-1, -2)
        if bias0 is not None and bias1 is not None:
            sim, sim_t = sim + bias1, sim_t + bias0
        m0 = torch.matmul(torch.softmax(sim, -1), self._heads(v1))
        m1 = torch.matmul(torch.softmax(sim_t, -1), self._heads(v0))
        m0 = self.to_out(m0.transpose(0, 1).flatten(-2))
        m1 = self.to_out(m1.transpose(0, 1).flatten(-2))
        return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))


class InputStage(nn.Module):
    """(N, 2) normalised keypoints, (N, input_dim) descriptors -> x (N, D), enc (2, N, D).

    ``enc`` holds the rotary cosines and sines tiled over the heads.
    """

    def __init__(self, net: LightGlue) -> None:
        super().__init__()
        self.input_proj = net.input_proj
        self.posenc = net.posenc
        self.num_heads = net.arch.num_heads

    def forward(self, kpts: torch.Tensor, desc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoding = self.posenc(kpts)
        if self.num_heads > 1:
            encoding = encoding.repeat(1, 1, self.num_heads)
        return self.input_proj(desc), encoding


class LayerStage(nn.Module):
    """Layer ``i``: (x0, x1, enc0, enc1[, bias0, bias1]) -> (x0, x1)."""

    def __init__(self, net: LightGlue, index: int, masked: bool = False) -> None:
        super().__init__()
        layer = net.layer(index)
        self.self_attn = DeploySelfBlock(layer.self_attn)
        self.cross_attn = DeployCrossBlock(layer.cross_attn)
        self.masked = masked

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        enc0: torch.Tensor,
        enc1: torch.Tensor,
        bias0: torch.Tensor | None = None,
        bias1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self.self_attn(x0, enc0, bias0)
        x1 = self.self_attn(x1, enc1, bias1)
        return self.cross_attn(x0, x1, bias0, bias1)


class ConfidenceStage(nn.Module):
    """After layer ``i``: (x0, x1) -> token confidence and matchability of each point."""

    def __init__(self, net: LightGlue, index: int) -> None:
        super().__init__()
        token = cast(nn.Linear, net.confidence(index).token[0])
        head = net.assignment(index).matchability
        self.heads = _copy_linear(
            torch.cat([token.weight.detach(), head.weight.detach()]),
            torch.cat([token.bias.detach(), head.bias.detach()]),
        )

    def forward(
        self, x0: torch.Tensor, x1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        p0 = torch.sigmoid(self.heads(x0))
        p1 = torch.sigmoid(self.heads(x1))
        return p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]


class AssignStage(nn.Module):
    """Assignment after layer ``i``: (x0, x1[, bias0, bias1]) -> match0, score0, mutual0.

    See :func:`mutual_matches`. With biases, padded rows/columns take no part in the
    softmaxes and never win a maximum (their rows' outputs are to be ignored).
    """

    def __init__(self, net: LightGlue, index: int) -> None:
        super().__init__()
        self.assignment = net.assignment(index)

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        bias0: torch.Tensor | None = None,
        bias1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        head = self.assignment
        if bias0 is None or bias1 is None:
            return mutual_matches(head.log_scores(x0, x1))
        scale = x0.shape[-1] ** -0.25
        sim = torch.matmul(head.final_proj(x0) * scale, (head.final_proj(x1) * scale).T)
        z0 = F.logsigmoid(head.matchability(x0))
        z1 = F.logsigmoid(head.matchability(x1)).T
        scores = torch.log_softmax(sim + bias1, 1) + torch.log_softmax(sim + bias0[:, None], 0)
        scores = scores + z0 + z1 + bias1 + bias0[:, None]
        return mutual_matches(scores)


# ----------------------------------------------------------------------------- weights


def remap_state_dict(raw: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Published state dict -> this module's names (the one place that knows both layouts).

    XFeat's LighterGlue file: ``matcher.``-prefixed keys in this module's layout (its
    ``extractor.`` keys are dropped). cvg LightGlue files: ``self_attn.N.`` / ``cross_attn.N.``
    become ``transformers.N.self_attn.`` / ``transformers.N.cross_attn.``; their per-layer
    ``log_assignment.N.r`` is a training-time scalar the published inference never reads; it
    must be 1.
    """
    out: dict[str, torch.Tensor] = {}
    prefixed = any(k.startswith("matcher.") for k in raw)
    for key, value in raw.items():
        if prefixed:
            if not key.startswith("matcher."):
                continue
            key = key[len("matcher.") :]
        parts = key.split(".")
        if len(parts) > 2 and parts[0] in ("self_attn", "cross_attn") and parts[1].isdigit():
            key = ".".join(["transformers", parts[1], parts[0], *parts[2:]])
        if len(parts) == 3 and parts[0] == "log_assignment" and parts[2] == "r":
            if value.numel() != 1 or float(value.reshape(-1)[0]) != 1.0:
                raise WeightsError(f"{source}: {key} is {value.tolist()}, expected 1.0")
            continue
        out[key] = value
    return out


def load_lightglue(
    path: str | os.PathLike[str], extractor_model: str, device: str | torch.device = "cpu"
) -> LightGlue:
    """The network for ``extractor_model`` with the published weights in ``path``, eval mode.

    Raises WeightsError when the file cannot be read or does not fit (naming the first key
    that is missing, unexpected or of the wrong shape, and which extractor it seems to be for).
    """
    arch = ARCHITECTURES.get(extractor_model)
    if arch is None:
        raise WeightsError(
            f"no LightGlue architecture for extractor {extractor_model!r} "
            f"(known: {', '.join(sorted(ARCHITECTURES))})"
        )
    file = Path(path)
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError(f"{file}: LightGlue weights not found") from exc
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise WeightsError(f"{file}: cannot read LightGlue weights: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{file}: expected a state dict, found {type(raw).__name__}")
    state = remap_state_dict(raw, str(file))
    net = LightGlue(arch)
    expected = net.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise WeightsError(
                f"{file}: missing key {key!r} ({_hint(state, arch, extractor_model)})"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{file}: key {key!r} has shape {tuple(state[key].shape)}, the {extractor_model} "
                f"LightGlue expects {tuple(value.shape)} ({_hint(state, arch, extractor_model)})"
            )
    for key in state:
        if key not in expected:
            raise WeightsError(
                f"{file}: unexpected key {key!r} ({_hint(state, arch, extractor_model)})"
            )
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().to(device)


def _hint(state: Mapping[str, torch.Tensor], arch: LightGlueArch, extractor_model: str) -> str:
    """Which descriptors the file seems to be for, versus what the extractor gives."""
    proj = state.get("input_proj.weight")
    layers = len({k.split(".")[1] for k in state if k.startswith("transformers.")})
    found = f"{proj.shape[1]}-d descriptors" if proj is not None and proj.dim() == 2 else "?"
    return (
        f"the file looks like weights for {found}, {layers} layers; extractor "
        f"{extractor_model} gives {arch.input_dim}-d descriptors and needs {arch.n_layers} layers"
    )
