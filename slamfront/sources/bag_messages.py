"""What ``bag:`` needs of ROS messages: which topics to read and how to decode them.

Topic choice (:func:`choose_topics`): the ``bag.*_topic`` settings, else the bag's own topics by
message type and the names of the known layouts (see :mod:`slamfront.sources.bag`). Decoding:
``sensor_msgs/Image`` and ``CompressedImage`` to uint8 grey / RGB images and to float32 depth in
metres, ``CameraInfo`` to the fields :mod:`slamfront.sources.calibration` reads, and a stereo
pair's extrinsic from its two CameraInfo messages. Messages are the objects rosbags
deserialises (ROS 1 and ROS 2 spellings both).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import invert_pose, quat_xyzw_to_rotation
from slamfront.sources.euroc import ImuLog

if TYPE_CHECKING:
    from slamfront.config import BagConfig

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMU = "sensor_msgs/msg/Imu"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TF_STATIC = "/tf_static"
IMAGE_TYPES = (IMAGE, COMPRESSED)


@dataclass(frozen=True)
class _Layout:
    """Topic names a driver or dataset uses; '' = the layout has no such stream."""

    name: str
    image: str
    depth: str = ""
    right: str = ""
    imu: str = ""
    split_imu: tuple[str, str] = ("", "")
    """Gyro and accelerometer topics a driver publishes when it does not unite them."""


LAYOUTS = (
    _Layout(
        "realsense-ros 4.x colour",
        "/camera/camera/color/image_raw",
        depth="/camera/camera/aligned_depth_to_color/image_raw",
        imu="/camera/camera/imu",
        split_imu=("/camera/camera/gyro/sample", "/camera/camera/accel/sample"),
    ),
    _Layout(
        "realsense-ros 2.x/3.x colour",
        "/camera/color/image_raw",
        depth="/camera/aligned_depth_to_color/image_raw",
        imu="/camera/imu",
        split_imu=("/camera/gyro/sample", "/camera/accel/sample"),
    ),
    _Layout(
        "realsense-ros 4.x infrared",
        "/camera/camera/infra1/image_rect_raw",
        right="/camera/camera/infra2/image_rect_raw",
        imu="/camera/camera/imu",
        split_imu=("/camera/camera/gyro/sample", "/camera/camera/accel/sample"),
    ),
    _Layout(
        "realsense-ros 2.x/3.x infrared",
        "/camera/infra1/image_rect_raw",
        right="/camera/infra2/image_rect_raw",
        imu="/camera/imu",
        split_imu=("/camera/gyro/sample", "/camera/accel/sample"),
    ),
    _Layout("EuRoC", "/cam0/image_raw", right="/cam1/image_raw", imu="/imu0"),
    # TUM's /imu holds the Kinect's accelerometer alone: not an IMU the tracker can use
    _Layout("TUM RGB-D", "/camera/rgb/image_color", depth="/camera/depth/image"),
)


@dataclass(frozen=True)
class BagTopics:
    """The topics a bag source reads; '' = not read."""

    image: str
    right: str = ""
    depth: str = ""
    imu: str = ""
    camera_info: str = ""
    right_camera_info: str = ""
    tf_static: str = ""
    """Static transforms, for extrinsics a calibration file does not give."""
    gyro: str = ""
    accel: str = ""
    """Separate gyro and accelerometer topics, read (as one IMU) when ``imu`` is ''."""
    layout: str = ""
    """The known layout the topics were picked by ('' when named in the config or generic)."""

    def describe(self) -> str:
        parts = [f"image {self.image}"]
        parts += [f"{name} {topic}" for name, topic in self._streams() if topic]
        how = f" ({self.layout} layout)" if self.layout else ""
        return ", ".join(parts) + how

    def _streams(self) -> tuple[tuple[str, str], ...]:
        return (
            ("right", self.right),
            ("depth", self.depth),
            ("imu", self.imu),
            ("gyro", self.gyro),
            ("accel", self.accel),
            ("camera_info", self.camera_info),
            ("right camera_info", self.right_camera_info),
            ("extrinsics", self.tf_static),
        )


def _with_compressed(topics: dict[str, str], name: str) -> str:
    """``name`` if the bag has it as an image topic, else ``name/compressed``, else ''."""
    for candidate in (name, f"{name}/compressed"):
        if topics.get(candidate) in IMAGE_TYPES:
            return candidate
    return ""


def _namespace(topic: str) -> str:
    """'/camera/color' of '/camera/color/image_raw' and '/camera/color/image_raw/compressed'."""
    parts = topic.rstrip("/").split("/")
    if parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1])


def choose_topics(topics: dict[str, str], config: BagConfig, where: str) -> BagTopics:
    """The topics to read from ``topics`` (name -> message type); see the module docstring."""

    def named(key: str, value: str, types: tuple[str, ...]) -> str:
        if value not in topics:
            listed = ", ".join(t for t, kind in sorted(topics.items()) if kind in types)
            raise SourceError(
                f"{where}: bag.{key} {value!r} is not in the bag (its "
                f"{'/'.join(t.rpartition('/')[2] for t in types)} topics: {listed or 'none'})"
            )
        if topics[value] not in types:
            raise SourceError(
                f"{where}: bag.{key} {value!r} carries {topics[value]}, not {' or '.join(types)}"
            )
        return value

    images = sorted(t for t, kind in topics.items() if kind in IMAGE_TYPES)
    layout: _Layout | None = None
    if config.image_topic:
        image = named("image_topic", config.image_topic, IMAGE_TYPES)
        layout = next(
            (lay for lay in LAYOUTS if _with_compressed(topics, lay.image) == image), None
        )
    else:
        for candidate in LAYOUTS:
            image = _with_compressed(topics, candidate.image)
            if image:
                layout = candidate
                break
        else:
            plain = [t for t in images if "depth" not in t.lower()]
            if len(plain) != 1:
                raise SourceError(
                    f"{where}: cannot tell which image topic to read "
                    f"({', '.join(plain) or 'no sensor_msgs/Image or CompressedImage topic'}); "
                    "set bag.image_topic"
                )
            image = plain[0]

    def stream(key: str, value: str, types: tuple[str, ...], default: str) -> str:
        if value == "none":
            return ""
        if value:
            return named(key, value, types)
        return default

    def from_layout(name: str) -> str:
        return _with_compressed(topics, name) if name else ""

    imus = sorted(t for t, kind in topics.items() if kind == IMU)
    right = stream(
        "right_topic", config.right_topic, IMAGE_TYPES, from_layout(layout.right) if layout else ""
    )
    depth = stream(
        "depth_topic", config.depth_topic, IMAGE_TYPES, from_layout(layout.depth) if layout else ""
    )
    if layout is not None:
        imu_default = layout.imu if topics.get(layout.imu) == IMU else ""
    else:
        imu_default = imus[0] if len(imus) == 1 else ""
    imu = stream("imu_topic", config.imu_topic, (IMU,), imu_default)
    gyro = accel = ""
    split = layout.split_imu if layout is not None else ("", "")
    if not imu and not config.imu_topic and all(topics.get(name) == IMU for name in split):
        gyro, accel = split

    def info_of(topic: str) -> str:
        name = f"{_namespace(topic)}/camera_info"
        return name if topic and topics.get(name) == CAMERA_INFO else ""

    camera_info = stream(
        "camera_info_topic", config.camera_info_topic, (CAMERA_INFO,), info_of(image)
    )
    right_info = stream(
        "right_camera_info_topic", config.right_camera_info_topic, (CAMERA_INFO,), info_of(right)
    )
    if config.right_topic == "none":
        right_info = ""
    chosen_by_layout = layout is not None and not config.image_topic
    return BagTopics(
        image,
        right,
        depth,
        imu,
        camera_info,
        right_info,
        TF_STATIC if topics.get(TF_STATIC) == TF_MESSAGE else "",
        gyro,
        accel,
        layout.name if chosen_by_layout and layout is not None else "",
    )


# ----------------------------------------------------------------------------- messages


def stamp_ns_of(msg: Any, log_time_ns: int) -> int:
    stamp = msg.header.stamp
    value = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return value if value > 0 else int(log_time_ns)


# encoding -> (numpy dtype, channels, layout of the channels)
_ENCODINGS: dict[str, tuple[str, int, str]] = {
    "mono8": ("u1", 1, "grey"),
    "8uc1": ("u1", 1, "grey"),
    "rgb8": ("u1", 3, "rgb"),
    "bgr8": ("u1", 3, "bgr"),
    "8uc3": ("u1", 3, "bgr"),
    "rgba8": ("u1", 4, "rgba"),
    "bgra8": ("u1", 4, "bgra"),
    "8uc4": ("u1", 4, "bgra"),
    "yuv422": ("u1", 2, "uyvy"),
    "uyvy": ("u1", 2, "uyvy"),
    "yuv422_yuy2": ("u1", 2, "yuyv"),
    "yuyv": ("u1", 2, "yuyv"),
    "bayer_rggb8": ("u1", 1, "bayer_rggb"),
    "bayer_bggr8": ("u1", 1, "bayer_bggr"),
    "bayer_gbrg8": ("u1", 1, "bayer_gbrg"),
    "bayer_grbg8": ("u1", 1, "bayer_grbg"),
    "mono16": ("u2", 1, "grey"),
    "16uc1": ("u2", 1, "grey"),
    "32fc1": ("f4", 1, "grey"),
}


def _to_rgb_codes() -> dict[str, int]:
    """OpenCV conversions to RGB; OpenCV names a Bayer pattern by its second row's second and
    third pixels, so ROS's rggb is OpenCV's BG."""
    import cv2

    return {
        "bgr": cv2.COLOR_BGR2RGB,
        "rgba": cv2.COLOR_RGBA2RGB,
        "bgra": cv2.COLOR_BGRA2RGB,
        "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuyv": cv2.COLOR_YUV2RGB_YUYV,
        "bayer_rggb": cv2.COLOR_BayerBG2RGB,
        "bayer_bggr": cv2.COLOR_BayerRG2RGB,
        "bayer_gbrg": cv2.COLOR_BayerGR2RGB,
        "bayer_grbg": cv2.COLOR_BayerGB2RGB,
    }


def _raw_pixels(msg: Any) -> tuple[np.ndarray | None, str, str]:
    """(HxW[xC] array, channel layout, '') of a sensor_msgs/Image, or (None, '', reason)."""
    encoding = str(msg.encoding).lower()
    if encoding not in _ENCODINGS:
        known = ", ".join(_ENCODINGS)
        return None, "", f"image encoding {msg.encoding!r} is not supported ({known})"
    kind, channels, order = _ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if height <= 0 or width <= 0 or step < row_bytes or data.size < step * height:
        return None, "", f"image {width}x{height} step {step} does not fit {data.size} bytes"
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    return (pixels[:, :, 0] if channels == 1 else pixels), order, ""


def _decompress(msg: Any) -> tuple[np.ndarray | None, str, str]:
    """As :func:`_raw_pixels` for a CompressedImage (JPEG, PNG; compressedDepth PNG)."""
    import cv2

    data = np.asarray(msg.data, dtype=np.uint8).tobytes()
    kind = str(msg.format).lower()
    quantised: tuple[float, float] | None = None
    if "compresseddepth" in kind:
        # image_transport's compressedDepth: a 12-byte header (format, quantisation a, b),
        # then a PNG; 32-bit depth is stored as inverse depth quantised to 16 bits
        start = data.find(b"\x89PNG")
        if start >= 12 and "32fc1" in kind:
            _, quant_a, quant_b = struct.unpack("<iff", data[start - 12 : start])
            quantised = (quant_a, quant_b)
        data = data[start:] if start >= 0 else data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None, "", f"cannot decode the {msg.format!r} compressed image"
    if quantised is not None and image.dtype == np.uint16 and image.ndim == 2:
        valid = image > 0
        depth = np.zeros(image.shape, np.float32)
        depth[valid] = quantised[0] / (image[valid].astype(np.float32) - quantised[1])
        return depth, "grey", ""
    if image.ndim == 2:
        return image, "grey", ""
    return image, "bgr" if image.shape[2] == 3 else "bgra", ""


def decode_image(msg: Any, msgtype: str) -> tuple[np.ndarray | None, str]:
    """(uint8 grey HxW or RGB HxWx3, '') of an image message, or (None, reason)."""
    import cv2

    pixels, order, reason = _decompress(msg) if msgtype == COMPRESSED else _raw_pixels(msg)
    if pixels is None:
        return None, reason
    if pixels.dtype == np.uint16:
        pixels = (pixels // 256).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        return None, f"pixel type {pixels.dtype} is not an image (a depth topic?)"
    codes = _to_rgb_codes()
    if order in codes:
        pixels = cv2.cvtColor(pixels, codes[order])
    return np.ascontiguousarray(pixels), ""


def decode_depth(msg: Any, msgtype: str, depth_scale: float) -> tuple[np.ndarray | None, str]:
    """(float32 HxW metres, 0 = invalid, '') of a depth message, or (None, reason)."""
    pixels, _, reason = _decompress(msg) if msgtype == COMPRESSED else _raw_pixels(msg)
    if pixels is None:
        return None, reason
    if pixels.ndim != 2:
        return None, f"depth must have one channel, got {pixels.shape[2]}"
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(depth_scale), ""
    if pixels.dtype == np.float32:
        depth = np.array(pixels, dtype=np.float32)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        return depth, ""
    return None, f"depth pixel type {pixels.dtype} is not supported (16UC1 or 32FC1)"


def camera_info_fields(msg: Any) -> dict[str, Any]:
    """The fields of a CameraInfo message (ROS 1 spells K, D, R, P; ROS 2 k, d, r, p)."""

    def get(name: str) -> list[float]:
        value = getattr(msg, name, None)
        if value is None:
            value = getattr(msg, name.lower())
        return [float(v) for v in np.asarray(value).reshape(-1)]

    return {
        "width": int(msg.width) or None,
        "height": int(msg.height) or None,
        "distortion_model": str(msg.distortion_model),
        "D": get("D"),
        "K": get("K"),
        "R": get("R"),
        "P": get("P"),
    }


def stereo_extrinsic(left: dict[str, Any], right: dict[str, Any]) -> np.ndarray | None:
    """right_from_left from two CameraInfo's rectification (R) and projection (P) matrices,
    as ROS's stereo calibration writes them; None when they carry no baseline."""
    p_left = np.array(left["P"], dtype=np.float64).reshape(3, 4)
    p_right = np.array(right["P"], dtype=np.float64).reshape(3, 4)
    if p_left[0, 0] <= 0 or p_right[0, 0] <= 0:
        return None
    offset = p_right[:, 3] / p_right[0, 0] - p_left[:, 3] / p_left[0, 0]
    if abs(offset[0]) < 1e-9:
        return None
    rect_right_from_rect_left = np.eye(4)
    rect_right_from_rect_left[:3, 3] = offset
    rect_from = []
    for fields in (left, right):
        pose = np.eye(4)
        pose[:3, :3] = np.array(fields["R"], dtype=np.float64).reshape(3, 3)
        rect_from.append(pose)
    out: np.ndarray = invert_pose(rect_from[1]) @ rect_right_from_rect_left @ rect_from[0]
    return out


# ----------------------------------------------------------------------------- transforms


def frame_id_of(msg: Any) -> str:
    """The header's frame id without ROS 1's leading slash."""
    return str(msg.header.frame_id).lstrip("/")


def static_transforms(msg: Any) -> list[tuple[str, str, np.ndarray]]:
    """(parent, child, parent_from_child 4x4) of each transform in a tf2_msgs/TFMessage."""
    out = []
    for stamped in msg.transforms:
        t, q = stamped.transform.translation, stamped.transform.rotation
        pose = np.eye(4)
        pose[:3, :3] = quat_xyzw_to_rotation(np.array([q.x, q.y, q.z, q.w], dtype=np.float64))
        pose[:3, 3] = (t.x, t.y, t.z)
        out.append((frame_id_of(stamped), str(stamped.child_frame_id).lstrip("/"), pose))
    return out


def transform_between(
    edges: list[tuple[str, str, np.ndarray]], target: str, source: str
) -> np.ndarray | None:
    """target_from_source through a tree of (parent, child, parent_from_child) transforms;
    None when the two frames are not linked."""
    links: dict[str, list[tuple[str, np.ndarray]]] = {}
    for parent, child, parent_from_child in edges:
        links.setdefault(child, []).append((parent, parent_from_child))
        links.setdefault(parent, []).append((child, invert_pose(parent_from_child)))
    reached: dict[str, np.ndarray] = {source: np.eye(4)}  # frame -> frame_from_source
    queue = [source]
    while queue:
        frame = queue.pop(0)
        for other, other_from_frame in links.get(frame, []):
            if other not in reached:
                reached[other] = other_from_frame @ reached[frame]
                queue.append(other)
    return reached.get(target)


def unite_imu(
    gyro_rows: list[tuple[int, float, float, float]],
    accel_rows: list[tuple[int, float, float, float]],
) -> ImuLog:
    """One IMU log at the gyro's stamps from separate gyro and accelerometer samples
    (``stamp_ns, x, y, z``), the accelerometer interpolated linearly between its samples;
    gyro samples outside the accelerometer's span are dropped."""
    gyro_rows, accel_rows = sorted(gyro_rows), sorted(accel_rows)
    gyro_ns = np.array([r[0] for r in gyro_rows], dtype=np.int64)
    accel_ns = np.array([r[0] for r in accel_rows], dtype=np.int64)
    gyro = np.array([r[1:] for r in gyro_rows], dtype=np.float64).reshape(-1, 3)
    accel = np.array([r[1:] for r in accel_rows], dtype=np.float64).reshape(-1, 3)
    if accel_ns.size < 2:
        return ImuLog(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)))
    inside = (gyro_ns >= accel_ns[0]) & (gyro_ns <= accel_ns[-1])
    # interpolate on offsets from the first sample: float64 holds those exactly
    at_s = (gyro_ns[inside] - accel_ns[0]) * 1e-9
    knots_s = (accel_ns - accel_ns[0]) * 1e-9
    interpolated = np.stack([np.interp(at_s, knots_s, accel[:, k]) for k in range(3)], axis=1)
    return ImuLog(gyro_ns[inside], gyro[inside], interpolated)
