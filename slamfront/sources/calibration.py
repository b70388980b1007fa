"""Camera calibration files (``camera.calibration=PATH``), the format told from the content.

- ROS ``camera_info`` YAML (camera_calibration_parsers: ``image_width``, ``camera_matrix``,
  ``distortion_model``, ``distortion_coefficients``), OpenCV's calibration output of the same
  keys, and a dumped CameraInfo message (``width``, ``height``, ``K``/``k``, ``D``/``d``).
  Distortion ``plumb_bob`` / ``rational_polynomial`` (radial-tangential, 5 / 8 coefficients)
  or ``equidistant`` (fisheye, 4).
- Kalibr camchain (``cam0:``, ``cam1:`` ...): ``camera_model: pinhole``, ``intrinsics``,
  ``distortion_model`` ``radtan`` / ``equidistant`` / ``none``, ``resolution``; ``cam1.T_cn_cnm1``
  (cam1 from cam0) makes a stereo pair; ``cam0.T_cam_imu`` (cam0 from IMU) the IMU extrinsic.
  A EuRoC ``sensor.yaml`` (one such camera at the top level, ``T_BS`` = body_from_cam) too.
- OpenCV / ORB-SLAM3 settings (``%YAML:1.0``, ``!!opencv-matrix``): ``Camera.type`` ``PinHole``
  (k1, k2, p1, p2[, k3]), ``KannalaBrandt8`` (fisheye k1..k4) or ``Rectified``; the 1.0 layout
  (``Camera1.fx`` ..., ``Camera2.*``, ``Stereo.T_c1_c2``, ``Stereo.b``, ``IMU.T_b_c1``) and the
  older one (``Camera.fx`` ..., ``Tlr``, ``Tbc``).

Other camera models (Kalibr ``omni``, ``ds``, ``eucm``; ``fov`` distortion) are errors naming
the file and key: the tracker handles pinhole cameras with radial-tangential or equidistant
distortion only. Every error names the file and the key at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import invert_pose
from slamfront.types import CameraModel, DistortionModel

CalibrationFormat = Literal["camera_info", "kalibr", "opencv", "config"]


@dataclass(frozen=True, eq=False)
class Calibration:
    """What a calibration file says of a rig; cameras raw (distortion kept)."""

    path: Path
    format: CalibrationFormat
    camera: CameraModel
    """The first (left / colour) camera."""
    right: CameraModel | None = None
    right_from_left: np.ndarray | None = None
    """4x4 float64 extrinsic of the second camera, when the file describes a pair."""
    body_from_cam: np.ndarray | None = None
    """4x4 float64 IMU (body) <- first camera, when the file gives it."""


def load_yaml(path: Path) -> dict[str, Any]:
    """Mapping of a YAML file; OpenCV's ``%YAML:1.0`` header and ``!!opencv-matrix`` allowed."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def matrix(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, "an !!opencv-matrix must be a mapping", node.start_mark
            )
        return {str(k): v for k, v in loader.construct_mapping(node, deep=True).items()}

    _Loader.add_constructor("tag:yaml.org,2002:opencv-matrix", matrix)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read the calibration file: {exc}") from exc
    lines = text.splitlines()
    if lines and lines[0].startswith("%YAML:"):
        lines[0] = "# " + lines[0]  # OpenCV's header is not YAML 1.1; keep line numbers
    try:
        data = yaml.load("\n".join(lines), Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError:
        raise SourceError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a mapping of keys")
    return data


def read_calibration(path: str | Path, image_size_px: tuple[int, int] | None = None) -> Calibration:
    """The calibration in ``path``; ``image_size_px`` (width, height) of the images it is for
    fills a size the file omits and must match one it gives."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: calibration file not found (camera.calibration)")
    return calibration_from_mapping(path, load_yaml(path), image_size_px)


def calibration_from_mapping(
    where: Path, data: dict[str, Any], image_size_px: tuple[int, int] | None = None
) -> Calibration:
    """As :func:`read_calibration` on what a file held; ``where`` names it in errors (a file,
    or a bag and topic for a CameraInfo message given as its fields)."""
    reader = _Reader(where, data, image_size_px)
    if any(_is_kalibr_camera(k, v) for k, v in data.items()):
        return reader.kalibr()
    if "intrinsics" in data and "camera_model" in data:
        return reader.euroc_sensor()
    if "camera_matrix" in data or "cameraMatrix" in data:
        return reader.camera_info_file()
    if ("K" in data or "k" in data) and "width" in data:
        return reader.camera_info_message()
    if any(str(k).startswith(("Camera.", "Camera1.")) for k in data):
        return reader.opencv_settings()
    raise SourceError(
        f"{where}: not a calibration file this reads: expected a ROS camera_info YAML "
        "(camera_matrix), a Kalibr camchain (cam0:) or an OpenCV/ORB-SLAM3 settings file "
        "(Camera.fx or Camera1.fx)"
    )


def _is_kalibr_camera(key: Any, value: Any) -> bool:
    return (
        isinstance(key, str)
        and key.startswith("cam")
        and key[3:].isdigit()
        and isinstance(value, dict)
    )


_RADTAN_COUNTS = (4, 5, 8)


class _Reader:
    """Field access that names the file and key in every error."""

    def __init__(
        self, path: Path, data: dict[str, Any], image_size_px: tuple[int, int] | None
    ) -> None:
        self.path = path
        self.data = data
        self.image_size_px = image_size_px

    def fail(self, key: str, message: str) -> SourceError:
        return SourceError(f"{self.path}: {key}: {message}")

    def get(self, mapping: dict[str, Any], key: str, label: str | None = None) -> Any:
        if key not in mapping:
            raise self.fail(label or key, "missing")
        return mapping[key]

    def number(self, mapping: dict[str, Any], key: str, label: str | None = None) -> float:
        value = self.get(mapping, key, label)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(label or key, f"must be a number, got {value!r}")
        return float(value)

    def numbers(self, value: Any, label: str, counts: tuple[int, ...]) -> list[float]:
        if isinstance(value, dict):  # {rows, cols, data} (ROS and OpenCV matrices)
            if "data" not in value:
                raise self.fail(label, "a matrix node needs 'data'")
            value = value["data"]
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            value = [x for row in value for x in row]
        if not isinstance(value, list) or len(value) not in counts:
            shown = " or ".join(map(str, counts))
            got = len(value) if isinstance(value, list) else type(value).__name__
            raise self.fail(label, f"must hold {shown} numbers, got {got}")
        try:
            out = [float(v) for v in value]
        except (TypeError, ValueError) as exc:
            raise self.fail(label, f"holds a non-number: {exc}") from exc
        if not all(np.isfinite(out)):
            raise self.fail(label, "holds a non-finite number")
        return out

    def transform(self, value: Any, label: str) -> np.ndarray:
        flat = self.numbers(value, label, (12, 16))
        out = np.eye(4)
        out[: len(flat) // 4] = np.array(flat).reshape(-1, 4)
        if len(flat) == 16 and not np.allclose(out[3], (0, 0, 0, 1)):
            raise self.fail(label, "last row must be 0 0 0 1")
        rot = out[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
            raise self.fail(label, "rotation block is not a rotation")
        return out

    def size(self, width: Any, height: Any, label: str) -> tuple[int, int]:
        """(width, height) from the file, else from the images; checked against the images."""
        if width is None or height is None:
            if self.image_size_px is None:
                raise self.fail(label, "missing (the image size)")
            return self.image_size_px
        if isinstance(width, bool) or isinstance(height, bool):
            raise self.fail(label, "must be integers")
        try:
            size = (int(width), int(height))
        except (TypeError, ValueError) as exc:
            raise self.fail(label, f"must be integers: {exc}") from exc
        if size[0] != width or size[1] != height:
            raise self.fail(label, f"must be integers, got {width!r} x {height!r}")
        if self.image_size_px is not None and size != self.image_size_px:
            raise self.fail(
                label,
                f"says {size[0]}x{size[1]} but the images are "
                f"{self.image_size_px[0]}x{self.image_size_px[1]}",
            )
        return size

    def camera(
        self,
        label: str,
        size: tuple[int, int],
        intrinsics: list[float],
        distortion: DistortionModel,
        coeffs: list[float],
    ) -> CameraModel:
        if distortion == "none" or not any(coeffs):
            distortion, coeffs = "none", []
        try:
            fx, fy, cx, cy = intrinsics
            return CameraModel(
                size[0], size[1], fx, fy, cx, cy, distortion=distortion, dist_coeffs=tuple(coeffs)
            )
        except ValueError as exc:
            raise self.fail(label, str(exc)) from exc

    # ------------------------------------------------------------------ ROS camera_info

    def _ros_distortion(
        self, model_key: str, coeffs_key: str, raw: Any
    ) -> tuple[DistortionModel, list[float]]:
        # OpenCV's calibration output names no model: its 4, 5 or 8 radial-tangential terms
        model = str(self.data.get(model_key) or "plumb_bob").lower()
        kinds: dict[str, tuple[DistortionModel, tuple[int, ...]]] = {
            "plumb_bob": ("radtan", _RADTAN_COUNTS),
            "rational_polynomial": ("radtan", (8,)),
            "equidistant": ("equidistant", (4,)),
            "fisheye": ("equidistant", (4,)),
        }
        if raw is not None and not any(self.numbers(raw, coeffs_key, (0, 4, 5, 8, 12, 14))):
            return "none", []  # all zero: no distortion, whatever the model's name
        if model not in kinds:
            raise self.fail(
                model_key,
                f"{model!r} is not supported (plumb_bob, rational_polynomial, equidistant)",
            )
        kind, counts = kinds[model]
        if raw is None:
            return kind, []
        values = self.numbers(raw, coeffs_key, (0, *counts))
        if len(values) == 8 and model == "plumb_bob" and model_key in self.data:
            raise self.fail(coeffs_key, "8 coefficients need distortion_model rational_polynomial")
        return kind, values

    def camera_info_file(self) -> Calibration:
        data = self.data
        matrix_key = "camera_matrix" if "camera_matrix" in data else "cameraMatrix"
        k = self.numbers(data[matrix_key], matrix_key, (9,))
        coeffs_key = next(
            (
                key
                for key in ("distortion_coefficients", "dist_coeffs", "distCoeffs")
                if key in data
            ),
            "distortion_coefficients",
        )
        kind, coeffs = self._ros_distortion("distortion_model", coeffs_key, data.get(coeffs_key))
        size = self.size(data.get("image_width"), data.get("image_height"), "image_width")
        camera = self.camera(matrix_key, size, [k[0], k[4], k[2], k[5]], kind, coeffs)
        return Calibration(self.path, "camera_info", camera)

    def camera_info_message(self) -> Calibration:
        data = self.data
        k_key = "K" if "K" in data else "k"
        d_key = "D" if "D" in data else "d"
        k = self.numbers(data[k_key], k_key, (9,))
        kind, coeffs = self._ros_distortion("distortion_model", d_key, data.get(d_key))
        size = self.size(data.get("width"), data.get("height"), "width")
        camera = self.camera(k_key, size, [k[0], k[4], k[2], k[5]], kind, coeffs)
        return Calibration(self.path, "camera_info", camera)

    # ------------------------------------------------------------------ Kalibr

    def _kalibr_camera(self, name: str, node: dict[str, Any] | None = None) -> CameraModel:
        """A Kalibr camera node: ``self.data[name]``, or ``node`` (keys named without a prefix
        when ``name`` is '')."""
        node = self.data[name] if node is None else node
        prefix = f"{name}." if name else ""
        model = str(node.get("camera_model", "pinhole"))
        if model != "pinhole":
            raise self.fail(
                f"{prefix}camera_model",
                f"{model!r} is not supported (pinhole with radtan or equidistant distortion)",
            )
        intrinsics = self.numbers(
            self.get(node, "intrinsics", f"{prefix}intrinsics"), f"{prefix}intrinsics", (4,)
        )
        kind_name = str(node.get("distortion_model", "none")).lower()
        kinds: dict[str, tuple[DistortionModel, tuple[int, ...]]] = {
            "radtan": ("radtan", _RADTAN_COUNTS),
            "radial-tangential": ("radtan", _RADTAN_COUNTS),
            "equidistant": ("equidistant", (4,)),
            "none": ("none", (0, 4)),
        }
        if kind_name not in kinds:
            raise self.fail(
                f"{prefix}distortion_model",
                f"{kind_name!r} is not supported (radtan, equidistant, none)",
            )
        kind, counts = kinds[kind_name]
        coeffs_key = next(
            (k for k in ("distortion_coeffs", "distortion_coefficients") if k in node),
            "distortion_coeffs",
        )
        coeffs = self.numbers(node.get(coeffs_key, []), f"{prefix}{coeffs_key}", (0, *counts))
        resolution = node.get("resolution")
        width, height = (None, None)
        if resolution is not None:
            width, height = self.numbers(resolution, f"{prefix}resolution", (2,))
        return self.camera(
            f"{prefix}intrinsics",
            self.size(width, height, f"{prefix}resolution"),
            intrinsics,
            kind,
            coeffs,
        )

    def euroc_sensor(self) -> Calibration:
        """A EuRoC ``sensor.yaml``: one Kalibr-style camera; ``T_BS`` is body_from_cam."""
        camera = self._kalibr_camera("", self.data)
        body_from_cam = self.transform(self.data["T_BS"], "T_BS") if "T_BS" in self.data else None
        return Calibration(self.path, "kalibr", camera, body_from_cam=body_from_cam)

    def kalibr(self) -> Calibration:
        if "cam0" not in self.data:
            raise self.fail("cam0", "missing (a Kalibr camchain starts at cam0)")
        camera = self._kalibr_camera("cam0")
        body_from_cam = None
        if "T_cam_imu" in self.data["cam0"]:
            body_from_cam = invert_pose(
                self.transform(self.data["cam0"]["T_cam_imu"], "cam0.T_cam_imu")
            )
        right = right_from_left = None
        if "cam1" in self.data:
            node = self.data["cam1"]
            if not isinstance(node, dict):
                raise self.fail("cam1", "must be a mapping")
            right_from_left = self.transform(
                self.get(node, "T_cn_cnm1", "cam1.T_cn_cnm1"), "cam1.T_cn_cnm1"
            )
            right = self._kalibr_camera("cam1")
        return Calibration(self.path, "kalibr", camera, right, right_from_left, body_from_cam)

    # ------------------------------------------------------------------ OpenCV / ORB-SLAM3

    def opencv_settings(self) -> Calibration:
        data = self.data
        prefix = "Camera1." if "Camera1.fx" in data else "Camera."
        kind_name = str(data.get("Camera.type", "PinHole"))
        kinds: dict[str, DistortionModel] = {
            "PinHole": "radtan",
            "KannalaBrandt8": "equidistant",
            "Rectified": "none",
        }
        if kind_name not in kinds:
            raise self.fail(
                "Camera.type",
                f"{kind_name!r} is not supported (PinHole, KannalaBrandt8, Rectified)",
            )
        kind = kinds[kind_name]
        size = self.size(data.get("Camera.width"), data.get("Camera.height"), "Camera.width")
        camera = self._opencv_camera(prefix, kind, size)
        right = right_from_left = None
        if kind_name == "Rectified" and "Stereo.b" in data:
            baseline_m = self.number(data, "Stereo.b")
            if baseline_m <= 0:
                raise self.fail("Stereo.b", f"must be positive, got {baseline_m}")
            right = replace(camera)
            right_from_left = np.eye(4)
            right_from_left[0, 3] = -baseline_m
        elif "Camera2.fx" in data:
            right = self._opencv_camera("Camera2.", kind, size)
            key = "Stereo.T_c1_c2" if "Stereo.T_c1_c2" in data else "Tlr"
            left_from_right = self.transform(self.get(data, key), key)
            right_from_left = invert_pose(left_from_right)
        body_from_cam = None
        for key in ("IMU.T_b_c1", "Tbc"):
            if key in data:
                body_from_cam = self.transform(data[key], key)
                break
        return Calibration(self.path, "opencv", camera, right, right_from_left, body_from_cam)

    def _opencv_camera(
        self, prefix: str, kind: DistortionModel, size: tuple[int, int]
    ) -> CameraModel:
        data = self.data
        intrinsics = [self.number(data, prefix + k) for k in ("fx", "fy", "cx", "cy")]
        names = {"radtan": ("k1", "k2", "p1", "p2"), "equidistant": ("k1", "k2", "k3", "k4")}
        coeffs: list[float] = []
        extra = ("k3",) if kind == "radtan" else ()
        if kind != "none" and any(prefix + n in data for n in (*names[kind], *extra)):
            coeffs = [self.number(data, prefix + n) for n in names[kind]]
            if kind == "radtan" and prefix + "k3" in data:
                coeffs.append(self.number(data, prefix + "k3"))
        return self.camera(prefix + "fx", size, intrinsics, kind, coeffs)
