"""Multi-session maps: localise a new run in a saved map, and turn a run into a map file.

:class:`MapLocalizer` answers "where is this camera in the saved map?" by appearance (the
saved keyframes' global descriptors) and geometry (matcher + PnP against their 3-D points),
so a run started with ``--load-map`` is expressed in the saved map's frame from its first
tracked frame. :func:`map_records` gathers a run's keyframes (on their optimised poses), its
landmarks and the pose-graph edges, on top of the map it was started from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from slamfront.backend.loop_closure import verify_loop
from slamfront.backend.map_store import Landmarks, SavedMap
from slamfront.backend.place_recognition import PlaceIndex, vlad
from slamfront.backend.vocabulary import Vocabulary
from slamfront.geometry import transform_points
from slamfront.types import CameraModel, Features, Keyframe, MapPlacement, OptimizedPoses

if TYPE_CHECKING:
    from slamfront.config import LoopClosureConfig
    from slamfront.frontend.base import Matcher


class MapLocalizer:
    """``localizer(features, camera) -> MapPlacement | None``: the camera in the frame of the
    saved map (of the saved maps) whose keyframe recognised it."""

    def __init__(
        self,
        keyframes: tuple[Keyframe, ...],
        matcher: Matcher,
        vocabulary: Vocabulary,
        config: LoopClosureConfig,
    ) -> None:
        self._matcher = matcher
        self._vocabulary = vocabulary
        self._config = config
        self._keyframes = {kf.keyframe_id: kf for kf in keyframes}
        self._index = PlaceIndex(vocabulary.global_dim, capacity=max(16, len(keyframes)))
        for kf in keyframes:
            descriptor = kf.global_descriptor
            if descriptor is None or descriptor.shape != (vocabulary.global_dim,):
                descriptor = vlad(vocabulary, kf.features.descriptors)
            self._index.add(kf.keyframe_id, descriptor)

    def __call__(self, features: Features, camera: CameraModel) -> MapPlacement | None:
        if len(features) == 0 or not self._keyframes:
            return None
        query = Keyframe(
            keyframe_id=-1,
            frame_index=-1,
            stamp_ns=0,
            world_from_cam=np.eye(4),
            camera=camera,
            features=features,
            points_cam_m=np.full((len(features), 3), np.nan),
        )
        places = self._index.query(
            vlad(self._vocabulary, features.descriptors), top_k=self._config.candidates
        )
        for place in places:
            if place.similarity < self._config.min_similarity:
                break
            candidate = self._keyframes[place.keyframe_id]
            found = verify_loop(query, candidate, self._matcher, self._config)
            if found is not None:
                return MapPlacement(
                    candidate.world_from_cam @ found.match_from_query,
                    candidate.map_id,
                    candidate.keyframe_id,
                    found.match_from_query,
                    found.information,
                )
        return None


def map_records(
    prior: SavedMap | None,
    keyframes: dict[int, Keyframe],
    poses: OptimizedPoses | None,
) -> tuple[list[Keyframe], Landmarks]:
    """Keyframes on their optimised poses, in the maps they ended in after merges, and the
    landmarks they observe, after those of ``prior`` (kept as saved). A landmark of this run
    sits where its newest observing keyframe puts it and takes that keypoint's descriptor."""
    optimized = dict(zip(poses.keyframe_ids, poses.world_from_cam, strict=True)) if poses else {}
    map_ids = dict(zip(poses.keyframe_ids, poses.map_ids, strict=True)) if poses else {}
    prior_ids = {kf.keyframe_id for kf in prior.keyframes} if prior is not None else set()
    out = [
        replace(kf, map_id=map_ids.get(kf.keyframe_id, kf.map_id))
        for kf in (prior.keyframes if prior is not None else ())
    ]
    new = [
        replace(
            kf,
            world_from_cam=optimized.get(kf.keyframe_id, kf.world_from_cam),
            map_id=map_ids.get(kf.keyframe_id, kf.map_id),
        )
        for kid, kf in sorted(keyframes.items())
        if kid not in prior_ids
    ]
    out.extend(new)
    base = prior.landmarks if prior is not None else Landmarks.empty()
    rows: dict[int, int] = {}
    positions: list[np.ndarray] = []
    descriptors: list[np.ndarray] = []
    observations: list[tuple[int, int, int]] = []
    for kf in new:
        if kf.landmark_ids is None:
            continue
        points_world = transform_points(kf.world_from_cam, kf.points_cam_m)
        for index in np.flatnonzero((kf.landmark_ids >= 0) & np.isfinite(points_world[:, 0])):
            landmark = int(kf.landmark_ids[index])
            if landmark not in rows:
                rows[landmark] = len(base) + len(positions)
                positions.append(points_world[index])
                descriptors.append(kf.features.descriptors[index])
            else:  # newest observation wins
                row = rows[landmark] - len(base)
                positions[row] = points_world[index]
                descriptors[row] = kf.features.descriptors[index]
            observations.append((rows[landmark], kf.keyframe_id, int(index)))
    if not positions:
        return out, base
    new_positions = np.array(positions)
    new_descriptors = np.array(descriptors)
    all_descriptors = None
    if base.descriptors is not None or len(base) == 0:
        all_descriptors = (
            new_descriptors
            if len(base) == 0
            else np.concatenate([base.descriptors, new_descriptors])
        )
    landmarks = Landmarks(
        positions_world_m=np.concatenate([base.positions_world_m, new_positions]),
        descriptors=all_descriptors,
        colors_rgb=None,
        observations=np.concatenate(
            [base.observations, np.array(observations, np.int64).reshape(-1, 3)]
        ),
    )
    return out, landmarks
