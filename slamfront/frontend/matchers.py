"""Matchers: ``build_matcher(cfg, extractor_model)`` -> ``(Features, Features) -> Matches``.

- ``lightglue``: the LightGlue-style network with early exit and point pruning, on torch
  (reference), ONNX Runtime (CPU) or TensorRT, weights chosen by the extractor model;
- ``mnn``: mutual nearest neighbours on cosine similarity of float descriptors, with a minimum
  cosine and a distance ratio test (baselines, the ``superpoint`` preset);
- ``orb_bf``: brute-force Hamming matching of binary (uint8) descriptors, mutual, with a
  ratio test (the ``classic`` preset).

Empty feature sets give empty matches; descriptors of another dimension or dtype than the
matcher takes are an :class:`~slamfront.errors.InputError`.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from slamfront.errors import ConfigError, InputError, RuntimeUnavailableError
from slamfront.frontend.models.specs import ARCHITECTURES, lightglue_weights
from slamfront.frontend.runtime.availability import pick_runtime
from slamfront.frontend.runtime.lightglue_export import (
    cached_lightglue,
    export_lightglue,
    graphs_folder,
)
from slamfront.frontend.runtime.lightglue_loop import GlueQuery, GlueResult, GlueStages, run_glue
from slamfront.frontend.runtime.lightglue_onnx import OrtGlueStages
from slamfront.frontend.runtime.lightglue_tensorrt import tensorrt_available, tensorrt_stages
from slamfront.frontend.runtime.lightglue_torch import TorchGlueReference
from slamfront.types import Features, Matches
from slamfront.weights import sha256_of

if TYPE_CHECKING:
    from slamfront.config import MatcherConfig
    from slamfront.frontend.base import Matcher

log = logging.getLogger(__name__)


def build_matcher(cfg: MatcherConfig, extractor_model: str) -> Matcher:
    """The matcher ``cfg`` describes, for features of ``extractor_model``."""
    if cfg.model == "mnn":
        return MutualNearestNeighbour(min_cosine=cfg.min_cosine, ratio=cfg.ratio)
    if cfg.model == "orb_bf":
        return HammingMatcher(ratio=cfg.ratio)
    if cfg.model == "lightglue":
        return build_lightglue(cfg, extractor_model)
    raise ConfigError(f"matcher.model: unknown matcher {cfg.model!r}")  # pragma: no cover


# ----------------------------------------------------------------------------- helpers


def _empty(start: float) -> Matches:
    return Matches(
        np.zeros((0, 2), np.int64),
        np.zeros((0,), np.float32),
        time_ms=(time.perf_counter() - start) * 1e3,
    )


def _check_pair(f0: Features, f1: Features, kind: str) -> None:
    for name, f in (("features0", f0), ("features1", f1)):
        if f.descriptors.ndim != 2 or f.descriptors.shape[0] != f.keypoints.shape[0]:
            raise InputError(
                f"{name}.descriptors: expected ({f.keypoints.shape[0]}, D), "
                f"got {f.descriptors.shape}"
            )
        binary = f.descriptors.dtype == np.uint8
        if kind == "binary" and not binary:
            raise InputError(
                f"{name}.descriptors: orb_bf matches binary uint8 descriptors, got "
                f"{f.descriptors.dtype} (use matcher.model=mnn or lightglue)"
            )
        if kind == "float" and binary:
            raise InputError(
                f"{name}.descriptors: uint8 (binary) descriptors need matcher.model=orb_bf"
            )
    if f0.descriptors.shape[1] != f1.descriptors.shape[1]:
        raise InputError(
            f"descriptor dimensions differ: features0 has {f0.descriptors.shape[1]}, "
            f"features1 has {f1.descriptors.shape[1]}"
        )


def _mutual_ratio(
    distance: np.ndarray, ratio: float, max_distance: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of a (N0, N1) distance matrix passing the ratio test.

    The ratio test is applied on both sides: the best distance must be below ``ratio`` times
    the second best in its row and in its column (``ratio`` = 1 switches it off).
    """
    n0, n1 = distance.shape
    best0 = distance.argmin(1)
    best1 = distance.argmin(0)
    rows = np.arange(n0)
    mutual = best1[best0] == rows
    d_best = distance[rows, best0]
    keep = mutual
    if max_distance is not None:
        keep &= d_best <= max_distance
    if ratio < 1.0:
        if n1 > 1:
            second0 = np.partition(distance, 1, axis=1)[:, 1]
            keep &= d_best < ratio * second0
        if n0 > 1:
            second1 = np.partition(distance, 1, axis=0)[1, :]
            keep &= d_best < ratio * second1[best0]
    i0 = rows[keep]
    return np.stack([i0, best0[keep]], -1).astype(np.int64), d_best[keep]


class MutualNearestNeighbour:
    """Mutual nearest neighbours on cosine similarity with a ratio test on L2 distance.

    Descriptors are L2-normalised first; pairs need cosine >= ``min_cosine``; the ratio test
    compares distances sqrt(2 - 2 cos). Scores are the cosine similarity (clipped to [0, 1]).
    """

    def __init__(self, min_cosine: float = 0.8, ratio: float = 0.9) -> None:
        self.min_cosine = min_cosine
        self.ratio = ratio

    def __call__(self, features0: Features, features1: Features) -> Matches:
        start = time.perf_counter()
        _check_pair(features0, features1, "float")
        if len(features0) == 0 or len(features1) == 0:
            return _empty(start)
        d0 = _unit_rows(features0.descriptors)
        d1 = _unit_rows(features1.descriptors)
        cosine = d0 @ d1.T
        distance = np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))
        max_distance = float(np.sqrt(max(2.0 - 2.0 * self.min_cosine, 0.0)))
        indices, dist = _mutual_ratio(distance, self.ratio, max_distance)
        scores = np.clip(1.0 - 0.5 * dist.astype(np.float64) ** 2, 0.0, 1.0)
        return Matches(
            indices, scores.astype(np.float32), time_ms=(time.perf_counter() - start) * 1e3
        )


def _unit_rows(desc: np.ndarray) -> np.ndarray:
    d = np.asarray(desc, np.float32)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    return d / np.maximum(norm, 1e-12)


class HammingMatcher:
    """Brute-force Hamming matching of binary descriptors: mutual, with a ratio test.

    Scores are 1 - distance / bits.
    """

    def __init__(self, ratio: float = 0.8) -> None:
        self.ratio = ratio

    def __call__(self, features0: Features, features1: Features) -> Matches:
        import cv2

        start = time.perf_counter()
        _check_pair(features0, features1, "binary")
        if len(features0) == 0 or len(features1) == 0:
            return _empty(start)
        d0 = np.ascontiguousarray(features0.descriptors)
        d1 = np.ascontiguousarray(features1.descriptors)
        bits = 8 * d0.shape[1]
        dist0, best0 = _two_nearest(cv2, d0, d1)  # per row of image 0
        dist1, best1 = _two_nearest(cv2, d1, d0)
        rows = np.arange(d0.shape[0])
        keep = best1[best0[:, 0], 0] == rows
        if self.ratio < 1.0:
            if dist0.shape[1] > 1:
                keep &= dist0[:, 0] < self.ratio * dist0[:, 1]
            if dist1.shape[1] > 1:
                keep &= dist0[:, 0] < self.ratio * dist1[best0[:, 0], 1]
        indices = np.stack([rows[keep], best0[keep, 0]], -1).astype(np.int64)
        scores = (1.0 - dist0[keep, 0] / bits).astype(np.float32)
        return Matches(indices, scores, time_ms=(time.perf_counter() - start) * 1e3)


def _two_nearest(cv2: Any, query: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (N, k) and indices (N, k) of the k <= 2 nearest rows of ``train``."""
    k = min(2, train.shape[0])
    dist, idx = cv2.batchDistance(query, train, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k)
    return dist.astype(np.float32), idx.astype(np.int64)


# ----------------------------------------------------------------------------- LightGlue


class GlueBackend(Protocol):
    """One runtime's LightGlue: GlueQuery -> GlueResult."""

    def __call__(self, query: GlueQuery, /) -> GlueResult: ...


def normalized_keypoints(features: Features) -> np.ndarray:
    """Keypoints centred on the image and scaled by half its longer side (float32)."""
    width, height = features.image_size
    shift = np.array([width / 2.0, height / 2.0], np.float32)
    scale = np.float32(max(width, height) / 2.0)
    return ((np.asarray(features.keypoints, np.float32) - shift) / scale).astype(np.float32)


class LightGlueMatcher:
    """(Features, Features) -> Matches through one LightGlue runtime.

    ``runtime`` names the backend (torch, onnxruntime, tensorrt); ``input_dim`` is the
    descriptor dimension the weights take.
    """

    def __init__(
        self,
        backend: GlueBackend,
        *,
        runtime: str,
        input_dim: int,
        extractor_model: str,
        depth_confidence: float,
        width_confidence: float,
        filter_threshold: float,
    ) -> None:
        self.backend = backend
        self.runtime = runtime
        self.input_dim = input_dim
        self.extractor_model = extractor_model
        self.depth_confidence = depth_confidence
        self.width_confidence = width_confidence
        self.filter_threshold = filter_threshold

    def __call__(self, features0: Features, features1: Features) -> Matches:
        start = time.perf_counter()
        _check_pair(features0, features1, "float")
        for name, f in (("features0", features0), ("features1", features1)):
            if f.descriptors.shape[1] != self.input_dim:
                raise InputError(
                    f"{name}.descriptors: {f.descriptors.shape[1]}-d, but the LightGlue weights "
                    f"for {self.extractor_model} take {self.input_dim}-d descriptors"
                )
        if len(features0) == 0 or len(features1) == 0:
            return _empty(start)
        result = self.backend(
            GlueQuery(
                normalized_keypoints(features0),
                np.ascontiguousarray(features0.descriptors, np.float32),
                normalized_keypoints(features1),
                np.ascontiguousarray(features1.descriptors, np.float32),
                depth_confidence=self.depth_confidence,
                width_confidence=self.width_confidence,
                filter_threshold=self.filter_threshold,
            )
        )
        return Matches(
            indices=result.indices,
            scores=result.scores,
            layers_run=result.layers_run,
            points_kept=result.points_kept,
            time_ms=(time.perf_counter() - start) * 1e3,
        )


def build_lightglue(cfg: MatcherConfig, extractor_model: str) -> LightGlueMatcher:
    """LightGlue on ``cfg.runtime`` with the weights for ``extractor_model``."""
    if extractor_model not in ARCHITECTURES:
        raise ConfigError(
            f"matcher.model=lightglue does not take {extractor_model} features "
            f"(LightGlue weights exist for {', '.join(sorted(ARCHITECTURES))}); "
            "use matcher.model=orb_bf for ORB"
        )
    runtime = pick_runtime(cfg.runtime, tensorrt_needs_torch_cuda=True)
    # fail before minutes of export and engine building
    if runtime == "tensorrt" and not tensorrt_available():
        raise RuntimeUnavailableError(
            "matcher.runtime=tensorrt needs the tensorrt package and a CUDA device "
            "(pip install slamfront[tensorrt]); use onnxruntime or torch here"
        )
    path = lightglue_weights(cfg, extractor_model)
    arch = ARCHITECTURES[extractor_model]
    backend: GlueBackend
    if runtime == "torch":
        if cfg.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeUnavailableError("matcher.device=cuda: torch sees no CUDA device")
        from slamfront.frontend.models.lightglue import load_lightglue  # imports torch

        backend = TorchGlueReference(load_lightglue(path, extractor_model, device=cfg.device))
    else:  # onnxruntime or tensorrt (pick_runtime refuses other names), exported from CPU
        masked = runtime == "tensorrt"
        folder = graphs_folder(cfg.onnx_dir, extractor_model, sha256_of(path), masked=masked)
        graphs = cached_lightglue(folder, arch, masked=masked)
        if graphs is None:  # exported once: only then is the network needed
            from slamfront.frontend.models.lightglue import load_lightglue  # imports torch

            graphs = export_lightglue(load_lightglue(path, extractor_model), folder, masked=masked)
        stages: GlueStages
        if runtime == "onnxruntime":
            stages = OrtGlueStages(graphs, threads=cfg.threads)
        else:
            stages = tensorrt_stages(graphs, cache_dir=cfg.engine_dir)
        backend = partial(run_glue, stages)
    log.debug("LightGlue for %s on %s from %s", extractor_model, runtime, path)
    return LightGlueMatcher(
        backend,
        runtime=runtime,
        input_dim=arch.input_dim,
        extractor_model=extractor_model,
        depth_confidence=cfg.depth_confidence,
        width_confidence=cfg.width_confidence,
        filter_threshold=cfg.filter_threshold,
    )
