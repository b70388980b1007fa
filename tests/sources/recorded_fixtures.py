"""Tiny recorded sequences written into a temporary folder, for the source tests.

Each writer returns what it wrote (stamps, poses) so tests can compare exactly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from slamfront.geometry import make_pose, rotation_to_quat_xyzw, so3_exp


def textured(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """A deterministic image with corners and blobs (so features and remaps have content)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, channels), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return image if image.ndim == 2 or channels > 1 else image[:, :, 0]


def poses(count: int, seed: int = 0) -> np.ndarray:
    """(count, 4, 4) smooth world_from_x poses."""
    out = []
    for i in range(count):
        rot = so3_exp(np.array([0.01 * i, 0.02 * i + seed * 0.1, -0.015 * i]))
        out.append(make_pose(rot, np.array([0.1 * i, -0.05 * i, 0.02 * i + seed])))
    return np.array(out)


def write_tum_file(path: Path, stamps_s: list[str], world_from_x: np.ndarray) -> None:
    lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    for stamp, pose in zip(stamps_s, world_from_x, strict=True):
        q = rotation_to_quat_xyzw(pose[:3, :3])
        t = pose[:3, 3]
        lines.append(f"{stamp} {t[0]:.9f} {t[1]:.9f} {t[2]:.9f} {q[0]} {q[1]} {q[2]} {q[3]}")
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- TUM


def make_tum(
    root: Path,
    name: str = "rgbd_dataset_freiburg1_tiny",
    count: int = 4,
    depth: bool = True,
) -> dict[str, object]:
    """A TUM folder: rgb/ + rgb.txt at 1311868169.000000 + i/10 s; depth 7 ms later.

    Depth image i holds (1000 * (i + 1)) everywhere except a 0 (invalid) top-left block. An
    extra rgb frame at the end has no depth within 20 ms.
    """
    folder = root / name
    (folder / "rgb").mkdir(parents=True)
    rgb_lines = ["# color images", "# timestamp filename"]
    depth_lines = ["# depth maps", "# timestamp filename"]
    stamps = [f"1311868169.{i:01d}00000" for i in range(count + (1 if depth else 0))]
    if depth:
        (folder / "depth").mkdir()
    for i, stamp in enumerate(stamps):
        cv2.imwrite(str(folder / "rgb" / f"{stamp}.png"), textured(480, 640, i))
        rgb_lines.append(f"{stamp} rgb/{stamp}.png")
        if depth and i < count:
            dstamp = f"1311868169.{i:01d}07000"
            raw = np.full((480, 640), 1000 * (i + 1), np.uint16)
            raw[:40, :40] = 0
            cv2.imwrite(str(folder / "depth" / f"{dstamp}.png"), raw)
            depth_lines.append(f"{dstamp} depth/{dstamp}.png")
    (folder / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    if depth:
        (folder / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    gt = poses(len(stamps))
    write_tum_file(folder / "groundtruth.txt", stamps, gt)
    return {"folder": folder, "stamps": stamps, "groundtruth": gt}


# ----------------------------------------------------------------------------- EuRoC

# cam0 / cam1 extrinsics shaped like the real V1_01 rig (cam x ~ body y): body_from_cam.
BODY_FROM_CAM0 = make_pose(
    np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), np.array([-0.02, -0.06, 0.01])
)
_CAM1_TILT = so3_exp(np.array([0.01, -0.02, 0.015]))
BODY_FROM_CAM1 = make_pose(
    BODY_FROM_CAM0[:3, :3] @ _CAM1_TILT,
    BODY_FROM_CAM0[:3, 3] + BODY_FROM_CAM0[:3, :3] @ np.array([0.11, 0.0, 0.0]),
)


def _sensor_yaml(body_from_cam: np.ndarray, opencv: bool, fx: float) -> str:
    data = ", ".join(f"{v:.12f}" for v in body_from_cam.reshape(-1))
    head = "%YAML:1.0\n" if opencv else ""
    matrix = "!!opencv-matrix\n  " if opencv else "\n  "
    return (
        f"{head}sensor_type: camera\ncomment: test camera\n"
        f"T_BS: {matrix}cols: 4\n  rows: 4\n  data: [{data}]\n"
        "rate_hz: 20\nresolution: [320, 240]\ncamera_model: pinhole\n"
        f"intrinsics: [{fx}, {fx + 1.0}, 160.5, 120.5]\n"
        "distortion_model: radial-tangential\n"
        "distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]\n"
    )


def make_euroc(
    root: Path,
    count: int = 4,
    stereo: bool = True,
    opencv_yaml: bool = True,
    extra_cam1_rows: int = 2,
    imu: bool = True,
    state_groundtruth: bool = True,
) -> dict[str, object]:
    """A EuRoC folder (mav0/) of 320x240 grey frames at t0 + 50 ms * i.

    IMU at 200 Hz from 20 ms before the first frame to 20 ms after the last; cam1 lists
    ``extra_cam1_rows`` rows after the last frame whose images do not exist.
    """
    mav0 = root / "seq" / "mav0"
    t0 = 1403715273262142976
    stamps = [t0 + 50_000_000 * i for i in range(count)]
    cams = [("cam0", BODY_FROM_CAM0, 458.0)]
    if stereo:
        cams.append(("cam1", BODY_FROM_CAM1, 457.0))
    for cam, body_from_cam, fx in cams:
        (mav0 / cam / "data").mkdir(parents=True)
        (mav0 / cam / "sensor.yaml").write_text(_sensor_yaml(body_from_cam, opencv_yaml, fx))
        rows = ["#timestamp [ns],filename"]
        for i, stamp in enumerate(stamps):
            cv2.imwrite(str(mav0 / cam / "data" / f"{stamp}.png"), textured(240, 320, i, 1))
            rows.append(f"{stamp},{stamp}.png")
        if cam == "cam1":
            rows += [f"{stamps[-1] + 50_000_000 * (k + 1)},{k}.png" for k in range(extra_cam1_rows)]
        (mav0 / cam / "data.csv").write_text("\r\n".join(rows) + "\r\n")
    imu_stamps = np.arange(t0 - 20_000_000, stamps[-1] + 20_000_001, 5_000_000)
    if imu:
        (mav0 / "imu0").mkdir()
        rows = ["#timestamp [ns],w_x,w_y,w_z,a_x,a_y,a_z"]
        rows += [f"{s},0.01,-0.02,0.03,9.8,0.1,-0.2" for s in imu_stamps]
        (mav0 / "imu0" / "data.csv").write_text("\n".join(rows) + "\n")
    gt = poses(count, seed=1)
    if state_groundtruth:
        (mav0 / "state_groundtruth_estimate0").mkdir()
        rows = ["#timestamp, p_x, p_y, p_z, q_w, q_x, q_y, q_z, v_x, v_y, v_z"]
        for stamp, pose in zip(stamps, gt, strict=True):
            q = rotation_to_quat_xyzw(pose[:3, :3])
            t = pose[:3, 3]
            rows.append(
                f"{stamp},{t[0]:.12f},{t[1]:.12f},{t[2]:.12f},"
                f"{q[3]:.15f},{q[0]:.15f},{q[1]:.15f},{q[2]:.15f},0,0,0"
            )
        (mav0 / "state_groundtruth_estimate0" / "data.csv").write_text("\n".join(rows) + "\n")
    return {
        "root": root / "seq",
        "mav0": mav0,
        "stamps": stamps,
        "imu_stamps": imu_stamps,
        "world_from_body": gt,
    }


# ----------------------------------------------------------------------------- KITTI

KITTI_FX = 718.856
KITTI_BASELINE_M = 0.537


def make_kitti(
    root: Path, count: int = 3, stereo: bool = True, seq: str = "05"
) -> dict[str, object]:
    """A KITTI odometry root: sequences/SEQ/{image_0,image_1,calib.txt,times.txt}, poses/SEQ.txt."""
    folder = root / "dataset" / "sequences" / seq
    (folder / "image_0").mkdir(parents=True)
    if stereo:
        (folder / "image_1").mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / "image_0" / f"{i:06d}.png"), textured(100, 200, i, 1))
        if stereo:
            cv2.imwrite(str(folder / "image_1" / f"{i:06d}.png"), textured(100, 200, i + 50, 1))
    p0 = f"{KITTI_FX} 0 96.5 0 0 {KITTI_FX} 50.5 0 0 0 1 0"
    p1 = f"{KITTI_FX} 0 96.5 {-KITTI_FX * KITTI_BASELINE_M} 0 {KITTI_FX} 50.5 0 0 0 1 0"
    (folder / "calib.txt").write_text(f"P0: {p0}\nP1: {p1}\nP2: {p0}\nP3: {p0}\n")
    times = [f"{0.103 * i:.6e}" for i in range(count)]
    (folder / "times.txt").write_text("\n".join(times) + "\n")
    gt = poses(count, seed=2)
    (root / "dataset" / "poses").mkdir()
    (root / "dataset" / "poses" / f"{seq}.txt").write_text(
        "\n".join(" ".join(f"{v:.9e}" for v in p[:3].reshape(-1)) for p in gt) + "\n"
    )
    return {"root": root / "dataset", "folder": folder, "times": times, "groundtruth": gt}


# ----------------------------------------------------------------------------- video


def make_video(path: Path, count: int = 6, fps: float = 10.0) -> list[np.ndarray]:
    """An MJPG .avi of flat frames of increasing brightness; returns the written BGR frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    frames = []
    for i in range(count):
        frame = np.full((48, 64, 3), 20 + 35 * i, np.uint8)
        writer.write(frame)
        frames.append(frame)
    writer.release()
    return frames
