"""slamfront: a real-time visual SLAM front end.

``import slamfront`` is cheap: torch, onnxruntime, gtsam, rerun and the other heavy parts are
imported only by the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slamfront.config import Config, load_config
from slamfront.errors import (
    ConfigError,
    InputError,
    MapFileError,
    SlamfrontError,
    SourceError,
    WeightsError,
)
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    ImuNoise,
    ImuSample,
    Keyframe,
    LoopCandidate,
    Matches,
    OptimizedPoses,
    StereoRig,
    TrackingState,
    TrackResult,
    Trajectory,
)

if TYPE_CHECKING:
    from slamfront.frontend import load_extractor, load_matcher
    from slamfront.pipeline import Pipeline
    from slamfront.sources import open_source

__version__ = "0.1.0"

_LAZY = {
    "load_extractor": "slamfront.frontend",
    "load_matcher": "slamfront.frontend",
    "open_source": "slamfront.sources",
    "Pipeline": "slamfront.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slamfront' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CameraModel",
    "Config",
    "ConfigError",
    "Features",
    "Frame",
    "ImuNoise",
    "ImuSample",
    "InputError",
    "Keyframe",
    "LoopCandidate",
    "MapFileError",
    "Matches",
    "OptimizedPoses",
    "Pipeline",
    "SlamfrontError",
    "SourceError",
    "StereoRig",
    "TrackResult",
    "TrackingState",
    "Trajectory",
    "WeightsError",
    "load_config",
    "load_extractor",
    "load_matcher",
    "open_source",
]
