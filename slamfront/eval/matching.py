"""Matching accuracy on HPatches: MMA and homography estimation, per pair and overall.

``evaluate_hpatches(path, extractor, matcher)`` runs an extractor and a matcher (any callable
``(Features, Features) -> Matches``: the mutual-nearest-neighbour baseline here, LightGlue,
...) on every pair (1, k), k = 2..6, of each HPatches sequence under ``path`` and measures:

- MMA at t px: the share of a pair's matches whose keypoint in image 1, mapped into image k by
  the ground-truth homography, lands within t px of its matched keypoint (mean over pairs);
- the homography estimated from the matches with RANSAC (OpenCV MAGSAC++, deterministic):
  its corner error is the mean distance between image 1's four corners mapped by the estimate
  and by the ground truth; homography accuracy at t px is the share of pairs whose corner
  error is at most t (a failed estimate counts as an infinite error).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slamfront.errors import InputError, SourceError
from slamfront.types import Features, Matches

THRESHOLDS_PX = (1.0, 3.0, 5.0)
RANSAC_REPROJECTION_PX = 3.0
_TARGETS = (2, 3, 4, 5, 6)

ExtractFn = Callable[[np.ndarray], Features]
MatchFn = Callable[[Features, Features], Matches]


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class HPatchesSequence:
    """One sequence: ``images[i]`` is image i+1 (RGB uint8); ``homographies[k]`` maps image 1
    pixels to image k pixels (3x3 float64), k = 2..6."""

    name: str
    images: tuple[np.ndarray, ...]
    homographies: dict[int, np.ndarray]


def _read_sequence(folder: Path) -> HPatchesSequence:
    import cv2

    images = []
    for index in range(1, 7):
        path = folder / f"{index}.ppm"
        if not path.is_file():
            raise SourceError(f"{folder}: HPatches image {path.name} is missing")
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"{path}: cannot decode image")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    homographies = {}
    for k in _TARGETS:
        path = folder / f"H_1_{k}"
        try:
            matrix = np.loadtxt(path, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read a 3x3 homography: {exc}") from exc
        if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
            raise SourceError(f"{path}: expected 3x3 finite numbers, got shape {matrix.shape}")
        homographies[k] = matrix
    return HPatchesSequence(folder.name, tuple(images), homographies)


def read_hpatches(path: str | os.PathLike[str]) -> list[HPatchesSequence]:
    """The sequence at ``path`` (a folder holding ``1.ppm`` and ``H_1_2``...), or every
    sequence folder directly under ``path``, sorted by name."""
    root = Path(path)
    if not root.is_dir():
        raise SourceError(f"HPatches folder not found: {root}")
    if (root / "1.ppm").is_file():
        return [_read_sequence(root)]
    folders = sorted(p for p in root.iterdir() if (p / "1.ppm").is_file())
    if not folders:
        raise SourceError(f"{root}: no HPatches sequence (a folder with 1.ppm and H_1_k files)")
    return [_read_sequence(folder) for folder in folders]


# ----------------------------------------------------------------------------- baseline


def mutual_nearest_neighbours(
    features0: Features, features1: Features, min_cosine: float = 0.0
) -> Matches:
    """The baseline matcher: mutual nearest neighbours.

    Float descriptors (L2-normalised) by cosine similarity, kept when at least
    ``min_cosine``; binary uint8 descriptors by Hamming distance (score 1 - bits/total).
    """
    start = time.perf_counter()
    d0, d1 = features0.descriptors, features1.descriptors
    if len(features0) == 0 or len(features1) == 0:
        return Matches.empty()
    if d0.dtype != d1.dtype or d0.shape[1] != d1.shape[1]:
        raise InputError(
            f"descriptors differ: {d0.dtype} x {d0.shape[1]} vs {d1.dtype} x {d1.shape[1]}"
        )
    if d0.dtype == np.uint8:
        bits0 = np.unpackbits(d0, axis=1).astype(np.float32)
        bits1 = np.unpackbits(d1, axis=1).astype(np.float32)
        # Hamming = a + b - 2 a.b over bits; similarity = 1 - Hamming / bits.
        hamming = bits0.sum(1)[:, None] + bits1.sum(1)[None, :] - 2.0 * bits0 @ bits1.T
        similarity = 1.0 - hamming / bits0.shape[1]
        floor = -np.inf
    else:
        similarity = d0.astype(np.float32) @ d1.astype(np.float32).T
        floor = min_cosine
    best1 = similarity.argmax(axis=1)
    best0 = similarity.argmax(axis=0)
    rows = np.arange(similarity.shape[0])
    mutual = best0[best1] == rows
    scores = similarity[rows, best1]
    keep = mutual & (scores >= floor)
    indices = np.stack([rows[keep], best1[keep]], axis=1).astype(np.int64)
    return Matches(
        indices=indices,
        scores=scores[keep].astype(np.float32),
        time_ms=(time.perf_counter() - start) * 1e3,
    )


class MutualNearestNeighbour:
    """:func:`mutual_nearest_neighbours` as a matcher object with a fixed ``min_cosine``."""

    def __init__(self, min_cosine: float = 0.0) -> None:
        self.min_cosine = min_cosine

    def __call__(self, features0: Features, features1: Features) -> Matches:
        return mutual_nearest_neighbours(features0, features1, self.min_cosine)


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class PairResult:
    """One image pair (1, k) of a sequence.

    mma: per threshold of ``thresholds_px``, the share of matches within it (0 with no
    match); corner_error_px: inf when no homography could be estimated.
    """

    sequence: str
    pair: str
    num_keypoints0: int
    num_keypoints1: int
    num_matches: int
    num_inliers: int
    mma: tuple[float, ...]
    corner_error_px: float
    thresholds_px: tuple[float, ...] = THRESHOLDS_PX

    @property
    def homography_correct(self) -> tuple[bool, ...]:
        return tuple(self.corner_error_px <= t for t in self.thresholds_px)


@dataclass(frozen=True)
class MatchingReport:
    """Every pair's result and the overall figures (means over pairs)."""

    pairs: tuple[PairResult, ...]
    thresholds_px: tuple[float, ...] = THRESHOLDS_PX

    @property
    def mma(self) -> tuple[float, ...]:
        """Mean over pairs of each pair's MMA, per threshold."""
        return tuple(
            float(np.mean([p.mma[i] for p in self.pairs])) for i in range(len(self.thresholds_px))
        )

    @property
    def homography_accuracy(self) -> tuple[float, ...]:
        """Share of pairs whose corner error is within each threshold."""
        return tuple(
            float(np.mean([p.homography_correct[i] for p in self.pairs]))
            for i in range(len(self.thresholds_px))
        )

    @property
    def mean_corner_error_px(self) -> float:
        return float(np.mean([p.corner_error_px for p in self.pairs]))

    @property
    def mean_matches(self) -> float:
        return float(np.mean([p.num_matches for p in self.pairs]))

    def lines(self) -> list[str]:
        """A plain-text table: one row per pair, then the overall row."""
        ts = "/".join(f"{t:g}" for t in self.thresholds_px)
        header = (
            f"{'sequence':<16} {'pair':<5} {'kpts':>10} {'matches':>7} {'inliers':>7} "
            f"{'MMA@' + ts + 'px':>20} {'corner err px':>13} {'H ok@' + ts + 'px':>14}"
        )
        out = [header]
        for p in self.pairs:
            mma = " ".join(f"{v:.3f}" for v in p.mma)
            ok = " ".join("y" if c else "n" for c in p.homography_correct)
            out.append(
                f"{p.sequence:<16} {p.pair:<5} {p.num_keypoints0:>4}/{p.num_keypoints1:<5} "
                f"{p.num_matches:>7} {p.num_inliers:>7} {mma:>20} {p.corner_error_px:>13.2f} "
                f"{ok:>14}"
            )
        mma = " ".join(f"{v:.3f}" for v in self.mma)
        acc = " ".join(f"{v:.2f}" for v in self.homography_accuracy)
        out.append(
            f"{'overall':<16} {len(self.pairs):<5} {'':>10} {self.mean_matches:>7.1f} {'':>7} "
            f"{mma:>20} {self.mean_corner_error_px:>13.2f} {acc:>14}"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds_px": list(self.thresholds_px),
            "mma": list(self.mma),
            "homography_accuracy": list(self.homography_accuracy),
            "mean_corner_error_px": self.mean_corner_error_px,
            "pairs": [
                {
                    "sequence": p.sequence,
                    "pair": p.pair,
                    "num_keypoints": [p.num_keypoints0, p.num_keypoints1],
                    "num_matches": p.num_matches,
                    "num_inliers": p.num_inliers,
                    "mma": list(p.mma),
                    "corner_error_px": p.corner_error_px,
                }
                for p in self.pairs
            ],
        }


def reprojection_errors_px(
    points0: np.ndarray, points1: np.ndarray, homography: np.ndarray
) -> np.ndarray:
    """|H(points0) - points1| for (M, 2) point arrays."""
    if points0.shape[0] == 0:
        return np.zeros((0,), np.float64)
    ones = np.ones((points0.shape[0], 1))
    mapped = np.hstack([points0.astype(np.float64), ones]) @ homography.T
    mapped = mapped[:, :2] / mapped[:, 2:3]
    return np.asarray(np.linalg.norm(mapped - points1.astype(np.float64), axis=1))


def corner_error_px(
    estimate: np.ndarray | None, truth: np.ndarray, image_size: tuple[int, int]
) -> float:
    """Mean distance of image 1's corners mapped by ``estimate`` and ``truth`` (inf: none)."""
    if estimate is None or not np.isfinite(estimate).all():
        return math.inf
    width, height = image_size
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], float)
    ones = np.ones((4, 1))
    a = np.hstack([corners, ones]) @ estimate.T
    b = np.hstack([corners, ones]) @ truth.T
    if np.any(np.abs(a[:, 2]) < 1e-12):
        return math.inf
    return float(np.linalg.norm(a[:, :2] / a[:, 2:3] - b[:, :2] / b[:, 2:3], axis=1).mean())


def estimate_homography(
    points0: np.ndarray, points1: np.ndarray, ransac_px: float = RANSAC_REPROJECTION_PX
) -> tuple[np.ndarray | None, int]:
    """(H mapping points0 to points1 or None, inlier count), MAGSAC++ with a fixed seed."""
    import cv2

    if points0.shape[0] < 4:
        return None, 0
    homography, mask = cv2.findHomography(
        points0.astype(np.float64),
        points1.astype(np.float64),
        cv2.USAC_MAGSAC,
        ransac_px,
        maxIters=10000,
        confidence=0.9999,
    )
    if homography is None:
        return None, 0
    return np.asarray(homography, np.float64), int(mask.sum()) if mask is not None else 0


def evaluate_pair(
    features0: Features,
    features1: Features,
    matches: Matches,
    homography: np.ndarray,
    *,
    sequence: str = "",
    pair: str = "",
    thresholds_px: Sequence[float] = THRESHOLDS_PX,
    ransac_px: float = RANSAC_REPROJECTION_PX,
) -> PairResult:
    """Metrics of one pair's matches against the ground-truth homography (image 0 -> 1)."""
    points0 = features0.keypoints[matches.indices[:, 0]]
    points1 = features1.keypoints[matches.indices[:, 1]]
    errors = reprojection_errors_px(points0, points1, homography)
    mma = tuple(float((errors <= t).mean()) if errors.size else 0.0 for t in thresholds_px)
    estimate, inliers = estimate_homography(points0, points1, ransac_px)
    return PairResult(
        sequence=sequence,
        pair=pair,
        num_keypoints0=len(features0),
        num_keypoints1=len(features1),
        num_matches=len(matches),
        num_inliers=inliers,
        mma=mma,
        corner_error_px=corner_error_px(estimate, homography, features0.image_size),
        thresholds_px=tuple(float(t) for t in thresholds_px),
    )


def evaluate_hpatches(
    path: str | os.PathLike[str] | Sequence[HPatchesSequence],
    extractor: ExtractFn,
    matcher: MatchFn | None = None,
    *,
    thresholds_px: Sequence[float] = THRESHOLDS_PX,
    ransac_px: float = RANSAC_REPROJECTION_PX,
) -> MatchingReport:
    """Run ``extractor`` and ``matcher`` (default: mutual nearest neighbours, no cosine floor)
    on every pair (1, k) of the HPatches sequences at ``path`` (or already read)."""
    sequences = read_hpatches(path) if isinstance(path, str | os.PathLike) else list(path)
    match = matcher if matcher is not None else MutualNearestNeighbour()
    results = []
    for sequence in sequences:
        features = [extractor(image) for image in sequence.images]
        for k in _TARGETS:
            results.append(
                evaluate_pair(
                    features[0],
                    features[k - 1],
                    match(features[0], features[k - 1]),
                    sequence.homographies[k],
                    sequence=sequence.name,
                    pair=f"1-{k}",
                    thresholds_px=thresholds_px,
                    ransac_px=ransac_px,
                )
            )
    return MatchingReport(tuple(results), tuple(float(t) for t in thresholds_px))


__all__ = [
    "THRESHOLDS_PX",
    "HPatchesSequence",
    "MatchingReport",
    "MutualNearestNeighbour",
    "PairResult",
    "corner_error_px",
    "estimate_homography",
    "evaluate_hpatches",
    "evaluate_pair",
    "mutual_nearest_neighbours",
    "read_hpatches",
    "reprojection_errors_px",
]
