"""The LightGlue host loop: per-stage graphs run by a runtime, decisions taken here in numpy.

ONNX Runtime and TensorRT run the network as separate graphs (input stage, each layer, the
confidence heads after each layer, the assignment after each layer). Between them this loop
decides, exactly as :meth:`slamfront.frontend.models.lightglue.LightGlue.forward` does in
torch, whether to stop (adaptive depth) and which points to drop (adaptive width), and keeps
the map from surviving points back to the original keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

import numpy as np

from slamfront.errors import InputError
from slamfront.frontend.models.specs import confidence_threshold


class GlueStages(Protocol):
    """One runtime's implementation of the four LightGlue stages, on numpy float32 arrays.

    encode: kpts (N, 2) normalised, desc (N, input_dim) -> x (N, D), enc (2, N, D)
    layer: i, x0, x1, enc0, enc1 -> x0, x1
    confidence: i, x0, x1 -> :class:`GlueConfidence`
    assign: i, x0, x1 -> match0 (N0,) int64, score0 (N0,) float32, mutual0 (N0,) bool
    """

    @property
    def n_layers(self) -> int: ...

    def encode(self, kpts: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def layer(
        self, index: int, x0: np.ndarray, x1: np.ndarray, enc0: np.ndarray, enc1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def confidence(self, index: int, x0: np.ndarray, x1: np.ndarray) -> GlueConfidence: ...

    def assign(
        self, index: int, x0: np.ndarray, x1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True, eq=False)
class GlueConfidence:
    """The confidence heads after one layer: per point of each set, how sure its token is
    (token0 (N0,), token1 (N1,)) and how likely it is to have a match (matchable0,
    matchable1), float32."""

    token0: np.ndarray
    matchable0: np.ndarray
    token1: np.ndarray
    matchable1: np.ndarray


@dataclass(frozen=True, eq=False)
class GlueQuery:
    """One LightGlue call: two point sets and how far to run.

    kpts0 (N0, 2), kpts1 (N1, 2): float32 keypoints centred on the image and scaled by half
    its longer side (``matchers.normalized_keypoints``); desc0 (N0, input_dim), desc1
    (N1, input_dim): float32 descriptors; depth_confidence: early exit once this share of
    the points is confident, width_confidence: pruning of points confidently unmatchable at
    this level (either <= 0: off); filter_threshold: minimum match score.
    """

    kpts0: np.ndarray
    desc0: np.ndarray
    kpts1: np.ndarray
    desc1: np.ndarray
    _: KW_ONLY
    depth_confidence: float
    width_confidence: float
    filter_threshold: float


@dataclass(frozen=True, eq=False)
class GlueResult:
    """indices (M, 2) int64 into the original keypoints; scores (M,) float32; work done."""

    indices: np.ndarray
    scores: np.ndarray
    layers_run: int
    points_kept: tuple[int, ...]


def run_glue(stages: GlueStages, query: GlueQuery) -> GlueResult:
    """Match the two non-empty point sets of ``query`` through ``stages``."""
    kpts0, desc0, kpts1, desc1 = query.kpts0, query.desc0, query.kpts1, query.desc1
    depth_confidence, width_confidence = query.depth_confidence, query.width_confidence
    n_layers = stages.n_layers
    n_total = kpts0.shape[0] + kpts1.shape[0]
    x0, enc0 = stages.encode(kpts0, desc0)
    x1, enc1 = stages.encode(kpts1, desc1)
    ind0 = np.arange(kpts0.shape[0])
    ind1 = np.arange(kpts1.shape[0])
    early_exit, pruning = depth_confidence > 0, width_confidence > 0
    kept: list[int] = []
    layer = 0
    for layer in range(n_layers):
        kept.append(int(ind0.shape[0] + ind1.shape[0]))
        x0, x1 = stages.layer(layer, x0, x1, enc0, enc1)
        if layer == n_layers - 1 or not (early_exit or pruning):
            continue
        threshold = np.float32(confidence_threshold(layer, n_layers))
        heads = stages.confidence(layer, x0, x1)
        token0, token1 = heads.token0, heads.token1
        if early_exit:
            unsure = int(
                np.count_nonzero(token0 < threshold) + np.count_nonzero(token1 < threshold)
            )
            if 1.0 - unsure / n_total > depth_confidence:
                break
        if pruning:
            floor = np.float32(1.0 - width_confidence)
            keep0 = heads.matchable0 > floor
            keep1 = heads.matchable1 > floor
            if early_exit:
                keep0 |= token0 <= threshold
                keep1 |= token1 <= threshold
            if not keep0.all():
                x0, enc0, ind0 = x0[keep0], enc0[:, keep0], ind0[keep0]
            if not keep1.all():
                x1, enc1, ind1 = x1[keep1], enc1[:, keep1], ind1[keep1]
            if x0.shape[0] == 0 or x1.shape[0] == 0:
                break
    if x0.shape[0] == 0 or x1.shape[0] == 0:
        return GlueResult(
            np.zeros((0, 2), np.int64), np.zeros((0,), np.float32), layer + 1, tuple(kept)
        )
    match0, score0, mutual0 = stages.assign(layer, x0, x1)
    valid = mutual0 & (score0 > np.float32(query.filter_threshold))
    indices = np.stack([ind0[valid], ind1[match0[valid]]], -1).astype(np.int64)
    return GlueResult(indices, score0[valid].astype(np.float32), layer + 1, tuple(kept))


# ----------------------------------------------------------------------------- padding

PAD_BIAS = np.float32(-1.0e4)
"""Additive attention bias of padded keys (see ``LayerStage``): exp() of it is 0."""

BUCKETS = (256, 512, 1024, 2048)
"""Point-count buckets of fixed-size engines (TensorRT optimisation profiles)."""


def bucket_size(n: int, buckets: Sequence[int] = BUCKETS) -> int:
    """Smallest bucket holding ``n`` points; 0 when ``n`` exceeds the largest."""
    for size in sorted(buckets):
        if n <= size:
            return size
    return 0


def pad_rows(array: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """Zero-pad ``array`` along ``axis`` to length ``size``."""
    extra = size - array.shape[axis]
    if extra <= 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, extra)
    return np.pad(array, widths)


def key_bias(n: int, size: int) -> np.ndarray:
    """(size,) float32: 0 for the ``n`` real points, PAD_BIAS for the padding."""
    bias = np.zeros(size, np.float32)
    bias[n:] = PAD_BIAS
    return bias


class GraphRunner(Protocol):
    """Runs one masked stage graph on inputs whose point dimensions are all ``points``."""

    @property
    def n_layers(self) -> int: ...

    def run(
        self, kind: str, index: int | None, feed: dict[str, np.ndarray], points: int
    ) -> list[np.ndarray]: ...


class PaddedStages:
    """GlueStages over fixed-size (bucketed) graphs: pads inputs, masks padding, crops outputs.

    Both images of a pair are padded to the bucket of the larger one, so engines need one
    profile per bucket. This is the exact feeding the TensorRT runtime uses; with an ONNX
    Runtime runner it verifies on CPU what TensorRT will consume.
    """

    def __init__(self, runner: GraphRunner, buckets: Sequence[int] = BUCKETS) -> None:
        self.runner = runner
        self.buckets = tuple(sorted(buckets))

    @property
    def n_layers(self) -> int:
        return self.runner.n_layers

    def _size(self, *counts: int) -> int:
        size = bucket_size(max(counts), self.buckets)
        if size == 0:
            raise InputError(
                f"{max(counts)} points exceed the largest point bucket ({self.buckets[-1]}); "
                "lower max_keypoints"
            )
        return size

    def encode(self, kpts: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = kpts.shape[0]
        size = self._size(n)
        feed = {"kpts": pad_rows(kpts, size), "desc": pad_rows(desc, size)}
        x, enc = self.runner.run("input", None, feed, size)
        return x[:n], enc[:, :n]

    def layer(
        self, index: int, x0: np.ndarray, x1: np.ndarray, enc0: np.ndarray, enc1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n0, n1 = x0.shape[0], x1.shape[0]
        size = self._size(n0, n1)
        feed = {
            "x0": pad_rows(x0, size),
            "x1": pad_rows(x1, size),
            "enc0": pad_rows(enc0, size, axis=1),
            "enc1": pad_rows(enc1, size, axis=1),
            "bias0": key_bias(n0, size),
            "bias1": key_bias(n1, size),
        }
        y0, y1 = self.runner.run("layer", index, feed, size)
        return y0[:n0], y1[:n1]

    def confidence(self, index: int, x0: np.ndarray, x1: np.ndarray) -> GlueConfidence:
        n0, n1 = x0.shape[0], x1.shape[0]
        size = self._size(n0, n1)
        feed = {"x0": pad_rows(x0, size), "x1": pad_rows(x1, size)}
        t0, m0, t1, m1 = self.runner.run("confidence", index, feed, size)
        return GlueConfidence(t0[:n0], m0[:n0], t1[:n1], m1[:n1])

    def assign(
        self, index: int, x0: np.ndarray, x1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n0, n1 = x0.shape[0], x1.shape[0]
        size = self._size(n0, n1)
        feed = {
            "x0": pad_rows(x0, size),
            "x1": pad_rows(x1, size),
            "bias0": key_bias(n0, size),
            "bias1": key_bias(n1, size),
        }
        match0, score0, mutual0 = self.runner.run("assign", index, feed, size)
        return (
            np.asarray(match0[:n0], np.int64),
            np.asarray(score0[:n0], np.float32),
            np.asarray(mutual0[:n0], bool),
        )
