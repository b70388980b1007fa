"""Rolling-shutter correction: the image maps against the keypoint map, the angular rate
from poses and gyro, and tracking a fast turn in a feature-level world whose every point is
seen at the row whose exposure sees it (exact ground truth, no images)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from slamfront.config import AlignmentConfig, ShutterConfig, TrackerConfig
from slamfront.frontend.motion_model import MotionModel, gyro_rate_cam
from slamfront.frontend.records import FrameInput
from slamfront.frontend.rolling_shutter import to_global_shutter
from slamfront.frontend.tracker import Tracker
from slamfront.geometry import invert_pose, make_pose, so3_exp, so3_log
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    ImuSample,
    StereoRig,
    TrackingState,
)
from tests.fakes import FakeExtractor, nn_matcher

GLOBAL = CameraModel(640, 480, 450.0, 450.0, 320.0, 240.0)
READOUT_S = 0.03
ROLLING = dataclasses.replace(GLOBAL, readout_s=READOUT_S)
FPS = 30.0
# the feature-level world has no images to align
UNALIGNED = TrackerConfig(alignment=AlignmentConfig(enabled=False))


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


# ------------------------------------------------------------------ a rolling-shutter world


def _orientation_and_position(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """world_from_cam of a hand turning fast (up to about 1.9 rad/s) at times ``t`` (s):
    (N, 3, 3) rotations and (N, 3) positions."""
    angles = np.stack(
        [
            0.35 * np.sin(np.pi * t),
            0.6 * np.sin(0.8 * np.pi * t + 0.5),
            0.15 * np.sin(1.4 * np.pi * t),
        ],
        axis=1,
    )
    positions = 0.05 * np.stack(
        [np.sin(1.3 * t), 0.5 * np.sin(0.9 * t), np.cos(1.1 * t) - 1.0], axis=1
    )
    return Rotation.from_rotvec(angles).as_matrix(), positions


def _world_from_cam(t: float) -> np.ndarray:
    rotations, positions = _orientation_and_position(np.array([t]))
    return make_pose(rotations[0], positions[0])


def _rate_cam(t: float, h: float = 1e-4) -> np.ndarray:
    delta = invert_pose(_world_from_cam(t - h)) @ _world_from_cam(t + h)
    return so3_log(delta[:3, :3]) / (2 * h)


class RollingWorld:
    """Random points in a shell 2-4 m around the camera, each with its own descriptor, seen
    by a rolling shutter: each point at the row exposed when the camera sees it there."""

    def __init__(self, seed: int = 0, count: int = 6000) -> None:
        rng = np.random.default_rng(seed)
        direction = rng.normal(size=(count, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        direction[:, 1] *= 0.5
        self.points = direction * rng.uniform(2.0, 4.0, size=(count, 1))
        desc = rng.normal(size=(count, 32)).astype(np.float32)
        self.descriptors = desc / np.linalg.norm(desc, axis=1, keepdims=True)
        self.rng = rng

    def observe(self, stamp_s: float, noise_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cam = GLOBAL
        middle = (cam.height_px - 1) / 2.0
        row = np.full(len(self.points), middle)
        for _ in range(5):  # fixed point: the row whose exposure time sees the point there
            rotations, positions = _orientation_and_position(
                stamp_s + (row - middle) * READOUT_S / (cam.height_px - 1)
            )
            points_cam = np.einsum("nji,nj->ni", rotations, self.points - positions)
            front = points_cam[:, 2] > 0.2
            depth = np.where(front, points_cam[:, 2], 1.0)
            row = np.clip(points_cam[:, 1] / depth * cam.fy + cam.cy, -20.0, cam.height_px + 20.0)
        px = points_cam[:, :2] / depth[:, None] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
        inside = (
            front
            & (px[:, 0] > 2)
            & (px[:, 0] < cam.width_px - 3)
            & (px[:, 1] > 2)
            & (px[:, 1] < cam.height_px - 3)
        )
        ids = np.flatnonzero(inside)
        noisy = px[ids] + self.rng.normal(scale=noise_px, size=(ids.size, 2))
        return ids, noisy.astype(np.float32), points_cam[ids, 2]


def _frames(camera: CameraModel, extractor: FakeExtractor, n: int, gyro: bool) -> list[Frame]:
    world = RollingWorld()
    frames = []
    for i in range(n):
        stamp_s = i / FPS
        ids, px, z = world.observe(stamp_s, noise_px=0.3)
        extractor.by_tag[i] = Features(
            px, np.ones(len(ids), np.float32), world.descriptors[ids], camera.size_px
        )
        image = np.zeros((4, 4), np.uint8)
        image[0, :2] = divmod(i, 256)
        # depth registered to the colour image, as an RGB-D camera delivers it
        depth = np.zeros((480, 640), np.float32)
        col, row = np.rint(px[:, 0]).astype(int), np.rint(px[:, 1]).astype(int)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                depth[row + dr, col + dc] = z
        samples: tuple[ImuSample, ...] = ()
        if gyro:  # 200 Hz, exact, body = camera
            stamps = stamp_s - 0.005 * np.arange(6)[::-1]
            samples = tuple(
                ImuSample(round(s * 1e9), tuple(_rate_cam(s)), (0.0, 0.0, 9.81))  # type: ignore[arg-type]
                for s in stamps
            )
        frames.append(
            Frame(
                i,
                round(stamp_s * 1e9),
                image,
                camera,
                depth_m=depth,
                imu=samples,
                body_from_cam=np.eye(4) if gyro else None,
            )
        )
    return frames


def _track(
    camera: CameraModel, gyro: bool = False, config: TrackerConfig = UNALIGNED, n: int = 90
) -> tuple[list, np.ndarray]:
    """The tracker's results and each tracked frame's position error (after expressing the
    estimate in the ground truth's frame via its first pose), metres."""
    extractor = FakeExtractor()
    tracker = Tracker(config, extractor, nn_matcher)
    results = [tracker.step(f) for f in _frames(camera, extractor, n, gyro)]
    tracked = [r for r in results if r.world_from_cam is not None]
    first = tracked[0]
    gt_from_est = _world_from_cam(first.stamp_ns * 1e-9) @ invert_pose(first.world_from_cam)
    errors = [
        np.linalg.norm(
            (gt_from_est @ r.world_from_cam)[:3, 3] - _world_from_cam(r.stamp_ns * 1e-9)[:3, 3]
        )
        for r in tracked
    ]
    return results, np.array(errors)


@pytest.fixture(scope="module")
def uncorrected() -> tuple[list, np.ndarray]:
    return _track(GLOBAL)


def test_a_fast_turn_seen_by_a_rolling_shutter_misleads_uncorrected_tracking(
    uncorrected: tuple[list, np.ndarray],
) -> None:
    results, errors = uncorrected
    assert all(r.state == TrackingState.OK for r in results)
    assert errors.max() > 0.1


@pytest.mark.parametrize("resolve_px", [2.0, 0.2])
def test_correction_by_the_tracked_rate_follows_the_turn(
    uncorrected: tuple[list, np.ndarray], resolve_px: float
) -> None:
    """Without a gyro, the first frame waits for the rate the camera turns at (its motion to
    the second), and each frame is corrected by the rate of the last frames; tracked again by
    the rate of its own solved pose when that moves the correction by over ``resolve_px``
    (the default 2 px is never reached on this smooth turn; 0.2 px is)."""
    config = dataclasses.replace(UNALIGNED, shutter=ShutterConfig(resolve_px=resolve_px))
    results, errors = _track(ROLLING, config=config)
    assert results[0].state == TrackingState.INITIALIZING and results[1].is_keyframe
    assert all(r.state == TrackingState.OK for r in results[1:])
    assert errors.max() < (0.015 if resolve_px > 1.0 else 0.010)
    assert errors.max() < uncorrected[1].max() / 8


def test_correction_by_the_gyro_is_as_good_as_a_global_shutter() -> None:
    results, errors = _track(ROLLING, gyro=True)
    assert all(r.state == TrackingState.OK for r in results)
    assert errors.max() < 0.008
