"""The tracker's local map: the last few keyframes and the landmarks they observe.

Owned by one tracker and mutated only by it. Landmark ids grow monotonically; the arrays
stay sorted by id, so ``rows_of`` is a binary search.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from slamfront.geometry import invert_pose, orthonormalized, transform_points
from slamfront.ids import rows_in
from slamfront.types import Keyframe


@dataclass(eq=False)
class MapKeyframe:
    """A keyframe in the window and, per keypoint, the landmark it observes (-1: none)."""

    keyframe: Keyframe
    landmark_ids: np.ndarray
    depth_m: np.ndarray
    """(N,) float32 measured depth per keypoint (0 = none), for structure refinement."""
    depth_sigma_m: np.ndarray
    """(N,) float32 standard deviation of that depth measurement."""
    most_tracked: int = 0
    """Most of this keyframe's landmarks any later frame tracked: what is trackable here."""

    @property
    def world_from_cam(self) -> np.ndarray:
        return self.keyframe.world_from_cam

    @property
    def grey(self) -> np.ndarray | None:
        """The keyframe's grey image for sub-pixel alignment (None: refinement off)."""
        return self.keyframe.grey


@dataclass(frozen=True, eq=False)
class Anchors:
    """Per landmark row, the newest window keyframe that observes it: where sub-pixel
    alignment takes the landmark's appearance from."""

    slot: np.ndarray
    """(L,) int64 window position of that keyframe (-1: none)."""
    pixel: np.ndarray
    """(L, 2) where that keyframe observed the landmark."""


@dataclass(frozen=True, eq=False)
class WindowObservations:
    """Observations of landmarks by window keyframes, one row each."""

    slots: np.ndarray
    """(K,) int64 window position of the observing keyframe (0: oldest)."""
    rows: np.ndarray
    """(K,) int64 landmark row in the map's arrays."""
    cam_from_world: np.ndarray
    """(K, 4, 4) the observing keyframe's pose."""
    pixels: np.ndarray
    """(K, 2) where the keyframe saw the landmark."""
    depth_m: np.ndarray
    """(K,) depth the keyframe measured there (0: none)."""
    depth_sigma_m: np.ndarray
    """(K,) that depth's standard deviation."""


class LocalMap:
    def __init__(self, window: int, first_landmark_id: int = 0) -> None:
        """An empty window of ``window`` keyframes; new landmarks are numbered from
        ``first_landmark_id`` (ids stay unique over every map of a run)."""
        self.window = window
        self.keyframes: list[MapKeyframe] = []
        self.ids = np.zeros(0, np.int64)
        self.positions_world = np.zeros((0, 3))
        self.descriptors: np.ndarray | None = None
        self._next_id = first_landmark_id

    @staticmethod
    def of_keyframes(keyframes: list[Keyframe], window: int, first_landmark_id: int) -> LocalMap:
        """A window rebuilt from keyframe records (oldest first; the last is the reference):
        each landmark where the newest of them that observes it placed it."""
        lmap = LocalMap(window, first_landmark_id)
        positions: dict[int, np.ndarray] = {}
        descriptors: dict[int, np.ndarray] = {}
        for keyframe in keyframes:
            count = len(keyframe.features)
            ids = keyframe.landmark_ids
            ids = ids.copy() if ids is not None else np.full(count, -1, np.int64)
            points_world = transform_points(keyframe.world_from_cam, keyframe.points_cam_m)
            ids[~np.all(np.isfinite(points_world), axis=1)] = -1
            for row in np.flatnonzero(ids >= 0):
                positions[int(ids[row])] = points_world[row]
                descriptors[int(ids[row])] = keyframe.features.descriptors[row]
            zeros = np.zeros(count, np.float32)
            depth = keyframe.depth_m if keyframe.depth_m is not None else zeros
            sigma = keyframe.depth_sigma_m if keyframe.depth_sigma_m is not None else zeros
            lmap.keyframes.append(MapKeyframe(keyframe, ids, depth, sigma))
        if positions:
            order = sorted(positions)
            lmap.ids = np.array(order, np.int64)
            lmap.positions_world = np.array([positions[i] for i in order])
            lmap.descriptors = np.array([descriptors[i] for i in order])
        return lmap

    @property
    def next_landmark_id(self) -> int:
        return self._next_id

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def reference(self) -> MapKeyframe:
        return self.keyframes[-1]

    def rows_of(self, landmark_ids: np.ndarray) -> np.ndarray:
        """Row of each id in the landmark arrays, -1 where the id is not in the map."""
        return rows_in(self.ids, landmark_ids)

    def add_landmarks(self, positions_world: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """Append landmarks; returns their new ids."""
        count = positions_world.shape[0]
        new_ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        self.ids = np.concatenate([self.ids, new_ids])
        self.positions_world = np.concatenate([self.positions_world, positions_world])
        if self.descriptors is None:
            self.descriptors = descriptors.copy()
        else:
            self.descriptors = np.concatenate([self.descriptors, descriptors])
        return new_ids

    def add_keyframe(self, entry: MapKeyframe) -> None:
        """Add a keyframe; the oldest leaves the window with landmarks no one else observes."""
        self.keyframes.append(entry)
        if len(self.keyframes) > self.window:
            self.keyframes.pop(0)
            self._drop_unobserved()

    def anchors(self) -> Anchors:
        """For every landmark row, the newest window keyframe observing it and where."""
        slot = np.full(len(self.ids), -1, np.int64)
        pixel = np.zeros((len(self.ids), 2))
        for position, entry in enumerate(self.keyframes):
            rows = self.rows_of(entry.landmark_ids)
            has = np.flatnonzero(rows >= 0)
            slot[rows[has]] = position
            pixel[rows[has]] = entry.keyframe.features.keypoints[has]
        return Anchors(slot, pixel)

    def _drop_unobserved(self) -> None:
        observed = np.unique(np.concatenate([kf.landmark_ids for kf in self.keyframes]))
        observed = observed[observed >= 0]
        keep = np.isin(self.ids, observed)
        self.ids = self.ids[keep]
        self.positions_world = self.positions_world[keep]
        if self.descriptors is not None:
            self.descriptors = self.descriptors[keep]

    def points_cam(self, entry: MapKeyframe) -> np.ndarray:
        """(N, 3) landmark positions in the keyframe's camera frame, NaN where none."""
        out = np.full((entry.landmark_ids.size, 3), np.nan)
        rows = self.rows_of(entry.landmark_ids)
        has = rows >= 0
        if has.any():
            cam_from_world = invert_pose(entry.world_from_cam)
            out[has] = transform_points(cam_from_world, self.positions_world[rows[has]])
        return out

    def observations(self) -> WindowObservations:
        """Every observation of a landmark by a window keyframe, keyframe by keyframe, oldest
        first."""
        slots, rows_all, poses, pixels, depths, sigmas = [], [], [], [], [], []
        for slot, entry in enumerate(self.keyframes):
            rows = self.rows_of(entry.landmark_ids)
            has = np.flatnonzero(rows >= 0)
            if has.size == 0:
                continue
            slots.append(np.full(has.size, slot, np.int64))
            rows_all.append(rows[has])
            poses.append(np.repeat(invert_pose(entry.world_from_cam)[None], has.size, axis=0))
            pixels.append(entry.keyframe.features.keypoints[has].astype(np.float64))
            depths.append(entry.depth_m[has].astype(np.float64))
            sigmas.append(entry.depth_sigma_m[has].astype(np.float64))
        if not rows_all:
            empty, none = np.zeros(0), np.zeros(0, np.int64)
            return WindowObservations(
                none, none, np.zeros((0, 4, 4)), np.zeros((0, 2)), empty, empty
            )
        return WindowObservations(
            np.concatenate(slots),
            np.concatenate(rows_all),
            np.concatenate(poses),
            np.concatenate(pixels),
            np.concatenate(depths),
            np.concatenate(sigmas),
        )

    def rescale(self, scale: float) -> None:
        """Scale the whole window about the world origin (a monocular map made metric)."""
        self.positions_world = self.positions_world * scale
        for entry in self.keyframes:
            entry.keyframe = rescaled_keyframe(entry.keyframe, scale)
            entry.depth_m = entry.depth_m * np.float32(scale)
            entry.depth_sigma_m = entry.depth_sigma_m * np.float32(scale)

    def transform(self, new_world_from_old_world: np.ndarray) -> None:
        """Move the whole window rigidly (after a pose-graph correction)."""
        correction = orthonormalized(new_world_from_old_world)
        self.positions_world = transform_points(correction, self.positions_world)
        for entry in self.keyframes:
            entry.keyframe = replace(
                entry.keyframe, world_from_cam=orthonormalized(correction @ entry.world_from_cam)
            )


def rescaled_keyframe(keyframe: Keyframe, scale: float) -> Keyframe:
    """The keyframe record of a map scaled by ``scale`` about its world origin: its position,
    landmarks, depths and relative pose to its reference scale with it."""
    world_from_cam = keyframe.world_from_cam.copy()
    world_from_cam[:3, 3] *= scale
    reference_from_cam = keyframe.reference_from_cam
    if reference_from_cam is not None:
        reference_from_cam = reference_from_cam.copy()
        reference_from_cam[:3, 3] *= scale
    depth = keyframe.depth_m
    sigma = keyframe.depth_sigma_m
    return replace(
        keyframe,
        world_from_cam=world_from_cam,
        points_cam_m=keyframe.points_cam_m * scale,
        reference_from_cam=reference_from_cam,
        depth_m=depth * np.float32(scale) if depth is not None else None,
        depth_sigma_m=sigma * np.float32(scale) if sigma is not None else None,
    )
