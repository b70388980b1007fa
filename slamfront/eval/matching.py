"""Matching accuracy on HPatches: MMA and homography estimation, per pair and overall.

``evaluate_hpatches(path, extractor, matcher)`` runs an extractor and a matcher (any callable
``(Features, Features) -> Matches``: the mutual-nearest-neighbour baseline here, LightGlue,
...) on every pair (1, k), k = 2..6, of each HPatches sequence under ``path`` and measures:

- MMA at t px: the share of a pair's matches whose keypoint in image 1, mapped into image k by
  the ground-truth homography, lands within t px of its matched keypoint (mean over pairs);
- the homography estimated from the matches with RANSAC (OpenCV MAGSAC++, deterministic):
  its corner error is the mean distance between image 1's four corners mapped by the estimate
  and by the ground truth; homography accuracy at t px is the share of pairs whose corner
  error is at most t (a failed estimate counts as an infinite error);
- per pair, the correct matches at each threshold and the matcher's layers run.

``evaluate_self_pairs`` / ``evaluate_consecutive_frames`` compare a matcher at full depth with
its early exit and pruning on easy pairs (an image against itself with pixel noise;
consecutive frames of the synthetic rig): layers run, correct matches, and the homography /
relative pose estimated from the matches.
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
from slamfront.frontend.pose import refine_pose, solve_pnp_ransac
from slamfront.geometry import (
    invert_pose,
    project,
    rotation_angle_deg,
    sample_depth,
    transform_points,
    unproject,
)
from slamfront.sim.rig import SimRig
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
    match); corner_error_px: inf when no homography could be estimated; num_correct: per
    threshold, the number of matches within it; layers_run: the matcher's layers (0 for
    non-iterative matchers).
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
    num_correct: tuple[int, ...] = ()
    layers_run: int = 0

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

    @property
    def total_correct(self) -> tuple[int, ...]:
        """Correct matches summed over pairs, per threshold."""
        return tuple(
            sum(p.num_correct[i] for p in self.pairs if p.num_correct)
            for i in range(len(self.thresholds_px))
        )

    @property
    def mean_layers(self) -> float:
        return float(np.mean([p.layers_run for p in self.pairs]))

    def lines(self) -> list[str]:
        """A plain-text table: one row per pair, then the overall row."""
        ts = "/".join(f"{t:g}" for t in self.thresholds_px)
        header = (
            f"{'sequence':<16} {'pair':<5} {'kpts':>10} {'matches':>7} {'inliers':>7} "
            f"{'MMA@' + ts + 'px':>20} {'corner err px':>13} {'H ok@' + ts + 'px':>14} "
            f"{'correct@' + ts + 'px':>18} {'layers':>6}"
        )
        out = [header]
        for p in self.pairs:
            mma = " ".join(f"{v:.3f}" for v in p.mma)
            ok = " ".join("y" if c else "n" for c in p.homography_correct)
            correct = " ".join(str(c) for c in p.num_correct)
            out.append(
                f"{p.sequence:<16} {p.pair:<5} {p.num_keypoints0:>4}/{p.num_keypoints1:<5} "
                f"{p.num_matches:>7} {p.num_inliers:>7} {mma:>20} {p.corner_error_px:>13.2f} "
                f"{ok:>14} {correct:>18} {p.layers_run:>6}"
            )
        mma = " ".join(f"{v:.3f}" for v in self.mma)
        acc = " ".join(f"{v:.2f}" for v in self.homography_accuracy)
        correct = " ".join(str(c) for c in self.total_correct)
        out.append(
            f"{'overall':<16} {len(self.pairs):<5} {'':>10} {self.mean_matches:>7.1f} {'':>7} "
            f"{mma:>20} {self.mean_corner_error_px:>13.2f} {acc:>14} {correct:>18} "
            f"{self.mean_layers:>6.2f}"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds_px": list(self.thresholds_px),
            "mma": list(self.mma),
            "homography_accuracy": list(self.homography_accuracy),
            "mean_corner_error_px": self.mean_corner_error_px,
            "total_correct": list(self.total_correct),
            "mean_layers": self.mean_layers,
            "pairs": [
                {
                    "sequence": p.sequence,
                    "pair": p.pair,
                    "num_keypoints": [p.num_keypoints0, p.num_keypoints1],
                    "num_matches": p.num_matches,
                    "num_inliers": p.num_inliers,
                    "mma": list(p.mma),
                    "corner_error_px": p.corner_error_px,
                    "num_correct": list(p.num_correct),
                    "layers_run": p.layers_run,
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
        num_correct=tuple(int((errors <= t).sum()) for t in thresholds_px),
        layers_run=matches.layers_run,
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


# ----------------------------------------------------------------------------- early exit
#
# Does the matcher's early exit / pruning cost anything downstream? The same easy pairs are
# matched at full depth and with adaptive depth/width; compared are the layers run, the
# correct matches (3 px, from exact ground truth) and the geometry estimated from the matches.


@dataclass(frozen=True)
class EasyPairResult:
    """One easy pair under one matcher setting.

    errors: for an image against itself, the corner error (px) of :func:`refined_homography`
    against the identity; for consecutive synthetic frames, the relative pose error
    (rotation deg, translation m) of PnP + robust refinement from the matches and depth.
    """

    name: str
    layers_run: int
    num_matches: int
    num_correct: int
    errors: tuple[float, ...]


@dataclass(frozen=True)
class EarlyExitReport:
    """Full depth versus adaptive on the same pairs (``error_names`` label ``errors``)."""

    kind: str
    error_names: tuple[str, ...]
    full: tuple[EasyPairResult, ...]
    adaptive: tuple[EasyPairResult, ...]
    correct_px: float = 3.0

    @staticmethod
    def _mean_layers(rows: Sequence[EasyPairResult]) -> float:
        return float(np.mean([r.layers_run for r in rows]))

    @staticmethod
    def _mean_errors(rows: Sequence[EasyPairResult]) -> tuple[float, ...]:
        return tuple(float(v) for v in np.mean([r.errors for r in rows], axis=0))

    @property
    def mean_layers(self) -> tuple[float, float]:
        """(full, adaptive)."""
        return self._mean_layers(self.full), self._mean_layers(self.adaptive)

    @property
    def total_correct(self) -> tuple[int, int]:
        """(full, adaptive) correct matches summed over pairs."""
        return sum(r.num_correct for r in self.full), sum(r.num_correct for r in self.adaptive)

    @property
    def mean_errors(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(full, adaptive) mean of each error over pairs."""
        return self._mean_errors(self.full), self._mean_errors(self.adaptive)

    def lines(self) -> list[str]:
        (lf, la), (cf, ca) = self.mean_layers, self.total_correct
        ef, ea = self.mean_errors
        out = [
            f"early exit on {self.kind} ({len(self.full)} pairs): full depth vs adaptive",
            f"  mean layers run       {lf:8.2f} {la:10.2f}",
            f"  correct @{self.correct_px:g} px         {cf:8d} {ca:10d}   "
            f"adaptive/full {ca / max(cf, 1):.3f}",
        ]
        for name, a, b in zip(self.error_names, ef, ea, strict=True):
            ratio = b / a if a > 0 else math.inf
            out.append(f"  mean {name:<16} {a:8.4f} {b:10.4f}   adaptive/full {ratio:.3f}")
        return out

    def to_dict(self) -> dict[str, Any]:
        def rows(values: Sequence[EasyPairResult]) -> list[dict[str, Any]]:
            return [
                {
                    "name": r.name,
                    "layers_run": r.layers_run,
                    "num_matches": r.num_matches,
                    "num_correct": r.num_correct,
                    "errors": list(r.errors),
                }
                for r in values
            ]

        return {
            "kind": self.kind,
            "error_names": list(self.error_names),
            "mean_layers": list(self.mean_layers),
            "total_correct": list(self.total_correct),
            "mean_errors": [list(e) for e in self.mean_errors],
            "full": rows(self.full),
            "adaptive": rows(self.adaptive),
        }


def refined_homography(
    points0: np.ndarray, points1: np.ndarray, ransac_px: float = 3.0, inlier_px: float = 2.0
) -> np.ndarray | None:
    """Seeded RANSAC for a start, then least squares on the points within ``inlier_px`` of the
    current estimate until that set settles: consensus then least squares on inliers, as the
    tracker estimates poses, and deterministic. None with fewer than 4 points or no model."""
    import cv2

    if points0.shape[0] < 4:
        return None
    p0, p1 = points0.astype(np.float64), points1.astype(np.float64)
    cv2.setRNGSeed(0)
    homography, _ = cv2.findHomography(p0, p1, cv2.RANSAC, ransac_px, maxIters=5000)
    previous: np.ndarray | None = None
    for _ in range(10):
        if homography is None:
            return None
        inliers = reprojection_errors_px(p0, p1, homography) < inlier_px
        if inliers.sum() < 4 or (previous is not None and np.array_equal(inliers, previous)):
            break
        previous = inliers
        homography, _ = cv2.findHomography(p0[inliers], p1[inliers], 0)
    return None if homography is None else np.asarray(homography, np.float64)


def evaluate_self_pairs(
    images: Sequence[np.ndarray],
    extractor: ExtractFn,
    full: MatchFn,
    adaptive: MatchFn,
    *,
    noise_std: float = 3.0,
    seed: int = 0,
    correct_px: float = 3.0,
) -> EarlyExitReport:
    """Each image against itself with Gaussian pixel noise (``noise_std`` grey levels)."""
    rng = np.random.default_rng(seed)
    identity = np.eye(3)
    rows: dict[str, list[EasyPairResult]] = {"full": [], "adaptive": []}
    for index, image in enumerate(images):
        noisy = np.clip(image + rng.normal(0.0, noise_std, image.shape), 0, 255).astype(np.uint8)
        f0, f1 = extractor(image), extractor(noisy)
        for setting, matcher in (("full", full), ("adaptive", adaptive)):
            m = matcher(f0, f1)
            p0, p1 = f0.keypoints[m.indices[:, 0]], f1.keypoints[m.indices[:, 1]]
            errors = reprojection_errors_px(p0, p1, identity)
            estimate = refined_homography(p0, p1)
            rows[setting].append(
                EasyPairResult(
                    name=f"image {index + 1}",
                    layers_run=m.layers_run,
                    num_matches=len(m),
                    num_correct=int((errors <= correct_px).sum()),
                    errors=(corner_error_px(estimate, identity, f0.image_size),),
                )
            )
    return EarlyExitReport(
        "an image against itself with noise",
        ("corner error px",),
        tuple(rows["full"]),
        tuple(rows["adaptive"]),
        correct_px,
    )


def evaluate_consecutive_frames(
    sim: Any,
    extractor: ExtractFn,
    full: MatchFn,
    adaptive: MatchFn,
    *,
    starts: Sequence[int] = tuple(range(0, 450, 45)),
    correct_px: float = 3.0,
) -> EarlyExitReport:
    """Frames (i, i+1) of the synthetic rig for i in ``starts``; ``sim`` is a SimConfig.

    A match is correct when its first keypoint, lifted with the frame's exact depth and moved
    by the ground-truth relative pose, projects within ``correct_px`` of the second. The
    relative pose is estimated from the matches as the tracker does (PnP-RANSAC on depth,
    then robust refinement).
    """
    rig = SimRig(sim)
    rows: dict[str, list[EasyPairResult]] = {"full": [], "adaptive": []}
    for start in starts:
        frame0, frame1 = rig.frame(start), rig.frame(start + 1)
        if frame0.depth_m is None:
            raise InputError("evaluate_consecutive_frames needs an RGB-D rig (sim.sensor=rgbd)")
        k = frame0.camera.K
        cam1_from_cam0 = invert_pose(rig.world_from_cam(start + 1)) @ rig.world_from_cam(start)
        f0, f1 = extractor(frame0.image), extractor(frame1.image)
        for setting, matcher in (("full", full), ("adaptive", adaptive)):
            m = matcher(f0, f1)
            p0 = f0.keypoints[m.indices[:, 0]].astype(np.float64)
            p1 = f1.keypoints[m.indices[:, 1]].astype(np.float64)
            depth = sample_depth(frame0.depth_m, p0).astype(np.float64)
            valid = depth > 0
            cam0 = unproject(k, p0[valid], depth[valid])
            pixels1 = p1[valid]
            moved = project(k, transform_points(cam1_from_cam0, cam0))
            correct = int((np.linalg.norm(moved - pixels1, axis=1) <= correct_px).sum())
            errors = (math.inf, math.inf)
            solution = solve_pnp_ransac(cam0, pixels1, k, threshold_px=2.0, iterations=500, seed=0)
            if solution is not None:
                estimate = refine_pose(solution[0], cam0, pixels1, k).cam_from_world
                errors = (
                    rotation_angle_deg(estimate[:3, :3] @ cam1_from_cam0[:3, :3].T),
                    float(np.linalg.norm(estimate[:3, 3] - cam1_from_cam0[:3, 3])),
                )
            rows[setting].append(
                EasyPairResult(f"frames {start}-{start + 1}", m.layers_run, len(m), correct, errors)
            )
    return EarlyExitReport(
        "consecutive synthetic frames",
        ("rotation deg", "translation m"),
        tuple(rows["full"]),
        tuple(rows["adaptive"]),
        correct_px,
    )


__all__ = [
    "THRESHOLDS_PX",
    "EarlyExitReport",
    "EasyPairResult",
    "HPatchesSequence",
    "MatchingReport",
    "MutualNearestNeighbour",
    "PairResult",
    "corner_error_px",
    "estimate_homography",
    "evaluate_consecutive_frames",
    "evaluate_hpatches",
    "evaluate_pair",
    "evaluate_self_pairs",
    "mutual_nearest_neighbours",
    "read_hpatches",
    "refined_homography",
    "reprojection_errors_px",
]
