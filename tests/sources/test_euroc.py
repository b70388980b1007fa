"""EuRoC source: generated ASL folders, error paths, and the real V1_01_easy clip."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.geometry import invert_pose
from slamfront.io.trajectory import write_tum_trajectory
from slamfront.sources.euroc import EurocSource, load_sensor_yaml, read_camera
from slamfront.types import Trajectory

EUROC_CLIP = "data/euroc/V1_01_easy_clip"


def _open(path: Path, *overrides: str) -> EurocSource:
    source = open_source(f"euroc:{path}", load_config("fast", list(overrides)))
    assert isinstance(source, EurocSource)
    return source


@pytest.mark.parametrize("opencv_yaml", [True, False])
def test_sensor_yaml_plain_and_opencv(
    tmp_path: Path, recorded: ModuleType, opencv_yaml: bool
) -> None:
    made = recorded.make_euroc(tmp_path, count=1, opencv_yaml=opencv_yaml)
    path = made["mav0"] / "cam0" / "sensor.yaml"
    assert path.read_text().startswith("%YAML:1.0") == opencv_yaml
    camera, body_from_cam, rate_hz = read_camera(path)
    assert (camera.width_px, camera.height_px) == (320, 240)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (458.0, 459.0, 160.5, 120.5)
    assert camera.distortion == "radtan" and camera.dist_coeffs == (-0.28, 0.07, 0.0002, 0.00002)
    np.testing.assert_allclose(body_from_cam, recorded.BODY_FROM_CAM0, atol=1e-12)
    assert rate_hz == 20.0


def test_stereo_frames_imu_and_extra_cam1_rows(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_euroc(tmp_path, count=4, extra_cam1_rows=2)
    with _open(made["root"]) as source:
        assert len(source) == 4  # cam1's two rows without images have no cam0 partner
        frames = list(source)
    stamps = made["stamps"]
    imu_stamps = made["imu_stamps"]
    assert [f.stamp_ns for f in frames] == stamps
    for k, frame in enumerate(frames):
        assert frame.image.shape == (240, 320) and frame.image.dtype == np.uint8
        assert frame.image_right is not None and frame.image_right.shape == (240, 320)
        assert frame.stereo is not None and frame.stereo.rectified
        assert frame.stereo.baseline_m == pytest.approx(0.11, abs=1e-9)
        assert frame.camera is frame.stereo.left and frame.camera.distortion == "none"
        assert frame.camera.readout_s == frame.stereo.right.readout_s == 0.0
        # samples after the previous frame up to and including this one
        after = -np.inf if k == 0 else stamps[k - 1]
        expected = [int(s) for s in imu_stamps if after < s <= stamps[k]]
        assert [s.stamp_ns for s in frame.imu] == expected
        assert frame.imu[-1].stamp_ns == frame.stamp_ns
        assert frame.imu[0].gyro_rad_s == (0.01, -0.02, 0.03)
        assert frame.imu[0].accel_m_s2 == (9.8, 0.1, -0.2)
    assert len(frames[0].imu) == 5  # 20 ms of 200 Hz samples before the first frame, and it
    assert all(len(f.imu) == 10 for f in frames[1:])


def test_rectified_camera_and_groundtruth_follow_the_rectifying_rotation(
    tmp_path: Path, recorded: ModuleType
) -> None:
    made = recorded.make_euroc(tmp_path, count=3)
    with _open(made["root"]) as source:
        rect = source._rectification
        assert rect is not None
        frame = next(iter(source))
        gt = source.groundtruth()
    left_from_rect = invert_pose(rect.rect_from_left)
    assert np.degrees(np.arccos((np.trace(left_from_rect[:3, :3]) - 1) / 2)) > 0.1
    expected_body_from_cam = recorded.BODY_FROM_CAM0 @ left_from_rect
    np.testing.assert_allclose(frame.body_from_cam, expected_body_from_cam, atol=1e-12)
    # rectified x axis points from the left to the right camera centre, in the body frame
    centres = recorded.BODY_FROM_CAM1[:3, 3] - recorded.BODY_FROM_CAM0[:3, 3]
    x_axis = expected_body_from_cam[:3, 0]
    assert np.dot(x_axis, centres / np.linalg.norm(centres)) == pytest.approx(1.0, abs=1e-9)
    assert gt is not None and len(gt) == 3
    np.testing.assert_array_equal(gt.stamps_ns, made["stamps"])
    world_from_body = made["world_from_body"]
    np.testing.assert_allclose(
        gt.world_from_body, world_from_body @ expected_body_from_cam, atol=1e-9
    )


def test_unrectified_stereo_keeps_raw_extrinsics(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_euroc(tmp_path, count=2)
    with _open(made["root"], "source.stereo_rectify=false") as source:
        frame = next(iter(source))
    assert frame.stereo is not None and not frame.stereo.rectified
    expected = invert_pose(recorded.BODY_FROM_CAM1) @ recorded.BODY_FROM_CAM0
    np.testing.assert_allclose(frame.stereo.right_from_left, expected, atol=1e-12)
    assert frame.camera.distortion == "none" and frame.camera.fx == 458.0  # undistorted, same K
    np.testing.assert_allclose(frame.body_from_cam, recorded.BODY_FROM_CAM0, atol=1e-12)
    with _open(made["root"], "source.stereo_rectify=false", "source.undistort=false") as source:
        raw = next(iter(source))
    assert raw.camera.distortion == "radtan"
    # a configured readout reaches both cameras, rectified or not
    for rectify in ("true", "false"):
        with _open(made["root"], f"source.stereo_rectify={rectify}", "camera.readout_ms=20") as s:
            rig = next(iter(s)).stereo
        assert rig is not None and rig.left.readout_s == rig.right.readout_s == 0.02
    stamp = made["stamps"][0]
    on_disk = cv2.imread(str(made["mav0"] / "cam0" / "data" / f"{stamp}.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(raw.image, on_disk)


def test_monocular_without_cam1_or_imu(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_euroc(tmp_path, count=3, stereo=False, imu=False, state_groundtruth=False)
    with _open(made["mav0"]) as source:  # the mav0 folder itself works too
        frames = list(source)
        assert source.groundtruth() is None
    assert len(frames) == 3
    assert all(f.image_right is None and f.stereo is None and f.imu == () for f in frames)
    assert all(f.body_from_cam is None for f in frames)


def test_groundtruth_file_from_config_or_open_vins_folder(
    tmp_path: Path, recorded: ModuleType
) -> None:
    made = recorded.make_euroc(tmp_path, count=3, state_groundtruth=False)
    body = Trajectory(np.array(made["stamps"], dtype=np.int64), made["world_from_body"])
    with _open(made["root"]) as source:
        assert source.groundtruth() is None
        body_from_cam = source.body_from_cam
    folder = made["root"] / "groundtruth_from_open_vins"
    folder.mkdir()
    write_tum_trajectory(folder / "seq_original.txt", body)
    with _open(made["root"]) as source:
        assert source.groundtruth_file() == folder / "seq_original.txt"
        gt = source.groundtruth()
    assert gt is not None
    np.testing.assert_allclose(gt.world_from_body, body.world_from_body @ body_from_cam, atol=1e-8)
    moved = Trajectory(body.stamps_ns, body.world_from_body.copy())
    moved.world_from_body[:, 0, 3] += 5.0
    write_tum_trajectory(tmp_path / "other.txt", moved)
    with _open(made["root"], f"source.groundtruth={tmp_path / 'other.txt'}") as source:
        gt = source.groundtruth()
    assert gt is not None
    np.testing.assert_allclose(gt.world_from_body, moved.world_from_body @ body_from_cam, atol=1e-8)


def test_errors_name_file_and_line(tmp_path: Path, recorded: ModuleType) -> None:
    with pytest.raises(SourceError, match="EuRoC sequence folder not found"):
        _open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"not a EuRoC ASL folder"):
        _open(tmp_path / "empty")
    made = recorded.make_euroc(tmp_path, count=3)
    mav0: Path = made["mav0"]
    csv = mav0 / "cam0" / "data.csv"
    good = csv.read_text()
    lines = good.splitlines()
    csv.write_text("\n".join([lines[0], lines[1], "1403715273312143104,missing.png", lines[3]]))
    with pytest.raises(SourceError, match=rf"{csv}:3: names 'missing.png', which does not exist"):
        _open(made["root"])
    csv.write_text("\n".join([lines[0], lines[1], "14037152733121431x4,a.png", lines[3]]))
    with pytest.raises(SourceError, match=rf"{csv}:3: timestamp must be integer nanoseconds"):
        _open(made["root"])
    csv.write_text("\n".join([lines[0], lines[2], lines[1], lines[3]]))
    with pytest.raises(SourceError, match=rf"{csv}:3: timestamp .* does not increase"):
        _open(made["root"])
    csv.write_text(good)
    imu = mav0 / "imu0" / "data.csv"
    imu_lines = imu.read_text().splitlines()
    imu.write_text("\n".join([*imu_lines[:5], "1403715273262142976,0.1,0.2", *imu_lines[6:]]))
    with pytest.raises(SourceError, match=rf"{imu}:6: expected 7 values"):
        _open(made["root"])
    imu.write_text("\n".join([*imu_lines[:5], imu_lines[2], *imu_lines[6:]]))
    with pytest.raises(SourceError, match=rf"{imu}:6: timestamp .* does not increase"):
        _open(made["root"])
    imu.write_text("\n".join(imu_lines))
    yaml_path = mav0 / "cam1" / "sensor.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("intrinsics: [", "intrinsics: [1.0, "))
    with pytest.raises(SourceError, match=rf"{yaml_path}: intrinsics must be a list of 4 numbers"):
        _open(made["root"])
    yaml_path.write_text("%YAML:1.0\nsensor_type: camera\nT_BS: [1, 2\n")
    with pytest.raises(SourceError, match=rf"{yaml_path}: invalid YAML"):
        _open(made["root"])


def test_corrupt_image_skips_the_frame_and_keeps_imu(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_euroc(tmp_path, count=4)
    stamps = made["stamps"]
    (made["mav0"] / "cam1" / "data" / f"{stamps[1]}.png").write_bytes(b"garbage")
    with _open(made["root"]) as source:
        frames = list(source)
        assert source.frames_skipped == 1
    assert [f.index for f in frames] == [0, 2, 3]
    # the skipped frame's IMU samples ride on the next frame that is yielded
    assert frames[1].imu[0].stamp_ns == stamps[0] + 5_000_000
    assert len(frames[1].imu) == 20


def test_stride_gives_all_imu_since_the_last_yielded_frame(
    tmp_path: Path, recorded: ModuleType
) -> None:
    made = recorded.make_euroc(tmp_path, count=5)
    with _open(made["root"], "source.start_frame=1", "source.stride=2") as source:
        frames = list(source)
    assert [f.index for f in frames] == [1, 3]
    assert len(frames[0].imu) == 10 and len(frames[1].imu) == 20
    assert frames[1].imu[0].stamp_ns == frames[0].stamp_ns + 5_000_000


# ----------------------------------------------------------------------------- real clip


def test_real_v1_01_clip(shared: Path) -> None:
    root = shared / EUROC_CLIP
    with open_source(f"euroc:{root}") as source:
        assert isinstance(source, EurocSource)
        assert len(source) == 95
        frames = list(source)
        gt = source.groundtruth()
        assert source.groundtruth_file() is not None
        assert source.groundtruth_file().name == "V1_01_easy_original.txt"  # type: ignore[union-attr]
        raw = source.raw_camera
        body_from_cam = source.body_from_cam
    assert source.frames_skipped == 0
    assert (raw.fx, raw.fy, raw.cx, raw.cy) == (458.654, 457.296, 367.215, 248.375)
    assert raw.distortion == "radtan" and raw.size_px == (752, 480)
    cam = frames[0].camera
    assert cam.distortion == "none" and cam.size_px == (752, 480)
    assert frames[0].stereo is not None and frames[0].stereo.rectified
    assert frames[0].stereo.baseline_m == pytest.approx(0.1101, abs=5e-4)
    assert frames[0].stamp_ns == 1403715273262142976
    # IMU at 200 Hz, frames at 20 Hz: the first frame gets the sample at its own stamp, the
    # others 10 each; the log runs far past the clip, so nothing is left over at the end
    assert len(frames[0].imu) == 1 and frames[0].imu[0].stamp_ns == frames[0].stamp_ns
    assert [len(f.imu) for f in frames[1:]] == [10] * 94
    for prev, frame in itertools.pairwise(frames):
        assert all(prev.stamp_ns < s.stamp_ns <= frame.stamp_ns for s in frame.imu)
    # ground truth: body poses 1.04 s after the first image, so it covers the last 74 frames
    assert gt is not None and len(gt) == 28712
    stamps = np.array([f.stamp_ns for f in frames])
    covered = (stamps >= gt.stamps_ns[0]) & (stamps <= gt.stamps_ns[-1])
    assert covered.sum() == 74
    # the rectified camera's x axis points from cam0 to cam1 (0.11 m), in the world as well
    body_from_cam1 = read_camera(root / "mav0" / "cam1" / "sensor.yaml")[1]
    body_from_cam0 = read_camera(root / "mav0" / "cam0" / "sensor.yaml")[1]
    baseline = body_from_cam1[:3, 3] - body_from_cam0[:3, 3]
    assert np.dot(body_from_cam[:3, 0], baseline / np.linalg.norm(baseline)) > 0.9999
    world_from_body0 = gt.world_from_body[0] @ invert_pose(body_from_cam)
    assert np.linalg.norm(world_from_body0[:3, :3] @ baseline) == pytest.approx(0.1101, abs=5e-4)


def _row_offsets(image: np.ndarray, image_right: np.ndarray) -> np.ndarray:
    orb = cv2.ORB_create(1500)
    k0, d0 = orb.detectAndCompute(image, None)
    k1, d1 = orb.detectAndCompute(image_right, None)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d0, d1)
    good = [m for m in matches if m.distance < 40]
    p0 = np.array([k0[m.queryIdx].pt for m in good])
    p1 = np.array([k1[m.trainIdx].pt for m in good])
    return p0[:, 1] - p1[:, 1]


def test_real_clip_rectification_puts_matches_on_the_same_row(shared: Path) -> None:
    root = shared / EUROC_CLIP
    picked = ("source.start_frame=40", "source.max_frames=1")
    with _open(root, *picked) as source:
        frame = next(iter(source))
    assert frame.image_right is not None
    dy = _row_offsets(frame.image, frame.image_right)
    assert dy.size > 150
    # most ORB matches share a row to the pixel; the rest are repeated-texture mismatches
    assert np.median(np.abs(dy)) < 0.5
    assert np.mean(np.abs(dy) < 1.5) > 0.5
    with _open(root, *picked, "source.stereo_rectify=false") as source:
        raw = next(iter(source))
    assert raw.image_right is not None
    dy_raw = _row_offsets(raw.image, raw.image_right)
    assert np.median(np.abs(dy_raw)) > 5.0
    assert np.mean(np.abs(dy_raw) < 1.5) < 0.1


def test_real_clip_yaml_header_is_opencv(shared: Path) -> None:
    path = shared / EUROC_CLIP / "mav0" / "cam0" / "sensor.yaml"
    assert path.read_text().startswith("%YAML:1.0")
    data = load_sensor_yaml(path)
    assert data["camera_model"] == "pinhole" and data["T_BS"]["rows"] == 4


def _blobs(size: tuple[int, int], pixels: np.ndarray) -> np.ndarray:
    """Grey image with a Gaussian blob (sigma 1.5 px) centred on each (sub-pixel) position."""
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    image = np.zeros((size[1], size[0]))
    for x, y in pixels:
        image += 250.0 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    return np.clip(image, 0, 255).astype(np.uint8)


def _centroid(image: np.ndarray, near: np.ndarray) -> np.ndarray:
    x0, y0 = round(float(near[0])), round(float(near[1]))
    patch = image[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6].astype(np.float64)
    ys, xs = np.mgrid[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6]
    return np.array([(patch * xs).sum(), (patch * ys).sum()]) / patch.sum()


@pytest.mark.parametrize("model", ["radial-tangential", "equidistant"])
def test_rectification_maps_scene_points_to_equal_rows(
    tmp_path: Path, recorded: ModuleType, model: str
) -> None:
    """Points of a scene drawn where the raw (distorted, tilted) cameras see them land where
    the rectified pinhole pair predicts: same row, disparity fx * baseline / z."""
    made = recorded.make_euroc(tmp_path, count=1)
    coeffs = {
        "radial-tangential": "[-0.28, 0.07, 0.0002, 0.00002]",
        "equidistant": "[-0.01, 0.002, 0.0003, -0.0001]",
    }
    cameras = {}
    for cam in ("cam0", "cam1"):
        path = made["mav0"] / cam / "sensor.yaml"
        text = path.read_text().replace("radial-tangential", model)
        path.write_text(text.replace("[-0.28, 0.07, 0.0002, 0.00002]", coeffs[model]))
        cameras[cam] = read_camera(path)
    points_cam0 = np.array(
        [[-0.35, -0.2, 2.0], [0.45, -0.25, 2.5], [0.0, 0.0, 3.0], [-0.4, 0.4, 2.6], [0.5, 0.4, 3.5]]
    )
    right_from_left = invert_pose(cameras["cam1"][1]) @ cameras["cam0"][1]
    stamp = made["stamps"][0]
    for cam, pts in (
        ("cam0", points_cam0),
        ("cam1", points_cam0 @ right_from_left[:3, :3].T + right_from_left[:3, 3]),
    ):
        camera = cameras[cam][0]
        coeffs_arr = np.array(camera.dist_coeffs)
        if camera.distortion == "equidistant":
            raw, _ = cv2.fisheye.projectPoints(
                pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, coeffs_arr
            )
        else:
            raw, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), camera.K, coeffs_arr)
        cv2.imwrite(
            str(made["mav0"] / cam / "data" / f"{stamp}.png"),
            _blobs(camera.size_px, raw.reshape(-1, 2)),
        )
    with _open(made["root"]) as source:
        frame = next(iter(source))
        rect = source._rectification
    assert rect is not None and frame.image_right is not None and frame.stereo is not None
    k = frame.camera.K
    in_rect = points_cam0 @ rect.rect_from_left[:3, :3].T
    expected_left = (in_rect[:, :2] / in_rect[:, 2:]) * [k[0, 0], k[1, 1]] + k[:2, 2]
    disparity = k[0, 0] * frame.stereo.baseline_m / in_rect[:, 2]
    for i, left_xy in enumerate(expected_left):
        right_xy = left_xy - [disparity[i], 0.0]
        assert np.linalg.norm(_centroid(frame.image, left_xy) - left_xy) < 0.3
        assert np.linalg.norm(_centroid(frame.image_right, right_xy) - right_xy) < 0.3
