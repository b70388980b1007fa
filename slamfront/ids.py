"""Lookups by the ids records carry (landmark ids; a negative id means "none"), shared by the
stages that hold landmarks and the sinks that draw them."""

from __future__ import annotations

import numpy as np


def rows_in(sorted_ids: np.ndarray, landmark_ids: np.ndarray) -> np.ndarray:
    """Row of each of ``landmark_ids`` in the ascending ``sorted_ids``, -1 where it is not
    there (and for negative ids, which mean "none")."""
    rows = np.searchsorted(sorted_ids, landmark_ids)
    rows = np.minimum(rows, max(len(sorted_ids) - 1, 0))
    found = (landmark_ids >= 0) & (len(sorted_ids) > 0)
    if len(sorted_ids):
        found &= sorted_ids[rows] == landmark_ids
    return np.where(found, rows, -1)
