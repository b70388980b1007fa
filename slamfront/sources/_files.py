"""Helpers shared by the recorded-sequence sources (TUM, EuRoC, KITTI, image folders, video).

Frame selection (``source.start_frame``, ``stride``, ``max_frames``), replay pacing
(``source.realtime``), image decoding that reports instead of raising, checked file and folder
lookups, and camera intrinsics from ``config.camera``.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import RemapTables, undistortion_maps
from slamfront.sources.base import Source
from slamfront.sources.calibration import Calibration, read_calibration
from slamfront.types import CameraModel

if TYPE_CHECKING:
    from slamfront.config import CameraConfig, SourceConfig
    from slamfront.types import Frame

log = logging.getLogger("slamfront.sources")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")

ImageMode = Literal["grey", "rgb", "any", "depth16"]


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SourceError(f"{path}: {what} not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise SourceError(f"{path}: {what} not found")
    return path


def dataset_path(folder: Path, name: str, where: str) -> Path:
    """``folder / name`` for a file an index names; SourceError (naming ``where``, the index's
    ``file:line``) when the name is absolute or climbs out of ``folder`` with ``..``."""
    parts = Path(name).parts
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or ".." in parts:
        raise SourceError(
            f"{where}: names {name!r}, outside the dataset folder {folder} (index files may "
            "only name files inside it, by relative paths without '..')"
        )
    return folder / name


def check_image_size(width_px: int, height_px: int, config: SourceConfig, where: str) -> None:
    """SourceError when an image is larger than ``source.max_image_side_px`` (its frames would
    cost seconds and gigabytes each)."""
    limit = config.max_image_side_px
    if limit and max(width_px, height_px) > limit:
        raise SourceError(
            f"{where}: images are {width_px}x{height_px}, larger than "
            f"source.max_image_side_px={limit}; resize them (about 640-1280 px wide tracks "
            "best) or raise source.max_image_side_px"
        )


def select_indices(count: int, config: SourceConfig) -> list[int]:
    """Indices of the recorded frames to yield: start, then every ``stride``-th, at most max.
    SourceError when ``source.start_frame`` is past the end of a recording."""
    if config.start_frame > 0 and config.start_frame >= count:
        raise SourceError(
            f"source.start_frame={config.start_frame} is past the end: the recording has "
            f"{count} frames (0 to {count - 1})"
        )
    picked = list(range(config.start_frame, count, config.stride))
    if config.max_frames is not None:
        picked = picked[: config.max_frames]
    return picked


class Pacer:
    """Sleeps so that frames come out at their recorded rate (when enabled)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._origin: tuple[float, int] | None = None

    def wait(self, stamp_ns: int) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = (now, stamp_ns)
            return
        wall0, stamp0 = self._origin
        delay = wall0 + (stamp_ns - stamp0) * 1e-9 - now
        if delay > 0:
            time.sleep(delay)


def read_image(path: Path, mode: ImageMode) -> tuple[np.ndarray | None, str]:
    """(image, '') or (None, reason). Never raises on a bad file.

    grey: HxW uint8; rgb: HxWx3 uint8 RGB; any: grey stays HxW, colour becomes RGB (alpha
    dropped, 16-bit scaled to 8); depth16: HxW uint16 as stored.
    """
    import cv2

    if not path.is_file():
        return None, "file not found"
    flags = {
        "grey": cv2.IMREAD_GRAYSCALE,
        "rgb": cv2.IMREAD_COLOR,
        "any": cv2.IMREAD_UNCHANGED,
        "depth16": cv2.IMREAD_UNCHANGED,
    }[mode]
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as exc:  # pragma: no cover - imread reports failure by returning None
        return None, f"cannot decode: {exc}"
    if image is None or image.size == 0:
        return None, "cannot decode image"
    if mode == "depth16":
        if image.ndim != 2 or image.dtype != np.uint16:
            return None, f"depth must be single-channel uint16, got {image.dtype} {image.shape}"
        return image, ""
    if mode == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), ""
    if mode == "any":
        if image.dtype == np.uint16:
            image = (image // 256).astype(np.uint8)
        elif image.dtype != np.uint8:
            return None, f"unsupported pixel type {image.dtype}"
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        elif image.ndim == 3 and image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
    return image, ""


def image_size(image: np.ndarray) -> tuple[int, int]:
    """(width, height) of an image array."""
    return int(image.shape[1]), int(image.shape[0])


def first_image_size(paths: Sequence[Path], mode: ImageMode, what: str) -> tuple[int, int]:
    """Size of the first image that decodes; SourceError when none of the first ten does."""
    for path in paths[:10]:
        image, _ = read_image(path, mode)
        if image is not None:
            return image_size(image)
    shown = paths[0] if paths else what
    raise SourceError(f"{shown}: none of the first {min(len(paths), 10)} {what} can be read")


def calibration_from_config(
    camera: CameraConfig, width_px: int, height_px: int, where: str
) -> Calibration | None:
    """The file ``camera.calibration`` names (checked against the image size), None when
    unset; SourceError when ``camera.fx``... are given as well."""
    if not camera.calibration:
        return None
    given = [k for k in ("fx", "fy", "cx", "cy") if getattr(camera, k) is not None]
    if camera.distortion != "none" or camera.dist_coeffs:
        given.append("distortion")
    if given:
        raise SourceError(
            f"{where}: camera.calibration and camera.{given[0]} both set; give one of them"
        )
    return read_calibration(camera.calibration, (width_px, height_px))


def camera_from_config(
    camera: CameraConfig, width_px: int, height_px: int, where: str
) -> CameraModel:
    """Intrinsics for sources that carry none, from ``camera.calibration`` or ``camera.fx``...;
    SourceError naming the missing keys. The shutter is global unless ``camera.readout_ms``
    says otherwise."""
    calibration = calibration_from_config(camera, width_px, height_px, where)
    if calibration is not None:
        readout_s = (camera.readout_ms or 0.0) * 1e-3
        return dataclasses.replace(calibration.camera, readout_s=readout_s)
    missing = [k for k in ("fx", "fy", "cx", "cy") if getattr(camera, k) is None]
    if missing:
        keys = ", ".join(f"camera.{k}" for k in missing)
        raise SourceError(
            f"{where}: this source has no intrinsics; set {keys} in the config or on the "
            "command line (camera.fx=525 camera.fy=525 camera.cx=319.5 camera.cy=239.5; "
            "optionally camera.distortion and camera.dist_coeffs), or camera.calibration=FILE"
        )
    assert camera.fx is not None and camera.fy is not None
    assert camera.cx is not None and camera.cy is not None
    try:
        return CameraModel(
            width_px=width_px,
            height_px=height_px,
            fx=float(camera.fx),
            fy=float(camera.fy),
            cx=float(camera.cx),
            cy=float(camera.cy),
            distortion=camera.distortion,
            dist_coeffs=tuple(float(c) for c in camera.dist_coeffs),
            readout_s=(camera.readout_ms or 0.0) * 1e-3,
        )
    except ValueError as exc:
        raise SourceError(f"{where}: bad camera config: {exc}") from exc


class Undistorter:
    """Turns raw images of a (possibly distorted) camera into the images frames report.

    With ``enabled`` and a distorted camera, images are remapped to a pinhole with the same K
    (bilinear; depth nearest, so no depth is invented across edges) and ``camera`` is that
    pinhole; otherwise images pass through and ``camera`` keeps its distortion.
    """

    def __init__(self, camera: CameraModel, enabled: bool) -> None:
        self._tables: RemapTables | None = None
        self.camera = camera
        if enabled and camera.is_distorted:
            self._tables = undistortion_maps(camera)
            self.camera = self._tables.camera

    def __call__(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        if self._tables is None:
            return image
        return self._tables.apply(image, nearest=nearest)


class IndexedSource(Source):
    """A source over a known list of recorded frames with stamps.

    Subclasses fill ``self._stamps_ns`` (all recorded frames, increasing) and implement
    :meth:`_read`, which returns the frame or None after calling ``self._skip``.
    ``Frame.index`` is the position in the full recording (before start/stride).
    """

    def __init__(self, stamps_ns: np.ndarray, config: SourceConfig) -> None:
        self._stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
        self._selected = select_indices(len(self._stamps_ns), config)
        self._realtime = config.realtime
        self.frames_skipped = 0

    def __len__(self) -> int:
        return len(self._selected)

    def __iter__(self) -> Iterator[Frame]:
        pacer = Pacer(self._realtime)
        previous: int | None = None
        if self._selected and self._selected[0] > 0:
            previous = int(self._stamps_ns[self._selected[0] - 1])
        for index in self._selected:
            frame = self._read(index, previous)
            if frame is None:
                continue
            pacer.wait(frame.stamp_ns)
            previous = frame.stamp_ns
            yield frame

    @abc.abstractmethod
    def _read(self, index: int, previous_stamp_ns: int | None) -> Frame | None:
        """Frame ``index`` of the recording; ``previous_stamp_ns``: last yielded frame's stamp
        (or the recorded frame before the first selected one; None at the very start)."""
