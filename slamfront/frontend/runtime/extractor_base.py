"""What every extractor runtime returns: the fixed-size outputs of the detector graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

INPUT_NAME = "image"
OUTPUT_NAMES = ("keypoints", "scores", "descriptors", "valid")


@dataclass(frozen=True, eq=False)
class DetectorOutputs:
    """One image's detector outputs, in the network input's pixels.

    keypoints (K, 2) float32 (x, y); scores (K,) float32, sorted descending; descriptors
    (K, D) float32 L2-normalised; valid (K,) bool — only valid rows are detections.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    valid: np.ndarray

    @staticmethod
    def of(outputs: list[np.ndarray] | tuple[np.ndarray, ...]) -> DetectorOutputs:
        keypoints, scores, descriptors, valid = outputs
        return DetectorOutputs(
            keypoints=np.asarray(keypoints, dtype=np.float32),
            scores=np.asarray(scores, dtype=np.float32),
            descriptors=np.asarray(descriptors, dtype=np.float32),
            valid=np.asarray(valid, dtype=bool),
        )


class DetectorRuntime(Protocol):
    """``network_input`` (1, C, H, W) float32 in [0, 1] -> DetectorOutputs."""

    def __call__(self, network_input: np.ndarray) -> DetectorOutputs: ...
