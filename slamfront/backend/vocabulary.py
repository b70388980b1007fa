"""Visual vocabularies for VLAD place recognition: a record, its loader, its k-means trainer
and the per-word residuals a VLAD vector is made of (the trainer centres them).

A vocabulary turns one extractor's local descriptors into a common working space and holds
the cluster centres ("words") of that space:

- float descriptors (XFeat 64-d, DISK 128-d, SuperPoint 256-d) are L2-normalised;
- binary descriptors (ORB, uint8 bytes) become +-1 vectors of their bits;
- an optional linear projection (PCA, trained with the words) maps them to ``dim`` dimensions,
  after which rows are L2-normalised again.

Vocabularies for the project's extractors ship inside the package
(``slamfront/backend/vocabularies/<name>.npz``), trained once by
``tools/train_vocabulary.py`` on real photographs; nothing is read from outside the package
at run time. Shipping them (instead of training per run) keeps global descriptors stable from
the first keyframe on and comparable across sessions, which saved maps need.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from slamfront.errors import ConfigError, InputError

_PACKAGED = "vocabularies"
_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Words of one descriptor kind.

    name: the descriptor kind (``xfeat``, ``disk``, ``orb``, ...);
    centroids: (K, D) float32 unit rows in the working space;
    input_dim: descriptor width the vocabulary takes (bytes for binary descriptors);
    binary: whether inputs are uint8 bit strings;
    input_mean: (input_dim or bits,) float32 subtracted before ``projection`` (None: none);
    projection: (input_dim or bits, D) float32 (None: the working space is the input space);
    vlad_mean: (K * D,) float32 mean of the intra-normalised VLAD vectors of the training
    images, subtracted before the final normalisation (centres similarities of unrelated
    places near 0); None: no centring.
    """

    name: str
    centroids: np.ndarray
    input_dim: int
    binary: bool = False
    input_mean: np.ndarray | None = None
    projection: np.ndarray | None = None
    vlad_mean: np.ndarray | None = None

    @property
    def num_words(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def global_dim(self) -> int:
        """Length of a VLAD vector built on this vocabulary."""
        return int(self.centroids.size)

    @property
    def vocabulary_id(self) -> str:
        """``name-<sha256 prefix>`` of the contents; saved maps record it."""
        digest = hashlib.sha256()
        for array in (self.centroids, self.input_mean, self.projection, self.vlad_mean):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(f"{self.input_dim}:{self.binary}".encode())
        return f"{self.name}-{digest.hexdigest()[:12]}"

    def working_space(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, input_dim) descriptors -> (N, D) float32 unit rows (zero rows stay zero)."""
        desc = np.asarray(descriptors)
        if desc.ndim != 2 or desc.shape[1] != self.input_dim:
            raise InputError(
                f"vocabulary {self.name!r} takes (N, {self.input_dim}) descriptors, "
                f"got shape {desc.shape}"
            )
        if self.binary != (desc.dtype == np.uint8):
            expected = "uint8 binary" if self.binary else "float"
            raise InputError(
                f"vocabulary {self.name!r} takes {expected} descriptors, got {desc.dtype}"
            )
        x = _input_space(desc, self.binary)
        if self.projection is not None:
            if self.input_mean is not None:
                x = x - self.input_mean
            x = x @ self.projection
        return _unit_rows(x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as ``.npz`` (what :func:`load_vocabulary` reads)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(_FORMAT_VERSION),
            "name": np.array(self.name),
            "centroids": self.centroids.astype(np.float32),
            "input_dim": np.array(self.input_dim),
            "binary": np.array(self.binary),
        }
        if self.input_mean is not None:
            arrays["input_mean"] = self.input_mean.astype(np.float32)
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        if self.vlad_mean is not None:
            arrays["vlad_mean"] = self.vlad_mean.astype(np.float32)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]


def packaged_vocabularies() -> list[str]:
    """Names of the vocabularies shipped with slamfront."""
    folder = resources.files("slamfront.backend").joinpath(_PACKAGED)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".npz")] for p in folder.iterdir() if p.name.endswith(".npz"))


def load_vocabulary(name_or_path: str | os.PathLike[str]) -> Vocabulary:
    """A packaged vocabulary by name (``xfeat``, ``disk``, ``orb``) or an ``.npz`` file."""
    text = str(name_or_path)
    if text.endswith(".npz"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"vocabulary file not found: {path}")
        with open(path, "rb") as handle:
            return _from_npz(handle, str(path))
    resource = resources.files("slamfront.backend").joinpath(_PACKAGED, f"{text}.npz")
    if not resource.is_file():
        known = ", ".join(packaged_vocabularies()) or "(none)"
        raise ConfigError(
            f"no packaged vocabulary for {text!r} (packaged: {known}); train one with "
            f"tools/train_vocabulary.py and set backend.loop_closure.vocabulary=FILE.npz"
        )
    with resource.open("rb") as handle:
        return _from_npz(handle, f"packaged vocabulary {text!r}")


def train_vocabulary(
    descriptor_sets: Sequence[np.ndarray],
    name: str,
    num_words: int = 16,
    projection_dim: int | None = None,
    iterations: int = 25,
    seed: int = 0,
) -> Vocabulary:
    """Spherical k-means (k-means++ start) on the descriptors of many images, one array each.

    ``projection_dim``: first reduce the working space to this many PCA dimensions (used for
    binary and wide descriptors so that every vocabulary gives VLAD vectors of similar size).
    The mean VLAD vector of the images is kept for centring. Deterministic for a seed.
    """
    sets = [np.asarray(d) for d in descriptor_sets if np.asarray(d).shape[0] > 0]
    if len(sets) < 2:
        raise InputError("need descriptors of at least 2 images to train a vocabulary")
    widths = {(d.ndim, d.shape[-1], d.dtype == np.uint8) for d in sets}
    if len(widths) != 1 or next(iter(widths))[0] != 2:
        raise InputError(f"descriptor arrays must all be (N, D) of one kind, got {widths}")
    desc = np.concatenate(sets)
    if desc.shape[0] < num_words:
        raise InputError(f"need at least {num_words} descriptors, got {desc.shape[0]}")
    binary = desc.dtype == np.uint8
    x = _input_space(desc, binary)
    mean: np.ndarray | None = None
    projection: np.ndarray | None = None
    if projection_dim is not None and projection_dim < x.shape[1]:
        mean = x.mean(axis=0).astype(np.float32)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        projection = vt[:projection_dim].T.astype(np.float32)
        x = _unit_rows((x - mean) @ projection)
    rng = np.random.default_rng(seed)
    centroids = _kmeans_pp(x, num_words, rng)
    for _ in range(iterations):
        assign = np.argmax(x @ centroids.T, axis=1)
        updated = np.zeros_like(centroids)
        np.add.at(updated, assign, x)
        empty = np.linalg.norm(updated, axis=1) < 1e-9
        if empty.any():  # re-seed empty words on the worst-served descriptors
            worst = np.argsort((x * centroids[assign]).sum(1))[: int(empty.sum())]
            updated[empty] = x[worst]
        updated = _unit_rows(updated)
        converged = np.allclose(updated, centroids, atol=1e-7)
        centroids = updated
        if converged:
            break
    vocabulary = Vocabulary(
        name=name,
        centroids=centroids.astype(np.float32),
        input_dim=int(desc.shape[1]),
        binary=bool(binary),
        input_mean=mean,
        projection=projection,
    )
    vlad_mean = np.mean([intra_normalised_residuals(vocabulary, d) for d in sets], axis=0)
    return dataclasses.replace(vocabulary, vlad_mean=vlad_mean.astype(np.float32))


def intra_normalised_residuals(vocabulary: Vocabulary, descriptors: np.ndarray) -> np.ndarray:
    """(global_dim,) per-word residual sums, signed-square-rooted and normalised per word."""
    words = vocabulary.centroids
    residuals = np.zeros_like(words)
    if np.asarray(descriptors).shape[0] == 0:
        return residuals.reshape(-1)
    x = vocabulary.working_space(descriptors)
    assign = np.argmax(x @ words.T, axis=1)
    np.add.at(residuals, assign, x - words[assign])
    residuals = np.sign(residuals) * np.sqrt(np.abs(residuals))
    norms = np.linalg.norm(residuals, axis=1, keepdims=True)
    residuals = np.where(norms > 1e-12, residuals / np.maximum(norms, 1e-12), 0.0)
    return residuals.reshape(-1).astype(np.float32)


def _input_space(desc: np.ndarray, binary: bool) -> np.ndarray:
    if binary:
        return np.unpackbits(desc, axis=1).astype(np.float32) * 2.0 - 1.0
    return _unit_rows(desc.astype(np.float32, copy=False))


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [x[rng.integers(x.shape[0])]]
    best = np.full(x.shape[0], np.inf, np.float32)
    for _ in range(1, k):
        best = np.minimum(best, np.maximum(0.0, 2.0 - 2.0 * (x @ centroids[-1])))
        total = float(best.sum())
        pick = rng.choice(x.shape[0], p=best / total) if total > 0 else rng.integers(x.shape[0])
        centroids.append(x[pick])
    return np.stack(centroids).astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _from_npz(handle: IO[bytes], origin: str) -> Vocabulary:
    try:
        with np.load(handle, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != _FORMAT_VERSION:
                raise ConfigError(f"{origin}: vocabulary format {version}, expected 1")
            return Vocabulary(
                name=str(data["name"]),
                centroids=np.asarray(data["centroids"], np.float32),
                input_dim=int(data["input_dim"]),
                binary=bool(data["binary"]),
                input_mean=data.get("input_mean"),
                projection=data.get("projection"),
                vlad_mean=data.get("vlad_mean"),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"{origin}: not a readable vocabulary ({exc})") from exc
