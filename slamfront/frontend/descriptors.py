"""Descriptor distances shared by the tracker's searches: float (cosine) and binary (Hamming),
and the pairing of projected points with keypoints near them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from slamfront.types import CameraModel, Features


def is_binary(descriptors: np.ndarray) -> bool:
    return descriptors.dtype == np.uint8


def pair_distance(desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
    """Row-wise distance of descriptor arrays (broadcast against each other over the leading
    axes), in [0, 1] for binary (share of differing bits) and [0, 2] for float (1 - cosine of
    L2-normalised vectors)."""
    if is_binary(desc_a):
        bits = desc_a.shape[-1] * 8
        return np.bitwise_count(desc_a ^ desc_b).sum(-1, dtype=np.int32) / bits
    # one pass, without the broadcast product array
    a = desc_a.astype(np.float32, copy=False)
    b = desc_b.astype(np.float32, copy=False)
    dot = np.einsum("...d,...d->...", a, b)
    out: np.ndarray = 1.0 - dot
    return out


def cross_distance(desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
    """(Na, Nb) distance matrix, same scale as :func:`pair_distance`."""
    if is_binary(desc_a):
        bits = desc_a.shape[-1] * 8
        bits_a = np.unpackbits(desc_a, axis=1).astype(np.float32)
        bits_b = np.unpackbits(desc_b, axis=1).astype(np.float32)
        same = bits_a @ bits_b.T + (1.0 - bits_a) @ (1.0 - bits_b).T
        return (bits - same) / bits
    return 1.0 - desc_a.astype(np.float32) @ desc_b.astype(np.float32).T


def in_image(pixels: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(N,) whether each of the (N, 2) ``pixels`` lies inside ``camera``'s image."""
    inside: np.ndarray = (
        (pixels[:, 0] >= 0)
        & (pixels[:, 0] < camera.width_px)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 1] < camera.height_px)
    )
    return inside


def pair_near_projections(
    projected_px: np.ndarray,
    point_descriptors: np.ndarray,
    features: Features,
    *,
    radius_px: float,
    max_distance: float,
    ratio: float,
    taken: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points projected at ``projected_px`` (N, 2) paired with keypoints of ``features``: of
    the four keypoints nearest a projection within ``radius_px`` (and not ``taken``, a mask
    over the keypoints), the one of the closest descriptor, if that distance is at most
    ``max_distance`` and ``ratio`` times the second closest's; one point per keypoint (the
    closest descriptor). Returns (point indices, keypoint indices)."""
    tree = cKDTree(features.keypoints.astype(np.float64))
    dist_px, nearby = tree.query(projected_px, k=4, distance_upper_bound=radius_px)
    valid = np.isfinite(dist_px)
    nearby = np.where(valid, nearby, 0)
    distance = pair_distance(point_descriptors[:, None, :], features.descriptors[nearby])
    if taken is not None:
        valid &= ~taken[nearby]
    distance = np.where(valid, distance, np.inf)
    order = np.argsort(distance, axis=1)
    best = np.take_along_axis(distance, order[:, :1], 1)[:, 0]
    second = np.take_along_axis(distance, order[:, 1:2], 1)[:, 0]
    keypoint = np.take_along_axis(nearby, order[:, :1], 1)[:, 0]
    points = np.flatnonzero((best <= max_distance) & (best <= ratio * second))
    keypoint, best = keypoint[points], best[points]
    # one point per keypoint: keep the closest descriptor
    by_keypoint = np.lexsort((best, keypoint))
    first = np.ones(by_keypoint.size, bool)
    first[1:] = keypoint[by_keypoint][1:] != keypoint[by_keypoint][:-1]
    chosen = by_keypoint[first]
    return points[chosen], keypoint[chosen]
