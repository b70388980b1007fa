"""Sinks receive what the pipeline produced: per-frame results, keyframes, optimised poses.

The pipeline calls them from its own thread; a sink that may be slow (the viewer) runs behind
a bounded queue on its own thread (see ``slamfront.pipeline``) and drops viewer frames rather
than stall tracking.
"""

from __future__ import annotations

from typing import Protocol

from slamfront.types import Frame, Keyframe, OptimizedPoses, TrackResult


class Sink(Protocol):
    def on_result(self, frame: Frame, result: TrackResult) -> None: ...

    def on_keyframe(self, keyframe: Keyframe) -> None: ...

    def on_optimized(self, poses: OptimizedPoses) -> None: ...

    def close(self) -> None: ...
