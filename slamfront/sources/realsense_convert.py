"""RealSense data rules that need no device: calibration records, IMU pairing, frame pairing.

Nothing here imports pyrealsense2; inputs are plain numbers, so each rule is unit-tested on
its own. ``realsense.py`` feeds these from the SDK's callbacks.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slamfront.errors import SourceError
from slamfront.types import CameraModel, ImuSample

log = logging.getLogger("slamfront.sources.realsense")

_RADTAN_MODELS = ("brown_conrady", "inverse_brown_conrady", "modified_brown_conrady")


def camera_from_intrinsics(
    width_px: int,
    height_px: int,
    fx: float,
    fy: float,
    ppx: float,
    ppy: float,
    model: str,
    coeffs: Sequence[float],
) -> CameraModel:
    """CameraModel from an ``rs2_intrinsics`` (``model`` is the ``rs.distortion`` name).

    The three Brown-Conrady variants become OpenCV radtan (k1, k2, p1, p2, k3): librealsense
    2.59 projects ``brown_conrady`` exactly like OpenCV, and ``inverse``/``modified`` differ
    from it only in the tangential term of already-scaled coordinates (well under 0.01 px for
    D400 coefficients). ``kannala_brandt4`` is the fisheye (equidistant) model. All-zero
    coefficients give a plain pinhole. ``ftheta`` (T265) is not supported.
    """
    values = tuple(float(c) for c in coeffs)
    base = {
        "width_px": int(width_px),
        "height_px": int(height_px),
        "fx": float(fx),
        "fy": float(fy),
        "cx": float(ppx),
        "cy": float(ppy),
    }
    if model == "none" or not any(values):
        return CameraModel(**base)  # type: ignore[arg-type]
    if model in _RADTAN_MODELS:
        padded = (*values, 0.0, 0.0, 0.0, 0.0, 0.0)[:5]
        return CameraModel(**base, distortion="radtan", dist_coeffs=padded)  # type: ignore[arg-type]
    if model == "kannala_brandt4":
        padded = (*values, 0.0, 0.0, 0.0, 0.0)[:4]
        return CameraModel(**base, distortion="equidistant", dist_coeffs=padded)  # type: ignore[arg-type]
    raise SourceError(f"RealSense distortion model {model!r} is not supported")


def pose_from_extrinsics(rotation: Sequence[float], translation: Sequence[float]) -> np.ndarray:
    """4x4 ``to_from_from`` of an ``rs2_extrinsics`` (its rotation is column-major)."""
    if len(rotation) != 9 or len(translation) != 3:
        raise SourceError(
            f"RealSense extrinsics need 9 rotation and 3 translation values, "
            f"got {len(rotation)} and {len(translation)}"
        )
    pose = np.eye(4)
    pose[:3, :3] = np.asarray(rotation, dtype=np.float64).reshape(3, 3).T
    pose[:3, 3] = np.asarray(translation, dtype=np.float64)
    return pose


def stamp_ns_from_ms(timestamp_ms: float) -> int:
    """The SDK's millisecond timestamps (doubles) as integer nanoseconds."""
    return round(timestamp_ms * 1e6)


# --------------------------------------------------------------------------- IMU


class ImuPairer:
    """Gyro and accelerometer streams -> one :class:`ImuSample` per gyro reading.

    The accelerometer runs at a different rate, so its value is interpolated linearly at each
    gyro stamp (an accelerometer reading at the very same stamp is used as it is). A gyro
    reading waits until an accelerometer reading at or after its stamp has arrived; gyro
    readings older than the first accelerometer reading are dropped (counted).
    """

    def __init__(self, history: int = 16) -> None:
        self._accel_stamps: deque[int] = deque(maxlen=history)
        self._accel_values: deque[tuple[float, float, float]] = deque(maxlen=history)
        self._gyro: deque[tuple[int, tuple[float, float, float]]] = deque()
        self.gyro_dropped = 0

    def add_gyro(self, stamp_ns: int, rad_s: tuple[float, float, float]) -> list[ImuSample]:
        self._gyro.append((stamp_ns, rad_s))
        return self._drain()

    def add_accel(self, stamp_ns: int, m_s2: tuple[float, float, float]) -> list[ImuSample]:
        if self._accel_stamps and stamp_ns <= self._accel_stamps[-1]:
            log.debug("accelerometer stamp %d out of order, ignored", stamp_ns)
            return []
        self._accel_stamps.append(stamp_ns)
        self._accel_values.append(m_s2)
        return self._drain()

    def _drain(self) -> list[ImuSample]:
        out: list[ImuSample] = []
        stamps = self._accel_stamps
        while self._gyro and stamps and self._gyro[0][0] <= stamps[-1]:
            stamp_ns, gyro = self._gyro.popleft()
            if stamp_ns < stamps[0]:
                self.gyro_dropped += 1
                continue
            out.append(ImuSample(stamp_ns, gyro, self._accel_at(stamp_ns)))
        return out

    def _accel_at(self, stamp_ns: int) -> tuple[float, float, float]:
        stamps = list(self._accel_stamps)
        i = bisect.bisect_left(stamps, stamp_ns)
        if stamps[i] == stamp_ns:
            return self._accel_values[i]
        t0, t1 = stamps[i - 1], stamps[i]
        a0 = np.asarray(self._accel_values[i - 1], dtype=np.float64)
        a1 = np.asarray(self._accel_values[i], dtype=np.float64)
        mixed = a0 + (a1 - a0) * ((stamp_ns - t0) / (t1 - t0))
        return (float(mixed[0]), float(mixed[1]), float(mixed[2]))


class ImuBuffer:
    """IMU samples waiting for the frame they precede (``prev_stamp < t <= stamp``).

    A sample that arrives after a frame at or past its stamp has gone out cannot be
    attached honestly any more: it is dropped and counted in ``late``.
    """

    def __init__(self) -> None:
        self._samples: deque[ImuSample] = deque()
        self._taken_through_ns = -(2**63)
        self.watermark_ns = -(2**63)
        """Stamp of the newest sample added: frames up to it have all their samples."""
        self.late = 0

    def add(self, samples: Sequence[ImuSample]) -> None:
        for sample in samples:
            if sample.stamp_ns <= self._taken_through_ns:
                self.late += 1
                continue
            self._samples.append(sample)
            self.watermark_ns = max(self.watermark_ns, sample.stamp_ns)

    def take_through(self, stamp_ns: int) -> tuple[ImuSample, ...]:
        taken: list[ImuSample] = []
        while self._samples and self._samples[0].stamp_ns <= stamp_ns:
            taken.append(self._samples.popleft())
        self._taken_through_ns = max(self._taken_through_ns, stamp_ns)
        return tuple(taken)


# --------------------------------------------------------------------------- video


@dataclass(frozen=True)
class VideoPacket:
    """One image of one stream as it left the SDK; ``payload`` is the SDK frame."""

    stream: str
    frame_number: int
    stamp_ns: int
    payload: Any = field(compare=False, repr=False)


class FramePairer:
    """Groups one packet of every stream whose stamps agree within ``tolerance_ns``.

    A packet that finds no partner (its stream delivered a newer one first, or the partner's
    stamp is too far away) is dropped and counted in ``unpaired``.
    """

    def __init__(self, streams: Sequence[str], tolerance_ns: int) -> None:
        if not streams:
            raise ValueError("FramePairer needs at least one stream")
        self.streams = tuple(streams)
        self.tolerance_ns = tolerance_ns
        self._pending: dict[str, VideoPacket] = {}
        self.unpaired = 0

    def add(self, packet: VideoPacket) -> tuple[VideoPacket, ...] | None:
        if packet.stream not in self.streams:
            return None
        if packet.stream in self._pending:
            self.unpaired += 1
        self._pending[packet.stream] = packet
        if len(self._pending) < len(self.streams):
            return None
        newest = max(p.stamp_ns for p in self._pending.values())
        for name, pending in list(self._pending.items()):
            if newest - pending.stamp_ns > self.tolerance_ns:
                del self._pending[name]
                self.unpaired += 1
        if len(self._pending) < len(self.streams):
            return None
        group = tuple(self._pending[name] for name in self.streams)
        self._pending.clear()
        return group


class FrameNumberGaps:
    """Frames the device dropped, from gaps in each stream's frame numbers."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    def observe(self, stream: str, frame_number: int) -> int:
        """Frames missing just before this one (0 for the first, a repeat or a restart)."""
        last = self._last.get(stream)
        self._last[stream] = frame_number
        if last is None or frame_number <= last:
            if last is not None and frame_number < last:
                log.info("%s frame numbers restarted (%d after %d)", stream, frame_number, last)
            return 0
        gap = frame_number - last - 1
        if gap:
            self.dropped[stream] = self.dropped.get(stream, 0) + gap
        return gap
