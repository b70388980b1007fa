"""KITTI odometry sequences: ``kitti:PATH[:SEQ]``.

PATH is a sequence folder (``image_0/``, optional ``image_1/``, ``calib.txt``, ``times.txt``), or,
with ``:SEQ``, the dataset root holding ``sequences/SEQ/`` and ``poses/SEQ.txt``.

- ``times.txt`` line ``i`` (seconds) is frame ``i``, image ``image_0/%06d.png``; a missing image
  is a SourceError naming that line.
- ``calib.txt``: ``P0`` gives K; with ``image_1/`` the frames are a rectified stereo pair whose
  baseline comes from ``P1`` (``(P0[0,3] - P1[0,3]) / fx``) and the right camera's principal
  column from ``P1[0,2]``. Images are grey and already rectified, so the camera has no
  distortion.
- ``groundtruth()``: ``source.groundtruth``, else ``ROOT/poses/SEQ.txt`` (the root given with
  ``:SEQ``, or the folder two levels above a sequence folder named like ``sequences/SEQ``),
  stamped by times.txt. The poses are ``world_from_cam`` of the left grey camera (cam0).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import SourceError
from slamfront.io.trajectory import (
    read_data_lines,
    read_kitti_times,
    read_kitti_trajectory,
    read_trajectory,
)
from slamfront.sources._files import (
    IndexedSource,
    check_image_size,
    first_image_size,
    read_image,
    require_dir,
    require_file,
)
from slamfront.sources.base import with_readout
from slamfront.types import CameraModel, Frame, StereoRig, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config


def split_kitti_spec(rest: str) -> tuple[Path, str | None]:
    """(path, sequence or None) from 'PATH' or 'PATH:SEQ' (SEQ is digits)."""
    head, sep, tail = rest.rpartition(":")
    if sep and re.fullmatch(r"\d{1,3}", tail):
        return Path(head).expanduser(), tail.zfill(2)
    return Path(rest).expanduser(), None


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """3x4 matrices of a KITTI ``calib.txt`` (``NAME: 12 numbers`` lines)."""
    out: dict[str, np.ndarray] = {}
    for number, line in read_data_lines(path, "KITTI calibration"):
        name, sep, values = line.partition(":")
        fields = values.split()
        if not sep or len(fields) != 12:
            raise SourceError(f"{path}:{number}: expected 'NAME: 12 numbers', got {line!r}")
        try:
            out[name.strip()] = np.array([float(v) for v in fields]).reshape(3, 4)
        except ValueError as exc:
            raise SourceError(f"{path}:{number}: cannot parse {name.strip()}: {exc}") from exc
        if not np.all(np.isfinite(out[name.strip()])):
            raise SourceError(f"{path}:{number}: {name.strip()} holds a non-finite number")
    return out


class KittiSource(IndexedSource):
    """Frames of a KITTI odometry sequence (see the module docstring)."""

    name = "kitti"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> KittiSource:
        if not rest:
            raise SourceError("kitti source needs a folder: kitti:PATH[:SEQ]")
        path, sequence = split_kitti_spec(rest)
        return cls(path, config, sequence)

    def __init__(self, path: Path, config: Config, sequence: str | None = None) -> None:
        cfg = config.source
        path = Path(path)
        if sequence is not None:
            root = require_dir(path, "KITTI dataset root")
            self.folder = require_dir(root / "sequences" / sequence, f"KITTI sequence {sequence}")
            self._poses_file: Path | None = root / "poses" / f"{sequence}.txt"
        else:
            self.folder = require_dir(path, "KITTI sequence folder")
            parent = self.folder.resolve().parent
            self._poses_file = (
                parent.parent / "poses" / f"{self.folder.resolve().name}.txt"
                if parent.name == "sequences"
                else None
            )
        self._groundtruth_file = cfg.groundtruth
        left_dir = require_dir(self.folder / "image_0", "KITTI image_0 folder")
        right_dir = self.folder / "image_1"
        times_path = require_file(self.folder / "times.txt", "KITTI times.txt")
        stamps = read_kitti_times(times_path)
        if stamps.size == 0:
            raise SourceError(f"{times_path}: lists no frames")
        numbers = [n for n, _ in read_data_lines(times_path, "KITTI times.txt")]
        self._left_paths = [left_dir / f"{i:06d}.png" for i in range(stamps.size)]
        stereo = right_dir.is_dir()
        self._right_paths = (
            [right_dir / f"{i:06d}.png" for i in range(stamps.size)] if stereo else None
        )
        for paths in (self._left_paths, self._right_paths or []):
            for i, image in enumerate(paths):
                if not image.is_file():
                    raise SourceError(
                        f"{times_path}:{numbers[i]}: frame {i} has no image "
                        f"({image.parent.name}/{image.name} does not exist)"
                    )
        calib_path = require_file(self.folder / "calib.txt", "KITTI calib.txt")
        calib = read_calib(calib_path)
        if "P0" not in calib:
            raise SourceError(f"{calib_path}: no P0 line")
        p0 = calib["P0"]
        width, height = first_image_size(self._left_paths, "grey", "image_0 images")
        check_image_size(width, height, config.source, str(self._left_paths[0]))
        try:
            camera = CameraModel(
                width, height, float(p0[0, 0]), float(p0[1, 1]), float(p0[0, 2]), float(p0[1, 2])
            )
            self.camera = with_readout(camera, config.camera, 0.0)  # global-shutter imagers
        except ValueError as exc:
            raise SourceError(f"{calib_path}: P0: {exc}") from exc
        self.stereo: StereoRig | None = None
        if stereo:
            if "P1" not in calib:
                raise SourceError(f"{calib_path}: image_1/ exists but there is no P1 line")
            p1 = calib["P1"]
            shared = ([0, 1, 1], [0, 1, 2])  # fx, fy, cy: one rectified image plane
            if not np.allclose(p1[shared], p0[shared], rtol=1e-9, atol=1e-6):
                raise SourceError(
                    f"{calib_path}: P1 and P0 differ in focal length or principal row: "
                    "the images are not a rectified pair"
                )
            baseline_m = float((p0[0, 3] - p1[0, 3]) / p0[0, 0])
            if not baseline_m > 0:
                raise SourceError(f"{calib_path}: P1 gives a baseline of {baseline_m} m")
            right_from_left = np.eye(4)
            right_from_left[0, 3] = -baseline_m
            # a rectified pair may still have its own principal column (P1[0, 2])
            right = replace(self.camera, cx=float(p1[0, 2]))
            self.stereo = StereoRig(self.camera, right, right_from_left, rectified=True)
        super().__init__(stamps, cfg)
        self._groundtruth: Trajectory | None = None

    def _read(self, index: int, previous_stamp_ns: int | None) -> Frame | None:
        left_path = self._left_paths[index]
        left = self._load(left_path)
        if left is None:
            return None
        right = None
        if self._right_paths is not None:
            right = self._load(self._right_paths[index])
            if right is None:
                return None
        return Frame(
            index=index,
            stamp_ns=int(self._stamps_ns[index]),
            image=left,
            camera=self.camera,
            image_right=right,
            stereo=self.stereo,
            source_path=str(left_path),
        )

    def _load(self, path: Path) -> np.ndarray | None:
        image, reason = read_image(path, "grey")
        if image is not None and image.shape != (self.camera.height_px, self.camera.width_px):
            reason = f"size {image.shape[1]}x{image.shape[0]} differs from the first image"
            image = None
        if image is None:
            self._skip(str(path), reason)
        return image

    def groundtruth(self) -> Trajectory | None:
        if self._groundtruth is None:
            if self._groundtruth_file:
                self._groundtruth = read_trajectory(
                    self._groundtruth_file, times_path=self.folder / "times.txt"
                )
            elif self._poses_file is not None and self._poses_file.is_file():
                self._groundtruth = read_kitti_trajectory(
                    self._poses_file, self.folder / "times.txt"
                )
        return self._groundtruth
