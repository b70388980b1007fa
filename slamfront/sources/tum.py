"""TUM RGB-D sequences: ``tum:PATH`` (the folder holding rgb.txt).

- ``rgb.txt`` (``stamp path`` lines, ``#`` comments) lists the colour images; ``depth.txt``, when
  present, the 16-bit depth PNGs. Each colour image is paired with the depth image nearest in
  time within ``source.tum_max_time_diff_s`` (each depth used once, closest pairs first, as the
  benchmark's ``associate.py`` does); colour images without a partner are left out. Without
  depth.txt the sequence is monocular (``depth_m`` None).
- Depth: uint16 / ``source.tum_depth_scale`` (5000) -> float32 metres, 0 = invalid.
- Intrinsics: the published calibration chosen by ``source.tum_intrinsics`` or, when 'auto',
  by ``freiburg1|2|3`` in the folder name; ``ros`` is the ROS default (525, 525, 319.5, 239.5).
- Distortion (fr1, fr2): with ``source.undistort`` (default) the colour image is remapped to a
  pinhole with the same K (bilinear) and the depth with the same map (nearest), and frames
  report that pinhole camera; with ``source.undistort=false`` the raw images come with the
  distorted CameraModel.
- Rolling shutter: the colour camera of the Kinect / Xtion reads its rows out over
  ``KINECT_READOUT_S`` (``camera.readout_ms`` overrides it).
- ``groundtruth()``: ``source.groundtruth`` or ``groundtruth.txt`` (world_from_cam of the colour
  camera; undistortion keeps the camera frame, so the poses hold for the undistorted images).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import SourceError
from slamfront.io.trajectory import (
    check_stamps_increase,
    parse_stamp_s,
    read_data_lines,
    read_trajectory,
)
from slamfront.sources._files import (
    IndexedSource,
    Undistorter,
    dataset_path,
    read_image,
    require_dir,
)
from slamfront.sources.base import with_readout
from slamfront.types import CameraModel, Frame, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config

log = logging.getLogger("slamfront.sources.tum")

WIDTH_PX, HEIGHT_PX = 640, 480
KINECT_READOUT_S = 0.028
"""Rolling-shutter readout of the Kinect v1 / Xtion colour camera at 30 Hz."""

# Published calibration of the TUM RGB-D Kinects: fx, fy, cx, cy and k1, k2, p1, p2, k3.
TUM_INTRINSICS: dict[str, tuple[tuple[float, float, float, float], tuple[float, ...]]] = {
    "fr1": (
        (517.306408, 516.469215, 318.643040, 255.313989),
        (0.262383, -0.953104, -0.005358, 0.002628, 1.163314),
    ),
    "fr2": (
        (520.908620, 521.007327, 325.141442, 249.701764),
        (0.231222, -0.784899, -0.003257, -0.000105, 0.917205),
    ),
    "fr3": ((535.4, 539.2, 320.1, 247.6), ()),
    "ros": ((525.0, 525.0, 319.5, 239.5), ()),
}


def tum_camera(name: str) -> CameraModel:
    """The raw (possibly distorted) 640x480 colour camera of a TUM calibration name."""
    (fx, fy, cx, cy), coeffs = TUM_INTRINSICS[name]
    return CameraModel(
        WIDTH_PX,
        HEIGHT_PX,
        fx,
        fy,
        cx,
        cy,
        distortion="radtan" if coeffs else "none",
        dist_coeffs=coeffs,
    )


def calibration_name(folder: Path, setting: str) -> str:
    """'fr1'..'fr3' from the setting, or from 'freiburgN' in the folder's name when 'auto'."""
    if setting != "auto":
        return setting
    found = re.findall(r"freiburg([123])", folder.resolve().name)
    if not found:
        raise SourceError(
            f"{folder}: cannot tell the TUM camera from the folder name (no 'freiburg1', "
            "'freiburg2' or 'freiburg3'); set source.tum_intrinsics=fr1|fr2|fr3|ros"
        )
    return f"fr{found[0]}"


def read_file_index(folder: Path, name: str) -> tuple[np.ndarray, list[Path], list[int]]:
    """(stamps_ns, paths, line numbers) of a TUM ``stamp path`` index; checks files exist."""
    index = folder / name
    stamps: list[int] = []
    paths: list[Path] = []
    numbers: list[int] = []
    for number, line in read_data_lines(index, f"TUM index {name}"):
        fields = line.split()
        if len(fields) < 2:
            raise SourceError(f"{index}:{number}: expected 'timestamp filename', got {line!r}")
        try:
            stamps.append(parse_stamp_s(fields[0]))
        except ValueError as exc:
            raise SourceError(f"{index}:{number}: cannot parse timestamp: {exc}") from exc
        path = dataset_path(folder, fields[1], f"{index}:{number}")
        if not path.is_file():
            raise SourceError(f"{index}:{number}: names {fields[1]!r}, which does not exist")
        paths.append(path)
        numbers.append(number)
    if not paths:
        raise SourceError(f"{index}: lists no images")
    stamps_ns = np.array(stamps, dtype=np.int64)
    check_stamps_increase(index, numbers, stamps_ns)
    return stamps_ns, paths, numbers


def associate(
    first_ns: np.ndarray, second_ns: np.ndarray, max_diff_ns: int
) -> list[tuple[int, int]]:
    """Pairs (i, j), sorted by i, of stamps within ``max_diff_ns``; closest pairs first, each
    stamp used at most once."""
    candidates: list[tuple[int, int, int]] = []
    for i, stamp in enumerate(first_ns):
        lo = int(np.searchsorted(second_ns, stamp - max_diff_ns, side="left"))
        hi = int(np.searchsorted(second_ns, stamp + max_diff_ns, side="right"))
        candidates.extend((abs(int(second_ns[j]) - int(stamp)), i, j) for j in range(lo, hi))
    candidates.sort()
    used_first: set[int] = set()
    used_second: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, i, j in candidates:
        if i not in used_first and j not in used_second:
            used_first.add(i)
            used_second.add(j)
            pairs.append((i, j))
    return sorted(pairs)


class TumSource(IndexedSource):
    """Frames of a TUM RGB-D folder (see the module docstring)."""

    name = "tum"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> TumSource:
        if not rest:
            raise SourceError("tum source needs a folder: tum:PATH")
        return cls(Path(rest).expanduser(), config)

    def __init__(self, folder: Path, config: Config) -> None:
        self.folder = require_dir(Path(folder), "TUM sequence folder")
        cfg = config.source
        self._depth_scale = float(cfg.tum_depth_scale)
        self._groundtruth_file = cfg.groundtruth
        self.calibration = calibration_name(self.folder, cfg.tum_intrinsics)
        self._undistort = Undistorter(tum_camera(self.calibration), cfg.undistort)
        self.camera = with_readout(self._undistort.camera, config.camera, KINECT_READOUT_S)

        rgb_ns, rgb_paths, _ = read_file_index(self.folder, "rgb.txt")
        self._depth_paths: list[Path] | None = None
        if (self.folder / "depth.txt").is_file():
            depth_ns, depth_paths, _ = read_file_index(self.folder, "depth.txt")
            max_diff_ns = round(cfg.tum_max_time_diff_s * 1e9)
            pairs = associate(rgb_ns, depth_ns, max_diff_ns)
            if not pairs:
                raise SourceError(
                    f"{self.folder / 'depth.txt'}: no depth image within "
                    f"{cfg.tum_max_time_diff_s} s of any colour image "
                    "(source.tum_max_time_diff_s)"
                )
            if len(pairs) < len(rgb_paths):
                log.info(
                    "%s: %d of %d colour images have no depth within %.3f s; left out",
                    self.folder,
                    len(rgb_paths) - len(pairs),
                    len(rgb_paths),
                    cfg.tum_max_time_diff_s,
                )
            self._rgb_paths = [rgb_paths[i] for i, _ in pairs]
            self._depth_paths = [depth_paths[j] for _, j in pairs]
            stamps = rgb_ns[[i for i, _ in pairs]]
        else:
            self._rgb_paths = rgb_paths
            stamps = rgb_ns
        super().__init__(stamps, cfg)
        self._groundtruth: Trajectory | None = None

    @property
    def has_depth(self) -> bool:
        return self._depth_paths is not None

    def _read(self, index: int, previous_stamp_ns: int | None) -> Frame | None:
        rgb_path = self._rgb_paths[index]
        image, reason = read_image(rgb_path, "rgb")
        if image is None:
            self._skip(str(rgb_path), reason)
            return None
        if image.shape[:2] != (HEIGHT_PX, WIDTH_PX):
            self._skip(str(rgb_path), f"size {image.shape[1]}x{image.shape[0]}, expected 640x480")
            return None
        depth_m = None
        if self._depth_paths is not None:
            depth_path = self._depth_paths[index]
            raw, reason = read_image(depth_path, "depth16")
            if raw is None:
                self._skip(str(depth_path), reason)
                return None
            if raw.shape != (HEIGHT_PX, WIDTH_PX):
                self._skip(str(depth_path), f"depth size {raw.shape[1]}x{raw.shape[0]}")
                return None
            depth_m = self._undistort(raw.astype(np.float32) / self._depth_scale, nearest=True)
        return Frame(
            index=index,
            stamp_ns=int(self._stamps_ns[index]),
            image=self._undistort(image),
            camera=self.camera,
            depth_m=depth_m,
            source_path=str(rgb_path),
        )

    def groundtruth(self) -> Trajectory | None:
        if self._groundtruth is None:
            if self._groundtruth_file:
                self._groundtruth = read_trajectory(self._groundtruth_file)
            elif (self.folder / "groundtruth.txt").is_file():
                self._groundtruth = read_trajectory(self.folder / "groundtruth.txt", "tum")
        return self._groundtruth
