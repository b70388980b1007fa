"""RealSense source: conversion rules (no SDK needed), then playback of synthetic recordings
made with the SDK's software device and recorder (skipped without pyrealsense2), then the
live-device checks (skipped without a camera)."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from slamfront.config import Config, RealSenseConfig, SourceConfig, load_config
from slamfront.errors import DeviceError, OutputError, SourceError
from slamfront.sources import open_source
from slamfront.sources.realsense_convert import (
    FrameNumberGaps,
    FramePairer,
    ImuBuffer,
    ImuPairer,
    VideoPacket,
    camera_from_intrinsics,
    pose_from_extrinsics,
    stamp_ns_from_ms,
)
from slamfront.types import CameraModel, Frame, ImuSample, StereoRig


def _import_error() -> str | None:
    """Why pyrealsense2 cannot be imported (it also needs the system's libusb-1.0)."""
    try:
        importlib.import_module("pyrealsense2")
    except ImportError as exc:
        return str(exc)
    return None


RS_IMPORT_ERROR = _import_error()
HAVE_RS = RS_IMPORT_ERROR is None
needs_rs = pytest.mark.skipif(
    not HAVE_RS,
    reason=f"pyrealsense2 not importable ({RS_IMPORT_ERROR}); pip install 'slamfront[realsense]' "
    "and apt-get install libusb-1.0-0",
)

# ----------------------------------------------------------------------------- pure rules


def test_intrinsics_models_map_to_camera_models() -> None:
    zeros = camera_from_intrinsics(640, 480, 600.5, 601.25, 320.5, 240.25, "brown_conrady", [0] * 5)
    assert zeros == CameraModel(640, 480, 600.5, 601.25, 320.5, 240.25)
    coeffs = [-0.05, 0.06, 0.001, -0.0005, -0.02]
    for model in ("brown_conrady", "inverse_brown_conrady", "modified_brown_conrady"):
        cam = camera_from_intrinsics(640, 480, 600, 600, 320, 240, model, coeffs)
        assert cam.distortion == "radtan" and cam.dist_coeffs == tuple(coeffs)
    fisheye = camera_from_intrinsics(848, 800, 286, 286, 424, 400, "kannala_brandt4", [0.1] * 5)
    assert fisheye.distortion == "equidistant" and fisheye.dist_coeffs == (0.1,) * 4
    with pytest.raises(SourceError, match="ftheta"):
        camera_from_intrinsics(848, 800, 286, 286, 424, 400, "ftheta", [0.9, 0, 0, 0, 0])


def test_extrinsics_rotation_is_column_major() -> None:
    # rs2_extrinsics stores R column by column: to = R @ from + t.
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # +90 deg about z
    pose = pose_from_extrinsics(list(rot.T.reshape(9)), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(pose[:3, :3], rot)
    np.testing.assert_allclose(pose[:3, :3] @ [1.0, 0.0, 0.0] + pose[:3, 3], [0.1, 1.2, 0.3])
    with pytest.raises(SourceError, match="9 rotation"):
        pose_from_extrinsics([1.0] * 4, [0.0] * 3)


def test_stamp_conversion_rounds_to_nanoseconds() -> None:
    assert stamp_ns_from_ms(1033.333333) == 1_033_333_333
    assert stamp_ns_from_ms(1.7e12) == 1_700_000_000_000_000_000


def test_imu_pairer_interpolates_accel_at_gyro_stamps() -> None:
    pairer = ImuPairer()
    # gyro before any accelerometer reading: dropped
    assert pairer.add_gyro(0, (9.0, 9.0, 9.0)) == []
    assert pairer.add_accel(10, (0.0, 10.0, 0.0)) == []
    assert pairer.gyro_dropped == 1
    # gyro waits for an accelerometer reading at or after its stamp
    assert pairer.add_gyro(15, (1.0, 2.0, 3.0)) == []
    assert pairer.add_gyro(20, (4.0, 5.0, 6.0)) == []
    out = pairer.add_accel(30, (2.0, 30.0, -2.0))
    assert [s.stamp_ns for s in out] == [15, 20]
    np.testing.assert_allclose(out[0].accel_m_s2, (0.5, 15.0, -0.5))
    np.testing.assert_allclose(out[1].accel_m_s2, (1.0, 20.0, -1.0))
    assert out[1].gyro_rad_s == (4.0, 5.0, 6.0)
    # same stamp: the reading itself, not an interpolation
    exact = pairer.add_gyro(30, (0.0, 0.0, 1.0))
    assert exact == [ImuSample(30, (0.0, 0.0, 1.0), (2.0, 30.0, -2.0))]
    # late gyro inside an already-covered interval is paired at once
    assert pairer.add_accel(25, (5.0, 5.0, 5.0)) == []  # out of order accel ignored


def test_imu_buffer_attaches_samples_to_the_frame_they_precede() -> None:
    buf = ImuBuffer()
    buf.add([ImuSample(t, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)) for t in (5, 10, 15, 20, 25)])
    assert buf.watermark_ns == 25
    assert [s.stamp_ns for s in buf.take_through(10)] == [5, 10]
    assert [s.stamp_ns for s in buf.take_through(12)] == []
    assert [s.stamp_ns for s in buf.take_through(20)] == [15, 20]
    # a reading older than a frame already out is dropped, not attached to the next frame
    buf.add([ImuSample(t, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)) for t in (18, 30)])
    assert buf.late == 1
    assert [s.stamp_ns for s in buf.take_through(40)] == [25, 30]


def test_frame_pairer_matches_by_stamp_and_counts_orphans() -> None:
    pairer = FramePairer(("color", "depth"), tolerance_ns=10)
    assert pairer.add(VideoPacket("color", 0, 100, "c0")) is None
    group = pairer.add(VideoPacket("depth", 0, 104, "d0"))
    assert group is not None and [p.payload for p in group] == ["c0", "d0"]
    # a colour frame whose depth never came is replaced by the next one
    assert pairer.add(VideoPacket("color", 1, 133, "c1")) is None
    assert pairer.add(VideoPacket("color", 2, 166, "c2")) is None
    assert pairer.unpaired == 1
    # depth too far from the pending colour: the older one is dropped
    assert pairer.add(VideoPacket("depth", 3, 199, "d3")) is None
    assert pairer.unpaired == 2
    group = pairer.add(VideoPacket("color", 3, 200, "c3"))
    assert group is not None and [p.payload for p in group] == ["c3", "d3"]
    assert pairer.add(VideoPacket("ir1", 0, 0, "x")) is None


def test_frame_number_gaps_count_drops_per_stream() -> None:
    gaps = FrameNumberGaps()
    assert [gaps.observe("color", n) for n in (7, 8, 11, 12)] == [0, 0, 2, 0]
    assert gaps.observe("depth", 3) == 0 and gaps.observe("depth", 5) == 1
    assert gaps.observe("color", 0) == 0  # restart, not a drop
    assert gaps.dropped == {"color": 2, "depth": 1}


# ----------------------------------------------------------------------------- recordings


def _config(**realsense: object) -> Config:
    source = realsense.pop("source", SourceConfig())
    assert isinstance(source, SourceConfig)
    return dataclasses.replace(Config(), realsense=RealSenseConfig(**realsense), source=source)  # type: ignore[arg-type]


def _f32(values: np.ndarray) -> tuple[float, float, float]:
    as32 = np.asarray(values, np.float32).astype(np.float64)
    return (float(as32[0]), float(as32[1]), float(as32[2]))


BODY_FROM_CAM = np.array(  # float32-exact: the SDK keeps extrinsics as float32
    [[0.0, -1.0, 0.0, 0.015625], [1.0, 0.0, 0.0, -0.0078125], [0, 0, 1.0, 0.03125], [0, 0, 0, 1.0]]
)
T0_NS = 1_000_000_000
GRAVITY = np.array([0.0, -9.81, 0.0])
PERIOD_NS = 33_333_333


def _rgbd_frames(count: int, skip: int | None = None) -> list[Frame]:
    """Random colour, depth in whole millimetres, three IMU readings before each frame.
    Values are float32-exact, as the recording stores float32. Frame ``skip`` is left out
    (its frame number is missing: a device drop)."""
    rng = np.random.default_rng(7)
    camera = CameraModel(80, 60, 70.5, 71.25, 39.75, 29.5)
    frames = []
    carried: tuple[ImuSample, ...] = ()
    for i in range(count):
        stamp = T0_NS + i * PERIOD_NS
        imu = carried + tuple(
            ImuSample(
                stamp - PERIOD_NS + (k + 1) * 11_111_111,
                _f32(rng.normal(0.0, 0.5, 3)),
                _f32(rng.normal(0.0, 1.0, 3) + GRAVITY),
            )
            for k in range(3)
        )
        if i == skip:
            carried = imu
            continue
        carried = ()
        depth_mm = rng.integers(0, 8000, (60, 80))
        frames.append(
            Frame(
                index=i,
                stamp_ns=stamp,
                image=rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
                camera=camera,
                depth_m=(depth_mm * 0.001).astype(np.float32),
                imu=imu,
                body_from_cam=BODY_FROM_CAM,
            )
        )
    return frames


@pytest.fixture(scope="module")
def rgbd_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Frame]]:
    if not HAVE_RS:
        pytest.skip(f"pyrealsense2 not importable ({RS_IMPORT_ERROR})")
    from slamfront.sources.realsense_synthetic import write_recording

    frames = _rgbd_frames(10, skip=4)
    path = tmp_path_factory.mktemp("rs") / "rgbd.db3"
    summary = write_recording(path, frames)
    assert summary.frames == 9 and summary.imu_samples == 30
    assert summary.streams == ("color", "depth", "gyro", "accel")
    return path, frames


@needs_rs
def test_rgbd_recording_plays_back_exactly(rgbd_recording: tuple[Path, list[Frame]]) -> None:
    path, written = rgbd_recording
    with open_source(f"realsense-file:{path}", _config()) as source:
        assert source.mode == "rgbd"  # type: ignore[attr-defined]
        assert source.camera == written[0].camera  # type: ignore[attr-defined]
        frames = list(source)
        stats = source.stats  # type: ignore[attr-defined]
        assert source.frames_dropped == 1  # type: ignore[attr-defined]
    assert stats.frames == 9 and stats.dropped_by_host == 0 and stats.unpaired == 0
    assert stats.imu_samples == 30 and stats.dropped_by_device == 2  # colour and depth
    assert [f.index for f in frames] == list(range(9))
    for got, want in zip(frames, written, strict=True):
        assert got.stamp_ns == want.stamp_ns
        assert got.camera == want.camera
        np.testing.assert_array_equal(got.image, want.image)
        assert got.depth_m is not None and want.depth_m is not None
        assert got.depth_m.dtype == np.float32
        units = np.rint(want.depth_m.astype(np.float64) / 0.001).astype(np.float32)
        np.testing.assert_array_equal(got.depth_m, units * np.float32(0.001))
        np.testing.assert_array_equal(got.body_from_cam, BODY_FROM_CAM)
    # IMU: every reading back, exact, attached to the frame it precedes. Readings of the
    # dropped frame (index 4) were written with frame 5 and arrive with it.
    got_imu = [s for f in frames for s in f.imu]
    want_imu = [s for f in written for s in f.imu]
    assert got_imu == want_imu
    for prev, frame in itertools.pairwise(frames):
        assert all(prev.stamp_ns < s.stamp_ns <= frame.stamp_ns for s in frame.imu)
    assert frames[4].stamp_ns == T0_NS + 5 * PERIOD_NS and len(frames[4].imu) == 6


@needs_rs
def test_playback_honours_start_stride_and_max_frames(
    rgbd_recording: tuple[Path, list[Frame]],
) -> None:
    path, written = rgbd_recording
    config = _config(source=SourceConfig(start_frame=1, stride=2, max_frames=3))
    with open_source(f"realsense-file:{path}", config) as source:
        frames = list(source)
    assert [f.index for f in frames] == [1, 3, 5]
    assert [f.stamp_ns for f in frames] == [written[i].stamp_ns for i in (1, 3, 5)]
    # IMU readings before the start are dropped; those of frames skipped by the stride ride
    # on the next frame out, as in the other sources
    assert frames[0].imu == written[1].imu
    assert frames[1].imu == written[2].imu + written[3].imu


@needs_rs
def test_realtime_playback_keeps_the_recorded_pace(tmp_path: Path) -> None:
    from slamfront.sources.realsense_synthetic import write_recording

    written = _rgbd_frames(8)
    path = tmp_path / "paced.db3"
    write_recording(path, written, paced=True)
    span_s = (written[-1].stamp_ns - written[0].stamp_ns) * 1e-9
    config = _config(source=SourceConfig(realtime=True))
    with open_source(f"realsense-file:{path}", config) as source:
        frames, arrival_s = [], []
        for frame in source:
            frames.append(frame)
            arrival_s.append(time.monotonic())
    assert [f.stamp_ns for f in frames] == [f.stamp_ns for f in written]
    np.testing.assert_array_equal(frames[-1].image, written[-1].image)
    # paced like the recording (a lower bound only: a loaded machine can only be slower)
    assert arrival_s[-1] - arrival_s[0] > 0.8 * span_s


@needs_rs
def test_a_stalled_playback_ends_with_device_error(
    rgbd_recording: tuple[Path, list[Frame]],
) -> None:
    path, _ = rgbd_recording
    source = open_source(f"realsense-file:{path}", _config(timeout_s=0.3, queue_frames=1))
    frames = iter(source)
    first = next(frames)
    assert first.index == 0
    source._device.as_playback().pause()  # type: ignore[attr-defined]
    with pytest.raises(DeviceError, match=r"stalled for 0\.3 s"):
        for _ in frames:
            pass
    source.close()


@needs_rs
def test_depth_is_aligned_to_colour(tmp_path: Path) -> None:
    from slamfront.sources.realsense_synthetic import write_recording

    camera = CameraModel(96, 64, 100.0, 100.0, 47.5, 31.5)
    depth = np.full((64, 96), 2.0, np.float32)
    depth[:, 40:44] = 1.0  # a near pole in front of a wall
    color_from_depth = np.eye(4)
    color_from_depth[0, 3] = 0.05  # the colour imager sits 5 cm to the left of depth
    frame = Frame(0, T0_NS, np.zeros((64, 96, 3), np.uint8), camera, depth_m=depth)
    path = tmp_path / "align.db3"
    write_recording(path, [frame], color_from_depth=color_from_depth)
    with open_source(f"realsense-file:{path}", _config()) as source:
        (got,) = list(source)
    assert got.depth_m is not None
    row = got.depth_m[32]
    # x_color = x_depth + fx * 0.05 / z: the pole moves 5 px, the wall 2.5 px
    pole = np.flatnonzero(np.isclose(row, 1.0, atol=0.01))
    assert pole.min() == 45 and pole.max() == 48
    # the SDK's splatting leaves a few rows empty at 1:1 scale; the rest is dense
    rows = (got.depth_m > 0).any(axis=1)
    assert rows.mean() > 0.9
    wall = np.isclose(got.depth_m[rows], 2.0, atol=0.01)
    assert wall[:, 60:90].all() and not wall[:, :2].any()


@needs_rs
def test_stereo_recording_plays_back_exactly(tmp_path: Path) -> None:
    from slamfront.sources.realsense_synthetic import write_recording

    rng = np.random.default_rng(3)
    camera = CameraModel(64, 48, 60.0, 60.0, 31.5, 23.5)
    right_from_left = np.eye(4)
    right_from_left[0, 3] = -0.0500000007450580596923828125  # float32(-0.05)
    rig = StereoRig(camera, camera, right_from_left, rectified=True)
    frames = [
        Frame(
            i,
            T0_NS + i * PERIOD_NS,
            rng.integers(0, 256, (48, 64), dtype=np.uint8),
            camera,
            image_right=rng.integers(0, 256, (48, 64), dtype=np.uint8),
            stereo=rig,
        )
        for i in range(4)
    ]
    path = tmp_path / "stereo.db3"
    assert write_recording(path, frames).streams == ("ir1", "ir2")
    with open_source(f"realsense-file:{path}", _config()) as source:
        assert source.mode == "stereo"  # type: ignore[attr-defined]
        got = list(source)
    assert len(got) == 4
    for g, w in zip(got, frames, strict=True):
        np.testing.assert_array_equal(g.image, w.image)
        np.testing.assert_array_equal(g.image_right, w.image_right)
        assert g.stereo is not None and g.stereo.rectified and g.camera == camera
        np.testing.assert_array_equal(g.stereo.right_from_left, right_from_left)
        assert g.imu == () and g.body_from_cam is None
    with pytest.raises(SourceError, match="no color stream"):
        open_source(f"realsense-file:{path}", _config(mode="rgbd"))


@needs_rs
def test_distorted_colour_is_undistorted_unless_asked_not_to(tmp_path: Path) -> None:
    from slamfront.sources.realsense_synthetic import write_recording

    camera = CameraModel(64, 48, 50.0, 50.0, 31.5, 23.5, "radtan", (-0.125, 0.0625, 0.0, 0.0, 0.0))
    image = np.zeros((48, 64, 3), np.uint8)
    image[::4] = 255
    frame = Frame(0, T0_NS, image, camera, depth_m=np.ones((48, 64), np.float32))
    path = tmp_path / "distorted.db3"
    write_recording(path, [frame])
    keep = _config(source=SourceConfig(undistort=False))
    with open_source(f"realsense-file:{path}", keep) as source:
        (raw,) = list(source)
    assert raw.camera == camera
    np.testing.assert_array_equal(raw.image, image)
    with open_source(f"realsense-file:{path}", _config()) as source:
        (flat,) = list(source)
    assert not flat.camera.is_distorted and flat.camera.K.tolist() == camera.K.tolist()
    assert not np.array_equal(flat.image, image)


@needs_rs
@pytest.mark.parametrize(
    "model", ["brown_conrady", "inverse_brown_conrady", "modified_brown_conrady", "kannala_brandt4"]
)
def test_distortion_matches_the_sdk_projection(model: str) -> None:
    import pyrealsense2 as rs

    from slamfront.geometry import distort_points

    coeffs = [-0.055, 0.065, 0.0008, -0.0006, -0.021]
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = 640, 480, 615, 614, 321, 242
    intr.model = getattr(rs.distortion, model)
    intr.coeffs = coeffs
    camera = camera_from_intrinsics(640, 480, 615, 614, 321, 242, model, intr.coeffs)
    rays = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 9), np.linspace(-0.38, 0.38, 7)), -1)
    rays = rays.reshape(-1, 2)
    sdk = np.array([rs.rs2_project_point_to_pixel(intr, [x, y, 1.0]) for x, y in rays])
    ideal = rays * [615, 614] + [321, 242]
    ours = distort_points(camera, ideal)
    assert np.abs(ours - sdk).max() < 0.01


@needs_rs
def test_bad_recordings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="recording not found"):
        open_source(f"realsense-file:{tmp_path / 'missing.db3'}")
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match=r"must end in \.bag or \.db3"):
        open_source(f"realsense-file:{tmp_path / 'x.mp4'}")
    (tmp_path / "junk.bag").write_text("not a bag")
    with pytest.raises(SourceError, match="not a readable RealSense recording"):
        open_source(f"realsense-file:{tmp_path / 'junk.bag'}")
    with pytest.raises(SourceError, match="needs a path"):
        open_source("realsense-file:")


@needs_rs
def test_sidecar_errors_name_the_file(
    rgbd_recording: tuple[Path, list[Frame]], tmp_path: Path
) -> None:
    path, _ = rgbd_recording
    copy = tmp_path / "copy.db3"
    copy.write_bytes(path.read_bytes())
    sidecar = tmp_path / "copy.db3.yaml"
    sidecar.write_text("format: slamfront-realsense/1\nbody_from_cam: [1, 2]\n")
    with pytest.raises(SourceError, match=r"copy\.db3\.yaml: body_from_cam must be a 4x4"):
        open_source(f"realsense-file:{copy}")
    sidecar.unlink()
    with open_source(f"realsense-file:{copy}") as source:
        assert next(iter(source)).body_from_cam is None


# ----------------------------------------------------------------------------- live

# The live path (stream matching, start-up, callbacks, silence) runs on a software device
# handed in directly (librealsense 2.59 does not list software devices in a context).


def _software_camera(frames: list[Frame]) -> object:
    from slamfront.sources.realsense_synthetic import SyntheticDevice

    return SyntheticDevice(frames[0], imu_hz=100)


class _FakeContext:
    """What open_live_device asks of a pyrealsense2 context."""

    def __init__(self, devices: list[object]) -> None:
        self.devices = devices

    def query_devices(self) -> list[object]:
        return self.devices


def _push_when_streaming(camera: object, frames: list[Frame]) -> threading.Thread:
    """Feed frames once the consumer has opened the sensors, as a camera would."""

    def run() -> None:
        sensors = camera.device.query_sensors()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if all(s.get_active_streams() for s in sensors):
                break
            time.sleep(0.01)
        time.sleep(0.2)  # open comes before start
        for frame in frames:
            camera.push(frame)  # type: ignore[attr-defined]
            time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


LIVE = {"width_px": 80, "height_px": 60, "fps": 30, "gyro_hz": 100, "accel_hz": 100}


@needs_rs
def test_live_device_path_streams_until_the_camera_falls_silent() -> None:
    from slamfront.sources.realsense import RealSenseSource

    written = _rgbd_frames(6)
    camera = _software_camera(written)
    config = _config(timeout_s=0.5, **LIVE)
    source = RealSenseSource(config, device=camera.device)  # type: ignore[attr-defined]
    assert source.live and source.device.serial == "000000000001"
    feeder = _push_when_streaming(camera, written)
    got: list[Frame] = []
    with pytest.raises(DeviceError, match=r"sent no image for 0\.5 s"):
        for frame in source:
            got.append(frame)
    feeder.join()
    # every frame the camera sent came out before the silence ended the source
    assert [f.stamp_ns for f in got] == [f.stamp_ns for f in written]
    np.testing.assert_array_equal(got[-1].image, written[-1].image)
    assert [s for f in got for s in f.imu] == [s for f in written for s in f.imu]
    assert source.stats.dropped_by_host == 0


@needs_rs
def test_live_device_lookup_names_what_it_found() -> None:
    from slamfront.sources.realsense import RealSenseSource
    from slamfront.sources.realsense_device import open_live_device

    camera = _software_camera(_rgbd_frames(1))
    device = camera.device  # type: ignore[attr-defined]
    assert open_live_device(_FakeContext([device]), None) is device
    assert open_live_device(_FakeContext([device]), "000000000001") is device
    with pytest.raises(DeviceError, match=r"no RealSense device with serial '42'.*Synthetic"):
        open_live_device(_FakeContext([device]), "42")
    with pytest.raises(DeviceError, match="no RealSense device found"):
        open_live_device(_FakeContext([]), None)
    with pytest.raises(DeviceError, match=r"has no 640x480 rgb8@30 mode.*80x60 rgb8@30"):
        RealSenseSource(_config(), device=device)
    with pytest.raises(DeviceError, match=r"no gyro rate 400 Hz; offered: \[100\]"):
        RealSenseSource(_config(**{**LIVE, "gyro_hz": 400}), device=device)


@needs_rs
def test_record_writes_a_playable_recording(tmp_path: Path) -> None:
    from slamfront.sources.realsense_record import record

    written = _rgbd_frames(5)
    camera = _software_camera(written)
    stop = threading.Event()
    out = tmp_path / "rec.db3"
    results: list[object] = []

    def run() -> None:
        device = camera.device  # type: ignore[attr-defined]
        results.append(record(out, _config(**LIVE), stop=stop, device=device))

    recorder = threading.Thread(target=run)
    recorder.start()
    _push_when_streaming(camera, written).join()
    time.sleep(0.2)
    stop.set()
    recorder.join(timeout=20)
    (result,) = results
    assert result.frames == 5 and result.imu_readings == 30 and result.dropped == 0  # type: ignore[attr-defined]
    assert result.sidecar == tmp_path / "rec.db3.yaml"  # type: ignore[attr-defined]
    with open_source(f"realsense-file:{out}", _config()) as source:
        got = list(source)
    assert [f.stamp_ns for f in got] == [f.stamp_ns for f in written]
    for g, w in zip(got, written, strict=True):
        np.testing.assert_array_equal(g.image, w.image)
        np.testing.assert_array_equal(g.body_from_cam, BODY_FROM_CAM)
    assert [s for f in got for s in f.imu] == [s for f in written for s in f.imu]


def _devices() -> tuple[object, ...]:
    from slamfront.sources.realsense_device import list_devices

    return list_devices()


@needs_rs
def test_no_device_is_reported_clearly() -> None:
    if _devices():
        pytest.skip("a RealSense device is connected")
    with pytest.raises(DeviceError, match="no RealSense device found"):
        open_source("realsense", load_config("fast"))


@needs_rs
def test_live_device_streams_rgbd_with_imu() -> None:
    if not _devices():
        pytest.skip("needs a RealSense camera (none connected)")
    with open_source("realsense", _config(mode="rgbd", source=SourceConfig(max_frames=30))) as src:
        frames = list(src)
    assert len(frames) == 30
    stamps = np.array([f.stamp_ns for f in frames])
    assert (np.diff(stamps) > 0).all()
    assert all(f.depth_m is not None and f.image.shape[2] == 3 for f in frames)


@needs_rs
def test_cli_record_reports_a_missing_camera(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slamfront.cli import main

    if _devices():
        pytest.skip("a RealSense device is connected")
    out = str(tmp_path / "rec.db3")
    assert main(["record", out, "--profile", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    profile = str(Path(__file__).resolve().parents[2] / "launch" / "d435i_rgbd.yaml")
    assert main(["record", out, "--profile", profile, "--duration", "1"]) == 2
    assert "no RealSense device found" in capsys.readouterr().err
    assert not Path(out).exists()


@needs_rs
@pytest.mark.slow
def test_pipeline_runs_end_to_end_on_a_recording_of_the_synthetic_rig(tmp_path: Path) -> None:
    """sim:loop (RGB-D + IMU) -> .db3 through the SDK's recorder -> realsense-file: ->
    the pipeline (ORB preset: no weights needed) -> trajectory against the sim's truth."""
    from slamfront.eval.trajectory_metrics import evaluate_files
    from slamfront.io.trajectory import write_tum_trajectory
    from slamfront.pipeline import run_to_directory
    from slamfront.sources.realsense_synthetic import write_recording

    config = load_config("classic", ["sim.frames=45", "sim.width_px=320", "sim.height_px=240"])
    with open_source("sim:loop", config) as sim:
        frames = list(sim)
        truth = sim.groundtruth()
    assert truth is not None
    recording = tmp_path / "sim.db3"
    summary = write_recording(recording, frames)
    assert summary.frames == 45 and summary.imu_samples == sum(len(f.imu) for f in frames)
    out = tmp_path / "run"
    with open_source(f"realsense-file:{recording}", config) as source:
        stats = run_to_directory(source, config, out)
    assert stats.frames_read == 45 and stats.frames_lost == 0
    assert stats.frames_tracked >= 43
    write_tum_trajectory(out / "groundtruth.tum", truth)
    result = evaluate_files(
        reference=out / "groundtruth.tum", estimate=out / "trajectory.tum", align="se3"
    )
    assert result.ate_m.num >= 43  # the stamps survived the round trip: poses pair up
    assert result.ate_m.rmse < 0.02


@needs_rs
@pytest.mark.parametrize(
    ("where", "message"),
    [("/proc/slamfront/rec.db3", "cannot create its folder"), ("rec.db3/x.db3", "rec.db3")],
)
def test_record_into_a_place_it_cannot_write_fails_before_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, message: str
) -> None:
    """It used to end in a raw OSError (or, with a camera, the SDK's error once streaming)."""
    from slamfront.sources.realsense_record import record

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.db3").write_text("a file where a folder would go\n")
    with pytest.raises(OutputError, match=message):
        record(where, _config(**LIVE), duration_s=1.0)
