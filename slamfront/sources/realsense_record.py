"""Record a live RealSense into a ``.db3`` file that ``realsense-file:`` plays back.

The streams are the ones the live source would open for the same ``config.realsense``
(colour + depth, or both infrared imagers, plus gyro and accelerometer), recorded raw by the
SDK's recorder; the camera-IMU extrinsics, which the 2.59 recorder drops, go into the
sidecar ``OUT.db3.yaml``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slamfront.errors import DeviceError, OutputError, SourceError
from slamfront.run_folder import check_file_target
from slamfront.sources.realsense_convert import FrameNumberGaps
from slamfront.sources.realsense_device import (
    DeviceInfo,
    configure_live,
    import_pyrealsense2,
    open_live_device,
    plan_streams,
    start_sensors,
    stop_sensors,
    stream_key,
    write_sidecar,
)

if TYPE_CHECKING:
    from slamfront.config import Config

log = logging.getLogger("slamfront.sources.realsense")


@dataclass(frozen=True)
class RecordingResult:
    """A finished recording: where, from which device, how long, how complete."""

    path: Path
    sidecar: Path
    device: DeviceInfo
    duration_s: float
    frames: int
    """Images of the primary stream (colour, or the left infrared imager)."""
    imu_readings: int
    dropped: int
    """Primary-stream frames the device dropped (gaps in frame numbers)."""


class _Tally:
    """Counts what the SDK hands over while it records (called on its threads)."""

    def __init__(self, primary: str) -> None:
        self.primary = primary
        self.lock = threading.Lock()
        self.frames = 0
        self.imu = 0
        self.gaps = FrameNumberGaps()
        self.last_image_s = time.monotonic()
        self.removed = False

    def on_frame(self, rs: Any, frame: Any) -> None:
        key = stream_key(rs, frame.get_profile())
        with self.lock:
            if key in ("gyro", "accel"):
                self.imu += 1
            elif key is not None:
                self.last_image_s = time.monotonic()
                self.gaps.observe(key, int(frame.get_frame_number()))
                self.frames += key == self.primary


def record(
    out: str | Path,
    config: Config,
    *,
    serial: str | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    device: Any = None,
) -> RecordingResult:
    """Record until ``duration_s`` has passed or ``stop`` is set (at least one is needed).

    A device that is unplugged or sends no image for ``realsense.timeout_s`` ends the
    recording with a :class:`DeviceError`, after the file has been closed (it stays
    playable up to that point). ``device``: a pyrealsense2 device already at hand instead of
    looking one up (tests pass a software device).
    """
    rs = import_pyrealsense2()
    target = Path(out)
    if target.suffix != ".db3":
        raise SourceError(f"{target}: the RealSense 2.59 recorder writes .db3 files only")
    if duration_s is None and stop is None:
        raise ValueError("record() needs duration_s or a stop event")
    if target.exists():
        raise SourceError(f"{target}: exists already; choose a new name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create its folder ({exc.strerror or exc})") from exc
    check_file_target(target, "record")  # before the device starts streaming
    context = rs.context()
    if device is None:
        device = open_live_device(context, serial or config.realsense.serial)
    recorder = rs.recorder(str(target), device)
    plan = plan_streams(device, config.realsense, live=True)
    configure_live(plan, config.realsense)
    tally = _Tally(plan.primary)

    def on_change(event: Any) -> None:
        try:
            if event.was_removed(device):
                tally.removed = True
        except RuntimeError:
            pass

    context.set_devices_changed_callback(on_change)
    start_s = time.monotonic()
    timeout_s = config.realsense.first_frame_timeout_s
    fault: DeviceError | None = None
    start_sensors(plan, lambda frame: tally.on_frame(rs, frame))
    try:
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if duration_s is not None and now - start_s >= duration_s:
                break
            with tally.lock:
                silent_s = now - tally.last_image_s
                if tally.frames:
                    timeout_s = config.realsense.timeout_s
            if tally.removed:
                fault = DeviceError(f"{plan.device.describe()} was unplugged while recording")
                break
            if silent_s > timeout_s:
                fault = DeviceError(
                    f"{plan.device.describe()} sent no image for {timeout_s:.1f} s while "
                    "recording (unplugged or USB link stalled)"
                )
                break
            time.sleep(0.05)
    finally:
        stop_sensors(plan)
        context.set_devices_changed_callback(lambda _event: None)
        del recorder
    sidecar = write_sidecar(target, plan.body_from_cam, plan.device)
    with tally.lock:
        result = RecordingResult(
            path=target,
            sidecar=sidecar,
            device=plan.device,
            duration_s=time.monotonic() - start_s,
            frames=tally.frames,
            imu_readings=tally.imu,
            dropped=tally.gaps.dropped.get(plan.primary, 0),
        )
    if fault is not None:
        raise DeviceError(f"{fault} ({result.frames} frames kept in {target})")
    return result
