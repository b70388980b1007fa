"""The back end's work for one keyframe: pose-graph odometry, loop detection, optimisation.

``BackEnd.step(keyframe)`` is single-threaded logic; ``slamfront.pipeline`` runs it on its own
worker thread so tracking never waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from slamfront.backend.frame_refit import TrackedFrame, refit_frames
from slamfront.backend.loop_closure import LoopDetector
from slamfront.backend.pose_graph import (
    GraphEdge,
    KeyframeObservations,
    PoseGraph,
    adjust_keyframes,
    pose_information,
)
from slamfront.backend.vocabulary import load_vocabulary
from slamfront.errors import InputError
from slamfront.geometry import invert_pose, transform_points
from slamfront.types import Keyframe, LoopCandidate, OptimizedPoses

if TYPE_CHECKING:
    from slamfront.config import BackendConfig
    from slamfront.frontend.base import Matcher

log = logging.getLogger(__name__)


class BackEnd:
    """Keyframes in, corrected keyframe poses out (after each accepted loop)."""

    def __init__(
        self,
        config: BackendConfig,
        matcher: Matcher,
        extractor_model: str,
        prior_keyframes: tuple[Keyframe, ...] = (),
    ) -> None:
        """``prior_keyframes`` (a saved map) are held fixed at their poses and are loop
        candidates from the start."""
        self._config = config
        self._graph = PoseGraph(config)
        self._detector: LoopDetector | None = None
        self._vocabulary_id = ""
        if config.loop_closure.enabled:
            vocabulary = load_vocabulary(config.loop_closure.vocabulary or extractor_model)
            self._vocabulary_id = vocabulary.vocabulary_id
            self._detector = LoopDetector(
                config.loop_closure,
                matcher,
                vocabulary,
                keyframes=prior_keyframes,
                min_sigma_px=config.odometry_min_sigma_px,
            )
        self._camera_k: np.ndarray | None = None  # pinhole camera of the tracked keypoints
        self._loops: list[tuple[int, int]] = []
        self._maps_merged = 0
        self._loop_candidates: list[LoopCandidate] = []
        self.keyframes: dict[int, Keyframe] = {}
        self._prior_ids = {keyframe.keyframe_id for keyframe in prior_keyframes}
        for keyframe in prior_keyframes:
            self._graph.add_keyframe(
                keyframe.keyframe_id, keyframe.world_from_cam, map_id=keyframe.map_id
            )
            self.keyframes[keyframe.keyframe_id] = keyframe

    @property
    def num_loops(self) -> int:
        return len(self._loops)

    @property
    def maps_merged(self) -> int:
        return self._maps_merged

    def step(self, keyframe: Keyframe) -> OptimizedPoses | None:
        """Add a keyframe; returns the corrected poses when a loop was closed."""
        if self._camera_k is None:
            self._camera_k = keyframe.camera.K
        known = keyframe.reference_keyframe_id in self.keyframes
        information = keyframe.reference_information
        if information is None:
            try:
                information = pose_information(
                    keyframe.points_cam_m,
                    keyframe.camera.fx,
                    keyframe.reprojection_rmse_px,
                    self._config.odometry_min_sigma_px,
                )
            except InputError:
                information = None  # too few points: a weak link, see below
        if self.keyframes and (not known or information is None):
            # a chain the tracker restarted (or could not measure): held only weakly, so a
            # later loop can pull it into place; the first keyframe of a new map holds that
            # map's own frame instead
            weak = np.diag([1.0 / 0.1**2] * 3 + [1.0 / 1.0**2] * 3)
            self._graph.add_keyframe(
                keyframe.keyframe_id,
                keyframe.world_from_cam,
                information=weak,
                map_id=keyframe.map_id,
            )
        else:
            self._graph.add_keyframe(
                keyframe.keyframe_id,
                keyframe.world_from_cam,
                prev_from_cur=keyframe.reference_from_cam if self.keyframes else None,
                information=information,
                reference_keyframe_id=keyframe.reference_keyframe_id,
                map_id=keyframe.map_id,
            )
        link = keyframe.imu
        if link is not None and link.previous_keyframe_id in self.keyframes:
            self._graph.add_imu(keyframe.keyframe_id, link)
        candidate = self._detector(keyframe) if self._detector is not None else None
        self.keyframes[keyframe.keyframe_id] = keyframe
        if candidate is not None:
            if not self._join_maps(candidate):
                self._graph.add_loop(candidate)
            self._loops.append((candidate.query_keyframe_id, candidate.match_keyframe_id))
            self._loop_candidates.append(candidate)
        poses = self._with_loops(self._graph.optimize())
        return poses if candidate is not None else None

    def finish(self, frames: Iterable[TrackedFrame] = ()) -> OptimizedPoses | None:
        """The final optimised poses (None if no keyframe was added): the pose graph's, then
        bundle-adjusted with the landmarks (``backend.final_adjustment``); with the run's
        tracked ``frames``, also each one's final pose (``frame_trajectory``, see
        :func:`~slamfront.backend.frame_refit.refit_frames`)."""
        if not self.keyframes:
            return None
        poses = self._with_loops(self._graph.optimize())
        if self._config.final_adjustment:
            try:
                poses = self._adjusted(poses)
            except RuntimeError as exc:  # gtsam: singular system; keep the graph's poses
                log.warning("final bundle adjustment failed, keeping the pose graph's: %s", exc)
        trajectory, map_ids = refit_frames(frames, poses, self._camera_k)
        if not len(trajectory):
            return poses
        return replace(poses, frame_trajectory=trajectory, frame_map_ids=map_ids)

    def _join_maps(self, candidate: LoopCandidate) -> bool:
        """A loop between keyframes of two maps merges the newer map into the older one,
        re-expressed in its frame through the loop's relative pose (the loop then joins the
        graph). False for a loop within one map."""
        graph = self._graph
        query_map = graph.map_of(candidate.query_keyframe_id)
        match_map = graph.map_of(candidate.match_keyframe_id)
        if query_map == match_map:
            return False
        match_frame_from_query_frame = (
            graph.pose_of(candidate.match_keyframe_id)
            @ candidate.match_from_query
            @ invert_pose(graph.pose_of(candidate.query_keyframe_id))
        )
        if match_map < query_map:
            graph.merge_maps(query_map, match_map, match_frame_from_query_frame, candidate)
        else:
            graph.merge_maps(
                match_map, query_map, invert_pose(match_frame_from_query_frame), candidate
            )
        self._maps_merged += 1
        log.info("maps %d and %d merged at a loop", query_map, match_map)
        return True

    @property
    def vocabulary_id(self) -> str:
        return self._vocabulary_id

    @property
    def edges(self) -> tuple[GraphEdge, ...]:
        return self._graph.edges

    def _adjusted(self, poses: OptimizedPoses) -> OptimizedPoses:
        """Bundle adjustment of this run's keyframes and landmarks, seeded by ``poses``. The
        keyframes of a loaded map stay where they are and hold the frame (else the first
        keyframe does); their landmark ids are another run's, so only this run's observations
        enter. A loop's inliers enter as observations of the matched keyframe's landmarks by
        the query keyframe, so the landmarks tie the two passes together directly. Each
        observation carries the depth its keyframe measured (RGB-D, stereo), never the
        tracker's estimate of the landmark, which holds the tracker's pose errors."""
        ids = poses.keyframe_ids
        held = np.array([kid in self._prior_ids for kid in ids])
        if not held.any():
            # the first keyframe of each map holds that map's frame
            map_ids = poses.map_ids or (0,) * len(ids)
            firsts = {m: row for row, m in reversed(list(enumerate(map_ids)))}
            held[list(firsts.values())] = True
        found = self._observations(poses)
        if found is None:
            return poses
        landmark_ids, observations = found
        intrinsics = np.array(
            [
                [kf.camera.fx, kf.camera.fy, kf.camera.cx, kf.camera.cy]
                for kf in (self.keyframes[kid] for kid in ids)
            ]
        )
        world_from_cam, landmarks_world_m, weights = adjust_keyframes(
            ids,
            poses.world_from_cam,
            intrinsics,
            held,
            observations,
            self._graph.edges,
            self._config,
        )
        for array in (world_from_cam, landmark_ids, landmarks_world_m):
            array.setflags(write=False)
        return replace(
            poses,
            revision=poses.revision + 1,
            world_from_cam=world_from_cam,
            landmark_ids=landmark_ids,
            landmarks_world_m=landmarks_world_m,
            range_baseline_m=weights.range_baseline_m,
        )

    def _observations(
        self, poses: OptimizedPoses
    ) -> tuple[np.ndarray, KeyframeObservations] | None:
        """This run's observations (keyframes and loops) of landmarks seen at least twice,
        and those landmarks' ids (sorted, one per landmark row), each landmark seeded at its
        first observation on ``poses``; None if there are none."""
        ids = poses.keyframe_ids
        keyframes = [self.keyframes[kid] for kid in ids]
        parts: list[tuple[np.ndarray, ...]] = []
        for row, (keyframe, world_from_cam) in enumerate(
            zip(keyframes, poses.world_from_cam, strict=True)
        ):
            if keyframe.keyframe_id in self._prior_ids or keyframe.landmark_ids is None:
                continue
            points_cam = keyframe.points_cam_m
            with np.errstate(invalid="ignore"):
                seen = np.flatnonzero((keyframe.landmark_ids >= 0) & (points_cam[:, 2] > 0))
            depth_m = points_cam[seen, 2]
            if _measures_depth(keyframe):
                depth_m = keyframe.depth_m[seen].astype(np.float64)  # type: ignore[index]
            parts.append(
                (
                    np.full(seen.size, row),
                    keyframe.landmark_ids[seen],
                    keyframe.features.keypoints[seen].astype(np.float64),
                    depth_m,
                    transform_points(world_from_cam, points_cam[seen]),
                )
            )
        row_of = {kid: row for row, kid in enumerate(ids)}
        for loop in self._loop_candidates:
            match = self.keyframes[loop.match_keyframe_id]
            if (
                loop.match_keyframe_id in self._prior_ids
                or match.landmark_ids is None
                or loop.match_keypoints is None
                or loop.query_pixels is None
            ):
                continue
            landmark_ids = match.landmark_ids[loop.match_keypoints]
            points_query = transform_points(
                invert_pose(loop.match_from_query), match.points_cam_m[loop.match_keypoints]
            )
            with np.errstate(invalid="ignore"):
                seen = np.flatnonzero((landmark_ids >= 0) & (points_query[:, 2] > 0))
            world_from_match = poses.world_from_cam[row_of[loop.match_keyframe_id]]
            query_depths_m = points_query[seen, 2]
            if _measures_depth(self.keyframes[loop.query_keyframe_id]):
                query_depths_m = np.zeros(seen.size)  # the pixels alone: no depth measured there
            parts.append(
                (
                    np.full(seen.size, row_of[loop.query_keyframe_id]),
                    landmark_ids[seen],
                    loop.query_pixels[seen],
                    query_depths_m,
                    transform_points(
                        world_from_match, match.points_cam_m[loop.match_keypoints[seen]]
                    ),
                )
            )
        if not parts:
            return None
        rows, landmark_ids, pixels, depths_m, points_world = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        unique, first, inverse, count = np.unique(
            landmark_ids, return_index=True, return_inverse=True, return_counts=True
        )
        multi = count[inverse] >= 2  # a landmark seen once adds unknowns, no constraint
        new_row = np.cumsum(count >= 2) - 1
        return unique[count >= 2], KeyframeObservations(
            keyframe_rows=rows[multi],
            landmark_rows=new_row[inverse[multi]],
            pixels=pixels[multi],
            depths_m=depths_m[multi],
            landmarks_world_m=points_world[first[count >= 2]],
        )

    def _with_loops(self, poses: OptimizedPoses) -> OptimizedPoses:
        return replace(poses, num_loops=len(self._loops), loop_edges=tuple(self._loops))


def _measures_depth(keyframe: Keyframe) -> bool:
    """Whether the keyframe measured depth (RGB-D, stereo). Its observations then carry that
    depth (0 where none); a monocular keyframe's carry the tracker's depth of the landmark,
    the only scale there is."""
    return keyframe.depth_m is not None and bool((keyframe.depth_m > 0).any())
