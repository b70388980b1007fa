"""bag: on ROS 1 and ROS 2 bags written here with rosbags' writer from the frames of other
sources: frames, stamps, depth, stereo and IMU samples come back exactly as tum:/euroc: give
them; topic picking, CameraInfo intrinsics and stereo extrinsics; errors; one end-to-end run."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.geometry import (
    invert_pose,
    make_pose,
    rectify_stereo,
    rotation_to_quat_xyzw,
    so3_exp,
)
from slamfront.sources.bag import BagSource
from slamfront.sources.bag_messages import (
    COMPRESSED,
    IMAGE,
    choose_topics,
    decode_depth,
    decode_image,
    stereo_extrinsic,
    transform_between,
)
from slamfront.types import CameraModel, Frame, StereoRig

pytest.importorskip("rosbags")

from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

ENCODINGS = {1: "mono8", 3: "rgb8"}
ROS_DISTORTION = {"radtan": "plumb_bob", "equidistant": "equidistant", "none": "plumb_bob"}


class BagWriter:
    """Writes sensor_msgs messages into a ROS 1 (``.bag``) or ROS 2 (folder) bag."""

    def __init__(self, path: Path, storage: str = "ros1") -> None:
        self.ros1 = storage == "ros1"
        self.types = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_HUMBLE)
        if self.ros1:
            self.writer: Any = Writer1(path)
        else:
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self.writer = Writer2(path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.connections: dict[str, Any] = {}
        self.seq = 0
        self.frame_id = "cam"

    def close(self) -> None:
        self.writer.close()

    def _header(self, stamp_ns: int) -> Any:
        t = self.types.types
        stamp = t["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        self.seq += 1
        if self.ros1:
            return t["std_msgs/msg/Header"](seq=self.seq, stamp=stamp, frame_id=self.frame_id)
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=self.frame_id)

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        msgtype = msg.__msgtype__
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=self.types
            )
        if self.ros1:
            data = self.types.serialize_ros1(msg, msgtype)
        else:
            data = self.types.serialize_cdr(msg, msgtype)
        self.writer.write(self.connections[topic], stamp_ns, data)

    def image(self, topic: str, stamp_ns: int, image: np.ndarray, encoding: str = "") -> None:
        channels = 1 if image.ndim == 2 else image.shape[2]
        encoding = encoding or ENCODINGS[channels]
        data = np.ascontiguousarray(image).view(np.uint8).reshape(-1)
        msg = self.types.types["sensor_msgs/msg/Image"](
            header=self._header(stamp_ns),
            height=image.shape[0],
            width=image.shape[1],
            encoding=encoding,
            is_bigendian=0,
            step=data.size // image.shape[0],
            data=data,
        )
        self.write(topic, msg, stamp_ns)

    def compressed_png(self, topic: str, stamp_ns: int, image: np.ndarray) -> None:
        import cv2

        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, png = cv2.imencode(".png", bgr)
        assert ok
        msg = self.types.types["sensor_msgs/msg/CompressedImage"](
            header=self._header(stamp_ns), format="png", data=png.reshape(-1)
        )
        self.write(topic, msg, stamp_ns)

    def camera_info(
        self,
        topic: str,
        stamp_ns: int,
        camera: CameraModel,
        rect_from_cam: np.ndarray | None = None,
        projection: np.ndarray | None = None,
        intrinsics: np.ndarray | None = None,
    ) -> None:
        rect = np.eye(3) if rect_from_cam is None else rect_from_cam[:3, :3]
        proj = np.hstack([camera.K, np.zeros((3, 1))]) if projection is None else projection
        t = self.types.types
        roi = t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        fields = {
            "header": self._header(stamp_ns),
            "height": camera.height_px,
            "width": camera.width_px,
            "distortion_model": ROS_DISTORTION[camera.distortion],
            "binning_x": 0,
            "binning_y": 0,
            "roi": roi,
        }
        arrays = {
            "d": np.array(camera.dist_coeffs, dtype=np.float64),
            "k": camera.K.reshape(-1).copy() if intrinsics is None else intrinsics,
            "r": rect.reshape(-1).astype(np.float64),
            "p": proj.reshape(-1).astype(np.float64),
        }
        for name, value in arrays.items():
            fields[name.upper() if self.ros1 else name] = value
        self.write(topic, t["sensor_msgs/msg/CameraInfo"](**fields), stamp_ns)

    def imu(self, topic: str, stamp_ns: int, gyro: Sequence[float], accel: Sequence[float]) -> None:
        t = self.types.types
        vec = t["geometry_msgs/msg/Vector3"]
        msg = t["sensor_msgs/msg/Imu"](
            header=self._header(stamp_ns),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            orientation_covariance=np.zeros(9),
            angular_velocity=vec(x=gyro[0], y=gyro[1], z=gyro[2]),
            angular_velocity_covariance=np.zeros(9),
            linear_acceleration=vec(x=accel[0], y=accel[1], z=accel[2]),
            linear_acceleration_covariance=np.zeros(9),
        )
        self.write(topic, msg, stamp_ns)


def _bag_path(tmp_path: Path, storage: str) -> Path:
    return tmp_path / ("rec.bag" if storage == "ros1" else f"rec_{storage}")


def write_tum_bag(
    path: Path,
    frames: list[Frame],
    storage: str,
    *,
    compressed: bool = False,
    depth_encoding: str = "16UC1",
    depth_scale: float = 5000.0,
    prefix: str = "/camera",
) -> None:
    """Raw colour + depth frames of a tum: source as a TUM-style bag (rgb, depth, camera_info).

    Depth is written at the colour stamp: the source paired them already."""
    writer = BagWriter(path, storage)
    for frame in frames:
        stamp = frame.stamp_ns
        writer.camera_info(f"{prefix}/rgb/camera_info", stamp, frame.camera)
        if compressed:
            writer.compressed_png(f"{prefix}/rgb/image_color/compressed", stamp, frame.image)
        else:
            writer.image(f"{prefix}/rgb/image_color", stamp, frame.image)
        assert frame.depth_m is not None
        if depth_encoding == "16UC1":
            raw = np.round(frame.depth_m.astype(np.float64) * depth_scale).astype(np.uint16)
            writer.image(f"{prefix}/depth/image", stamp + 3_000_000, raw, "16UC1")
        else:
            writer.image(f"{prefix}/depth/image", stamp + 3_000_000, frame.depth_m, "32FC1")
    writer.close()


def write_euroc_bag(path: Path, frames: list[Frame], imu: Any, storage: str) -> None:
    """Raw stereo frames and every IMU sample of a euroc: source as a EuRoC-style bag."""
    writer = BagWriter(path, storage)
    for stamp, gyro, accel in zip(imu.stamps_ns, imu.gyro_rad_s, imu.accel_m_s2, strict=True):
        writer.imu("/imu0", int(stamp), gyro, accel)
    for frame in frames:
        assert frame.image_right is not None and frame.stereo is not None
        writer.image("/cam0/image_raw", frame.stamp_ns, frame.image)
        writer.image("/cam1/image_raw", frame.stamp_ns + 20_000, frame.image_right)
    writer.close()


def write_kalibr(path: Path, rig: StereoRig, imu_from_cam: np.ndarray) -> None:
    def rows(matrix: np.ndarray) -> str:
        return "".join(f"    - {[float(v) for v in row]}\n" for row in matrix)

    def cam(camera: CameraModel) -> str:
        return (
            "  camera_model: pinhole\n"
            f"  intrinsics: {[camera.fx, camera.fy, camera.cx, camera.cy]}\n"
            "  distortion_model: radtan\n"
            f"  distortion_coeffs: {list(camera.dist_coeffs)}\n"
            f"  resolution: {[camera.width_px, camera.height_px]}\n"
        )

    path.write_text(
        "cam0:\n  T_cam_imu:\n"
        + rows(invert_pose(imu_from_cam))
        + cam(rig.left)
        + "cam1:\n  T_cn_cnm1:\n"
        + rows(rig.right_from_left)
        + cam(rig.right)
    )


def assert_same_frames(got: list[Frame], expected: list[Frame]) -> None:
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected, strict=True):
        assert (a.index, a.stamp_ns) == (b.index, b.stamp_ns)
        assert a.camera == b.camera
        np.testing.assert_array_equal(a.image, b.image)
        for name in ("depth_m", "image_right"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert x.dtype == y.dtype, name
                np.testing.assert_array_equal(x, y, err_msg=name)
        assert a.imu == b.imu
        assert (a.stereo is None) == (b.stereo is None)
        if a.stereo is not None and b.stereo is not None:
            assert (a.stereo.left, a.stereo.right) == (b.stereo.left, b.stereo.right)
            np.testing.assert_array_equal(a.stereo.right_from_left, b.stereo.right_from_left)
            assert a.stereo.rectified == b.stereo.rectified


# ----------------------------------------------------------------------------- round trips

TUM_RAW = ("source.undistort=false", "camera.readout_ms=28")


def _tum_roundtrip(
    tum_folder: Path, tmp_path: Path, storage: str, count: int, **bag_kwargs: Any
) -> None:
    raw_config = load_config("fast", [*TUM_RAW, f"source.max_frames={count}"])
    with open_source(f"tum:{tum_folder}", raw_config) as tum:
        raw_frames = list(tum)
    bag = _bag_path(tmp_path, storage)
    write_tum_bag(bag, raw_frames, storage, **bag_kwargs)
    scale = f"bag.depth_scale={bag_kwargs.get('depth_scale', 5000.0)}"
    for undistort, stride in (("false", 1), ("true", 2)):
        selected = len(range(0, count, stride))
        overrides = [f"source.undistort={undistort}", "camera.readout_ms=28", scale]
        overrides += [f"source.stride={stride}", f"source.max_frames={selected}"]
        with open_source(f"tum:{tum_folder}", load_config("fast", overrides)) as tum:
            expected = list(tum)
        with open_source(f"bag:{bag}", load_config("fast", overrides)) as source:
            assert isinstance(source, BagSource)
            assert source.topics.layout == "TUM RGB-D"
            assert len(source) == selected
            got = list(source)
        assert_same_frames(got, expected)
        if storage != "ros1":  # the storage file alone, without the folder's metadata.yaml
            (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
            with open_source(f"bag:{storage_file}", load_config("fast", overrides)) as source:
                assert [f.stamp_ns for f in source] == [f.stamp_ns for f in expected]
        assert got[0].depth_m is not None and got[0].depth_m.dtype == np.float32


@pytest.mark.parametrize(
    ("storage", "kwargs"),
    [
        ("ros1", {}),
        ("ros2", {"compressed": True, "depth_encoding": "32FC1"}),
        ("mcap", {"depth_scale": 1000.0}),
    ],
)
def test_tum_frames_round_trip(
    tmp_path: Path, recorded: ModuleType, storage: str, kwargs: dict[str, Any]
) -> None:
    folder = recorded.make_tum(tmp_path / "tum", count=4)["folder"]
    _tum_roundtrip(folder, tmp_path, storage, 4, **kwargs)


def test_split_ros1_recording_in_a_folder(tmp_path: Path, recorded: ModuleType) -> None:
    folder = recorded.make_tum(tmp_path / "tum", count=4)["folder"]
    with open_source(f"tum:{folder}", load_config("fast", TUM_RAW)) as tum:
        frames = list(tum)
    split = tmp_path / "split"
    split.mkdir()
    write_tum_bag(split / "rec_0.bag", frames[:2], "ros1")
    write_tum_bag(split / "rec_1.bag", frames[2:], "ros1")
    config = load_config("fast", [*TUM_RAW, "bag.depth_scale=5000"])
    with open_source(f"bag:{split}", config) as source:
        assert_same_frames(list(source), frames)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty: neither a ROS 2 bag .* nor \.bag files"):
        open_source(f"bag:{tmp_path / 'empty'}")


def test_groundtruth_file_and_kinect_readout(tmp_path: Path, recorded: ModuleType) -> None:
    folder = recorded.make_tum(tmp_path / "tum", count=2)["folder"]
    with open_source(f"tum:{folder}", load_config("fast")) as tum:
        frames = list(tum)
        truth = tum.groundtruth()
    assert truth is not None
    write_tum_bag(tmp_path / "rec.bag", frames, "ros1")
    gt = f"source.groundtruth={folder / 'groundtruth.txt'}"
    with open_source(f"bag:{tmp_path / 'rec.bag'}", load_config("fast", [gt])) as source:
        read = source.groundtruth()
        # the TUM layout's camera is a Kinect: its rolling shutter as tum: gives it
        assert source.camera.readout_s == frames[0].camera.readout_s > 0  # type: ignore[attr-defined]
    assert read is not None
    np.testing.assert_array_equal(read.stamps_ns, truth.stamps_ns)
    np.testing.assert_array_equal(read.world_from_body, truth.world_from_body)


def test_tum_real_clip_round_trips(tmp_path: Path, shared: Path) -> None:
    folder = shared / "data" / "real" / "rgbd_dataset_freiburg1_rpy_first120"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    _tum_roundtrip(folder, tmp_path, "ros1", 5)


def _euroc_roundtrip(root: Path, tmp_path: Path, storage: str, count: int) -> None:
    raw_config = load_config(
        "fast",
        ["source.stereo_rectify=false", "source.undistort=false", f"source.max_frames={count}"],
    )
    with open_source(f"euroc:{root}", raw_config) as euroc:
        raw_frames = list(euroc)
        imu = euroc.imu  # type: ignore[attr-defined]
    bag = _bag_path(tmp_path, storage)
    write_euroc_bag(bag, raw_frames, imu, storage)
    calib = tmp_path / "camchain.yaml"
    rig = raw_frames[0].stereo
    assert rig is not None and raw_frames[0].body_from_cam is not None
    write_kalibr(calib, rig, raw_frames[0].body_from_cam)
    for rectify in ("false", "true"):
        common = [f"source.stereo_rectify={rectify}", f"source.max_frames={count - 1}"]
        common.append("source.start_frame=1")  # the first frame's IMU window starts earlier
        with open_source(f"euroc:{root}", load_config("fast", common)) as euroc:
            expected = list(euroc)
        bag_config = load_config("fast", [*common, f"camera.calibration={calib}"])
        with open_source(f"bag:{bag}", bag_config) as source:
            assert isinstance(source, BagSource)
            assert source.topics.layout == "EuRoC"
            assert (source.topics.right, source.topics.imu) == ("/cam1/image_raw", "/imu0")
            got = list(source)
        assert_same_frames(got, expected)
        assert sum(len(f.imu) for f in got) > 0
        for a, b in zip(got, expected, strict=True):
            assert a.body_from_cam is not None and b.body_from_cam is not None
            np.testing.assert_allclose(a.body_from_cam, b.body_from_cam, atol=1e-12)


@pytest.mark.parametrize("storage", ["ros1", "ros2"])
def test_euroc_stereo_and_imu_round_trip(
    tmp_path: Path, recorded: ModuleType, storage: str
) -> None:
    root = recorded.make_euroc(tmp_path / "euroc", count=5)["root"]
    _euroc_roundtrip(root, tmp_path, storage, 5)


def test_euroc_real_clip_round_trips(tmp_path: Path, shared: Path) -> None:
    root = shared / "data" / "euroc" / "V1_01_easy_clip"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    _euroc_roundtrip(root, tmp_path, "ros2", 4)


# ----------------------------------------------------------------------------- topics, calibration


def test_topics_picked_by_layout_and_type() -> None:
    config = load_config("fast").bag
    image, info, imu = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/Imu"
    rs4 = {
        "/camera/camera/color/image_raw": image,
        "/camera/camera/color/camera_info": info,
        "/camera/camera/aligned_depth_to_color/image_raw": image,
        "/camera/camera/depth/image_rect_raw": image,
        "/camera/camera/infra1/image_rect_raw": image,
        "/camera/camera/infra2/image_rect_raw": image,
        "/camera/camera/imu": imu,
    }
    chosen = choose_topics(rs4, config, "x")
    assert chosen.layout == "realsense-ros 4.x colour"
    assert chosen.depth == "/camera/camera/aligned_depth_to_color/image_raw"
    assert (chosen.right, chosen.imu) == ("", "/camera/camera/imu")
    assert chosen.camera_info == "/camera/camera/color/camera_info"
    rs3 = {k.replace("/camera/camera/", "/camera/"): v for k, v in rs4.items()}
    rs3["/camera/color/image_raw/compressed"] = "sensor_msgs/msg/CompressedImage"
    del rs3["/camera/color/image_raw"]
    chosen = choose_topics(rs3, config, "x")
    assert chosen.layout == "realsense-ros 2.x/3.x colour"
    assert chosen.image == "/camera/color/image_raw/compressed"
    assert chosen.camera_info == "/camera/color/camera_info"
    # infrared pair when colour is off, named in the config
    infra = load_config("fast", ["bag.image_topic=/camera/infra1/image_rect_raw"]).bag
    chosen = choose_topics(rs3, infra, "x")
    assert (chosen.right, chosen.depth) == ("/camera/infra2/image_rect_raw", "")
    # TUM: /imu is the Kinect's accelerometer, never picked
    tum = {"/camera/rgb/image_color": image, "/camera/depth/image": image, "/imu": imu}
    assert choose_topics(tum, config, "x").imu == ""
    # unknown names: the only non-depth image topic and the only Imu topic
    generic = {"/front/image": image, "/front/depth": image, "/body/imu": imu}
    chosen = choose_topics(generic, config, "x")
    assert (chosen.image, chosen.depth, chosen.imu, chosen.layout) == (
        "/front/image",
        "",
        "/body/imu",
        "",
    )
    off = load_config("fast", ["bag.imu_topic=none"]).bag
    assert choose_topics(generic, off, "x").imu == ""
    with pytest.raises(
        SourceError, match=r"x: cannot tell which image topic .*set bag\.image_topic"
    ):
        choose_topics({"/a/image": image, "/b/image": image}, config, "x")
    with pytest.raises(SourceError, match=r"bag\.depth_topic '/nope' is not in the bag"):
        choose_topics(tum, load_config("fast", ["bag.depth_topic=/nope"]).bag, "x")
    with pytest.raises(SourceError, match=r"bag\.imu_topic '/camera/rgb/image_color' carries"):
        choose_topics(tum, load_config("fast", ["bag.imu_topic=/camera/rgb/image_color"]).bag, "x")


def test_stereo_extrinsic_from_camera_info_r_and_p() -> None:
    """ROS's stereo calibration writes each camera's rectifying rotation (R) and the shared
    projection (P, the right one offset by -fx * baseline): the rig comes back from them."""
    camera = CameraModel(320, 240, 300.0, 301.0, 160.0, 120.0, "radtan", (-0.2, 0.05, 0.001, 0.0))
    tilt = np.array([[0.9998, -0.0175, 0.0087], [0.0175, 0.9998, 0.0], [-0.0087, 0.0002, 1.0]])
    u, _, vt = np.linalg.svd(tilt)
    right_from_left = np.eye(4)
    right_from_left[:3, :3] = u @ vt
    right_from_left[:3, 3] = [-0.11, 0.002, 0.001]
    rect = rectify_stereo(StereoRig(camera, camera, right_from_left))
    k = rect.rig.left.K
    baseline = rect.rig.baseline_m
    fields_left = {
        "R": rect.rect_from_left[:3, :3].reshape(-1),
        "P": np.hstack([k, np.zeros((3, 1))]),
    }
    rect_from_right = rect.rig.right_from_left @ rect.rect_from_left @ invert_pose(right_from_left)
    p_right = np.hstack([k, np.array([[-k[0, 0] * baseline], [0.0], [0.0]])])
    fields_right = {"R": rect_from_right[:3, :3].reshape(-1), "P": p_right}
    got = stereo_extrinsic(fields_left, fields_right)
    assert got is not None
    np.testing.assert_allclose(got, right_from_left, atol=1e-9)
    assert stereo_extrinsic(fields_left, fields_left) is None  # no baseline in P


def test_camera_info_stereo_bag_needs_no_calibration_file(tmp_path: Path) -> None:
    """Already rectified infrared pair (realsense-ros style): intrinsics and the baseline come
    from the CameraInfo messages alone."""
    camera = CameraModel(64, 48, 60.0, 60.0, 32.0, 24.0)
    bag = tmp_path / "infra.bag"
    writer = BagWriter(bag, "ros1")
    rng = np.random.default_rng(0)
    projection = np.hstack([camera.K, np.array([[-60.0 * 0.05], [0.0], [0.0]])])
    for i in range(3):
        stamp = 1_700_000_000_000_000_000 + i * 33_333_333
        writer.camera_info("/camera/infra1/camera_info", stamp, camera)
        writer.camera_info("/camera/infra2/camera_info", stamp, camera, projection=projection)
        writer.image(
            "/camera/infra1/image_rect_raw", stamp, rng.integers(0, 255, (48, 64), np.uint8)
        )
        writer.image(
            "/camera/infra2/image_rect_raw", stamp, rng.integers(0, 255, (48, 64), np.uint8)
        )
    writer.close()
    with open_source(f"bag:{bag}", load_config("fast")) as source:
        assert source.topics.layout == "realsense-ros 2.x/3.x infrared"  # type: ignore[attr-defined]
        frames = list(source)
    assert len(frames) == 3
    rig = frames[0].stereo
    assert rig is not None and rig.rectified
    assert rig.baseline_m == pytest.approx(0.05, abs=1e-9)
    assert frames[0].image_right is not None and frames[0].image.ndim == 2


def _tf_message(types: Any, edges: list[tuple[str, str, np.ndarray]]) -> Any:
    t = types.types
    transforms = []
    for parent, child, pose in edges:
        q = rotation_to_quat_xyzw(pose[:3, :3])
        stamp = t["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
        fields = {"seq": 0} if "seq" in t["std_msgs/msg/Header"].__dataclass_fields__ else {}
        header = t["std_msgs/msg/Header"](stamp=stamp, frame_id=parent, **fields)
        transform = t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
            rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        transforms.append(
            t["geometry_msgs/msg/TransformStamped"](
                header=header, child_frame_id=child, transform=transform
            )
        )
    return t["tf2_msgs/msg/TFMessage"](transforms=transforms)


def test_realsense4_bag_takes_imu_extrinsic_from_tf_static(tmp_path: Path) -> None:
    """realsense-ros 4.x layout (colour, aligned depth, united IMU) with /tf_static: the IMU
    extrinsic is chained through camera_link, and the IMU samples ride on the frames."""
    link_from_color = make_pose(so3_exp(np.array([-1.2, 0.0, -1.2])), np.array([0.0, 0.015, 0.0]))
    link_from_imu = make_pose(
        so3_exp(np.array([-1.2, 0.0, -1.2])), np.array([-0.011, 0.018, 0.005])
    )
    edges = [
        ("camera_link", "camera_color_optical_frame", link_from_color),
        ("camera_link", "camera_imu_optical_frame", link_from_imu),
    ]
    bag = tmp_path / "rs4"
    writer = BagWriter(bag, "ros2")
    writer.write("/tf_static", _tf_message(writer.types, edges), 10**18)
    camera = CameraModel(64, 48, 60.0, 60.0, 32.0, 24.0)
    rng = np.random.default_rng(1)
    t0 = 10**18 + 10**7
    for k in range(12):  # 400 Hz IMU over 3 frames at 30 Hz
        stamp = t0 + k * 2_500_000
        writer.frame_id = "camera_imu_optical_frame"
        gyro_x = float("nan") if k == 5 else 0.1  # a broken sample is left out
        writer.imu("/camera/camera/imu", stamp, (gyro_x, 0.0, 0.0), (0.0, -9.8, 0.0))
    writer.frame_id = "camera_color_optical_frame"
    for i in range(3):
        stamp = t0 + i * 10_000_000
        writer.camera_info("/camera/camera/color/camera_info", stamp, camera)
        writer.image(
            "/camera/camera/color/image_raw", stamp, rng.integers(0, 255, (48, 64, 3), np.uint8)
        )
        depth = np.full((48, 64), 1500, np.uint16)
        writer.image("/camera/camera/aligned_depth_to_color/image_raw", stamp, depth, "16UC1")
    writer.close()
    with open_source(f"bag:{bag}", load_config("fast")) as source:
        assert isinstance(source, BagSource)
        assert source.topics.tf_static == "/tf_static"
        frames = list(source)
    assert len(frames) == 3
    expected = invert_pose(link_from_imu) @ link_from_color
    for frame in frames:
        assert frame.body_from_cam is not None
        np.testing.assert_allclose(frame.body_from_cam, expected, atol=1e-9)
        assert frame.depth_m is not None and float(frame.depth_m[0, 0]) == pytest.approx(1.5)
    assert [len(f.imu) for f in frames] == [1, 4, 3]  # 10 ms at 400 Hz, less the NaN one


def test_realsense_split_gyro_and_accel_become_one_imu(tmp_path: Path) -> None:
    """realsense-ros 2.x (ROS 1) without united IMU: gyro at 200 Hz, accelerometer at 50 Hz on
    a linear ramp; frames get samples at the gyro's stamps with the ramp's values."""
    bag = tmp_path / "rs2.bag"
    writer = BagWriter(bag, "ros1")
    writer.types.register(
        get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage")
    )
    link_from_color = make_pose(so3_exp(np.array([-1.2, 0.0, -1.2])), np.array([0.0, 0.015, 0.0]))
    link_from_gyro = make_pose(so3_exp(np.array([-1.2, 0.0, -1.2])), np.array([-0.01, 0.02, 0.0]))
    edges = [
        ("/camera_link", "/camera_color_optical_frame", link_from_color),
        ("/camera_link", "/camera_gyro_optical_frame", link_from_gyro),
    ]
    writer.write("/tf_static", _tf_message(writer.types, edges), 10**18)
    t0 = 10**18 + 100_000_000
    writer.frame_id = "/camera_gyro_optical_frame"
    for k in range(-10, 50):  # 200 Hz, from 50 ms before the first accel sample
        writer.imu("/camera/gyro/sample", t0 + k * 5_000_000, (0.0, 0.2, 0.0), (0.0, 0.0, 0.0))
    writer.frame_id = "/camera_accel_optical_frame"
    for k in range(6):  # 50 Hz; accel x grows by 1 m/s^2 per second
        stamp = t0 + k * 20_000_000
        writer.imu("/camera/accel/sample", stamp, (0.0, 0.0, 0.0), (k * 0.02, -9.8, 0.0))
    writer.frame_id = "/camera_color_optical_frame"
    camera = CameraModel(64, 48, 60.0, 60.0, 32.0, 24.0)
    rng = np.random.default_rng(2)
    for i in range(3):
        stamp = t0 + 10_000_000 + i * 33_333_333
        writer.camera_info("/camera/color/camera_info", stamp, camera)
        writer.image("/camera/color/image_raw", stamp, rng.integers(0, 255, (48, 64, 3), np.uint8))
    writer.close()
    with open_source(f"bag:{bag}", load_config("fast")) as source:
        assert isinstance(source, BagSource)
        assert (source.topics.imu, source.topics.gyro) == ("", "/camera/gyro/sample")
        frames = list(source)
    samples = [s for f in frames for s in f.imu]
    stamps = [s.stamp_ns for s in samples]
    assert stamps == list(range(t0, frames[-1].stamp_ns + 1, 5_000_000))  # within accel span
    for sample in samples:
        assert sample.gyro_rad_s == (0.0, 0.2, 0.0)
        assert sample.accel_m_s2[0] == pytest.approx((sample.stamp_ns - t0) * 1e-9, abs=1e-12)
    assert frames[0].body_from_cam is not None
    np.testing.assert_allclose(
        frames[0].body_from_cam, invert_pose(link_from_gyro) @ link_from_color, atol=1e-9
    )


def test_transform_between_chains_and_inverts() -> None:
    a_from_b = make_pose(so3_exp(np.array([0.1, 0.2, 0.3])), np.array([1.0, 2.0, 3.0]))
    c_from_b = make_pose(so3_exp(np.array([-0.3, 0.0, 0.5])), np.array([0.0, -1.0, 0.5]))
    d_from_c = make_pose(so3_exp(np.array([0.0, 0.7, 0.0])), np.array([0.2, 0.0, 0.0]))
    edges = [("a", "b", a_from_b), ("c", "b", c_from_b), ("d", "c", d_from_c)]
    got = transform_between(edges, "d", "a")
    assert got is not None
    np.testing.assert_allclose(got, d_from_c @ c_from_b @ invert_pose(a_from_b), atol=1e-12)
    assert transform_between(edges, "a", "z") is None
    np.testing.assert_allclose(transform_between(edges, "b", "b"), np.eye(4))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- errors


def test_bag_errors_name_the_file(tmp_path: Path, recorded: ModuleType) -> None:
    with pytest.raises(SourceError, match=r"missing\.bag: bag not found"):
        open_source(f"bag:{tmp_path / 'missing.bag'}")
    junk = tmp_path / "junk.bag"
    junk.write_bytes(b"#ROSBAG V2.0\n" + b"\0" * 40)
    with pytest.raises(SourceError, match=r"junk\.bag: cannot read the bag"):
        open_source(f"bag:{junk}")
    with pytest.raises(SourceError, match=r"bag source needs a file or folder"):
        open_source("bag:")
    # a bag without CameraInfo and no intrinsics in the config
    bag = tmp_path / "noinfo.bag"
    writer = BagWriter(bag, "ros1")
    writer.image("/cam0/image_raw", 10**18, recorded.textured(48, 64, 0, 1))
    writer.close()
    with pytest.raises(SourceError, match=r"noinfo\.bag: no CameraInfo for /cam0/image_raw"):
        open_source(f"bag:{bag}")
    intrinsics = load_config(
        "fast", ["camera.fx=50", "camera.fy=50", "camera.cx=32", "camera.cy=24"]
    )
    with open_source(f"bag:{bag}", intrinsics) as source:
        (frame,) = list(source)
    assert frame.camera.size_px == (64, 48) and frame.stamp_ns == 10**18
    # an uncalibrated camera publishes a zero K: the error says so and what to do
    zero_k = tmp_path / "zero_k.bag"
    writer = BagWriter(zero_k, "ros1")
    uncalibrated = CameraModel(64, 48, 1.0, 1.0, 0.0, 0.0)
    writer.camera_info("/cam0/camera_info", 10**18, uncalibrated, intrinsics=np.zeros(9))
    writer.image("/cam0/image_raw", 10**18, recorded.textured(48, 64, 0, 1))
    writer.close()
    with pytest.raises(
        SourceError,
        match=r"zero_k\.bag:/cam0/camera_info: K: focal lengths must be positive.*"
        r"give camera\.calibration=FILE instead",
    ):
        open_source(f"bag:{zero_k}")
    with open_source(f"bag:{zero_k}", intrinsics) as source:  # the user's intrinsics win
        assert source.camera.fx == 50.0  # type: ignore[attr-defined]
    # RealSense SDK recordings have their own scheme
    sdk = tmp_path / "sdk.bag"
    writer = BagWriter(sdk, "ros1")
    writer.image("/device_0/sensor_1/Color_0/image/data", 10**18, recorded.textured(48, 64, 0, 3))
    writer.close()
    with pytest.raises(
        SourceError, match=r"sdk\.bag: a RealSense SDK recording; .*realsense-file:"
    ):
        open_source(f"bag:{sdk}")


def test_undecodable_image_is_skipped_not_fatal(tmp_path: Path, recorded: ModuleType) -> None:
    bag = tmp_path / "odd.bag"
    writer = BagWriter(bag, "ros1")
    camera = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
    for i in range(3):
        stamp = 10**18 + i * 10**8
        writer.camera_info("/cam0/camera_info", stamp, camera)
        image = recorded.textured(48, 64, i, 1)
        writer.image("/cam0/image_raw", stamp, image, "yuv420" if i == 1 else "mono8")
    writer.close()
    config = load_config("fast", ["bag.right_topic=none"])
    with open_source(f"bag:{bag}", config) as source:
        frames = list(source)
        assert source.frames_skipped == 1
    assert [f.index for f in frames] == [0, 2]
    # an encoding that cannot be read on the first message is an error at once
    first_bad = tmp_path / "first_bad.bag"
    writer = BagWriter(first_bad, "ros1")
    writer.camera_info("/cam0/camera_info", 10**18, camera)
    writer.image("/cam0/image_raw", 10**18, recorded.textured(48, 64, 0, 1), "yuv420")
    writer.close()
    with pytest.raises(
        SourceError, match=r"first_bad\.bag: /cam0/image_raw: image encoding 'yuv420'"
    ):
        open_source(f"bag:{first_bad}", config)


def test_zero_header_stamps_and_repeats(tmp_path: Path, recorded: ModuleType) -> None:
    """A driver that leaves header stamps at 0: the bag's receive times stand in. A repeated
    stamp keeps its first message."""
    bag = tmp_path / "nostamp.bag"
    writer = BagWriter(bag, "ros1")
    camera = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
    images = [recorded.textured(48, 64, i, 1) for i in range(3)]
    for i, image in enumerate(images):
        log_ns = 10**18 + i * 10**8
        writer.camera_info("/cam0/camera_info", log_ns, camera)
        msg = writer.types.types["sensor_msgs/msg/Image"](
            header=writer._header(0),
            height=48,
            width=64,
            encoding="mono8",
            is_bigendian=0,
            step=64,
            data=image.reshape(-1),
        )
        writer.write("/cam0/image_raw", msg, log_ns)
    writer.image("/cam0/image_raw", 10**18 + 2 * 10**8, images[0])  # stamp of the third again
    writer.close()
    with open_source(f"bag:{bag}", load_config("fast")) as source:
        frames = list(source)
    assert [f.stamp_ns for f in frames] == [10**18, 10**18 + 10**8, 10**18 + 2 * 10**8]
    for frame, image in zip(frames, images, strict=True):
        np.testing.assert_array_equal(frame.image, image)


# ----------------------------------------------------------------------------- decoding

TYPES = get_typestore(Stores.ROS2_HUMBLE).types


def _image_msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Any:
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    if bigendian:
        rows = rows.astype(rows.dtype.newbyteorder(">"))
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, raw.shape[1] + pad), np.uint8)
    padded[:, : raw.shape[1]] = raw
    header = TYPES["std_msgs/msg/Header"](
        stamp=TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"
    )
    return TYPES["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
        data=padded.reshape(-1),
    )


def _compressed_msg(data: bytes, fmt: str) -> Any:
    header = TYPES["std_msgs/msg/Header"](
        stamp=TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"
    )
    return TYPES["sensor_msgs/msg/CompressedImage"](
        header=header, format=fmt, data=np.frombuffer(data, np.uint8)
    )


def test_image_encodings_decode_to_grey_or_rgb(recorded: ModuleType) -> None:
    import cv2

    rgb = recorded.textured(24, 32, 3, 3)
    for encoding, pixels in (
        ("rgb8", rgb),
        ("bgr8", rgb[:, :, ::-1]),
        ("rgba8", np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
        ("bgra8", np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
    ):
        for pad in (0, 5):  # rows padded beyond width * channels (step > row bytes)
            got, reason = decode_image(_image_msg(pixels, encoding, pad), IMAGE)
            assert reason == "" and got is not None, encoding
            np.testing.assert_array_equal(got, rgb, err_msg=encoding)
    grey16 = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80).astype(np.uint16)
    got, _ = decode_image(_image_msg(grey16, "mono16", bigendian=True), IMAGE)
    np.testing.assert_array_equal(got, (grey16 // 256).astype(np.uint8))  # type: ignore[arg-type]
    # Bayer: a smooth colour image mosaicked as RGGB comes back close to itself
    smooth = cv2.GaussianBlur(recorded.textured(48, 64, 5, 3), (0, 0), 4)
    mosaic = np.zeros(smooth.shape[:2], np.uint8)
    mosaic[0::2, 0::2] = smooth[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = smooth[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = smooth[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = smooth[1::2, 1::2, 2]
    got, _ = decode_image(_image_msg(mosaic, "bayer_rggb8"), IMAGE)
    assert got is not None
    error = np.abs(got[4:-4, 4:-4].astype(int) - smooth[4:-4, 4:-4]).mean(axis=(0, 1))
    assert (error < 4).all(), error  # swapped red and blue would be far off
    # UYVY (ROS yuv422)
    uyvy = cv2.cvtColor(cv2.cvtColor(smooth, cv2.COLOR_RGB2YUV), cv2.COLOR_RGB2GRAY)  # any bytes
    packed = np.dstack([np.full_like(uyvy, 128), uyvy])  # neutral chroma: grey pixels
    got, _ = decode_image(_image_msg(packed, "yuv422"), IMAGE)
    assert got is not None and got.shape == (48, 64, 3)
    assert np.abs(got[:, :, 0].astype(int) - got[:, :, 2]).max() <= 1  # grey stays grey
    # JPEG
    _, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1])
    got, _ = decode_image(_compressed_msg(jpeg.tobytes(), "rgb8; jpeg compressed bgr8"), COMPRESSED)
    np.testing.assert_array_equal(got, cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1])  # type: ignore[arg-type]
    bad, reason = decode_image(_compressed_msg(b"not an image", "jpeg"), COMPRESSED)
    assert bad is None and "cannot decode the 'jpeg' compressed image" in reason


def test_depth_encodings_decode_to_metres() -> None:
    import cv2

    depth_mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    got, _ = decode_depth(_image_msg(depth_mm, "16UC1"), IMAGE, 1000.0)
    np.testing.assert_array_equal(got, np.array([[0, 1.0], [1.5, 65.535]], np.float32))  # type: ignore[arg-type]
    metres = np.array([[np.nan, 1.25], [np.inf, -1.0]], np.float32)
    got, _ = decode_depth(_image_msg(metres, "32FC1"), IMAGE, 1000.0)
    np.testing.assert_array_equal(got, np.array([[0, 1.25], [0, 0]], np.float32))  # type: ignore[arg-type]
    # compressedDepth, 16-bit: a 12-byte header then the PNG of the raw values
    _, png = cv2.imencode(".png", depth_mm)
    data = struct.pack("<iff", 0, 0.0, 0.0) + png.tobytes()
    got, _ = decode_depth(_compressed_msg(data, "16UC1; compressedDepth"), COMPRESSED, 1000.0)
    np.testing.assert_array_equal(got, np.array([[0, 1.0], [1.5, 65.535]], np.float32))  # type: ignore[arg-type]
    # compressedDepth, 32-bit: inverse depth quantised with a = q (q + 1), b = 1 - a / max
    quant, max_m = 100.0, 10.0
    quant_a, quant_b = quant * (quant + 1.0), 1.0 - quant * (quant + 1.0) / max_m
    true_m = np.array([[0.0, 1.0], [2.5, 9.0]], np.float32)
    inverse = np.zeros(true_m.shape, np.uint16)
    valid = true_m > 0
    inverse[valid] = np.round(quant_a / true_m[valid] + quant_b).astype(np.uint16)
    _, png = cv2.imencode(".png", inverse)
    data = struct.pack("<iff", 0, quant_a, quant_b) + png.tobytes()
    got, _ = decode_depth(_compressed_msg(data, "32FC1; compressedDepth png"), COMPRESSED, 1000.0)
    assert got is not None and got[0, 0] == 0.0
    np.testing.assert_allclose(got[valid], true_m[valid], rtol=0.01)
    bad, reason = decode_depth(_image_msg(np.zeros((2, 2, 3), np.uint8), "rgb8"), IMAGE, 1.0)
    assert bad is None and "one channel" in reason


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_cli_runs_a_written_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sim:loop RGB-D -> ROS 2 bag -> `slamfront run bag:...` (ORB preset: no weights)."""
    from slamfront.cli import main
    from slamfront.io.trajectory import read_trajectory

    sim = load_config("classic", ["sim.frames=30", "sim.width_px=320", "sim.height_px=240"])
    with open_source("sim:loop", sim) as source:
        frames = list(source)
    bag = tmp_path / "sim_bag"
    writer = BagWriter(bag, "ros2")
    for frame in frames:
        writer.camera_info("/camera/color/camera_info", frame.stamp_ns, frame.camera)
        writer.image("/camera/color/image_raw", frame.stamp_ns, frame.image)
        assert frame.depth_m is not None
        depth_mm = np.round(frame.depth_m * 1000.0).astype(np.uint16)
        writer.image("/camera/aligned_depth_to_color/image_raw", frame.stamp_ns, depth_mm, "16UC1")
    writer.close()
    out = tmp_path / "run"
    code = main(["run", f"bag:{bag}", "--config", "classic", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "realsense-ros 2.x/3.x colour" in printed
    trajectory = read_trajectory(out / "trajectory.tum")
    assert len(trajectory.stamps_ns) >= 28
    assert set(trajectory.stamps_ns.tolist()) <= {f.stamp_ns for f in frames}


def test_bag_images_over_the_size_limit_are_refused(tmp_path: Path, recorded: ModuleType) -> None:
    bag = tmp_path / "wide.bag"
    writer = BagWriter(bag, "ros1")
    writer.image("/cam0/image_raw", 10**18, recorded.textured(48, 64, 0, 1))
    writer.close()
    overrides = ["camera.fx=50", "camera.fy=50", "camera.cx=32", "camera.cy=24"]
    with pytest.raises(SourceError, match=r"wide\.bag: /cam0/image_raw: images are 64x48"):
        open_source(f"bag:{bag}", load_config("fast", [*overrides, "source.max_image_side_px=60"]))
    with open_source(f"bag:{bag}", load_config("fast", overrides)) as source:
        assert len(list(source)) == 1
