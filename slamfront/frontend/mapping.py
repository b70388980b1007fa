"""Keyframes into the local map: their landmarks from measured depth (RGB-D, stereo) or by
triangulation against the window (monocular), then the window's adjustment."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import TrackerConfig
from slamfront.frontend.depth import KeypointDepth, keypoint_depth
from slamfront.frontend.local_map import LocalMap, MapKeyframe
from slamfront.frontend.records import Correspondences, FrameInput, PoseFit
from slamfront.frontend.triangulation import triangulate_window
from slamfront.frontend.window_adjust import adjust_window, bundle_window, refine_structure
from slamfront.geometry import invert_pose, transform_points, unproject
from slamfront.types import Features, Frame, Keyframe


class KeyframeMapper:
    """Adds keyframes to the tracker's local map and numbers them over the whole run."""

    def __init__(
        self,
        config: TrackerConfig,
        first_keyframe_id: int = 0,
    ) -> None:
        self._map = LocalMap(config.window.keyframes)
        self._map_id = 0
        self._config = config
        self._next_id = first_keyframe_id

    def use(self, lmap: LocalMap, map_id: int) -> None:
        """Work on ``lmap`` (a new or rebuilt window), whose keyframes belong to ``map_id``."""
        self._map = lmap
        self._map_id = map_id

    @property
    def lmap(self) -> LocalMap:
        """The window keyframes go into."""
        return self._map

    @property
    def map_id(self) -> int:
        """The map new keyframes belong to."""
        return self._map_id

    def insert(
        self,
        frame: Frame,
        features: Features,
        world_from_cam: np.ndarray,
        depth: KeypointDepth,
        corr: Correspondences,
        grey: np.ndarray | None,
    ) -> MapKeyframe:
        """A keyframe observing the landmarks of ``corr`` and, where its keypoints measured
        depth, new landmarks; it becomes the window's reference."""
        lmap = self._map
        landmark_ids = np.full(len(features), -1, np.int64)
        landmark_ids[corr.keypoint_index] = corr.landmark_ids
        features = with_tracked_pixels(features, corr)
        if len(corr) and lmap.descriptors is not None:
            # landmarks take the appearance of their latest observation
            rows = lmap.rows_of(corr.landmark_ids)
            lmap.descriptors[rows] = features.descriptors[corr.keypoint_index]
        fresh = np.flatnonzero((landmark_ids < 0) & depth.valid)
        if fresh.size:
            points_cam = unproject(
                frame.camera.K,
                features.keypoints[fresh].astype(np.float64),
                depth.depth_m[fresh].astype(np.float64),
            )
            points_world = transform_points(world_from_cam, points_cam)
            landmark_ids[fresh] = lmap.add_landmarks(points_world, features.descriptors[fresh])
        keyframe = Keyframe(
            keyframe_id=self._next_id,
            frame_index=frame.index,
            stamp_ns=frame.stamp_ns,
            world_from_cam=world_from_cam.copy(),
            camera=frame.camera,
            features=features,
            points_cam_m=np.zeros((0, 3)),
            grey=grey,
            depth_m=depth.depth_m.copy(),
            depth_sigma_m=depth.sigma_m.copy(),
            map_id=self._map_id,
        )
        self._next_id += 1
        entry = MapKeyframe(keyframe, landmark_ids, depth.depth_m, depth.sigma_m)
        lmap.add_keyframe(entry)
        refresh_keyframe(lmap, entry)
        return entry

    def extend(
        self, inp: FrameInput, world_from_cam: np.ndarray, fit: PoseFit, reference: MapKeyframe
    ) -> Keyframe | None:
        """The tracked frame as a new keyframe, tracked from ``reference``; None when it
        could not add enough landmarks (no depth there: the old reference stays)."""
        cfg = self._config
        lmap = self._map
        # depth where the landmarks were measured (image alignment), not where detected
        features = with_tracked_pixels(inp.features, fit.corr)
        depth = keypoint_depth(inp.frame, features, inp.mode, inp.grey, cfg)
        if not inp.mono and len(fit.corr) + int(depth.valid.sum()) < cfg.min_map_points:
            return None
        entry = self.insert(inp.frame, features, world_from_cam, depth, fit.corr, inp.grey)
        if inp.mono:
            triangulate_window(lmap, entry, inp.camera, cfg)
        refine_structure(lmap, inp.camera, cfg, use_depth=not inp.mono)
        if not inp.mono:
            adjust_window(lmap, inp.camera, cfg)
        elif cfg.mono.adjustment_iterations > 0:
            # a joint adjustment holding the two oldest keyframes (the gauge and the scale)
            bundle_window(lmap, inp.camera, cfg, num_fixed=2)
        entry.keyframe = replace(
            entry.keyframe,
            points_cam_m=lmap.points_cam(entry),
            landmark_ids=entry.landmark_ids.copy(),
            reprojection_rmse_px=fit.estimate.rmse_px,
            reference_keyframe_id=reference.keyframe.keyframe_id,
            reference_from_cam=invert_pose(reference.world_from_cam) @ world_from_cam,
        )
        return entry.keyframe


def refresh_keyframe(lmap: LocalMap, entry: MapKeyframe) -> None:
    """The keyframe record's landmarks brought up to date with the map's."""
    entry.keyframe = replace(
        entry.keyframe, points_cam_m=lmap.points_cam(entry), landmark_ids=entry.landmark_ids.copy()
    )


def with_tracked_pixels(features: Features, corr: Correspondences) -> Features:
    """``features`` with each tracked keypoint moved to where its landmark was measured
    (image alignment): a keyframe keeps those positions, so that later alignment against it
    follows those very points and its depth is sampled there."""
    if not len(corr):
        return features
    keypoints = features.keypoints.copy()
    keypoints[corr.keypoint_index] = corr.pixels
    return replace(features, keypoints=keypoints)
