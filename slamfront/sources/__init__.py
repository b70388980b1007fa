"""Frame sources: each is an iterator of :class:`~slamfront.types.Frame` and a context manager.

``open_source(spec)`` takes the same strings as the CLI: ``tum:PATH``, ``euroc:PATH``,
``kitti:PATH[:SEQ]``, ``images:PATH``, ``video:PATH``, ``sim[:NAME]``, ``realsense[:SERIAL]``,
``realsense-file:PATH``. Each source module is imported only when its scheme is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from slamfront.errors import SourceError
from slamfront.sources.base import Source

if TYPE_CHECKING:
    from slamfront.config import Config

_SCHEMES = {
    "tum": "slamfront.sources.tum:TumSource",
    "euroc": "slamfront.sources.euroc:EurocSource",
    "kitti": "slamfront.sources.kitti:KittiSource",
    "images": "slamfront.sources.images:ImageFolderSource",
    "video": "slamfront.sources.images:VideoSource",
    "sim": "slamfront.sources.sim:SimSource",
    "realsense": "slamfront.sources.realsense:RealSenseSource",
    "realsense-file": "slamfront.sources.realsense:RealSenseSource",
}


def split_spec(spec: str) -> tuple[str, str]:
    """('tum', '/path') from 'tum:/path'; ('sim', '') from 'sim'."""
    scheme, _, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}:..." for s in _SCHEMES)
        raise SourceError(f"unknown source {spec!r}; expected one of {known}")
    return scheme, rest


def open_source(spec: str, config: Config | None = None) -> Source:
    """Open a source from its spec string; ``config`` supplies source/sim/camera settings."""
    from slamfront.config import Config

    scheme, rest = split_spec(spec)
    module_name, _, class_name = _SCHEMES[scheme].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    source: Source = cls.from_spec(scheme, rest, config if config is not None else Config())
    return source


__all__ = ["Source", "open_source", "split_spec"]
