"""Rolling-shutter correction: the image maps against the keypoint map, and the angular
rate from poses and gyro."""

from __future__ import annotations

import dataclasses

import numpy as np

from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam
from slamfront.frontend.records import FrameInput
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.geometry import make_pose, so3_exp
from slamfront.types import CameraModel, Features, Frame, ImuSample, StereoRig

GLOBAL = CameraModel(640, 480, 450.0, 450.0, 320.0, 240.0)
READOUT_S = 0.03
ROLLING = dataclasses.replace(GLOBAL, readout_s=READOUT_S)


def _input(
    camera: CameraModel,
    keypoints: np.ndarray,
    grey: np.ndarray | None = None,
    depth_m: np.ndarray | None = None,
    right: np.ndarray | None = None,
) -> FrameInput:
    stereo = None
    if right is not None:
        stereo = StereoRig(camera, camera, make_pose(np.eye(3), [-0.1, 0, 0]), rectified=True)
    image = grey if grey is not None else np.zeros((camera.height_px, camera.width_px), np.uint8)
    frame = Frame(0, 0, image, camera, depth_m=depth_m, image_right=right, stereo=stereo)
    count = len(keypoints)
    features = Features(
        keypoints.astype(np.float32),
        np.ones(count, np.float32),
        np.zeros((count, 8), np.float32),
        camera.size_px,
    )
    return FrameInput(frame, features, "rgbd", grey, 0.0)


def test_global_shutter_or_a_still_camera_changes_nothing() -> None:
    keypoints = np.array([[10.0, 20.0], [600.0, 400.0]])
    grey = np.full((480, 640), 7, np.uint8)
    depth = np.ones((480, 640), np.float32)
    for camera, omega in ((GLOBAL, [0.5, -2.0, 0.3]), (ROLLING, [0.0, 0.0, 0.0])):
        inp = _input(camera, keypoints, grey, depth)
        assert to_global_shutter(inp, np.array(omega)) is inp


def _blobs(centres: np.ndarray, sigma_px: float = 2.0) -> np.ndarray:
    """A grey image of Gaussian dots (peak 250) at ``centres``."""
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float64)
    image = np.zeros((480, 640))
    for x, y in centres:
        window = (slice(int(y) - 8, int(y) + 9), slice(int(x) - 8, int(x) + 9))
        image[window] += 250 * np.exp(
            -((xx[window] - x) ** 2 + (yy[window] - y) ** 2) / (2 * sigma_px**2)
        )
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _centroid(image: np.ndarray, near: np.ndarray, half_px: int = 6) -> np.ndarray:
    x0, y0 = np.rint(near).astype(int)
    patch = image[y0 - half_px : y0 + half_px + 1, x0 - half_px : x0 + half_px + 1]
    weight = patch.astype(np.float64)
    yy, xx = np.mgrid[-half_px : half_px + 1, -half_px : half_px + 1]
    return np.array(
        [x0 + (weight * xx).sum() / weight.sum(), y0 + (weight * yy).sum() / weight.sum()]
    )


def test_keypoints_land_where_the_remapped_images_show_them() -> None:
    """Each keypoint, moved by the keypoint map, sits on its own dot in the remapped grey and
    right images; the depth image moves the same way, nearest, so no depth is invented."""
    rng = np.random.default_rng(3)
    gx, gy = np.meshgrid(np.linspace(40, 600, 9), np.linspace(40, 440, 7))
    centres = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-0.5, 0.5, (63, 2))
    grey = _blobs(centres)
    depth = np.zeros((480, 640), np.float32)
    for k, (x, y) in enumerate(centres):  # a square of depth around each dot, one value each
        depth[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7] = 1.0 + 0.01 * k
    omega = np.array([0.8, -2.0, 0.6])  # a fast turn: rows shift by up to about 15 px
    out = to_global_shutter(_input(ROLLING, centres, grey, depth, right=grey.copy()), omega)

    moved = out.features.keypoints.astype(np.float64)
    shift = np.linalg.norm(moved - centres, axis=1)
    assert shift.max() > 10.0  # the edge rows moved far ...
    assert shift[np.abs(centres[:, 1] - 239.5) < 20].max() < 1.0  # ... the middle row hardly
    assert out.grey is not None and out.frame.image_right is not None
    for image in (out.grey, out.frame.image_right):
        found = np.array([_centroid(image, p) for p in moved])
        assert np.abs(found - moved).max() < 0.05
    assert out.frame.depth_m is not None
    values = np.unique(out.frame.depth_m)
    assert np.isin(values, np.unique(depth)).all()
    at, was = np.rint(moved).astype(int), np.rint(centres).astype(int)
    np.testing.assert_array_equal(
        out.frame.depth_m[at[:, 1], at[:, 0]], depth[was[:, 1], was[:, 0]]
    )
    # the corrected frame is a global-shutter one
    assert out.camera.readout_s == 0.0
    assert out.frame.stereo is not None and out.frame.stereo.right.readout_s == 0.0


def test_motion_model_rate_over_its_last_intervals() -> None:
    omega = np.array([0.2, -1.0, 0.4])
    model = MotionModel(rate_intervals=2)
    np.testing.assert_array_equal(model.rate_cam_rad_s, np.zeros(3))
    assert model.rate_to(10, np.eye(4)) is None
    for i in range(4):
        model.update(i * 33_000_000, make_pose(so3_exp(omega * i * 0.033), np.zeros(3)))
    np.testing.assert_allclose(model.rate_cam_rad_s, omega, atol=1e-9)
    # a sudden stop shows at once in the interval ending at it, half in the two intervals
    stopped = model.rate_to(4 * 33_000_000, make_pose(so3_exp(omega * 3 * 0.033), np.zeros(3)))
    np.testing.assert_allclose(stopped, omega / 2, atol=1e-9)
    model.stop()
    np.testing.assert_array_equal(model.rate_cam_rad_s, np.zeros(3))


def test_gyro_rate_is_turned_into_the_camera_frame() -> None:
    body_from_cam = make_pose(so3_exp(np.array([0.0, 0.0, np.pi / 2])), np.array([0.1, 0, 0]))
    samples = tuple(
        ImuSample(stamp, (1.0, 2.0, 3.0) if stamp > 80 else (9.0, 9.0, 9.0), (0.0, 0.0, 9.8))
        for stamp in (60, 70, 90, 100)
    )
    frame = Frame(0, 100, np.zeros((4, 4), np.uint8), ROLLING, imu=samples)
    assert gyro_rate_cam(frame) is None  # no extrinsic
    frame = dataclasses.replace(frame, body_from_cam=body_from_cam)
    # body x is camera -y, body y is camera x
    # readout 30 ms: the mean of the samples in the 15 ms before the stamp (all of them)
    np.testing.assert_allclose(gyro_rate_cam(frame), [5.5, -5.0, 6.0], atol=1e-12)
    short = dataclasses.replace(frame, camera=dataclasses.replace(ROLLING, readout_s=30e-9))
    np.testing.assert_allclose(gyro_rate_cam(short), [2.0, -1.0, 3.0], atol=1e-12)
    # none in that window: the latest sample
    late = dataclasses.replace(short, stamp_ns=200)
    np.testing.assert_allclose(gyro_rate_cam(late), [2.0, -1.0, 3.0], atol=1e-12)
