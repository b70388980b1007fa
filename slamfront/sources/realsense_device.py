"""RealSense devices and recordings through pyrealsense2: discovery, stream choice, calibration.

Shared by the live/recorded source and the recorder. pyrealsense2 is imported only inside
these functions (``pip install 'slamfront[realsense]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from slamfront.config import RealSenseConfig
from slamfront.errors import DeviceError, SourceError
from slamfront.sources.realsense_convert import camera_from_intrinsics, pose_from_extrinsics
from slamfront.types import CameraModel, StereoRig

log = logging.getLogger("slamfront.sources.realsense")

RECORDING_SUFFIXES = (".bag", ".db3")


def import_pyrealsense2() -> ModuleType:
    """The pyrealsense2 module, or a SourceError that says how to install it."""
    try:
        import pyrealsense2
    except ImportError as exc:
        raise SourceError(
            "RealSense sources need pyrealsense2: pip install 'slamfront[realsense]' "
            f"(import failed: {exc})"
        ) from exc
    return pyrealsense2


@dataclass(frozen=True)
class DeviceInfo:
    """What a connected RealSense reports about itself."""

    name: str
    serial: str
    firmware: str = ""
    usb_type: str = ""
    product_line: str = ""

    def describe(self) -> str:
        extra = ", ".join(
            part
            for part in (
                f"USB {self.usb_type}" if self.usb_type else "",
                f"firmware {self.firmware}" if self.firmware else "",
            )
            if part
        )
        return f"{self.name} (serial {self.serial}{', ' + extra if extra else ''})"


def _info(rs: ModuleType, device: Any, key: str) -> str:
    item = getattr(rs.camera_info, key)
    return str(device.get_info(item)) if device.supports(item) else ""


def device_info(device: Any) -> DeviceInfo:
    rs = import_pyrealsense2()
    return DeviceInfo(
        name=_info(rs, device, "name") or "RealSense",
        serial=_info(rs, device, "serial_number"),
        firmware=_info(rs, device, "firmware_version"),
        usb_type=_info(rs, device, "usb_type_descriptor"),
        product_line=_info(rs, device, "product_line"),
    )


def list_devices() -> tuple[DeviceInfo, ...]:
    """Every RealSense device connected now (empty without one)."""
    rs = import_pyrealsense2()
    return tuple(device_info(d) for d in rs.context().query_devices())


def open_live_device(context: Any, serial: str | None) -> Any:
    """The device with ``serial`` (or the first one); a DeviceError lists what was found."""
    devices = list(context.query_devices())
    infos = [device_info(d) for d in devices]
    if not devices:
        raise DeviceError(
            "no RealSense device found: is it plugged into a USB 3 port, and are the udev "
            "rules installed (README, 'Live rigs')? Use realsense-file:REC.db3 to replay."
        )
    if serial is None:
        if len(devices) > 1:
            log.warning(
                "%d RealSense devices found, using %s; pick one with realsense:SERIAL",
                len(devices),
                infos[0].describe(),
            )
        return devices[0]
    for device, info in zip(devices, infos, strict=True):
        if info.serial == serial:
            return device
    found = "; ".join(i.describe() for i in infos)
    raise DeviceError(f"no RealSense device with serial {serial!r}; found: {found}")


def open_recording(context: Any, path: Path) -> Any:
    """A playback device for a ``.bag`` or ``.db3`` recording."""
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise SourceError(f"{path}: a RealSense recording must end in .bag or .db3")
    if not path.is_file():
        raise SourceError(f"{path}: recording not found")
    try:
        return context.load_device(str(path))
    except RuntimeError as exc:
        raise SourceError(f"{path}: not a readable RealSense recording: {exc}") from exc


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True, eq=False)
class StreamPlan:
    """The SDK profiles to open on each sensor, and the calibration read from them.

    ``camera`` describes the primary image (colour, or the left infrared imager) as the
    device delivers it; ``depth_needs_align`` is False when the depth stream is already
    registered to the colour image (same intrinsics, identity extrinsics).
    """

    mode: Literal["rgbd", "stereo"]
    sensors: tuple[tuple[Any, tuple[Any, ...]], ...]
    video: dict[str, Any]
    gyro: Any | None
    accel: Any | None
    camera: CameraModel
    fps: float
    stereo: StereoRig | None = None
    depth_scale_m: float = 0.0
    depth_needs_align: bool = False
    body_from_cam: np.ndarray | None = None
    device: DeviceInfo = field(default_factory=lambda: DeviceInfo("RealSense", ""))

    @property
    def primary(self) -> str:
        return "color" if self.mode == "rgbd" else "ir1"

    @property
    def video_streams(self) -> tuple[str, ...]:
        return ("color", "depth") if self.mode == "rgbd" else ("ir1", "ir2")


def stream_key(rs: ModuleType, profile: Any) -> str | None:
    """'color', 'depth', 'ir1', 'ir2', 'gyro', 'accel' (None for other streams)."""
    kind = profile.stream_type()
    if kind == rs.stream.color:
        return "color"
    if kind == rs.stream.depth:
        return "depth"
    if kind == rs.stream.infrared:
        return f"ir{profile.stream_index()}"
    if kind == rs.stream.gyro:
        return "gyro"
    if kind == rs.stream.accel:
        return "accel"
    return None


def _describe(rs: ModuleType, profile: Any) -> str:
    if profile.is_video_stream_profile():
        video = profile.as_video_stream_profile()
        size = f"{video.width()}x{video.height()} "
    else:
        size = ""
    return f"{size}{profile.format().name}@{profile.fps()}"


def plan_streams(device: Any, config: RealSenseConfig, live: bool) -> StreamPlan:
    """Choose the streams of ``config.mode`` on a device or a recording and read calibration.

    Live: profiles matching the configured size, rate and formats (an error lists the
    offered ones). Recorded: the streams in the file; ``mode: auto`` picks rgbd when the
    file has colour and depth, else stereo when it has both infrared imagers.
    """
    rs = import_pyrealsense2()
    info = device_info(device)
    offered: dict[str, list[tuple[Any, Any]]] = {}
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            key = stream_key(rs, profile)
            if key is not None:
                offered.setdefault(key, []).append((sensor, profile))

    mode = config.mode
    if mode == "auto":
        if not live and not ("color" in offered and "depth" in offered):
            mode = "stereo" if ("ir1" in offered and "ir2" in offered) else "rgbd"
        else:
            mode = "rgbd"
    wanted = ("color", "depth") if mode == "rgbd" else ("ir1", "ir2")
    formats = {"color": rs.format.rgb8, "depth": rs.format.z16, "ir1": rs.format.y8}
    formats["ir2"] = rs.format.y8
    where = info.describe() if live else "the recording"

    chosen: dict[str, tuple[Any, Any]] = {}
    for key in wanted:
        candidates = offered.get(key, [])
        if not candidates:
            has = ", ".join(sorted(offered)) or "nothing"
            raise (DeviceError if live else SourceError)(
                f"{where} has no {key} stream (it has: {has}); realsense.mode={mode}"
            )
        if live:
            match = [
                (s, p)
                for s, p in candidates
                if p.format() == formats[key]
                and p.fps() == config.fps
                and p.as_video_stream_profile().width() == config.width_px
                and p.as_video_stream_profile().height() == config.height_px
            ]
            if not match:
                modes = sorted({_describe(rs, p) for _, p in candidates})
                raise DeviceError(
                    f"{where}: {key} has no {config.width_px}x{config.height_px} "
                    f"{formats[key].name}@{config.fps} mode (set realsense.width_px, "
                    f"height_px, fps); offered: {', '.join(modes)}"
                )
            candidates = match
        chosen[key] = candidates[0]

    motion: dict[str, tuple[Any, Any]] = {}
    if config.imu and "gyro" in offered and "accel" in offered:
        for key, rate in (("gyro", config.gyro_hz), ("accel", config.accel_hz)):
            candidates = offered[key]
            if live:
                if rate:
                    candidates = [(s, p) for s, p in candidates if p.fps() == rate]
                else:
                    candidates = sorted(candidates, key=lambda sp: int(sp[1].fps()))[:1]
                if not candidates:
                    rates = sorted({int(p.fps()) for _, p in offered[key]})
                    raise DeviceError(f"{where}: no {key} rate {rate} Hz; offered: {rates}")
            motion[key] = candidates[0]
    elif config.imu:
        log.warning("%s has no IMU streams; frames will carry no IMU samples", where)

    by_sensor: dict[int, tuple[Any, list[Any]]] = {}
    for sensor, profile in (*chosen.values(), *motion.values()):
        entry = by_sensor.setdefault(id(sensor), (sensor, []))
        entry[1].append(profile)
    sensors = tuple((s, tuple(ps)) for s, ps in by_sensor.values())

    video = {key: profile for key, (_, profile) in chosen.items()}
    primary = video[wanted[0]]
    camera = _camera(primary)
    plan_kwargs: dict[str, Any] = {}
    if mode == "rgbd":
        depth_sensor = chosen["depth"][0]
        plan_kwargs["depth_scale_m"] = float(depth_sensor.as_depth_sensor().get_depth_scale())
        depth_camera = _camera(video["depth"])
        color_from_depth = _extrinsics(video["depth"], primary)
        plan_kwargs["depth_needs_align"] = not (
            depth_camera == camera
            and color_from_depth is not None
            and np.allclose(color_from_depth, np.eye(4), atol=1e-9)
        )
    else:
        right_from_left = _extrinsics(primary, video["ir2"])
        if right_from_left is None:
            raise SourceError(f"{where}: no extrinsics between the infrared imagers")
        right = _camera(video["ir2"])
        rectified = (
            not camera.is_distorted
            and camera == right
            and np.allclose(right_from_left[:3, :3], np.eye(3), atol=1e-6)
            and np.allclose(right_from_left[1:3, 3], 0.0, atol=1e-6)
        )
        plan_kwargs["stereo"] = StereoRig(camera, right, right_from_left, rectified=rectified)
    if "accel" in motion:
        plan_kwargs["body_from_cam"] = _extrinsics(primary, motion["accel"][1])
        if plan_kwargs["body_from_cam"] is None and live:
            log.warning("%s: no camera-IMU extrinsics; body_from_cam is unknown", where)

    return StreamPlan(
        mode=mode,
        sensors=sensors,
        video=video,
        gyro=motion["gyro"][1] if "gyro" in motion else None,
        accel=motion["accel"][1] if "accel" in motion else None,
        camera=camera,
        fps=float(primary.fps()),
        device=info,
        **plan_kwargs,
    )


def _camera(profile: Any) -> CameraModel:
    intr = profile.as_video_stream_profile().get_intrinsics()
    return camera_from_intrinsics(
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, intr.model.name, intr.coeffs
    )


def _extrinsics(from_profile: Any, to_profile: Any) -> np.ndarray | None:
    """``to_from_from`` between two stream profiles, None when the SDK has none."""
    try:
        ext = from_profile.get_extrinsics_to(to_profile)
    except RuntimeError:
        return None
    return pose_from_extrinsics(ext.rotation, ext.translation)


# --------------------------------------------------------------------------- running


def configure_live(plan: StreamPlan, config: RealSenseConfig) -> None:
    """Device options for live capture: global timestamps everywhere, the emitter as set."""
    rs = import_pyrealsense2()
    for sensor, _ in plan.sensors:
        if sensor.supports(rs.option.global_time_enabled):
            sensor.set_option(rs.option.global_time_enabled, 1.0)
        if sensor.is_depth_sensor() and sensor.supports(rs.option.emitter_enabled):
            sensor.set_option(rs.option.emitter_enabled, 1.0 if config.emitter else 0.0)


def start_sensors(plan: StreamPlan, callback: Callable[[Any], None]) -> None:
    for sensor, profiles in plan.sensors:
        sensor.open(list(profiles) if len(profiles) > 1 else profiles[0])
    for sensor, _ in plan.sensors:
        sensor.start(callback)


def stop_sensors(plan: StreamPlan) -> None:
    """Stop and close every sensor; errors of a vanished device are logged, not raised."""
    for step in ("stop", "close"):
        for sensor, _ in plan.sensors:
            try:
                getattr(sensor, step)()
            except RuntimeError as exc:
                log.debug("sensor %s failed: %s", step, exc)


# --------------------------------------------------------------------------- sidecar

SIDECAR_FORMAT = "slamfront-realsense/1"


def sidecar_path(recording: Path) -> Path:
    """``REC.db3.yaml`` beside ``REC.db3``: what the SDK's recorder does not keep."""
    return recording.with_name(recording.name + ".yaml")


def write_sidecar(recording: Path, body_from_cam: np.ndarray | None, device: DeviceInfo) -> Path:
    """Record the camera-IMU extrinsics (the 2.59 recorder drops those of motion streams)."""
    import yaml

    content: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "device": {"name": device.name, "serial": device.serial, "firmware": device.firmware},
        "body_from_cam": None
        if body_from_cam is None
        else [[float(v) for v in row] for row in np.asarray(body_from_cam)],
    }
    target = sidecar_path(recording)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(yaml.safe_dump(content, sort_keys=False))
    tmp.replace(target)
    return target


def read_sidecar_body_from_cam(recording: Path) -> np.ndarray | None:
    """``body_from_cam`` from the sidecar of ``recording`` (None when there is none)."""
    import yaml

    path = sidecar_path(recording)
    if not path.is_file():
        return None
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(content, dict) or content.get("format") != SIDECAR_FORMAT:
        raise SourceError(f"{path}: not a slamfront RealSense sidecar (format: {SIDECAR_FORMAT})")
    value = content.get("body_from_cam")
    if value is None:
        return None
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{path}: body_from_cam must be a 4x4 list of numbers") from exc
    if pose.shape != (4, 4) or not np.allclose(pose[3], (0.0, 0.0, 0.0, 1.0)):
        raise SourceError(f"{path}: body_from_cam must be a 4x4 rigid transform")
    return pose
