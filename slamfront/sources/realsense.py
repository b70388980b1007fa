"""Intel RealSense D400 source: a live device (``realsense[:SERIAL]``) or one of its recordings
(``realsense-file:PATH.db3|.bag``), through one code path.

Streams (``config.realsense``): ``rgbd`` = colour + depth aligned to the colour image by the
SDK, or ``stereo`` = the two infrared imagers (rectified by the device; rectified here when
they are not). Gyro and accelerometer become :class:`ImuSample` s at the gyro stamps
(accelerometer interpolated) attached to the frame they precede (``prev < t <= stamp``).
Intrinsics, depth scale and extrinsics (``body_from_cam``: IMU from camera) come from the
device or the file. ``stamp_ns`` is the device's global timestamp. Frames the device dropped
are counted from gaps in frame numbers (``frames_dropped``; more in ``stats``).

Faults end the iteration with a :class:`DeviceError` raised from the iterator, so a caller's
``finally``/``close`` still flushes its outputs: the device unplugged, or no image for
``realsense.timeout_s`` seconds. Without a device, opening says so and lists what was found.

The SDK calls back on its own threads; they only put records into a queue that this
iterator drains. Live (and real-time playback) keeps ``realsense.queue_frames`` images and
drops the oldest when the consumer is slower (``stats.dropped_by_host``); playback as fast as
possible waits for the consumer instead and loses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slamfront.config import Config, RealSenseConfig
from slamfront.errors import DeviceError, SourceError
from slamfront.geometry import RemapTables, invert_pose, rectify_stereo, undistortion_maps
from slamfront.sources.base import Source, with_readout
from slamfront.sources.realsense_convert import (
    FrameNumberGaps,
    FramePairer,
    ImuBuffer,
    ImuPairer,
    VideoPacket,
    stamp_ns_from_ms,
)
from slamfront.sources.realsense_device import (
    DeviceInfo,
    StreamPlan,
    configure_live,
    import_pyrealsense2,
    open_live_device,
    open_recording,
    plan_streams,
    read_sidecar_body_from_cam,
    sidecar_path,
    start_sensors,
    stop_sensors,
    stream_key,
)
from slamfront.types import CameraModel, Frame, StereoRig

log = logging.getLogger("slamfront.sources.realsense")

_END_GRACE_S = 0.2
"""After a recording reports its end, how long to wait for callbacks still in flight."""
_MAX_HELD_FRAMES = 3
"""Frames held back waiting for IMU samples up to their stamp before going out without."""


@dataclass(frozen=True)
class RealSenseStats:
    """Counters of one run. ``dropped_by_device``: frame-number gaps summed over the video
    streams; ``dropped_by_host``: images discarded because the consumer was slower;
    ``unpaired``: images without a partner (colour without depth, left without right)."""

    frames: int
    dropped_by_device: int
    dropped_by_host: int
    unpaired: int
    imu_samples: int
    imu_dropped: int
    """Gyro readings before the first accelerometer one, and readings that came too late
    for the frame they preceded."""


@dataclass(frozen=True)
class _Motion:
    stream: str
    stamp_ns: int
    frame_number: int
    xyz: tuple[float, float, float]


@dataclass(frozen=True)
class _Event:
    kind: str  # "end" | "removed" | "error"
    message: str = ""


_Item = VideoPacket | _Motion | _Event


class _Inbox:
    """Records from the SDK's threads to the iterator. Images are bounded: ``block`` waits
    for room (playback as fast as possible), otherwise the oldest image is dropped."""

    def __init__(self, max_images: int, block: bool) -> None:
        self._items: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._images = 0
        self._max_images = max_images
        self._block = block
        self._closed = False
        self._starting = True
        self.dropped = 0

    def started(self) -> None:
        """Bound the images from now on. While the SDK starts streaming, a callback that
        waits for room would stall the start itself (playback ``resume`` waits for it)."""
        with self._cond:
            self._starting = False

    def put(self, item: _Item) -> None:
        with self._cond:
            image = isinstance(item, VideoPacket) and not self._starting
            if image and self._block:
                while self._images >= self._max_images and not self._closed:
                    self._cond.wait(0.1)
            if self._closed:
                return
            if image and self._images >= self._max_images:
                for old in self._items:
                    if isinstance(old, VideoPacket):
                        self._items.remove(old)
                        self._images -= 1
                        self.dropped += 1
                        break
            self._items.append(item)
            self._images += isinstance(item, VideoPacket)
            self._cond.notify_all()

    def get(self, timeout_s: float) -> _Item | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self._closed, max(timeout_s, 0.0))
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item, VideoPacket):
                self._images -= 1
                self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class RealSenseSource(Source):
    """Frames from a live RealSense or a recording of one (see the module docstring)."""

    name = "realsense"

    def __init__(
        self,
        config: Config,
        *,
        serial: str | None = None,
        path: str | None = None,
        device: Any = None,
    ) -> None:
        """Open a live device (``serial`` or ``realsense.serial``, else the first one) or the
        recording at ``path``; or stream from ``device``, a pyrealsense2 device already at
        hand (tests pass a software device, which takes the live code path)."""
        self._rs = import_pyrealsense2()
        self._config = config
        self._rs_config: RealSenseConfig = config.realsense
        self._path = Path(path) if path is not None else None
        self._context = self._rs.context()
        if device is not None:
            self._device = device
        elif self._path is None:
            self._device = open_live_device(self._context, serial or config.realsense.serial)
        else:
            self._device = open_recording(self._context, self._path)
        plan = plan_streams(self._device, self._rs_config, self.live)
        if self._path is not None and plan.accel is not None and plan.body_from_cam is None:
            body_from_cam = read_sidecar_body_from_cam(self._path)
            if body_from_cam is None:
                log.warning("%s: no camera-IMU extrinsics (no %s)", path, sidecar_path(self._path))
            plan = dataclasses.replace(plan, body_from_cam=body_from_cam)
        self._plan: StreamPlan = plan
        self.frames_dropped = 0
        self._started = False
        self._closed = False
        self._inbox = _Inbox(
            config.realsense.queue_frames, block=not self.live and not config.source.realtime
        )
        self._gaps = FrameNumberGaps()
        self._pairer = FramePairer(
            self._plan.video_streams, tolerance_ns=round(0.5e9 / self._plan.fps)
        )
        self._imu_pairer = ImuPairer()
        self._imu = ImuBuffer()
        self._imu_count = 0
        self._yielded = 0
        self._domains_checked: set[str] = set()
        self._camera: CameraModel = self._plan.camera
        self._stereo: StereoRig | None = None
        self._body_from_cam: np.ndarray | None = None
        self._left_maps: RemapTables | None = None
        self._right_maps: RemapTables | None = None
        self._prepare_geometry()
        self._align: Any = None
        self._joiner: Any = None
        self._joined: Any = None
        self._join_color: list[Any] = []
        self.source_path = str(self._path) if self._path else f"realsense:{self.device.serial}"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> RealSenseSource:
        if scheme == "realsense-file":
            if not rest:
                raise SourceError("realsense-file needs a path: realsense-file:REC.db3")
            return cls(config, path=rest)
        return cls(config, serial=rest or None)

    # ------------------------------------------------------------------ what it is

    @property
    def live(self) -> bool:
        return self._path is None

    @property
    def device(self) -> DeviceInfo:
        return self._plan.device

    @property
    def camera(self) -> CameraModel:
        """The camera of the frames' ``image`` (after undistortion/rectification)."""
        return self._camera

    @property
    def mode(self) -> str:
        return self._plan.mode

    @property
    def stats(self) -> RealSenseStats:
        return RealSenseStats(
            frames=self._yielded,
            dropped_by_device=sum(self._gaps.dropped.values()),
            dropped_by_host=self._inbox.dropped,
            unpaired=self._pairer.unpaired,
            imu_samples=self._imu_count,
            imu_dropped=self._imu_pairer.gyro_dropped + self._imu.late,
        )

    def _prepare_geometry(self) -> None:
        plan, source_config = self._plan, self._config.source
        self._body_from_cam = plan.body_from_cam
        # the infrared imagers and the D455's colour one have a global shutter; the D415/D435
        # colour imager rolls, but no readout is published for it: camera.readout_ms sets one
        self._camera = with_readout(plan.camera, self._config.camera, 0.0)
        if plan.stereo is not None:
            stereo = dataclasses.replace(
                plan.stereo,
                left=with_readout(plan.stereo.left, self._config.camera, 0.0),
                right=with_readout(plan.stereo.right, self._config.camera, 0.0),
            )
            self._stereo = stereo
            if not stereo.rectified and source_config.stereo_rectify:
                rect = rectify_stereo(stereo)
                self._left_maps, self._right_maps = rect.left, rect.right
                self._stereo, self._camera = rect.rig, rect.rig.left
                if self._body_from_cam is not None:
                    self._body_from_cam = self._body_from_cam @ invert_pose(rect.rect_from_left)
        elif self._camera.is_distorted and source_config.undistort:
            self._left_maps = undistortion_maps(self._camera)
            self._camera = self._left_maps.camera

    # ------------------------------------------------------------------ running

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise SourceError(f"{self.source_path}: a RealSense source can be iterated once")
        self._started = True
        self._start()
        self._inbox.started()
        try:
            yield from self._frames()
        finally:
            self.close()

    def _start(self) -> None:
        rs = self._rs
        if self._plan.mode == "rgbd" and self._plan.depth_needs_align:
            self._align = rs.align(rs.stream.color)
            self._joined = rs.frame_queue(2)
            self._joiner = rs.processing_block(self._join)
            self._joiner.start(self._joined)
        if self.live:
            configure_live(self._plan, self._rs_config)
            self._context.set_devices_changed_callback(self._on_devices_changed)
            start_sensors(self._plan, self._on_frame)
            return
        playback = self._device.as_playback()
        playback.set_real_time(bool(self._config.source.realtime))
        playback.set_status_changed_callback(self._on_playback_status)
        playback.pause()
        start_sensors(self._plan, self._on_frame)
        playback.resume()

    # SDK threads --------------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        try:
            key = stream_key(self._rs, frame.get_profile())
            if key is None:
                return
            stamp_ns = stamp_ns_from_ms(frame.get_timestamp())
            number = int(frame.get_frame_number())
            if key in ("gyro", "accel"):
                data = frame.as_motion_frame().get_motion_data()
                self._inbox.put(_Motion(key, stamp_ns, number, (data.x, data.y, data.z)))
            else:
                frame.keep()
                self._inbox.put(VideoPacket(key, number, stamp_ns, frame))
        except Exception as exc:  # the SDK would swallow it: hand it to the iterator
            self._inbox.put(_Event("error", f"frame callback failed: {exc!r}"))

    def _on_playback_status(self, status: Any) -> None:
        if status == self._rs.playback_status.stopped:
            self._inbox.put(_Event("end"))

    def _on_devices_changed(self, event: Any) -> None:
        try:
            if event.was_removed(self._device):
                self._inbox.put(_Event("removed"))
        except RuntimeError as exc:
            log.debug("device change callback: %s", exc)

    def _join(self, depth: Any, source: Any) -> None:
        source.frame_ready(source.allocate_composite_frame([depth, self._join_color[0]]))

    # the iterator -------------------------------------------------------

    def _frames(self) -> Iterator[Frame]:
        timeout_s = self._rs_config.first_frame_timeout_s
        last_image = time.monotonic()
        ending = False
        fault: DeviceError | None = None
        assembled = 0
        ready: deque[tuple[VideoPacket, ...]] = deque()
        use_imu = self._plan.gyro is not None and self._plan.accel is not None
        while True:
            wait_s = _END_GRACE_S if ending else last_image + timeout_s - time.monotonic()
            item = self._inbox.get(wait_s)
            if item is None:
                if ending or self._closed:
                    break
                if time.monotonic() - last_image >= timeout_s:
                    fault = self._silence_error(timeout_s)
                    break
                continue
            if isinstance(item, _Event):
                if item.kind == "end":
                    ending = True
                    continue
                if item.kind == "removed":
                    fault = DeviceError(f"{self.device.describe()} was unplugged")
                else:
                    fault = DeviceError(f"{self.source_path}: {item.message}")
                break
            if isinstance(item, _Motion):
                self._add_motion(item)
            else:
                last_image = time.monotonic()
                timeout_s = self._rs_config.timeout_s
                self._check_domain(item)
                gap = self._gaps.observe(item.stream, item.frame_number)
                if gap and item.stream == self._plan.primary:
                    # the first drop is a warning; the total is logged again at close()
                    log.log(
                        logging.DEBUG if self.frames_dropped else logging.WARNING,
                        "%s: %d %s frame(s) dropped by the device before frame %d",
                        self.source_path,
                        gap,
                        item.stream,
                        item.frame_number,
                    )
                    self.frames_dropped += gap
                group = self._pairer.add(item)
                if group is not None:
                    ready.append(group)
            while ready and (
                not use_imu
                or self._imu.watermark_ns >= ready[0][0].stamp_ns
                or len(ready) > _MAX_HELD_FRAMES
            ):
                group = ready.popleft()
                index, assembled = assembled, assembled + 1
                if not self._wanted(index):
                    if index < self._config.source.start_frame:  # before the start: dropped
                        self._imu.take_through(group[0].stamp_ns)
                    continue  # skipped by the stride: its IMU rides on the next frame out
                yield self._frame(index, group)
                self._yielded += 1
                last_image = time.monotonic()
                if self._done():
                    return
        # the end, or a fault: frames already complete still go out first
        while ready and not self._closed:
            group = ready.popleft()
            index, assembled = assembled, assembled + 1
            if self._wanted(index):
                yield self._frame(index, group)
                self._yielded += 1
                if self._done():
                    return
        if fault is not None:
            raise fault

    def _wanted(self, index: int) -> bool:
        source_config = self._config.source
        if index < source_config.start_frame:
            return False
        return (index - source_config.start_frame) % source_config.stride == 0

    def _done(self) -> bool:
        limit = self._config.source.max_frames
        return limit is not None and self._yielded >= limit

    def _silence_error(self, timeout_s: float) -> DeviceError:
        if self.live:
            return DeviceError(
                f"{self.device.describe()} sent no image for {timeout_s:.1f} s "
                "(unplugged, USB link stalled, or another program holds it); "
                "raise realsense.timeout_s if it is just slow"
            )
        return DeviceError(f"{self.source_path}: playback stalled for {timeout_s:.1f} s")

    def _check_domain(self, packet: VideoPacket) -> None:
        if packet.stream in self._domains_checked:
            return
        self._domains_checked.add(packet.stream)
        domain = packet.payload.get_frame_timestamp_domain()
        if domain != self._rs.timestamp_domain.global_time:
            log.warning(
                "%s: %s timestamps are %s, not global time; stamp_ns follows that clock",
                self.source_path,
                packet.stream,
                domain.name,
            )

    def _add_motion(self, motion: _Motion) -> None:
        if motion.stream == "gyro":
            samples = self._imu_pairer.add_gyro(motion.stamp_ns, motion.xyz)
        else:
            samples = self._imu_pairer.add_accel(motion.stamp_ns, motion.xyz)
        late = self._imu.late
        self._imu.add(samples)
        self._imu_count += len(samples) - (self._imu.late - late)

    def _frame(self, index: int, group: tuple[VideoPacket, ...]) -> Frame:
        stamp_ns = group[0].stamp_ns
        imu = self._imu.take_through(stamp_ns)
        if self._plan.mode == "rgbd":
            color, depth = group[0].payload, group[1].payload
            if self._align is not None:
                color, depth = self._aligned(color, depth)
            image = _color_array(self._rs, color)
            raw = np.asanyarray(depth.get_data())
            depth_m = raw.astype(np.float32) * np.float32(self._plan.depth_scale_m)
            if self._left_maps is not None:
                image = self._left_maps.apply(image)
                depth_m = self._left_maps.apply(depth_m, nearest=True)
            return Frame(
                index=index,
                stamp_ns=stamp_ns,
                image=image,
                camera=self._camera,
                depth_m=depth_m,
                imu=imu,
                body_from_cam=self._body_from_cam,
                source_path=self.source_path,
            )
        left = np.array(np.asanyarray(group[0].payload.get_data()), copy=True)
        right = np.array(np.asanyarray(group[1].payload.get_data()), copy=True)
        if self._left_maps is not None and self._right_maps is not None:
            left, right = self._left_maps.apply(left), self._right_maps.apply(right)
        return Frame(
            index=index,
            stamp_ns=stamp_ns,
            image=left,
            camera=self._camera,
            image_right=right,
            stereo=self._stereo,
            imu=imu,
            body_from_cam=self._body_from_cam,
            source_path=self.source_path,
        )

    def _aligned(self, color: Any, depth: Any) -> tuple[Any, Any]:
        self._join_color[:] = [color]
        self._joiner.invoke(depth)
        joined = self._joined.wait_for_frame(5000)
        aligned = self._align.process(joined.as_frameset())
        self._join_color.clear()
        return aligned.get_color_frame(), aligned.get_depth_frame()

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.close()
        if self._started:
            if not self.live:
                # a paused playback never winds down: let it run out while sensors stop
                self._device.as_playback().resume()
            stop_sensors(self._plan)
            # The SDK holds our callbacks (and so this object) from C++, where Python's
            # collector cannot see the cycle: replace them so nothing outlives close().
            try:
                if self.live:
                    self._context.set_devices_changed_callback(_ignore)
                else:
                    self._device.as_playback().set_status_changed_callback(_ignore)
            except RuntimeError as exc:
                log.debug("clearing an SDK callback: %s", exc)
            if self._joiner is not None:
                self._joiner = self._joined = self._align = None
        stats = self.stats
        if stats.dropped_by_device or stats.dropped_by_host or stats.unpaired or stats.imu_dropped:
            log.warning("%s: %s", self.source_path, stats)


def _ignore(_event: Any) -> None:
    return None


def _color_array(rs: Any, frame: Any) -> np.ndarray:
    """An owned HxWx3 RGB (or HxW grey) uint8 array of a colour frame."""
    data = np.asanyarray(frame.get_data())
    fmt = frame.get_profile().format()
    if fmt == rs.format.rgb8:
        return np.array(data, copy=True)
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    if fmt in (rs.format.y8, rs.format.raw8):
        return np.array(data, copy=True)
    if fmt == rs.format.yuyv:
        import cv2

        height, width = data.shape[:2]
        return cv2.cvtColor(data.reshape(height, width, 2), cv2.COLOR_YUV2RGB_YUYV)
    raise SourceError(f"colour format {fmt.name} is not supported (use rgb8, bgr8 or yuyv)")


__all__ = ["RealSenseSource", "RealSenseStats"]
