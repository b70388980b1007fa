"""The stage contracts shared by every runtime."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from slamfront.types import Features, Matches


class Extractor(Protocol):
    """``image`` (HxW uint8 grey or HxWx3 uint8 RGB) -> Features in that image's pixels."""

    def __call__(self, image: np.ndarray) -> Features: ...


class Matcher(Protocol):
    """Two feature sets -> Matches with indices into the first and second."""

    def __call__(self, features0: Features, features1: Features) -> Matches: ...
