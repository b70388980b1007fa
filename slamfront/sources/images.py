"""Monocular sources without calibration files: ``images:PATH`` and ``video:PATH``.

Both take intrinsics from ``config.camera``: ``camera.calibration`` (a calibration file, see
:mod:`slamfront.sources.calibration`) or ``camera.fx``, ``fy``, ``cx``, ``cy``, optional
``distortion`` / ``dist_coeffs``; without them opening fails with a SourceError naming the
missing keys. A distorted camera is undistorted to a pinhole when ``source.undistort``.
``groundtruth()`` reads ``source.groundtruth`` when given (TUM, KITTI or EuRoC csv; a KITTI file
is stamped like the frames).

- ``images:PATH``: every ``.png .jpg .jpeg .ppm .pgm .bmp .tif .tiff`` file in PATH, sorted by
  name. Stamps: ``PATH/times.txt`` when present (one time in seconds per line, one line per
  image in name order, as KITTI's times.txt), else ``index / source.fps``. Grey images stay grey,
  colour ones become RGB.
- ``video:PATH``: frames decoded with OpenCV; stamps from the container
  (``CAP_PROP_POS_MSEC``), falling back to ``index / fps`` (the container's rate, else
  ``source.fps``) where the container gives none or a stamp that does not increase. The
  length of a video is not known exactly in advance, so VideoSource has no ``len()``
  (``frame_count_hint`` is the container's estimate). A frame that fails to decode ends the
  stream: OpenCV cannot tell it from the end of the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import SourceError
from slamfront.io.trajectory import read_kitti_times, read_trajectory
from slamfront.sources._files import (
    IMAGE_SUFFIXES,
    IndexedSource,
    Pacer,
    Undistorter,
    camera_from_config,
    check_image_size,
    first_image_size,
    image_size,
    read_image,
    require_dir,
)
from slamfront.sources.base import Source
from slamfront.types import Frame, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config, SourceConfig

log = logging.getLogger("slamfront.sources.images")


def _groundtruth(config: SourceConfig, times: Path | None) -> Trajectory | None:
    if not config.groundtruth:
        return None
    return read_trajectory(config.groundtruth, times_path=times)


class ImageFolderSource(IndexedSource):
    """Frames from a folder of images (see the module docstring)."""

    name = "images"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> ImageFolderSource:
        if not rest:
            raise SourceError("images source needs a folder: images:PATH")
        return cls(Path(rest).expanduser(), config)

    def __init__(self, folder: Path, config: Config) -> None:
        self.folder = require_dir(Path(folder), "image folder")
        cfg = config.source
        self._paths = sorted(
            p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self._paths:
            raise SourceError(
                f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder"
            )
        times = self.folder / "times.txt"
        self._times = times if times.is_file() else None
        if self._times is not None:
            stamps = read_kitti_times(self._times)
            if stamps.size != len(self._paths):
                raise SourceError(
                    f"{self._times}: {stamps.size} times for {len(self._paths)} images in "
                    f"{self.folder} (one line per image, in name order)"
                )
        else:
            stamps = np.round(np.arange(len(self._paths)) * (1e9 / cfg.fps)).astype(np.int64)
        width, height = first_image_size(self._paths, "any", "images")
        check_image_size(width, height, cfg, str(self._paths[0]))
        self._undistort = Undistorter(
            camera_from_config(config.camera, width, height, f"images:{self.folder}"),
            cfg.undistort,
        )
        self.camera = self._undistort.camera
        self._config = cfg
        super().__init__(stamps, cfg)

    def _read(self, index: int, previous_stamp_ns: int | None) -> Frame | None:
        path = self._paths[index]
        image, reason = read_image(path, "any")
        if image is not None and image_size(image) != self.camera.size_px:
            reason = f"size {image.shape[1]}x{image.shape[0]} differs from the first image"
            image = None
        if image is None:
            self._skip(str(path), reason)
            return None
        return Frame(
            index=index,
            stamp_ns=int(self._stamps_ns[index]),
            image=self._undistort(image),
            camera=self.camera,
            source_path=str(path),
        )

    def groundtruth(self) -> Trajectory | None:
        return _groundtruth(self._config, self._times)


class VideoSource(Source):
    """Frames decoded from a video file (see the module docstring)."""

    name = "video"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> VideoSource:
        if not rest:
            raise SourceError("video source needs a file: video:PATH")
        return cls(Path(rest).expanduser(), config)

    def __init__(self, path: Path, config: Config) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: video file not found")
        self._config = config.source
        capture = self._open()
        try:
            ok, first = capture.read()
            if not ok or first is None:
                raise SourceError(f"{self.path}: no frame can be decoded from the video")
            self.container_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            capture.release()
        self.frame_count_hint: int | None = count if count > 0 else None
        if self.frame_count_hint is not None and 0 < self._config.start_frame >= count:
            raise SourceError(
                f"{self.path}: source.start_frame={self._config.start_frame} is past the end "
                f"of the video ({count} frames)"
            )
        width, height = image_size(first)
        check_image_size(width, height, self._config, str(self.path))
        self._undistort = Undistorter(
            camera_from_config(config.camera, width, height, f"video:{self.path}"),
            self._config.undistort,
        )
        self.camera = self._undistort.camera
        fps = self.container_fps if 0 < self.container_fps < 1000 else self._config.fps
        self._period_ns = round(1e9 / fps)
        self._capture: Any = None
        self.frames_skipped = 0

    def _open(self) -> Any:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path}: OpenCV cannot open the video")
        return capture

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        cfg = self._config
        self.close()
        self._capture = capture = self._open()
        pacer = Pacer(cfg.realtime)
        previous_ns: int | None = None
        yielded = 0
        index = -1
        try:
            while cfg.max_frames is None or yielded < cfg.max_frames:
                index += 1
                wanted = index >= cfg.start_frame and (index - cfg.start_frame) % cfg.stride == 0
                if not wanted:
                    if not capture.grab():
                        return
                    previous_ns = self._stamp(capture, index, previous_ns)
                    continue
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    return
                stamp_ns = self._stamp(capture, index, previous_ns)
                previous_ns = stamp_ns
                image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else bgr
                if image_size(image) != self.camera.size_px:
                    self._skip(f"{self.path}#{index}", "frame size changed")
                    continue
                pacer.wait(stamp_ns)
                yielded += 1
                yield Frame(
                    index=index,
                    stamp_ns=stamp_ns,
                    image=self._undistort(image),
                    camera=self.camera,
                    source_path=f"{self.path}#{index}",
                )
        finally:
            if self._capture is capture:
                self.close()

    def _stamp(self, capture: Any, index: int, previous_ns: int | None) -> int:
        import cv2

        msec = float(capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        stamp_ns = round(msec * 1e6)
        fallback = index * self._period_ns if previous_ns is None else previous_ns + self._period_ns
        if previous_ns is None:
            return stamp_ns if msec > 0 or index == 0 else fallback
        return stamp_ns if stamp_ns > previous_ns else fallback

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def groundtruth(self) -> Trajectory | None:
        return _groundtruth(self._config, None)
