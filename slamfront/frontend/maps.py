"""The tracker's maps: the local window it tracks in, the mapper that adds keyframes to it,
and the atlas of every keyframe of every map, which relocalisation searches and the back end's
corrections move."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.backend.vocabulary import Vocabulary
from slamfront.config import TrackerConfig
from slamfront.frontend.atlas import KeyframeAtlas
from slamfront.frontend.keyframes import median_depth_m, need_keyframe
from slamfront.frontend.local_map import LocalMap, MapKeyframe, rescaled_keyframe
from slamfront.frontend.mapping import KeyframeMapper, refresh_keyframe
from slamfront.frontend.records import FrameInput, Outcome, PoseFit
from slamfront.geometry import invert_pose, orthonormalized
from slamfront.types import Keyframe, OptimizedPoses


class TrackerMaps:
    """The window, its mapper and the atlas, kept consistent: maps are numbered from
    ``first_map_id``, keyframes from ``first_keyframe_id``. Owned by the tracker's thread."""

    def __init__(
        self,
        config: TrackerConfig,
        *,
        first_keyframe_id: int,
        first_map_id: int,
        vocabulary: Vocabulary | None,
    ) -> None:
        self._config = config
        self._mapper = KeyframeMapper(config, first_keyframe_id)
        self._mapper.use(LocalMap(config.window.keyframes), first_map_id)
        self._atlas = KeyframeAtlas(vocabulary)
        self._made = first_map_id + 1

    @property
    def window(self) -> LocalMap:
        """The local map of recent keyframes the tracker tracks in (the mapper's)."""
        return self._mapper.lmap

    @property
    def atlas(self) -> KeyframeAtlas:
        return self._atlas

    @property
    def mapper(self) -> KeyframeMapper:
        return self._mapper

    @property
    def map_id(self) -> int:
        """The map the window belongs to."""
        return self._mapper.map_id

    @property
    def made(self) -> int:
        """Maps started so far (the first one included)."""
        return self._made

    def use(self, window: LocalMap, map_id: int) -> None:
        """Track in ``window``, whose keyframes belong to ``map_id``."""
        self._mapper.use(window, map_id)

    def leave(self) -> None:
        """An empty window (the old one's keyframes stay in the atlas)."""
        fresh = LocalMap(self._config.window.keyframes, self.window.next_landmark_id)
        self.use(fresh, self.map_id)

    def begin_new(self) -> None:
        """The next keyframe starts a new map."""
        self.use(self.window, self._made)

    def started(self, keyframe: Keyframe | None) -> None:
        """Count the map a first keyframe started."""
        if keyframe is not None and self.map_id == self._made:
            self._made += 1

    def keyframes(self) -> list[Keyframe]:
        """The keyframes currently in the window, oldest first."""
        return [entry.keyframe for entry in self.window.keyframes]

    def keyframes_after(self, keyframe_id: int) -> list[Keyframe]:
        """The keyframes made after ``keyframe_id``, oldest first, as the window holds them
        (those that left it as last stored)."""
        window = {e.keyframe.keyframe_id: e.keyframe for e in self.window.keyframes}
        stored = {k.keyframe_id: k for k in self._atlas.after(keyframe_id)}
        stored.update((i, k) for i, k in window.items() if i > keyframe_id)
        return [stored[i] for i in sorted(stored)]

    def store_window(self) -> None:
        """The window's keyframe records, refreshed with the map, into the atlas."""
        for entry in self.window.keyframes:
            refresh_keyframe(self.window, entry)
            entry.keyframe = self._atlas.store(entry.keyframe)

    def extend(
        self,
        inp: FrameInput,
        world_from_cam: np.ndarray,
        fit: PoseFit,
        reference: MapKeyframe,
        *,
        frames_since_keyframe: int,
    ) -> Keyframe | None:
        """The tracked frame as a new keyframe when it needs one (see ``need_keyframe``)."""
        ref_ids = reference.landmark_ids
        tracked_ref = int(np.isin(fit.corr.landmark_ids, ref_ids[ref_ids >= 0]).sum())
        # the share is measured against the most any frame tracked of this keyframe, not
        # against all its landmarks: a detector never re-finds all of its keypoints
        reference.most_tracked = max(reference.most_tracked, tracked_ref)
        if not need_keyframe(
            self._config.keyframes,
            reference.world_from_cam,
            world_from_cam,
            tracked_reference_landmarks=tracked_ref,
            reference_landmarks=reference.most_tracked,
            frames_since_keyframe=frames_since_keyframe,
            reference_depth_m=median_depth_m(reference.keyframe.points_cam_m),
        ):
            return None
        return self._mapper.extend(inp, world_from_cam, fit, reference)

    def apply_optimized(self, poses: OptimizedPoses) -> np.ndarray | None:
        """Every keyframe of the atlas takes its corrected pose (and merged map); the window
        follows its newest corrected keyframe. Returns the window's correction
        (new_world_from_old_world), None when no window keyframe was corrected."""
        self._atlas.move(poses)
        rows = {keyframe_id: row for row, keyframe_id in enumerate(poses.keyframe_ids)}
        shared = [e for e in self.window.keyframes if e.keyframe.keyframe_id in rows]
        if not shared:
            return None
        row = rows[shared[-1].keyframe.keyframe_id]
        correction = self.reanchor(shared[-1].keyframe.keyframe_id, poses.world_from_cam[row])
        if poses.map_ids and poses.map_ids[row] != self.map_id:
            self._mapper.use(self.window, poses.map_ids[row])
            for entry in self.window.keyframes:
                entry.keyframe = replace(entry.keyframe, map_id=poses.map_ids[row])
        return correction

    def reanchor(self, keyframe_id: int, corrected_world_from_cam: np.ndarray) -> np.ndarray | None:
        """The window moved so that ``keyframe_id`` sits at its corrected pose; returns the
        correction (new_world_from_old_world), None if the keyframe left the window."""
        for entry in self.window.keyframes:
            if entry.keyframe.keyframe_id == keyframe_id:
                correction = orthonormalized(
                    corrected_world_from_cam @ invert_pose(entry.world_from_cam)
                )
                self.window.transform(correction)
                return correction
        return None

    def rescale(self, outcome: Outcome, scale: float) -> Outcome:
        """The current map (window and atlas) scaled about its origin, and the frame's
        outcome with it: the IMU made the monocular map metric."""
        self.window.rescale(scale)
        self._atlas.rescale(self.map_id, scale)
        world_from_cam = outcome.world_from_cam
        if world_from_cam is not None:
            world_from_cam = world_from_cam.copy()
            world_from_cam[:3, 3] *= scale
        keyframe = outcome.keyframe
        if keyframe is not None:
            made = {e.keyframe.keyframe_id: e.keyframe for e in self.window.keyframes}
            keyframe = made.get(keyframe.keyframe_id, rescaled_keyframe(keyframe, scale))
        return replace(outcome, world_from_cam=world_from_cam, keyframe=keyframe)
