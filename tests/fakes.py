"""Test doubles shared by several test modules (imported as ``tests.fakes``; pytest puts the
repository root on the path): a sink that ignores everything, and a feature-level extractor
and matcher for tracking without images."""

from __future__ import annotations

import numpy as np

from slamfront.types import Features, Frame, Keyframe, Matches, OptimizedPoses, TrackResult


class IgnoringSink:
    """A sink whose every method does nothing: a test's sink overrides the ones it watches."""

    def on_result(self, frame: Frame, result: TrackResult) -> None:
        return None

    def on_keyframe(self, keyframe: Keyframe) -> None:
        return None

    def on_optimized(self, poses: OptimizedPoses) -> None:
        return None

    def close(self) -> None:
        return None


class FakeExtractor:
    """Features looked up by the frame's image: its first two pixels tag it (first * 256 +
    second); the test fills ``by_tag``."""

    def __init__(self) -> None:
        self.by_tag: dict[int, Features] = {}

    def __call__(self, image: np.ndarray) -> Features:
        return self.by_tag[int(image[0, 0]) * 256 + int(image[0, 1])]


def mutual_nn_matches(f0: Features, f1: Features, min_cosine: float) -> Matches:
    """Mutual nearest neighbours of the descriptors with a cosine over ``min_cosine``."""
    if len(f0) == 0 or len(f1) == 0:
        return Matches.empty()
    sim = f0.descriptors @ f1.descriptors.T
    best1 = sim.argmax(1)
    best0 = sim.argmax(0)
    i0 = np.flatnonzero((best0[best1] == np.arange(len(f0))) & (sim.max(1) > min_cosine))
    return Matches(np.stack([i0, best1[i0]], 1).astype(np.int64), sim.max(1)[i0].astype(np.float32))


def nn_matcher(f0: Features, f1: Features) -> Matches:
    """Mutual nearest neighbours with a cosine over 0.9 (the tracker tests' matcher)."""
    return mutual_nn_matches(f0, f1, 0.9)
