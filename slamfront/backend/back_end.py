"""The back end's work for one keyframe: pose-graph odometry, loop detection, optimisation.

``BackEnd.step(keyframe)`` is single-threaded logic; ``slamfront.pipeline`` runs it on its own
worker thread so tracking never waits for it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import InputError
from slamfront.types import Keyframe, OptimizedPoses

if TYPE_CHECKING:
    from slamfront.backend.pose_graph import GraphEdge
    from slamfront.config import BackendConfig
    from slamfront.frontend.base import Matcher


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
        from slamfront.backend.loop_closure import LoopDetector
        from slamfront.backend.pose_graph import PoseGraph
        from slamfront.backend.vocabulary import load_vocabulary

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
        self._loops: list[tuple[int, int]] = []
        self.keyframes: dict[int, Keyframe] = {}
        for keyframe in prior_keyframes:
            self._graph.add_keyframe(keyframe.keyframe_id, keyframe.world_from_cam)
            self.keyframes[keyframe.keyframe_id] = keyframe

    @property
    def num_loops(self) -> int:
        return len(self._loops)

    def step(self, keyframe: Keyframe) -> OptimizedPoses | None:
        """Add a keyframe; returns the corrected poses when a loop was closed."""
        from slamfront.backend.pose_graph import pose_information

        known = keyframe.reference_keyframe_id in self.keyframes
        information: np.ndarray | None = None
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
            # later loop can pull it into place
            weak = np.diag([1.0 / 0.1**2] * 3 + [1.0 / 1.0**2] * 3)
            self._graph.add_keyframe(keyframe.keyframe_id, keyframe.world_from_cam, None, weak)
        else:
            self._graph.add_keyframe(
                keyframe.keyframe_id,
                keyframe.world_from_cam,
                keyframe.reference_from_cam if self.keyframes else None,
                information,
                keyframe.reference_keyframe_id,
            )
        candidate = self._detector(keyframe) if self._detector is not None else None
        self.keyframes[keyframe.keyframe_id] = keyframe
        if candidate is not None:
            self._graph.add_loop(candidate)
            self._loops.append((candidate.query_keyframe_id, candidate.match_keyframe_id))
        poses = self._with_loops(self._graph.optimize())
        return poses if candidate is not None else None

    def finish(self) -> OptimizedPoses | None:
        """The final optimised poses (None if no keyframe was added)."""
        if not self.keyframes:
            return None
        return self._with_loops(self._graph.optimize())

    @property
    def vocabulary_id(self) -> str:
        return self._vocabulary_id

    @property
    def edges(self) -> tuple[GraphEdge, ...]:
        return self._graph.edges

    def _with_loops(self, poses: OptimizedPoses) -> OptimizedPoses:
        return replace(poses, num_loops=len(self._loops), loop_edges=tuple(self._loops))
