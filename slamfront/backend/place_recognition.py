"""Place recognition by appearance: a VLAD global descriptor per keyframe and a top-k index.

The global descriptor depends only on the keyframe's local descriptors, never on its pose, so
a place is recognised however far the trajectory has drifted. VLAD (Jegou et al. 2010) with
the usual refinements: each local descriptor is assigned to its nearest word, the residuals to
the word are summed per word, signed-square-rooted (burstiness), normalised per word
("intra-normalisation", Arandjelovic & Zisserman 2013) and the whole vector L2-normalised, so
the similarity of two keyframes is a dot product in [-1, 1].

:class:`PlaceIndex` keeps the vectors in one contiguous float32 matrix; a query is a single
matrix-vector product (in row blocks) plus a partial sort
(``python -m slamfront.bench.place_recognition`` prints its medians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slamfront.backend.vocabulary import Vocabulary, intra_normalised_residuals
from slamfront.errors import InputError

_BLOCK_ROWS = 2048


def vlad(vocabulary: Vocabulary, descriptors: np.ndarray) -> np.ndarray:
    """(global_dim,) float32 unit VLAD vector of one image's local descriptors.

    An image without descriptors gives the zero vector (similar to nothing).
    """
    if np.asarray(descriptors).shape[0] == 0:
        return np.zeros(vocabulary.global_dim, np.float32)
    flat = intra_normalised_residuals(vocabulary, descriptors)
    if vocabulary.vlad_mean is not None:
        flat = flat - vocabulary.vlad_mean
    total = float(np.linalg.norm(flat))
    return (flat / total if total > 1e-12 else np.zeros_like(flat)).astype(np.float32)


@dataclass(frozen=True)
class PlaceMatch:
    """One answer of :meth:`PlaceIndex.query`: a keyframe and its similarity in [-1, 1]."""

    keyframe_id: int
    similarity: float


class PlaceIndex:
    """Global descriptors of keyframes, queried by dot product. Owned by one thread."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        if dim <= 0:
            raise InputError(f"descriptor dimension must be positive, got {dim}")
        self._dim = dim
        self._matrix = np.zeros((max(capacity, 16), dim), np.float32)
        self._ids = np.zeros(max(capacity, 16), np.int64)
        self._count = 0
        self._known: set[int] = set()

    def __len__(self) -> int:
        return self._count

    def add(self, keyframe_id: int, descriptor: np.ndarray) -> None:
        """Store a keyframe's (dim,) global descriptor (a copy)."""
        vector = self._checked(descriptor)
        if int(keyframe_id) in self._known:
            raise InputError(f"keyframe {keyframe_id} is already in the place index")
        if self._count == self._matrix.shape[0]:
            grow = self._matrix.shape[0]
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix[:grow])])
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids[:grow])])
        self._matrix[self._count] = vector
        self._ids[self._count] = keyframe_id
        self._count += 1
        self._known.add(int(keyframe_id))

    def query(
        self, descriptor: np.ndarray, top_k: int, max_keyframe_id: int | None = None
    ) -> tuple[PlaceMatch, ...]:
        """The ``top_k`` most similar keyframes, best first, among ids <= ``max_keyframe_id``."""
        vector = self._checked(descriptor)
        if self._count == 0 or top_k <= 0:
            return ()
        scores = np.empty(self._count, np.float32)
        # Row blocks: OpenBLAS runs a small matrix-vector product on one thread, which on a
        # busy machine is much faster than its multi-threaded path for the whole matrix.
        for start in range(0, self._count, _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, self._count)
            np.dot(self._matrix[start:stop], vector, out=scores[start:stop])
        ids = self._ids[: self._count]
        if max_keyframe_id is not None:
            scores = np.where(ids <= max_keyframe_id, scores, -np.inf)
        k = min(top_k, self._count)
        best = np.argpartition(-scores, k - 1)[:k] if k < self._count else np.arange(self._count)
        best = best[np.argsort(-scores[best], kind="stable")]
        return tuple(
            PlaceMatch(int(ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])
        )

    def _checked(self, descriptor: np.ndarray) -> np.ndarray:
        vector = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self._dim:
            raise InputError(
                f"global descriptor has {vector.shape[0]} values, the index holds {self._dim}"
            )
        return vector
