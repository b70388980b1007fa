"""ROS bags: ``bag:PATH``, a ROS 1 ``.bag`` file (or a folder of the ``.bag`` files of a split
recording), a ROS 2 bag folder (``.db3`` or ``.mcap`` storage, with its metadata.yaml) or a
single ``.db3`` / ``.mcap`` file, read with the pure-Python ``rosbags`` package
(``pip install 'slamfront[bag]'``; no ROS install needed).

- Streams: images (``sensor_msgs/Image`` or ``CompressedImage``), optional right images
  (stereo), depth registered to the images, ``CameraInfo`` and ``Imu``. ``bag.*_topic`` names
  them; an empty one is picked from the bag's topics: the known layouts first (realsense-ros
  4.x ``/camera/camera/color`` + ``aligned_depth_to_color`` and 2.x/3.x ``/camera/color``,
  their infrared pairs, EuRoC ``/cam0`` ``/cam1`` ``/imu0``, TUM ``/camera/rgb``
  ``/camera/depth``; each also as ``.../compressed``), else the only image topic whose name
  lacks "depth" and the only Imu topic. ``none`` turns a stream off. The choice is logged and
  kept in ``description``.
- Stamps: the messages' header stamps (the bag's receive time where a header stamp is 0).
  Right images and depth pair with the images nearest in time (``bag.stereo_max_time_diff_s``,
  ``bag.depth_max_time_diff_s``; each used once, closest pairs first); images without a
  partner are left out.
- Images: mono8 stays grey; rgb8, bgr8, rgba8, bgra8, yuv422 (UYVY, YUYV), 8-bit Bayer and
  JPEG / PNG compressed images become RGB; 16-bit grey is scaled to 8 bits. Depth: 16UC1 /
  ``bag.depth_scale`` (millimetres by default) or 32FC1 metres, non-finite = 0, and
  image_transport's ``compressedDepth`` PNG of either. An encoding that cannot be read is an
  error at opening (the first message of each topic is decoded then).
- Rolling shutter: ``camera.readout_ms``, else the TUM layout's Kinect readout (as ``tum:``),
  else a global shutter.
- Intrinsics, first found: ``camera.calibration`` (a Kalibr camchain or ORB-SLAM3 file gives
  the stereo extrinsic and the IMU-camera extrinsic too); ``camera.fx`` ...; the first
  CameraInfo message (a stereo extrinsic from the pair's R and P, ROS's stereo convention).
  Stereo pairs are rectified (``source.stereo_rectify``) or undistorted each
  (``source.undistort``) as EuRoC's.
- Extrinsics a calibration file or CameraInfo does not give (the stereo pair's, the IMU's)
  come from ``/tf_static`` between the frame ids of the topics' messages (realsense-ros
  records them).
- realsense-ros's separate ``gyro/sample`` and ``accel/sample`` topics (its default when it
  does not unite them) are read as one IMU at the gyro's stamps, the accelerometer
  interpolated linearly.
- IMU: every sample with ``previous frame stamp < t <= frame stamp`` rides on the frame, as
  for EuRoC; ``body_from_cam`` is the IMU <- (reported) camera extrinsic; without one the
  samples ride along but the tracker does not use them (logged).
- ``groundtruth()``: ``source.groundtruth`` (world_from_cam poses) when given.

The bag is read twice: once at opening for stamps, CameraInfo and IMU samples (no image is
decoded but a compressed topic's first, for its size), once while iterating, deserialising and
decoding only the selected frames' messages. Topic choice and message decoding live in
:mod:`slamfront.sources.bag_messages`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import StereoRectification, invert_pose, rectify_stereo
from slamfront.io.trajectory import read_trajectory
from slamfront.sources._files import (
    Pacer,
    Undistorter,
    calibration_from_config,
    camera_from_config,
    check_image_size,
    select_indices,
)
from slamfront.sources.bag_messages import (
    camera_info_fields,
    choose_topics,
    decode_depth,
    decode_image,
    frame_id_of,
    stamp_ns_of,
    static_transforms,
    stereo_extrinsic,
    transform_between,
    unite_imu,
)
from slamfront.sources.base import Source, with_readout
from slamfront.sources.calibration import Calibration, calibration_from_mapping
from slamfront.sources.euroc import ImuLog
from slamfront.sources.tum import KINECT_READOUT_S, associate
from slamfront.types import Frame, StereoRig, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config

log = logging.getLogger("slamfront.sources.bag")

LAYOUT_READOUT_S = {"TUM RGB-D": KINECT_READOUT_S}
"""Rolling-shutter readout of the cameras of known layouts (others: global shutter)."""


@dataclass(frozen=True, eq=False)
class _Scan:
    """What the first pass over a bag found."""

    stamps_ns: dict[str, list[int]]
    """Header stamps of every message on the image, right and depth topics, in bag order."""
    log_ns: dict[tuple[str, int], int]
    """(topic, header stamp) -> the bag's time of the first message with that stamp."""
    infos: dict[str, dict[str, Any]]
    """The first CameraInfo of each CameraInfo topic, as fields."""
    sizes: dict[str, tuple[int, int]]
    """(width, height) of the first decodable message of each image topic."""
    imu_rows: list[tuple[int, float, float, float, float, float, float]]
    """(stamp_ns, gyro xyz rad/s, accel xyz m/s^2) of every IMU message."""
    split_imu_rows: dict[str, list[tuple[int, float, float, float]]]
    """(stamp_ns, x, y, z) of every message on the separate gyro and accelerometer topics."""
    frame_ids: dict[str, str]
    """The header frame id of each image and IMU topic's first message."""
    tf_edges: list[tuple[str, str, np.ndarray]]
    """(parent, child, parent_from_child) of every static transform."""


@dataclass(frozen=True)
class _FrameParts:
    stamp_ns: int
    right_ns: int | None
    depth_ns: int | None


def bag_files(path: Path) -> list[Path]:
    """What rosbags opens for ``bag:PATH``: the path itself, or a folder's ROS 1 ``.bag``
    files (a recording split in several) when it is not a ROS 2 bag folder."""
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        split = sorted(path.glob("*.bag"))
        if not split:
            raise SourceError(f"{path}: neither a ROS 2 bag (no metadata.yaml) nor .bag files")
        return split
    return [path]


def _open_reader(path: Path) -> Any:
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:
        raise SourceError(
            f"{path}: reading bags needs the rosbags package: pip install 'slamfront[bag]'"
        ) from exc
    files = bag_files(path)
    try:
        # the ROS 2 Humble types are used only by bags that carry no message definitions
        reader = AnyReader(files, default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise SourceError(f"{path}: cannot read the bag: {exc}") from exc
    return reader


class BagSource(Source):
    """Frames of a ROS 1 / ROS 2 bag (see the module docstring)."""

    name = "bag"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> BagSource:
        if not rest:
            raise SourceError("bag source needs a file or folder: bag:PATH")
        return cls(Path(rest).expanduser(), config)

    def __init__(self, path: Path, config: Config) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: bag not found")
        self._config = config
        self._reader: Any = None
        self.frames_skipped = 0
        reader = _open_reader(self.path)
        try:
            types = {t: info.msgtype or "" for t, info in reader.topics.items()}
            if any(t.startswith("/device_0/") for t in types):
                raise SourceError(
                    f"{self.path}: a RealSense SDK recording; play it with realsense-file:PATH"
                )
            self.topics = choose_topics(types, config.bag, str(self.path))
            self.description = f"bag {self.path.name}: {self.topics.describe()}"
            log.info("%s", self.description)
            scan = self._scan(reader)
        finally:
            reader.close()
        self._setup(scan, config)

    # -- pass 1: stamps, camera infos, IMU samples

    def _scan(self, reader: Any) -> _Scan:
        t = self.topics
        stamps: dict[str, list[int]] = {name: [] for name in (t.image, t.right, t.depth) if name}
        log_of: dict[tuple[str, int], int] = {}
        infos: dict[str, dict[str, Any]] = {}
        sizes: dict[str, tuple[int, int]] = {}
        imu_rows: list[tuple[int, float, float, float, float, float, float]] = []
        split_rows: dict[str, list[tuple[int, float, float, float]]] = {t.gyro: [], t.accel: []}
        frame_ids: dict[str, str] = {}
        tf_edges: list[tuple[str, str, np.ndarray]] = []
        wanted = {t.imu, t.gyro, t.accel, t.camera_info, t.right_camera_info, t.tf_static}
        wanted = (wanted | set(stamps)) - {""}
        connections = [c for c in reader.connections if c.topic in wanted]
        try:
            for connection, log_ns, raw in reader.messages(connections=connections):
                topic = connection.topic
                if topic in infos:
                    continue  # the first CameraInfo is enough
                msg = reader.deserialize(raw, connection.msgtype)
                if topic == t.tf_static:
                    tf_edges += static_transforms(msg)
                    continue
                if topic not in frame_ids and topic in (t.image, t.right, t.imu, t.gyro):
                    frame_ids[topic] = frame_id_of(msg)
                if topic in (t.gyro, t.accel):
                    v = msg.angular_velocity if topic == t.gyro else msg.linear_acceleration
                    split_rows[topic].append((stamp_ns_of(msg, log_ns), v.x, v.y, v.z))
                if topic in stamps:
                    stamp_ns = stamp_ns_of(msg, log_ns)
                    stamps[topic].append(stamp_ns)
                    log_of.setdefault((topic, stamp_ns), int(log_ns))
                    if topic not in sizes:
                        sizes[topic] = self._first_size(topic, connection.msgtype, msg)
                if topic == t.imu:
                    w, a = msg.angular_velocity, msg.linear_acceleration
                    imu_rows.append((stamp_ns_of(msg, log_ns), w.x, w.y, w.z, a.x, a.y, a.z))
                if topic in (t.camera_info, t.right_camera_info):
                    infos[topic] = camera_info_fields(msg)
        except SourceError:
            raise
        except Exception as exc:  # a truncated or corrupt bag
            raise SourceError(f"{self.path}: cannot read the bag's messages: {exc}") from exc
        return _Scan(stamps, log_of, infos, sizes, imu_rows, split_rows, frame_ids, tf_edges)

    def _first_size(self, topic: str, msgtype: str, msg: Any) -> tuple[int, int]:
        """(width, height) of a topic's first message, decoded in full: an encoding this
        cannot read is an error now rather than every frame skipped later."""
        if topic == self.topics.depth:
            pixels, reason = decode_depth(msg, msgtype, self._config.bag.depth_scale)
        else:
            pixels, reason = decode_image(msg, msgtype)
        if pixels is None:
            raise SourceError(f"{self.path}: {topic}: {reason}")
        return int(pixels.shape[1]), int(pixels.shape[0])

    def _setup(self, scan: _Scan, config: Config) -> None:
        t, bag, cfg = self.topics, config.bag, config.source
        self._log_ns = scan.log_ns
        stamps = scan.stamps_ns
        image_ns = self._unique(t.image, stamps[t.image])
        if image_ns.size == 0:
            raise SourceError(f"{self.path}: no message on {t.image}")
        right_ns = self._unique(t.right, stamps[t.right]) if t.right else None
        depth_ns = self._unique(t.depth, stamps[t.depth]) if t.depth else None
        keep = np.ones(image_ns.size, dtype=bool)
        partners: dict[str, dict[int, int]] = {}
        for name, other, tolerance_s in (
            (t.right, right_ns, bag.stereo_max_time_diff_s),
            (t.depth, depth_ns, bag.depth_max_time_diff_s),
        ):
            if other is None:
                continue
            pairs = associate(image_ns, other, round(tolerance_s * 1e9))
            if not pairs:
                raise SourceError(
                    f"{self.path}: no message on {name} within {tolerance_s} s of an image on "
                    f"{t.image}"
                )
            partners[name] = {i: int(other[j]) for i, j in pairs}
            paired = np.zeros(image_ns.size, dtype=bool)
            paired[[i for i, _ in pairs]] = True
            if not paired.all():
                log.info(
                    "%s: %d of %d images have no partner on %s; left out",
                    self.path,
                    int((~paired).sum()),
                    image_ns.size,
                    name,
                )
            keep &= paired
        self._frames = [
            _FrameParts(
                int(image_ns[i]),
                partners[t.right][int(i)] if t.right else None,
                partners[t.depth][int(i)] if t.depth else None,
            )
            for i in np.flatnonzero(keep)
        ]
        if not self._frames:
            raise SourceError(f"{self.path}: no image on {t.image} has all its partners")
        self._selected = select_indices(len(self._frames), cfg)

        size = self._raw_size = scan.sizes[t.image]
        check_image_size(size[0], size[1], cfg, f"{self.path}: {t.image}")
        calibration = self._with_static_transforms(
            self._calibration(scan.infos, size, config), scan
        )
        readout_s = LAYOUT_READOUT_S.get(t.layout, 0.0)
        left_raw = with_readout(calibration.camera, config.camera, readout_s)
        self.stereo: StereoRig | None = None
        self._rectification: StereoRectification | None = None
        self._undistort_right: Undistorter | None = None
        cam_from_outcam = np.eye(4)
        if t.right:
            if calibration.right is None or calibration.right_from_left is None:
                raise SourceError(
                    f"{self.path}: stereo ({t.image} + {t.right}) needs the pair's extrinsic: "
                    "CameraInfo with a baseline in P, /tf_static linking their frames, or "
                    "camera.calibration (Kalibr camchain, ORB-SLAM3 settings); or "
                    "bag.right_topic=none for monocular"
                )
            right_raw = with_readout(calibration.right, config.camera, readout_s)
            if right_raw.size_px != scan.sizes.get(t.right, right_raw.size_px):
                raise SourceError(
                    f"{self.path}: {t.right} images differ in size from the calibration"
                )
            raw_rig = StereoRig(left_raw, right_raw, calibration.right_from_left)
            if cfg.stereo_rectify:
                try:
                    self._rectification = rectify_stereo(raw_rig)
                except ValueError as exc:
                    raise SourceError(
                        f"{self.path}: cannot rectify the stereo pair: {exc}"
                    ) from exc
                self.stereo = self._rectification.rig
                self.camera = self.stereo.left
                cam_from_outcam = invert_pose(self._rectification.rect_from_left)
            else:
                self._undistort_left = Undistorter(left_raw, cfg.undistort)
                self._undistort_right = Undistorter(right_raw, cfg.undistort)
                self.camera = self._undistort_left.camera
                self.stereo = StereoRig(
                    self.camera, self._undistort_right.camera, calibration.right_from_left
                )
        else:
            self._undistort_left = Undistorter(left_raw, cfg.undistort)
            self.camera = self._undistort_left.camera
        self.raw_camera = left_raw
        self.body_from_cam: np.ndarray | None = None
        if calibration.body_from_cam is not None:
            self.body_from_cam = calibration.body_from_cam @ cam_from_outcam

        self.imu: ImuLog | None = None
        if t.imu or t.gyro:
            if t.imu:
                samples = sorted(scan.imu_rows)
                stamps_ns = np.array([row[0] for row in samples], dtype=np.int64)
                values = np.array([row[1:] for row in samples], dtype=np.float64).reshape(-1, 6)
                self.imu = ImuLog(stamps_ns, values[:, :3], values[:, 3:])
            else:
                self.imu = unite_imu(scan.split_imu_rows[t.gyro], scan.split_imu_rows[t.accel])
            finite = np.isfinite(self.imu.gyro_rad_s).all(1) & np.isfinite(self.imu.accel_m_s2).all(
                1
            )
            if not finite.all():
                log.warning(
                    "%s: %d IMU samples on %s hold a non-finite value; left out",
                    self.path,
                    int((~finite).sum()),
                    t.imu or t.gyro,
                )
                self.imu = ImuLog(
                    self.imu.stamps_ns[finite],
                    self.imu.gyro_rad_s[finite],
                    self.imu.accel_m_s2[finite],
                )
            if self.body_from_cam is None:
                log.warning(
                    "%s: IMU samples on %s come without the IMU-camera extrinsic, so the "
                    "tracker cannot use them; give camera.calibration (Kalibr T_cam_imu or "
                    "ORB-SLAM3 IMU.T_b_c1) or record /tf_static",
                    self.path,
                    t.imu or t.gyro,
                )

    def _with_static_transforms(self, calibration: Calibration, scan: _Scan) -> Calibration:
        """The calibration with the stereo and IMU extrinsics it lacks taken from /tf_static,
        between the frame ids of the topics' messages."""
        t = self.topics
        image_frame = scan.frame_ids.get(t.image, "")

        def between(topic: str) -> np.ndarray | None:
            other = scan.frame_ids.get(topic, "")
            if not (image_frame and other) or other == image_frame:
                return None
            found = transform_between(scan.tf_edges, other, image_frame)
            if found is not None:
                log.info("%s: %s <- %s from %s", self.path, other, image_frame, t.tf_static)
            return found

        changes: dict[str, np.ndarray] = {}
        if t.right and calibration.right_from_left is None:
            found = between(t.right)
            if found is not None:
                changes["right_from_left"] = found
        if (t.imu or t.gyro) and calibration.body_from_cam is None:
            found = between(t.imu or t.gyro)
            if found is not None:
                changes["body_from_cam"] = found
        return dataclasses.replace(calibration, **changes) if changes else calibration  # type: ignore[arg-type]

    def _unique(self, topic: str, stamps: list[int]) -> np.ndarray:
        """Sorted stamps of a topic, repeats dropped (logged)."""
        values = np.array(stamps, dtype=np.int64)
        unique = np.unique(values)
        if unique.size < values.size:
            log.warning(
                "%s: %d messages on %s repeat a stamp; the first of each is used",
                self.path,
                values.size - unique.size,
                topic,
            )
        return unique

    def _calibration(
        self, infos: dict[str, dict[str, Any]], size: tuple[int, int], config: Config
    ) -> Calibration:
        t = self.topics
        from_file = calibration_from_config(config.camera, size[0], size[1], str(self.path))
        if from_file is not None:
            return from_file
        if config.camera.fx is not None:  # given by the user: wins over the bag's CameraInfo
            camera = camera_from_config(config.camera, size[0], size[1], str(self.path))
            return Calibration(self.path, "config", camera)
        if t.camera_info not in infos:
            raise SourceError(
                f"{self.path}: no CameraInfo for {t.image} (bag.camera_info_topic); give "
                "camera.calibration=FILE or camera.fx, fy, cx, cy"
            )
        try:
            left_fields = infos[t.camera_info]
            where = Path(f"{self.path}:{t.camera_info}")
            left = calibration_from_mapping(where, left_fields, size).camera
            right = right_from_left = None
            if t.right and t.right_camera_info in infos:
                right_fields = infos[t.right_camera_info]
                right_where = Path(f"{self.path}:{t.right_camera_info}")
                right = calibration_from_mapping(right_where, right_fields).camera
                right_from_left = stereo_extrinsic(left_fields, right_fields)
        except SourceError as exc:
            raise SourceError(f"{exc}; give camera.calibration=FILE instead") from exc
        return Calibration(where, "camera_info", left, right, right_from_left)

    def __len__(self) -> int:
        return len(self._selected)

    # -- pass 2: the selected frames' images

    def __iter__(self) -> Iterator[Frame]:
        t = self.topics
        self.close()
        self._reader = reader = _open_reader(self.path)
        pacer = Pacer(self._config.source.realtime)
        try:
            selected = self._selected
            if not selected:
                return
            first = selected[0]
            previous = self._frames[first - 1].stamp_ns if first > 0 else None
            wanted = {key for k in selected for key in self._parts(k)}
            # the bag's times of the wanted messages: the others are not even deserialised
            wanted_log = {(topic, self._log_ns[(topic, stamp)]) for topic, stamp in wanted}
            start_ns = min(log_ns for _, log_ns in wanted_log)
            stop_ns = max(log_ns for _, log_ns in wanted_log) + 1
            topics = {name for name in (t.image, t.right, t.depth) if name}
            connections = [c for c in reader.connections if c.topic in topics]
            got: dict[tuple[str, int], np.ndarray | None] = {}
            position = 0
            for connection, log_ns, raw in self._messages(reader, connections, start_ns, stop_ns):
                if (connection.topic, log_ns) not in wanted_log:
                    continue
                msg = reader.deserialize(raw, connection.msgtype)
                key = (connection.topic, stamp_ns_of(msg, log_ns))
                if key not in wanted:
                    continue
                wanted.discard(key)
                got[key] = self._decode(connection.topic, connection.msgtype, msg, key[1])
                while position < len(selected) and self._complete(selected[position], got):
                    frame = self._assemble(selected[position], got, previous)
                    position += 1
                    if frame is not None:
                        pacer.wait(frame.stamp_ns)
                        previous = frame.stamp_ns
                        yield frame
            for index in selected[position:]:  # only if the bag changed since it was opened
                if not self._complete(index, got):
                    stamp_ns = self._frames[index].stamp_ns
                    self._skip(f"{self.path}:{t.image}@{stamp_ns}", "a message is missing")
                    continue
                frame = self._assemble(index, got, previous)
                if frame is not None:
                    pacer.wait(frame.stamp_ns)
                    previous = frame.stamp_ns
                    yield frame
        finally:
            if self._reader is reader:
                self.close()

    def _messages(
        self, reader: Any, connections: list[Any], start_ns: int, stop_ns: int
    ) -> Iterator[tuple[Any, int, bytes]]:
        try:
            yield from reader.messages(connections=connections, start=start_ns, stop=stop_ns)
        except Exception as exc:  # a bag truncated after it was opened
            raise SourceError(f"{self.path}: cannot read the bag's messages: {exc}") from exc

    def _parts(self, index: int) -> list[tuple[str, int]]:
        t, parts = self.topics, self._frames[index]
        keys = [(t.image, parts.stamp_ns)]
        if parts.right_ns is not None:
            keys.append((t.right, parts.right_ns))
        if parts.depth_ns is not None:
            keys.append((t.depth, parts.depth_ns))
        return keys

    def _complete(self, index: int, got: dict[tuple[str, int], np.ndarray | None]) -> bool:
        return all(key in got for key in self._parts(index))

    def _decode(self, topic: str, msgtype: str, msg: Any, stamp_ns: int) -> np.ndarray | None:
        """The message's image (depth in metres on the depth topic); None (counted as a
        skipped frame) when it cannot be decoded or has another size than the camera's."""
        if topic == self.topics.depth:
            pixels, reason = decode_depth(msg, msgtype, self._config.bag.depth_scale)
        else:
            pixels, reason = decode_image(msg, msgtype)
        if pixels is not None and (pixels.shape[1], pixels.shape[0]) != self._raw_size:
            size = f"{pixels.shape[1]}x{pixels.shape[0]}"
            pixels, reason = None, f"size {size} differs from the camera's"
        if pixels is None:
            self._skip(f"{self.path}:{topic}@{stamp_ns}", reason)
        return pixels

    def _assemble(
        self, index: int, got: dict[tuple[str, int], np.ndarray | None], previous: int | None
    ) -> Frame | None:
        """Frame ``index`` from its received parts (taken out of ``got``); None if one failed
        to decode (counted as skipped then)."""
        keys = self._parts(index)
        arrays = [got.pop(key) for key in keys]
        if any(a is None for a in arrays):
            return None
        t, parts = self.topics, self._frames[index]
        image = arrays[0]
        right = arrays[1] if parts.right_ns is not None else None
        depth = arrays[-1] if parts.depth_ns is not None else None
        assert image is not None
        if self._rectification is not None:
            assert right is not None
            image = self._rectification.left.apply(image)
            right = self._rectification.right.apply(right)
        else:
            image = self._undistort_left(image)
            if right is not None and self._undistort_right is not None:
                right = self._undistort_right(right)
        if depth is not None and self._rectification is not None:
            depth = self._rectification.left.apply(depth, nearest=True)
        elif depth is not None:
            depth = self._undistort_left(depth, nearest=True)
        stamp_ns = parts.stamp_ns
        return Frame(
            index=index,
            stamp_ns=stamp_ns,
            image=image,
            camera=self.camera,
            depth_m=depth,
            image_right=right,
            stereo=self.stereo,
            imu=self.imu.between(previous, stamp_ns) if self.imu is not None else (),
            body_from_cam=self.body_from_cam,
            source_path=f"{self.path}:{t.image}@{stamp_ns}",
        )

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def groundtruth(self) -> Trajectory | None:
        path = self._config.source.groundtruth
        return read_trajectory(path) if path else None
