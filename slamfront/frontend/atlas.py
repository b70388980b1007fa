"""Every keyframe the tracker made, in every map: what relocalisation searches when the local
window no longer recognises the view."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.backend.place_recognition import PlaceIndex, vlad
from slamfront.backend.vocabulary import Vocabulary
from slamfront.frontend.local_map import rescaled_keyframe
from slamfront.types import Features, Keyframe, OptimizedPoses


class KeyframeAtlas:
    """The latest record of each keyframe (pose corrected by the back end, landmarks as the
    window last refined them) and, with a vocabulary, a place index over their global
    descriptors. Owned by the tracker's thread."""

    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self._vocabulary = vocabulary
        self._index = PlaceIndex(vocabulary.global_dim) if vocabulary is not None else None
        self._keyframes: dict[int, Keyframe] = {}

    def __len__(self) -> int:
        return len(self._keyframes)

    def store(self, keyframe: Keyframe) -> Keyframe:
        """Add a keyframe or replace its record; returns it with its global descriptor (when
        there is a vocabulary), so that the back end need not compute it again."""
        known = self._keyframes.get(keyframe.keyframe_id)
        if known is not None and known.global_descriptor is not None:
            keyframe = replace(keyframe, global_descriptor=known.global_descriptor)
        elif self._vocabulary is not None and self._index is not None:
            if keyframe.global_descriptor is None:
                descriptor = vlad(self._vocabulary, keyframe.features.descriptors)
                keyframe = replace(keyframe, global_descriptor=descriptor)
            assert keyframe.global_descriptor is not None
            self._index.add(keyframe.keyframe_id, keyframe.global_descriptor)
        self._keyframes[keyframe.keyframe_id] = keyframe
        return keyframe

    def move(self, poses: OptimizedPoses) -> None:
        """Keyframes take their corrected poses (and maps their merged ids)."""
        map_ids = poses.map_ids if poses.map_ids else (None,) * len(poses.keyframe_ids)
        for keyframe_id, world_from_cam, map_id in zip(
            poses.keyframe_ids, poses.world_from_cam, map_ids, strict=True
        ):
            known = self._keyframes.get(keyframe_id)
            if known is not None:
                self._keyframes[keyframe_id] = replace(
                    known,
                    world_from_cam=np.array(world_from_cam),
                    map_id=known.map_id if map_id is None else map_id,
                )

    def after(self, keyframe_id: int) -> list[Keyframe]:
        """The keyframes made after ``keyframe_id``, oldest first."""
        return [self._keyframes[i] for i in sorted(self._keyframes) if i > keyframe_id]

    def rescale(self, map_id: int, scale: float) -> None:
        """The keyframes of ``map_id`` scaled about its origin (a monocular map made metric)."""
        for keyframe_id, known in self._keyframes.items():
            if known.map_id == map_id:
                self._keyframes[keyframe_id] = rescaled_keyframe(known, scale)

    def candidates(self, features: Features, exclude: set[int], top_k: int) -> list[Keyframe]:
        """Keyframes that may see what ``features`` see, most similar first (newest first
        without a vocabulary), at most ``top_k``, none of ``exclude``."""
        if self._index is not None and self._vocabulary is not None:
            descriptor = vlad(self._vocabulary, features.descriptors)
            places = self._index.query(descriptor, top_k=top_k + len(exclude))
            ids = [place.keyframe_id for place in places]
        else:
            ids = sorted(self._keyframes, reverse=True)
        return [self._keyframes[i] for i in ids if i not in exclude][:top_k]

    def around(self, keyframe_id: int, count: int) -> list[Keyframe]:
        """``keyframe_id`` and the keyframes of its map made nearest before and after it (they
        saw the same place), at most ``count``, oldest first, ``keyframe_id`` last."""
        centre = self._keyframes[keyframe_id]
        same_map = sorted(
            (k for k in self._keyframes.values() if k.map_id == centre.map_id),
            key=lambda k: (abs(k.keyframe_id - keyframe_id), k.keyframe_id),
        )
        chosen = sorted(same_map[:count], key=lambda k: k.keyframe_id)
        chosen.remove(centre)
        return [*chosen, centre]
