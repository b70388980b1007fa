"""Frame sources: each is an iterator of :class:`~slamfront.types.Frame` and a context manager.

``open_source(spec)`` takes the same strings as the CLI: ``tum:PATH``, ``euroc:PATH``,
``kitti:PATH[:SEQ]``, ``images:PATH``, ``video:PATH``, ``bag:PATH`` (ROS 1 / ROS 2),
``sim[:NAME]``, ``realsense[:SERIAL]``, ``realsense-file:PATH``. Each source module is
imported only when its scheme is used.
"""

from __future__ import annotations

import importlib

from slamfront.config import Config
from slamfront.errors import ConfigError, SourceError
from slamfront.sources.base import Source

_SCHEMES = {
    "tum": "slamfront.sources.tum:TumSource",
    "euroc": "slamfront.sources.euroc:EurocSource",
    "kitti": "slamfront.sources.kitti:KittiSource",
    "images": "slamfront.sources.images:ImageFolderSource",
    "video": "slamfront.sources.images:VideoSource",
    "bag": "slamfront.sources.bag:BagSource",
    "sim": "slamfront.sources.sim:SimSource",
    "realsense": "slamfront.sources.realsense:RealSenseSource",
    "realsense-file": "slamfront.sources.realsense:RealSenseSource",
}

# Sources that would silently ignore source.groundtruth, and why.
_OWN_GROUNDTRUTH = {
    "sim": "have their own exact ground truth",
    "realsense": "(a live camera) take no ground truth",
    "realsense-file": "(RealSense recordings) take no ground truth",
}

# One example spec per scheme, for `slamfront --help` (a scheme without one shows SCHEME:PATH).
_EXAMPLES = {
    "tum": "tum:data/rgbd_dataset_freiburg1_xyz",
    "euroc": "euroc:data/V1_01_easy (the folder holding mav0/)",
    "kitti": "kitti:data/dataset:06 (dataset root and sequence, or a sequence folder)",
    "images": "images:frames/ camera.calibration=camchain.yaml (or camera.fx=... fy cx cy)",
    "video": "video:clip.mp4 camera.fx=525 camera.fy=525 camera.cx=319.5 camera.cy=239.5",
    "bag": "bag:walk.bag (ROS 1 .bag, ROS 2 folder/.db3/.mcap; topics picked by type and name)",
    "sim": "sim:loop (synthetic rig; sim.sensor=rgbd|stereo|mono)",
    "realsense": "realsense or realsense:SERIAL (a live camera)",
    "realsense-file": "realsense-file:walk.db3 (a RealSense recording, .db3 or .bag)",
}


def source_examples() -> list[tuple[str, str]]:
    """(scheme, an example spec) for every source scheme ``open_source`` takes."""
    return [(scheme, _EXAMPLES.get(scheme, f"{scheme}:PATH")) for scheme in _SCHEMES]


def split_spec(spec: str) -> tuple[str, str]:
    """('tum', '/path') from 'tum:/path'; ('sim', '') from 'sim'."""
    scheme, _, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}:..." for s in _SCHEMES)
        raise SourceError(f"unknown source {spec!r}; expected one of {known}")
    return scheme, rest


def resolve_spec(given: str | None, config: Config) -> str:
    """The source to open: ``given`` (from the command line) or the profile's ``source.spec``.

    A profile may name a bare scheme (``tum:``) whose path comes from the command line:
    ``given`` without a known scheme is then appended to it (``tum:`` + ``/data/fr1`` ->
    ``tum:/data/fr1``). A complete ``given`` spec always wins.
    """
    profile = config.source.spec
    if given:
        scheme = given.partition(":")[0].strip().lower()
        if scheme in _SCHEMES or profile is None:
            return given
        base, sep, rest = profile.partition(":")
        if sep and not rest:
            return f"{base}:{given}"
        return given
    if profile is None:
        raise ConfigError(
            "no source given: name one (tum:PATH, realsense, ...) or set source.spec in the profile"
        )
    scheme, sep, rest = profile.partition(":")
    if sep and not rest and scheme.strip().lower() != "realsense":
        raise ConfigError(
            f"source.spec {profile!r} needs a path: give it on the command line "
            f"(e.g. {scheme}:/data/sequence, or just the path)"
        )
    return profile


def open_source(spec: str, config: Config | None = None) -> Source:
    """Open a source from its spec string; ``config`` supplies source/sim/camera settings."""
    scheme, rest = split_spec(spec)
    config = config if config is not None else Config()
    if config.source.groundtruth and scheme in _OWN_GROUNDTRUTH:
        raise ConfigError(
            f"source.groundtruth={config.source.groundtruth}: {scheme}: sources "
            f"{_OWN_GROUNDTRUTH[scheme]}; leave it unset"
        )
    module_name, _, class_name = _SCHEMES[scheme].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    source: Source = cls.from_spec(scheme, rest, config)
    return source


__all__ = ["Source", "open_source", "resolve_spec", "source_examples", "split_spec"]
