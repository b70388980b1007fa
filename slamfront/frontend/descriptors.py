"""Descriptor distances shared by the tracker's searches: float (cosine) and binary (Hamming)."""

from __future__ import annotations

import numpy as np


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
