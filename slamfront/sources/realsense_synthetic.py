"""Write frames into a RealSense recording (``.db3``) through the SDK's own software device.

Used to test playback without a camera (every pixel, intrinsic, stamp and IMU reading is
known) and to replay any source's frames (e.g. ``sim:loop``) as if a D435i had recorded them.
The recording is made by ``rs.recorder`` exactly as a live recording would be.

What is written, from the frames:
- ``image`` HxWx3 RGB -> a colour stream (rgb8); with ``depth_m`` a z16 depth stream in units
  of ``depth_scale_m`` (rounded to the nearest unit); by default registered to the colour
  image (same intrinsics, identity extrinsics), else in ``depth_camera`` placed by
  ``color_from_depth``.
- ``image`` HxW grey with ``image_right`` and ``stereo`` -> infrared 1 and 2 (y8) with
  ``right_from_left`` as their extrinsics.
- ``imu`` -> gyro and accelerometer readings at each sample's stamp (float32 on disk);
  ``body_from_cam`` -> the extrinsics from the image stream to both motion streams, and
  (as the 2.59 recorder drops motion-stream extrinsics) the sidecar ``REC.db3.yaml``.
- ``stamp_ns`` -> global-time timestamps in milliseconds; ``Frame.index`` -> frame numbers
  (a gap in indices reads back as dropped frames).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slamfront.errors import InputError, SourceError
from slamfront.sources.realsense_device import DeviceInfo, import_pyrealsense2, write_sidecar
from slamfront.types import CameraModel, Frame

_WAIT_S = 10.0


@dataclass(frozen=True)
class RecordingSummary:
    """What was written: frame and IMU sample counts and the streams."""

    path: Path
    frames: int
    imu_samples: int
    streams: tuple[str, ...]


def write_recording(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    fps: int = 30,
    depth_scale_m: float = 0.001,
    depth_camera: CameraModel | None = None,
    color_from_depth: np.ndarray | None = None,
    name: str = "Synthetic D435I",
    serial: str = "000000000001",
    paced: bool = False,
) -> RecordingSummary:
    """Record ``frames`` into ``path`` (must end in ``.db3``); see the module docstring.

    The recorder files each frame at the wall time it arrives, which is what a real-time
    playback reproduces; ``paced`` feeds the frames at their ``stamp_ns`` spacing (as a
    camera would) instead of as fast as possible.
    """
    rs = import_pyrealsense2()
    target = Path(path)
    if target.suffix != ".db3":
        raise SourceError(f"{target}: the RealSense 2.59 recorder writes .db3 files only")
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise InputError("write_recording needs at least one frame")
    writer = SyntheticDevice(
        first,
        fps=fps,
        depth_scale_m=depth_scale_m,
        depth_camera=depth_camera,
        color_from_depth=color_from_depth,
        name=name,
        serial=serial,
    )
    recorder = rs.recorder(str(target), writer.device)
    try:
        writer.start()
        count, imu_count = 0, 0
        start_s = time.monotonic()
        for frame in _chain(first, stream):
            if paced:
                due_s = start_s + (frame.stamp_ns - first.stamp_ns) * 1e-9
                time.sleep(max(0.0, due_s - time.monotonic()))
            imu_count += writer.push(frame)
            count += 1
    finally:
        writer.stop()
        del recorder
    if "gyro" in writer.streams:
        write_sidecar(target, first.body_from_cam, DeviceInfo(name, serial))
    return RecordingSummary(target, count, imu_count, writer.streams)


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def _rs_intrinsics(rs: Any, camera: CameraModel) -> Any:
    intr = rs.intrinsics()
    intr.width, intr.height = camera.width_px, camera.height_px
    intr.fx, intr.fy, intr.ppx, intr.ppy = camera.fx, camera.fy, camera.cx, camera.cy
    coeffs = [*camera.dist_coeffs, 0.0, 0.0, 0.0, 0.0, 0.0][:5]
    if camera.distortion == "radtan":
        if len(camera.dist_coeffs) > 5:
            raise InputError("a RealSense recording holds at most 5 radtan coefficients")
        intr.model = rs.distortion.brown_conrady
    elif camera.distortion == "equidistant":
        intr.model = rs.distortion.kannala_brandt4
    else:
        intr.model = rs.distortion.none
    intr.coeffs = coeffs
    return intr


def _rs_extrinsics(rs: Any, to_from_from: np.ndarray) -> Any:
    ext = rs.extrinsics()
    ext.rotation = [float(v) for v in np.asarray(to_from_from)[:3, :3].T.reshape(9)]
    ext.translation = [float(v) for v in np.asarray(to_from_from)[:3, 3]]
    return ext


class SyntheticDevice:
    """A software RealSense shaped like ``first`` (streams, intrinsics, extrinsics).

    ``push(frame)`` hands a frame's readings and images to the SDK as a camera would.
    ``start()``/``stop()`` run its sensors for a recorder (then each push waits until the
    recorder took the data); without them, whoever opens the device's sensors receives the
    data, e.g. a :class:`RealSenseSource` on a context the device was added to
    (``synthetic.device.add_to(context)``), which exercises the live-device code path.
    """

    def __init__(
        self,
        first: Frame,
        *,
        fps: int = 30,
        depth_scale_m: float = 0.001,
        depth_camera: CameraModel | None = None,
        color_from_depth: np.ndarray | None = None,
        name: str = "Synthetic D435I",
        serial: str = "000000000001",
        imu_hz: int = 200,
    ) -> None:
        rs = import_pyrealsense2()
        self.rs = rs
        self.depth_scale_m = depth_scale_m
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, name)
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.product_line, "D400")
        self._delivered = 0
        self._own_sensors = False
        self._cond = threading.Condition()
        self._sensors: list[tuple[Any, list[Any]]] = []
        self._profiles: dict[str, Any] = {}
        self._keep: list[Any] = []
        self._imu_number = 0
        self._stereo = first.image.ndim == 2 and first.image_right is not None
        uid = iter(range(1, 100))

        def video(sensor: Any, kind: Any, index: int, camera: CameraModel, fmt: Any) -> Any:
            spec = rs.video_stream()
            spec.type, spec.index, spec.uid = kind, index, next(uid)
            spec.width, spec.height, spec.fps = camera.width_px, camera.height_px, fps
            spec.bpp = {rs.format.rgb8: 3, rs.format.z16: 2, rs.format.y8: 1}[fmt]
            spec.fmt, spec.intrinsics = fmt, _rs_intrinsics(rs, camera)
            return sensor.add_video_stream(spec, True)

        if self._stereo:
            if first.stereo is None:
                raise InputError("a stereo frame needs its StereoRig (Frame.stereo)")
            sensor = self.device.add_sensor("Stereo Module")
            left = video(sensor, rs.stream.infrared, 1, first.stereo.left, rs.format.y8)
            right = video(sensor, rs.stream.infrared, 2, first.stereo.right, rs.format.y8)
            left.register_extrinsics_to(right, _rs_extrinsics(rs, first.stereo.right_from_left))
            self._profiles.update(ir1=left, ir2=right)
            self._sensors.append((sensor, [left, right]))
            primary = left
        else:
            if first.image.ndim != 3 or first.image.shape[2] != 3:
                raise InputError("colour frames must be HxWx3 RGB (grey needs a stereo pair)")
            color_sensor = self.device.add_sensor("RGB Camera")
            primary = video(color_sensor, rs.stream.color, 0, first.camera, rs.format.rgb8)
            self._profiles["color"] = primary
            if first.depth_m is not None:
                depth_sensor = self.device.add_sensor("Stereo Module")
                depth_sensor.add_read_only_option(rs.option.depth_units, depth_scale_m)
                cam = depth_camera or first.camera
                depth = video(depth_sensor, rs.stream.depth, 0, cam, rs.format.z16)
                pose = np.eye(4) if color_from_depth is None else color_from_depth
                depth.register_extrinsics_to(primary, _rs_extrinsics(rs, pose))
                self._profiles["depth"] = depth
                self._sensors.append((depth_sensor, [depth]))
            self._sensors.append((color_sensor, [primary]))
        if first.imu or first.body_from_cam is not None:
            sensor = self.device.add_sensor("Motion Module")
            for key, kind in (("gyro", rs.stream.gyro), ("accel", rs.stream.accel)):
                spec = rs.motion_stream()
                spec.type, spec.index, spec.uid = kind, 0, next(uid)
                spec.fps, spec.fmt = imu_hz, rs.format.motion_xyz32f
                spec.intrinsics = rs.motion_device_intrinsic()
                self._profiles[key] = sensor.add_motion_stream(spec, True)
                if first.body_from_cam is not None:
                    primary.register_extrinsics_to(
                        self._profiles[key], _rs_extrinsics(rs, first.body_from_cam)
                    )
            self._sensors.append((sensor, [self._profiles["gyro"], self._profiles["accel"]]))
        self.streams = tuple(self._profiles)
        self._sensor_of = {
            key: sensor
            for sensor, profiles in self._sensors
            for key, profile in self._profiles.items()
            if any(profile is p for p in profiles)
        }

    def _on_frame(self, _frame: Any) -> None:
        with self._cond:
            self._delivered += 1
            self._cond.notify_all()

    def start(self) -> None:
        self._own_sensors = True
        for sensor, profiles in self._sensors:
            sensor.open(profiles if len(profiles) > 1 else profiles[0])
            sensor.start(self._on_frame)

    def stop(self) -> None:
        for step in ("stop", "close"):
            for sensor, _ in self._sensors:
                getattr(sensor, step)()

    def _inject(self, push: Any, item: Any) -> None:
        """Push one SDK frame and wait until the recorder has passed it on."""
        if not self._own_sensors:
            push(item)
            return
        with self._cond:
            target = self._delivered + 1
        push(item)
        with self._cond:
            if not self._cond.wait_for(lambda: self._delivered >= target, _WAIT_S):
                raise SourceError("the RealSense recorder did not take a frame within 10 s")

    def push(self, frame: Frame) -> int:
        """Send one frame (IMU readings first); returns the IMU readings sent."""
        rs = self.rs
        sensors = self._sensor_of
        if "gyro" in self._profiles:
            for sample in frame.imu:
                for key, values in (("gyro", sample.gyro_rad_s), ("accel", sample.accel_m_s2)):
                    motion = rs.software_motion_frame()
                    motion.profile = self._profiles[key].as_motion_stream_profile()
                    motion.timestamp = sample.stamp_ns / 1e6
                    motion.domain = rs.timestamp_domain.global_time
                    motion.frame_number = self._imu_number
                    vector = rs.vector()
                    vector.x, vector.y, vector.z = (float(v) for v in values)
                    motion.data = vector
                    self._inject(sensors[key].on_motion_frame, motion)
                self._imu_number += 1
        images: list[tuple[str, np.ndarray]] = []
        if self._stereo:
            if frame.image_right is None:
                raise InputError(f"frame {frame.index}: stereo recording needs image_right")
            images += [("ir1", frame.image), ("ir2", frame.image_right)]
        else:
            images.append(("color", frame.image))
            if "depth" in self._profiles:
                if frame.depth_m is None:
                    raise InputError(f"frame {frame.index}: RGB-D recording needs depth_m")
                units = np.rint(np.asarray(frame.depth_m, np.float64) / self.depth_scale_m)
                images.append(("depth", np.clip(units, 0, 65535).astype(np.uint16)))
        for key, pixels in images:
            data = np.ascontiguousarray(pixels)
            self._keep.append(data)
            video = rs.software_video_frame()
            video.pixels = data
            video.bpp = data.itemsize * (data.shape[2] if data.ndim == 3 else 1)
            video.stride = video.bpp * data.shape[1]
            video.timestamp = frame.stamp_ns / 1e6
            video.domain = rs.timestamp_domain.global_time
            video.frame_number = frame.index
            video.profile = self._profiles[key].as_video_stream_profile()
            if key == "depth":
                video.depth_units = self.depth_scale_m
            self._inject(sensors[key].on_video_frame, video)
        if len(self._keep) > 64:
            del self._keep[:-16]
        return len(frame.imu) if "gyro" in self._profiles else 0
