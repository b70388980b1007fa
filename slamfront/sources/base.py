"""The contract every source follows."""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slamfront.config import CameraConfig, Config
    from slamfront.types import CameraModel, Frame, Trajectory

log = logging.getLogger("slamfront.sources")


class Source(abc.ABC):
    """An iterator of frames that owns files or devices until closed.

    Subclasses with a known length define ``__len__`` (frames that will be yielded, before
    any are skipped as unreadable). ``frames_skipped`` counts frames dropped because their
    image could not be read; such frames are logged and never end the run.
    """

    name: str = "source"
    frames_skipped: int = 0

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> Source:
        """Build from the part of the spec after ``scheme:`` and the config."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def groundtruth(self) -> Trajectory | None:
        """Ground-truth ``world_from_cam`` poses of the (left/colour) camera, if known."""
        return None

    def close(self) -> None:
        """Release files and devices. Safe to call twice."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _skip(self, path: str, reason: str) -> None:
        self.frames_skipped += 1
        log.warning("skipping frame %s: %s", path, reason)


def with_readout(camera: CameraModel, config: CameraConfig, default_s: float) -> CameraModel:
    """``camera`` with its rolling-shutter readout: ``camera.readout_ms`` when configured,
    else ``default_s``, what the source knows of its sensor (0: global shutter)."""
    readout_s = default_s if config.readout_ms is None else config.readout_ms * 1e-3
    return dataclasses.replace(camera, readout_s=readout_s)
