"""The front end: extractors and matchers behind one contract on torch, ONNX Runtime, TensorRT.

``load_extractor(preset)`` returns a callable ``image -> Features``;
``load_matcher(preset)`` returns a callable ``(Features, Features) -> Matches``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from slamfront.config import Config, ExtractorConfig, MatcherConfig, _build, load_config

if TYPE_CHECKING:
    from slamfront.frontend.base import Extractor, Matcher


def _preset_config(preset: str | Config) -> Config:
    return preset if isinstance(preset, Config) else load_config(preset)


def _with(section: Any, **overrides: Any) -> Any:
    values = dataclasses.asdict(section)
    values.update({k: v for k, v in overrides.items() if v is not None})
    built = _build(type(section), values, "", {})
    return built


def load_extractor(
    preset: str | Config = "fast",
    runtime: str | None = None,
    max_keypoints: int | None = None,
    **overrides: Any,
) -> Extractor:
    """Extractor of a preset ('fast', 'accurate', 'superpoint', 'classic' or a YAML path).

    Keyword overrides set fields of ``ExtractorConfig`` (e.g. ``subpixel=False``).
    """
    # every slamfront.frontend.* import runs this package file: the runtimes load on use only
    from slamfront.frontend.extractors import build_extractor

    config = _preset_config(preset)
    section: ExtractorConfig = _with(
        config.extractor, runtime=runtime, max_keypoints=max_keypoints, **overrides
    )
    return build_extractor(section)


def load_matcher(
    preset: str | Config = "fast",
    runtime: str | None = None,
    depth_confidence: float | None = None,
    width_confidence: float | None = None,
    **overrides: Any,
) -> Matcher:
    """Matcher of a preset; keyword overrides set fields of ``MatcherConfig``."""
    # every slamfront.frontend.* import runs this package file: the runtimes load on use only
    from slamfront.frontend.matchers import build_matcher

    config = _preset_config(preset)
    section: MatcherConfig = _with(
        config.matcher,
        runtime=runtime,
        depth_confidence=depth_confidence,
        width_confidence=width_confidence,
        **overrides,
    )
    return build_matcher(section, extractor_model=config.extractor.model)


__all__ = ["load_extractor", "load_matcher"]
