"""EuRoC MAV sequences in the ASL layout: ``euroc:PATH`` (PATH holds ``mav0/`` or is it).

- ``cam0/`` (``data.csv`` + ``data/`` + ``sensor.yaml``) gives the frames; with ``cam1/`` they
  are stereo pairs, matched by timestamp (within 1 ms). cam0 rows without a cam1 partner are
  left out (logged); cam1 rows without a cam0 partner are ignored, image or not (the shared
  V1_01_easy clip lists four such rows whose images are missing).
- ``sensor.yaml``: intrinsics, ``radial-tangential`` / ``equidistant`` distortion, ``T_BS``
  (body_from_sensor), resolution. Plain YAML and OpenCV ``%YAML:1.0`` files (with
  ``!!opencv-matrix`` nodes) are both read.
- Stereo with ``source.stereo_rectify`` (default): both images are rectified with
  :func:`slamfront.geometry.rectify_stereo`; frames carry the rectified pinhole camera and a
  rectified StereoRig. The rectified left camera is rotated against raw cam0
  (``rect_from_left``), and ``body_from_cam`` and ``groundtruth()`` use the rectified camera.
  Without rectification each image is undistorted on its own when ``source.undistort``
  (pinhole cameras, raw extrinsics, ``rectified=False``), else passed raw with its distortion.
- ``imu0/data.csv``: every sample with ``previous frame stamp < t <= frame stamp`` rides on the
  frame (the first frame gets the samples after the recorded frame before it, or all earlier
  samples at the start of the recording). ``body_from_cam`` is the IMU-from-camera extrinsic.
- Ground truth, first found: ``source.groundtruth`` (a TUM, EuRoC csv or KITTI file of
  ``world_from_body`` poses); ``mav0/state_groundtruth_estimate0/data.csv``; the single
  ``groundtruth_from_open_vins/*_original.txt`` beside ``mav0`` (the layout of the shared clip,
  whose state_groundtruth_estimate0 csv is missing). ``groundtruth()`` returns the camera's
  poses: ``world_from_cam = world_from_body @ body_from_cam``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import StereoRectification, invert_pose, rectify_stereo
from slamfront.io.trajectory import (
    check_stamp_ns,
    check_stamps_increase,
    read_data_lines,
    read_trajectory,
)
from slamfront.sources._files import (
    IndexedSource,
    Undistorter,
    check_image_size,
    dataset_path,
    read_image,
    require_dir,
)
from slamfront.sources.base import with_readout
from slamfront.sources.calibration import load_yaml
from slamfront.types import CameraModel, Frame, ImuNoise, ImuSample, StereoRig, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config

log = logging.getLogger("slamfront.sources.euroc")

PAIR_TOLERANCE_NS = 1_000_000


# ----------------------------------------------------------------------------- yaml

# A EuRoC/Kalibr/OpenCV sensor yaml is read like any calibration file.
load_sensor_yaml = load_yaml


def _field(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        raise SourceError(f"{path}: missing key {key!r}")
    return data[key]


def _numbers(value: Any, count: int | tuple[int, ...], key: str, path: Path) -> list[float]:
    counts = (count,) if isinstance(count, int) else count
    if not isinstance(value, list) or len(value) not in counts:
        raise SourceError(
            f"{path}: {key} must be a list of {' or '.join(map(str, counts))} numbers"
        )
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{path}: {key} holds a non-number: {exc}") from exc
    if not all(math.isfinite(v) and abs(v) < 1e9 for v in numbers):
        raise SourceError(f"{path}: {key} holds a non-finite or absurdly large number")
    return numbers


def read_transform(data: dict[str, Any], path: Path, key: str = "T_BS") -> np.ndarray:
    """4x4 ``body_from_sensor`` from a ``{rows, cols, data}`` node (or a nested list)."""
    node = _field(data, key, path)
    values = node.get("data") if isinstance(node, dict) else node
    if isinstance(values, list) and values and isinstance(values[0], list):
        values = [v for row in values for v in row]
    flat = _numbers(values, (12, 16), key, path)
    out = np.eye(4)
    out[: len(flat) // 4] = np.array(flat).reshape(-1, 4)
    if not np.allclose(out[:3, :3] @ out[:3, :3].T, np.eye(3), atol=1e-4):
        raise SourceError(f"{path}: {key} rotation block is not orthonormal")
    return out


def read_camera(path: Path) -> tuple[CameraModel, np.ndarray, float]:
    """(camera, body_from_cam, rate_hz) of a camera ``sensor.yaml``."""
    data = load_sensor_yaml(path)
    model = str(data.get("camera_model", "pinhole"))
    if model != "pinhole":
        raise SourceError(f"{path}: camera_model {model!r} is not supported (pinhole)")
    fx, fy, cx, cy = _numbers(_field(data, "intrinsics", path), 4, "intrinsics", path)
    width, height = (
        int(v) for v in _numbers(_field(data, "resolution", path), 2, "resolution", path)
    )
    kind = str(data.get("distortion_model", "none")).lower()
    coeffs = tuple(
        _numbers(
            data.get("distortion_coefficients", []), (0, 4, 5, 8), "distortion_coefficients", path
        )
    )
    names = {
        "radial-tangential": "radtan",
        "radtan": "radtan",
        "plumb_bob": "radtan",
        "equidistant": "equidistant",
        "equi": "equidistant",
        "fisheye": "equidistant",
        "none": "none",
    }
    if kind not in names:
        raise SourceError(
            f"{path}: distortion_model {kind!r} is not supported ({', '.join(names)})"
        )
    distortion = names[kind] if any(coeffs) else "none"
    try:
        camera = CameraModel(
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            distortion=distortion,  # type: ignore[arg-type]
            dist_coeffs=coeffs if distortion != "none" else (),
        )
    except ValueError as exc:
        raise SourceError(f"{path}: {exc}") from exc
    rate_hz = float(data.get("rate_hz", 0.0) or 0.0)
    return camera, read_transform(data, path), rate_hz


# ----------------------------------------------------------------------------- csv


@dataclass(frozen=True, eq=False)
class _CameraIndex:
    stamps_ns: np.ndarray
    paths: list[Path]
    numbers: list[int]
    csv: Path


def read_camera_index(folder: Path, check_files: bool = True) -> _CameraIndex:
    csv = folder / "data.csv"
    stamps: list[int] = []
    paths: list[Path] = []
    numbers: list[int] = []
    for number, line in read_data_lines(csv, "EuRoC camera index"):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 2:
            raise SourceError(f"{csv}:{number}: expected 'timestamp_ns,filename', got {line!r}")
        try:
            stamps.append(check_stamp_ns(int(fields[0]), fields[0]))
        except ValueError as exc:
            raise SourceError(
                f"{csv}:{number}: timestamp must be integer nanoseconds, got {fields[0][:40]!r}"
            ) from exc
        path = dataset_path(folder / "data", fields[1], f"{csv}:{number}")
        if check_files and not path.is_file():
            raise SourceError(f"{csv}:{number}: names {fields[1]!r}, which does not exist")
        paths.append(path)
        numbers.append(number)
    if not paths:
        raise SourceError(f"{csv}: lists no images")
    stamps_ns = np.array(stamps, dtype=np.int64)
    check_stamps_increase(csv, numbers, stamps_ns)
    return _CameraIndex(stamps_ns, paths, numbers, csv)


@dataclass(frozen=True, eq=False)
class ImuLog:
    """IMU samples: stamps_ns (N,) int64, gyro_rad_s (N, 3), accel_m_s2 (N, 3)."""

    stamps_ns: np.ndarray
    gyro_rad_s: np.ndarray
    accel_m_s2: np.ndarray

    def between(self, after_ns: int | None, upto_ns: int) -> tuple[ImuSample, ...]:
        """Samples with ``after_ns < t <= upto_ns`` (every earlier one when after_ns is None)."""
        lo = 0 if after_ns is None else int(np.searchsorted(self.stamps_ns, after_ns, "right"))
        hi = int(np.searchsorted(self.stamps_ns, upto_ns, "right"))
        return tuple(
            ImuSample(
                int(self.stamps_ns[k]),
                (
                    float(self.gyro_rad_s[k, 0]),
                    float(self.gyro_rad_s[k, 1]),
                    float(self.gyro_rad_s[k, 2]),
                ),
                (
                    float(self.accel_m_s2[k, 0]),
                    float(self.accel_m_s2[k, 1]),
                    float(self.accel_m_s2[k, 2]),
                ),
            )
            for k in range(lo, hi)
        )


_IMU_NOISE_KEYS = (
    "gyroscope_noise_density",
    "gyroscope_random_walk",
    "accelerometer_noise_density",
    "accelerometer_random_walk",
)


def read_imu_noise(data: dict[str, Any], path: Path) -> ImuNoise | None:
    """The noise model of an IMU sensor.yaml (Kalibr names); None when it states none; a
    SourceError naming the file and key for a missing, non-numeric or non-positive value."""
    if not any(key in data for key in _IMU_NOISE_KEYS):
        return None
    values = []
    for key in (*_IMU_NOISE_KEYS, "rate_hz"):
        try:
            value = float(data[key])
        except KeyError:
            raise SourceError(f"{path}: {key} missing (the IMU noise model needs it)") from None
        except (TypeError, ValueError):
            raise SourceError(f"{path}: {key} is not a number: {data[key]!r}") from None
        if not value > 0:
            raise SourceError(f"{path}: {key} must be positive, got {value}")
        values.append(value)
    return ImuNoise(*values)


def read_imu_csv(csv: Path) -> ImuLog:
    """``t_ns, wx, wy, wz, ax, ay, az`` rows of ``imu0/data.csv``."""
    stamps: list[int] = []
    values: list[list[float]] = []
    numbers: list[int] = []
    for number, line in read_data_lines(csv, "EuRoC IMU log"):
        fields = line.split(",")
        if len(fields) != 7:
            raise SourceError(
                f"{csv}:{number}: expected 7 values 't_ns,wx,wy,wz,ax,ay,az', got {len(fields)}"
            )
        try:
            stamps.append(check_stamp_ns(int(fields[0]), fields[0]))
            values.append([float(f) for f in fields[1:]])
        except ValueError as exc:
            raise SourceError(f"{csv}:{number}: cannot parse IMU sample: {exc}") from exc
        numbers.append(number)
    stamps_ns = np.array(stamps, dtype=np.int64)
    check_stamps_increase(csv, numbers, stamps_ns)
    data = np.array(values, dtype=np.float64).reshape(-1, 6)
    if not np.all(np.isfinite(data)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(data), axis=1))[0])
        raise SourceError(f"{csv}:{numbers[bad]}: non-finite IMU value")
    return ImuLog(stamps_ns, data[:, :3], data[:, 3:])


def _pair_by_stamp(
    left_ns: np.ndarray, right_ns: np.ndarray, tolerance_ns: int
) -> list[tuple[int, int]]:
    """(i, j) for each left stamp and the nearest right stamp within the tolerance."""
    pairs = []
    for i, stamp in enumerate(left_ns):
        j = int(np.searchsorted(right_ns, stamp))
        near = [k for k in (j - 1, j) if 0 <= k < len(right_ns)]
        if not near:
            continue
        best = min(near, key=lambda k: abs(int(right_ns[k]) - int(stamp)))
        if abs(int(right_ns[best]) - int(stamp)) <= tolerance_ns:
            pairs.append((i, best))
    return pairs


# ----------------------------------------------------------------------------- source


def find_mav0(path: Path) -> Path:
    if (path / "mav0").is_dir():
        return path / "mav0"
    if (path / "cam0").is_dir():
        return path
    require_dir(path, "EuRoC sequence folder")
    raise SourceError(f"{path}: not a EuRoC ASL folder (no mav0/ and no cam0/ inside)")


class EurocSource(IndexedSource):
    """Frames of a EuRoC ASL folder (see the module docstring)."""

    name = "euroc"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> EurocSource:
        if not rest:
            raise SourceError("euroc source needs a folder: euroc:PATH")
        return cls(Path(rest).expanduser(), config)

    def __init__(self, path: Path, config: Config) -> None:
        cfg = config.source
        self.mav0 = find_mav0(Path(path))
        self._groundtruth_file = cfg.groundtruth
        cam0_dir = require_dir(self.mav0 / "cam0", "EuRoC cam0 folder")
        left_raw, body_from_cam0, self.rate_hz = read_camera(cam0_dir / "sensor.yaml")
        check_image_size(left_raw.width_px, left_raw.height_px, cfg, str(cam0_dir / "sensor.yaml"))
        left_raw = with_readout(left_raw, config.camera, 0.0)  # global-shutter imagers
        left_index = read_camera_index(cam0_dir)

        self._right_paths: list[Path] | None = None
        self._rectification: StereoRectification | None = None
        self._undistort_right: Undistorter | None = None
        self.stereo: StereoRig | None = None
        cam_from_outcam = np.eye(4)  # raw cam0 <- the camera frames report (rectified or raw)
        cam1_dir = self.mav0 / "cam1"
        if cam1_dir.is_dir():
            right_raw, body_from_cam1, _ = read_camera(cam1_dir / "sensor.yaml")
            right_raw = with_readout(right_raw, config.camera, 0.0)
            right_index = read_camera_index(cam1_dir, check_files=False)
            pairs = _pair_by_stamp(left_index.stamps_ns, right_index.stamps_ns, PAIR_TOLERANCE_NS)
            if not pairs:
                raise SourceError(
                    f"{right_index.csv}: no cam1 timestamp within 1 ms of a cam0 timestamp"
                )
            for _, j in pairs:
                if not right_index.paths[j].is_file():
                    raise SourceError(
                        f"{right_index.csv}:{right_index.numbers[j]}: names "
                        f"{right_index.paths[j].name!r}, which does not exist"
                    )
            dropped_left = len(left_index.paths) - len(pairs)
            dropped_right = len(right_index.paths) - len(pairs)
            if dropped_left:
                log.warning(
                    "%s: %d cam0 frames have no cam1 partner; left out", self.mav0, dropped_left
                )
            if dropped_right:
                log.info("%s: %d cam1 rows have no cam0 partner; ignored", self.mav0, dropped_right)
            self._left_paths = [left_index.paths[i] for i, _ in pairs]
            self._right_paths = [right_index.paths[j] for _, j in pairs]
            stamps = left_index.stamps_ns[[i for i, _ in pairs]]
            right_from_left = np.linalg.inv(body_from_cam1) @ body_from_cam0
            raw_rig = StereoRig(left_raw, right_raw, right_from_left)
            if cfg.stereo_rectify:
                try:
                    self._rectification = rectify_stereo(raw_rig)
                except ValueError as exc:
                    raise SourceError(f"{self.mav0}: cannot rectify cam0/cam1: {exc}") from exc
                self.stereo = self._rectification.rig
                self.camera = self.stereo.left
                cam_from_outcam = invert_pose(self._rectification.rect_from_left)
            else:
                self._undistort_left = Undistorter(left_raw, cfg.undistort)
                self._undistort_right = Undistorter(right_raw, cfg.undistort)
                self.camera = self._undistort_left.camera
                self.stereo = StereoRig(self.camera, self._undistort_right.camera, right_from_left)
        else:
            self._left_paths = left_index.paths
            stamps = left_index.stamps_ns
            self._undistort_left = Undistorter(left_raw, cfg.undistort)
            self.camera = self._undistort_left.camera
        self.raw_camera = left_raw
        self.body_from_cam0 = body_from_cam0
        self.body_from_cam = body_from_cam0 @ cam_from_outcam
        """body (IMU) <- the camera the frames report (the rectified left one when rectified)."""

        self.imu: ImuLog | None = None
        self.imu_noise: ImuNoise | None = None
        """The noise model of imu0/sensor.yaml (None without it)."""
        self._imu_from_cam: np.ndarray | None = None
        imu_csv = self.mav0 / "imu0" / "data.csv"
        if imu_csv.is_file():
            self.imu = read_imu_csv(imu_csv)
            imu_yaml = self.mav0 / "imu0" / "sensor.yaml"
            body_from_imu = (
                read_transform(load_sensor_yaml(imu_yaml), imu_yaml)
                if imu_yaml.is_file()
                else np.eye(4)
            )
            self._imu_from_cam = np.linalg.inv(body_from_imu) @ self.body_from_cam
            if imu_yaml.is_file():
                self.imu_noise = read_imu_noise(load_sensor_yaml(imu_yaml), imu_yaml)
        super().__init__(stamps, cfg)
        self._groundtruth: Trajectory | None = None
        self._groundtruth_loaded = False

    @property
    def imu_from_cam(self) -> np.ndarray | None:
        """IMU <- reported camera (4x4), None without imu0/."""
        return self._imu_from_cam

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
        if self._rectification is not None:
            left = self._rectification.left.apply(left)
            assert right is not None
            right = self._rectification.right.apply(right)
        else:
            left = self._undistort_left(left)
            if right is not None and self._undistort_right is not None:
                right = self._undistort_right(right)
        stamp_ns = int(self._stamps_ns[index])
        imu = self.imu.between(previous_stamp_ns, stamp_ns) if self.imu is not None else ()
        return Frame(
            index=index,
            stamp_ns=stamp_ns,
            image=left,
            camera=self.camera,
            image_right=right,
            stereo=self.stereo,
            imu=imu,
            body_from_cam=self._imu_from_cam,
            imu_noise=self.imu_noise,
            source_path=str(left_path),
        )

    def _load(self, path: Path) -> np.ndarray | None:
        image, reason = read_image(path, "grey")
        expected = (self.raw_camera.height_px, self.raw_camera.width_px)
        if image is not None and image.shape != expected:
            height, width = image.shape
            image = None
            reason = f"size {width}x{height} differs from sensor.yaml {expected[1]}x{expected[0]}"
        if image is None:
            self._skip(str(path), reason)
        return image

    def groundtruth_file(self) -> Path | None:
        """The ground-truth file used (see the module docstring), or None."""
        if self._groundtruth_file:
            return Path(self._groundtruth_file)
        state = self.mav0 / "state_groundtruth_estimate0" / "data.csv"
        if state.is_file():
            return state
        found = sorted((self.mav0.parent / "groundtruth_from_open_vins").glob("*_original.txt"))
        return found[0] if len(found) == 1 else None

    def groundtruth(self) -> Trajectory | None:
        if self._groundtruth_loaded:
            return self._groundtruth
        path = self.groundtruth_file()
        if path is not None:
            body = read_trajectory(path)
            body_from_gt = np.eye(4)
            gt_yaml = self.mav0 / "state_groundtruth_estimate0" / "sensor.yaml"
            if path.parent.name == "state_groundtruth_estimate0" and gt_yaml.is_file():
                body_from_gt = read_transform(load_sensor_yaml(gt_yaml), gt_yaml)
            gt_from_cam = np.linalg.inv(body_from_gt) @ self.body_from_cam
            self._groundtruth = Trajectory(body.stamps_ns, body.world_from_body @ gt_from_cam)
        self._groundtruth_loaded = True
        return self._groundtruth
