"""Calibration files (ROS camera_info, Kalibr camchain, OpenCV/ORB-SLAM3 settings) read into
the same CameraModel, and used by images:/video: through ``camera.calibration``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.geometry import invert_pose, make_pose, so3_exp
from slamfront.sources.calibration import read_calibration
from slamfront.sources.euroc import read_camera
from slamfront.types import CameraModel

# EuRoC cam0's published calibration (radial-tangential), at its 752x480 size.
FX, FY, CX, CY = 458.654, 457.296, 367.215, 248.375
RADTAN = (-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05)
FISHEYE = (
    0.0034823894022493434,
    0.0007150348452162257,
    -0.0020532361418706202,
    0.00020293673591811182,
)
RIGHT_FROM_LEFT = make_pose(
    so3_exp(np.array([0.002, -0.01, 0.004])), np.array([-0.11, 0.001, 0.0005])
)
BODY_FROM_CAM = make_pose(so3_exp(np.array([0.01, 1.55, -0.02])), np.array([-0.02, -0.06, 0.01]))


def _flat(matrix: np.ndarray) -> str:
    return ", ".join(repr(float(v)) for v in matrix.reshape(-1))


def _ros_camera_info(coeffs: tuple[float, ...] = RADTAN, model: str = "plumb_bob") -> str:
    return f"""image_width: 752
image_height: 480
camera_name: cam0
camera_matrix:
  rows: 3
  cols: 3
  data: [{FX}, 0, {CX}, 0, {FY}, {CY}, 0, 0, 1]
distortion_model: {model}
distortion_coefficients:
  rows: 1
  cols: {len(coeffs)}
  data: [{", ".join(map(repr, coeffs))}]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [{FX}, 0, {CX}, 0, 0, {FY}, {CY}, 0, 0, 0, 1, 0]
"""


def _kalibr(
    model: str = "radtan", coeffs: tuple[float, ...] = RADTAN, camera: str = "pinhole"
) -> str:
    cam_from_imu = invert_pose(BODY_FROM_CAM)
    rows = lambda m: "\n".join(f"  - [{', '.join(repr(float(v)) for v in r)}]" for r in m)  # noqa: E731
    cam = f"""  camera_model: {camera}
  intrinsics: [{FX}, {FY}, {CX}, {CY}]
  distortion_model: {model}
  distortion_coeffs: [{", ".join(map(repr, coeffs))}]
  resolution: [752, 480]
  rostopic: /cam{{n}}/image_raw
"""
    return (
        "cam0:\n  T_cam_imu:\n"
        + rows(cam_from_imu).replace("  - ", "  - ")
        + "\n"
        + cam.format(n=0)
        + "cam1:\n  T_cn_cnm1:\n"
        + rows(RIGHT_FROM_LEFT)
        + "\n"
        + cam.format(n=1)
    )


def _orbslam3(kind: str = "PinHole", coeffs: tuple[float, ...] = RADTAN) -> str:
    names = ("k1", "k2", "p1", "p2") if kind == "PinHole" else ("k1", "k2", "k3", "k4")
    lines = ["%YAML:1.0", "", 'File.version: "1.0"', "", f'Camera.type: "{kind}"']
    for cam in ("Camera1", "Camera2"):
        lines += [f"{cam}.fx: {FX}", f"{cam}.fy: {FY}", f"{cam}.cx: {CX}", f"{cam}.cy: {CY}"]
        lines += [f"{cam}.{n}: {c!r}" for n, c in zip(names, coeffs, strict=True)]
    lines += ["Camera.width: 752", "Camera.height: 480", "Camera.fps: 20", "Camera.RGB: 1"]
    for key, matrix in (
        ("Stereo.T_c1_c2", invert_pose(RIGHT_FROM_LEFT)),
        ("IMU.T_b_c1", BODY_FROM_CAM),
    ):
        lines += [
            f"{key}: !!opencv-matrix",
            "  rows: 4",
            "  cols: 4",
            "  dt: f",
            f"  data: [{_flat(matrix)}]",
        ]
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


EXPECTED = CameraModel(752, 480, FX, FY, CX, CY, distortion="radtan", dist_coeffs=RADTAN)


@pytest.mark.parametrize(
    ("text", "kind"),
    [(_ros_camera_info(), "camera_info"), (_kalibr(), "kalibr"), (_orbslam3(), "opencv")],
)
def test_every_format_gives_the_same_camera(tmp_path: Path, text: str, kind: str) -> None:
    calibration = read_calibration(_write(tmp_path, "calib.yaml", text))
    assert calibration.format == kind
    assert calibration.camera == EXPECTED
    if kind == "camera_info":
        assert calibration.right is None and calibration.body_from_cam is None
        return
    assert calibration.right == EXPECTED
    assert calibration.right_from_left is not None and calibration.body_from_cam is not None
    np.testing.assert_allclose(calibration.right_from_left, RIGHT_FROM_LEFT, atol=1e-12)
    np.testing.assert_allclose(calibration.body_from_cam, BODY_FROM_CAM, atol=1e-12)


def test_fisheye_in_every_format(tmp_path: Path) -> None:
    texts = {
        "ros": _ros_camera_info(FISHEYE, "equidistant"),
        "kalibr": _kalibr("equidistant", FISHEYE),
        "orbslam3": _orbslam3("KannalaBrandt8", FISHEYE),
    }
    for name, text in texts.items():
        camera = read_calibration(_write(tmp_path, f"{name}.yaml", text)).camera
        assert camera.distortion == "equidistant", name
        assert camera.dist_coeffs == FISHEYE, name


def test_opencv_calibration_output(tmp_path: Path) -> None:
    """What cv::FileStorage writes after calibrateCamera: no distortion model named, 8 terms
    with the rational model."""
    coeffs = (*RADTAN, 0.01, 0.001, 0.002, 0.003)
    text = (
        "%YAML:1.0\n---\nimage_width: 752\nimage_height: 480\n"
        "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
        f"   data: [ {FX}, 0., {CX}, 0., {FY}, {CY}, 0., 0., 1. ]\n"
        "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 8\n   dt: d\n"
        f"   data: [ {', '.join(map(repr, coeffs))} ]\n"
    )
    camera = read_calibration(_write(tmp_path, "out_camera_data.yml", text)).camera
    assert camera == CameraModel(752, 480, FX, FY, CX, CY, "radtan", coeffs)


def test_camera_info_message_dump_and_old_orbslam_layout(tmp_path: Path) -> None:
    ros2_echo = (
        "header:\n  stamp: {sec: 0, nanosec: 0}\n  frame_id: cam\nheight: 480\nwidth: 752\n"
        f"distortion_model: plumb_bob\nd: {[*RADTAN, 0.0]}\n"
        f"k: [{FX}, 0.0, {CX}, 0.0, {FY}, {CY}, 0.0, 0.0, 1.0]\n"
    )
    camera = read_calibration(_write(tmp_path, "echo.yaml", ros2_echo)).camera
    assert camera == CameraModel(752, 480, FX, FY, CX, CY, "radtan", (*RADTAN, 0.0))
    old = (
        '%YAML:1.0\nCamera.type: "PinHole"\n'
        f"Camera.fx: {FX}\nCamera.fy: {FY}\nCamera.cx: {CX}\nCamera.cy: {CY}\n"
        + "".join(
            f"Camera.{n}: {c!r}\n" for n, c in zip(("k1", "k2", "p1", "p2"), RADTAN, strict=True)
        )
        + "Camera.k3: 0.01\n"
        + f"Tbc: !!opencv-matrix\n  rows: 4\n  cols: 4\n  dt: f\n  data: [{_flat(BODY_FROM_CAM)}]\n"
    )
    # no Camera.width/height in the file: the size comes from the images
    calibration = read_calibration(_write(tmp_path, "old.yaml", old), (752, 480))
    assert calibration.camera == CameraModel(752, 480, FX, FY, CX, CY, "radtan", (*RADTAN, 0.01))
    assert calibration.right is None
    np.testing.assert_allclose(calibration.body_from_cam, BODY_FROM_CAM, atol=1e-12)  # type: ignore[arg-type]
    rectified = (
        '%YAML:1.0\nCamera.type: "Rectified"\n'
        f"Camera1.fx: {FX}\nCamera1.fy: {FY}\nCamera1.cx: {CX}\nCamera1.cy: {CY}\n"
        "Camera.width: 752\nCamera.height: 480\nStereo.b: 0.0745\n"
    )
    pair = read_calibration(_write(tmp_path, "rect.yaml", rectified))
    assert pair.camera == pair.right == CameraModel(752, 480, FX, FY, CX, CY)
    assert pair.right_from_left is not None
    np.testing.assert_allclose(pair.right_from_left[:3, 3], [-0.0745, 0, 0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_kalibr(camera="omni"), r"calib\.yaml: cam0\.camera_model: 'omni' is not supported"),
        (_kalibr(model="fov", coeffs=(0.9,)), r"cam0\.distortion_model: 'fov' is not supported"),
        (_orbslam3().replace("PinHole", "MEI"), r"Camera\.type: 'MEI' is not supported"),
        (_orbslam3().replace("Camera1.fy", "Camera1.fyy"), r"calib\.yaml: Camera1\.fy: missing"),
        (
            _orbslam3().replace("Camera1.cx: 367.215", "Camera1.cx: abc"),
            r"Camera1\.cx: must be a number, got 'abc'",
        ),
        (
            _ros_camera_info(model="rational_polynomial"),
            r"distortion_coefficients: must hold 0 or 8 numbers, got 4",
        ),
        (_ros_camera_info(model="unified"), r"distortion_model: 'unified' is not supported"),
        (
            _kalibr().replace("T_cn_cnm1", "T_cn_cnm2"),
            r"cam1\.T_cn_cnm1: missing",
        ),
        (
            _orbslam3().replace("Camera.width: 752", "Camera.width: 640"),
            r"Camera\.width: says 640x480 but the images are 752x480",
        ),
        ("image_width: 752\nfoo: 1\n", r"calib\.yaml: not a calibration file this reads"),
        ("- 1\n- 2\n", r"calib\.yaml: expected a mapping"),
        ("cam0: [1, 2\n", r"calib\.yaml: invalid YAML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        read_calibration(_write(tmp_path, "calib.yaml", text), (752, 480))


def test_non_rotation_extrinsic_is_refused(tmp_path: Path) -> None:
    bad = _orbslam3().replace(_flat(BODY_FROM_CAM), _flat(np.diag([2.0, 1, 1, 1])))
    with pytest.raises(SourceError, match=r"IMU\.T_b_c1: rotation block is not a rotation"):
        read_calibration(_write(tmp_path, "calib.yaml", bad))
    with pytest.raises(SourceError, match=r"nope\.yaml: calibration file not found"):
        read_calibration(tmp_path / "nope.yaml")


def test_images_and_video_take_a_calibration_file(tmp_path: Path, recorded: ModuleType) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), recorded.textured(480, 752, i, 3))
    calib = _write(tmp_path, "cam.yaml", _kalibr())
    config = load_config("fast", [f"camera.calibration={calib}", "source.undistort=false"])
    with open_source(f"images:{folder}", config) as source:
        frames = list(source)
    assert [f.camera for f in frames] == [EXPECTED, EXPECTED]
    undistorted = load_config("fast", [f"camera.calibration={calib}", "camera.readout_ms=5"])
    with open_source(f"images:{folder}", undistorted) as source:
        frame = next(iter(source))
    assert frame.camera == CameraModel(752, 480, FX, FY, CX, CY, readout_s=0.005)
    raw = cv2.cvtColor(cv2.imread(str(folder / "0.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(frame.image.astype(int) - raw).mean() > 1.0  # remapped, not passed through

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (752, 480))
    writer.write(recorded.textured(480, 752, 0, 3))
    writer.release()
    with open_source(f"video:{video}", config) as source:
        assert source.camera == EXPECTED


def test_calibration_file_conflicts_and_size(tmp_path: Path, recorded: ModuleType) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), recorded.textured(48, 64, 0, 3))
    calib = _write(tmp_path, "cam.yaml", _ros_camera_info())
    both = load_config("fast", [f"camera.calibration={calib}", "camera.fx=100"])
    with pytest.raises(SourceError, match=r"camera\.calibration and camera\.fx both set"):
        open_source(f"images:{folder}", both)
    config = load_config("fast", [f"camera.calibration={calib}"])
    with pytest.raises(
        SourceError, match=r"cam\.yaml: image_width: says 752x480 but the images are 64x48"
    ):
        open_source(f"images:{folder}", config)


@pytest.mark.parametrize("opencv_yaml", [True, False])
def test_euroc_sensor_yaml_is_a_calibration(
    tmp_path: Path, recorded: ModuleType, opencv_yaml: bool
) -> None:
    mav0 = recorded.make_euroc(tmp_path, count=1, opencv_yaml=opencv_yaml)["mav0"]
    sensor = mav0 / "cam0" / "sensor.yaml"
    calibration = read_calibration(sensor)
    camera, body_from_cam, _ = read_camera(sensor)
    assert calibration.camera == camera
    assert calibration.body_from_cam is not None
    np.testing.assert_array_equal(calibration.body_from_cam, body_from_cam)
    sensor.write_text(sensor.read_text().replace("pinhole", "omni"))
    with pytest.raises(SourceError, match=r"sensor\.yaml: camera_model: 'omni' is not supported"):
        read_calibration(sensor)
