"""Rendered images agree with the exact ground truth: geometry, depth, stereo, texture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slamfront.config import SimConfig
from slamfront.geometry import invert_pose, project, transform_points, unproject
from slamfront.sim.rig import SimRig
from slamfront.sim.scene import Scene
from slamfront.types import Frame

CLEAN = {"image_noise_std": 0.0, "motion_blur": False}


def _rig(scene: Scene, **overrides: object) -> SimRig:
    return SimRig(SimConfig(**overrides), scene)  # type: ignore[arg-type]


def _grey(frame: Frame) -> np.ndarray:
    return cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)


def _corners(grey: np.ndarray, count: int = 600) -> np.ndarray:
    """Well-textured pixel centres (integer coordinates, so the rendered depth is exact there)."""
    pts = cv2.goodFeaturesToTrack(grey, count, 0.01, 8, blockSize=7).reshape(-1, 2)
    return np.rint(pts)


def _track(g0: np.ndarray, g1: np.ndarray, p0: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Sub-pixel positions in g1 of the patches around p0 (Lucas-Kanade from the guess); NaN
    where tracking failed."""
    found, status, _ = cv2.calcOpticalFlowPyrLK(
        g0,
        g1,
        p0.astype(np.float32).reshape(-1, 1, 2),
        guess.astype(np.float32).reshape(-1, 1, 2).copy(),
        winSize=(15, 15),
        maxLevel=1,
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
        criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-4),
    )
    out = found.reshape(-1, 2).astype(np.float64)
    out[status.ravel() != 1] = np.nan
    return out


def _reprojection_errors(rig: SimRig, index: int) -> np.ndarray:
    """|tracked - predicted| for corners of frame ``index`` moved into frame ``index + 1``
    through the depth and the ground-truth poses (visible, unoccluded points only)."""
    f0, f1 = rig.frame(index), rig.frame(index + 1)
    assert f0.depth_m is not None and f1.depth_m is not None
    k = rig.camera.K
    p0 = _corners(_grey(f0))
    z0 = f0.depth_m[p0[:, 1].astype(int), p0[:, 0].astype(int)].astype(np.float64)
    cam1_from_cam0 = invert_pose(rig.world_from_cam(index + 1)) @ rig.world_from_cam(index)
    x1 = transform_points(cam1_from_cam0, unproject(k, p0, z0))
    p1 = project(k, x1)
    h, w = f1.depth_m.shape
    inside = (p1[:, 0] > 10) & (p1[:, 0] < w - 11) & (p1[:, 1] > 10) & (p1[:, 1] < h - 11)
    near = np.rint(p1[inside]).astype(int)
    visible = np.zeros(len(p1), bool)
    visible[inside] = np.abs(f1.depth_m[near[:, 1], near[:, 0]] - x1[inside, 2]) < 0.05
    tracked = _track(_grey(f0), _grey(f1), p0[visible], p1[visible])
    err = np.linalg.norm(tracked - p1[visible], axis=1)
    assert np.isfinite(err).mean() > 0.9
    return err[np.isfinite(err)]


def test_a_pixel_moved_through_ground_truth_lands_on_the_same_texture(room_scene: Scene) -> None:
    rig = _rig(room_scene, **CLEAN)
    errors = np.concatenate([_reprojection_errors(rig, i) for i in (0, 140, 300)])
    assert errors.size > 1000
    assert np.median(errors) < 0.08
    assert (errors < 0.5).mean() > 0.95


def test_motion_blur_and_noise_do_not_move_features(room_scene: Scene) -> None:
    rig = _rig(room_scene, image_noise_std=2.0, motion_blur=True, exposure_ms=10.0)
    errors = np.concatenate([_reprojection_errors(rig, i) for i in (60, 200)])
    assert np.median(errors) < 0.15
    assert (errors < 0.5).mean() > 0.9


def test_motion_blur_smears_along_the_motion(room_scene: Scene) -> None:
    sharp = _rig(room_scene, **CLEAN).frame(100).image.astype(np.float32)
    blurred = _rig(room_scene, image_noise_std=0.0, exposure_ms=20.0).frame(100).image
    diff = np.abs(blurred.astype(np.float32) - sharp)
    assert diff.mean() > 2.0  # visibly different
    # Blur lowers high-frequency energy.
    lap_sharp = cv2.Laplacian(cv2.cvtColor(sharp.astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    lap_blur = cv2.Laplacian(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    assert lap_blur.var() < 0.8 * lap_sharp.var()


def test_depth_is_exact_and_consistent_between_frames(room_scene: Scene) -> None:
    rig = _rig(room_scene, **CLEAN)
    f0, f1 = rig.frame(50), rig.frame(51)
    assert f0.depth_m is not None and f1.depth_m is not None
    k = rig.camera.K
    rng = np.random.default_rng(0)
    h, w = f0.depth_m.shape
    p0 = np.stack([rng.integers(0, w, 4000), rng.integers(0, h, 4000)], 1).astype(np.float64)
    z0 = f0.depth_m[p0[:, 1].astype(int), p0[:, 0].astype(int)].astype(np.float64)
    x1 = transform_points(
        invert_pose(rig.world_from_cam(51)) @ rig.world_from_cam(50), unproject(k, p0, z0)
    )
    p1 = project(k, x1)
    # On a plane, inverse depth is affine in pixels: bilinear interpolation of 1/z is exact
    # inside a face, so compare where the 2x2 neighbourhood is a single face.
    inv = np.where(f1.depth_m > 0, 1.0 / np.maximum(f1.depth_m, 1e-6), 0.0)
    x0 = np.floor(p1[:, 0]).astype(int)
    y0 = np.floor(p1[:, 1]).astype(int)
    ok = (x0 >= 0) & (x0 < w - 1) & (y0 >= 0) & (y0 < h - 1)
    x0, y0, p1, x1 = x0[ok], y0[ok], p1[ok], x1[ok]
    rendered = rig.renderer(rig.world_from_cam(51))
    faces = rendered.face_index
    same = (
        (faces[y0, x0] == faces[y0, x0 + 1])
        & (faces[y0, x0] == faces[y0 + 1, x0])
        & (faces[y0, x0] == faces[y0 + 1, x0 + 1])
    )
    fx, fy = p1[:, 0] - x0, p1[:, 1] - y0
    interp = (
        inv[y0, x0] * (1 - fx) * (1 - fy)
        + inv[y0, x0 + 1] * fx * (1 - fy)
        + inv[y0 + 1, x0] * (1 - fx) * fy
        + inv[y0 + 1, x0 + 1] * fx * fy
    )
    rel = np.abs(interp * x1[:, 2] - 1.0)
    visible = rel < 0.01  # the rest is occluded in frame 51
    assert same.mean() > 0.9 and (same & visible).sum() > 3000
    assert np.percentile(rel[same & visible], 99) < 1e-4


def test_stereo_pair_has_disparity_fx_b_over_z(room_scene: Scene) -> None:
    stereo = _rig(room_scene, sensor="stereo", baseline_m=0.12, **CLEAN)
    rgbd = _rig(room_scene, sensor="rgbd", **CLEAN)
    for index in (20, 250):
        left, colour = stereo.frame(index), rgbd.frame(index)
        assert left.depth_m is None and left.image_right is not None and colour.depth_m is not None
        np.testing.assert_array_equal(left.image, colour.image)
        g_left = _grey(left)
        g_right = cv2.cvtColor(left.image_right, cv2.COLOR_RGB2GRAY)
        p = _corners(g_left)
        z = colour.depth_m[p[:, 1].astype(int), p[:, 0].astype(int)]
        guess = p - np.stack([stereo.camera.fx * 0.12 / z, np.zeros(len(z))], 1)
        keep = guess[:, 0] > 10
        found = _track(g_left, g_right, p[keep], guess[keep])
        err = np.linalg.norm(found - guess[keep], axis=1)
        err = err[np.isfinite(err)]
        assert err.size > 300
        assert np.median(err) < 0.08 and (err < 0.5).mean() > 0.9
        # Rectified: no vertical disparity.
        assert np.nanmedian(np.abs(found[:, 1] - p[keep, 1])) < 0.05


@pytest.mark.parametrize("trajectory", ["loop", "figure8", "still", "repeated"])
def test_closed_scenes_have_no_holes_and_depth_in_range(
    trajectory: str, room_scene: Scene, repeated_scene: Scene
) -> None:
    scene = repeated_scene if trajectory == "repeated" else room_scene
    rig = _rig(scene, trajectory=trajectory, width_px=320, height_px=240, **CLEAN)
    step = rig.num_frames if trajectory == "still" else 5
    for index in range(0, rig.num_frames, step):
        view = rig.renderer(rig.world_from_cam(index))
        assert (view.face_index >= 0).all()  # every pixel hits a surface (no cracks)
        assert view.depth_m.min() > 0.5  # none too close
        assert np.percentile(view.depth_m, 95) < 6.0
        assert view.image.mean() > 40


def test_textures_give_plenty_of_well_spread_orb_features(room_scene: Scene) -> None:
    rig = _rig(room_scene, **CLEAN)
    orb = cv2.ORB_create(nfeatures=2000)
    for index in (0, 110, 220, 330, 440):
        grey = _grey(rig.frame(index))
        assert len(orb.detect(grey, None)) > 1500
        # Spread over the whole image: FAST corners in every cell of a 4x4 grid.
        fast = cv2.FastFeatureDetector_create(20).detect(grey, None)
        xy = np.array([kp.pt for kp in fast])
        cells = np.histogram2d(xy[:, 1], xy[:, 0], bins=(4, 4), range=((0, 480), (0, 640)))[0]
        assert cells.min() >= 25
        # Corners, not only edges: plenty of Shi-Tomasi responses too.
        assert len(_corners(grey, 2000)) > 800


def test_surfaces_are_distinguishable_and_twins_are_identical(repeated_scene: Scene) -> None:
    scene = repeated_scene
    boxes = [f for f in scene.faces if f.texel_m < 0.005]
    walls = [f for f in scene.faces if f.texel_m >= 0.005]
    assert len(boxes) == 25 and len({f.texture for f in boxes}) == 5  # five twins share textures
    assert len({f.texture for f in walls}) == len(walls)  # every panel has its own
    # Rendered 3 m apart (the twin spacing): the boxes look the same, the places do not.
    rig = _rig(scene, trajectory="repeated", **CLEAN)
    pose_a = rig.world_from_cam(150)
    pose_b = pose_a.copy()
    pose_b[0, 3] += 3.0
    view_a, view_b = rig.renderer(pose_a), rig.renderer(pose_b)
    box_ids = {i for i, f in enumerate(scene.faces) if f.texel_m < 0.005}
    on_box = np.isin(view_a.face_index, list(box_ids)) & np.isin(view_b.face_index, list(box_ids))
    off_box = ~np.isin(view_a.face_index, list(box_ids)) & ~np.isin(
        view_b.face_index, list(box_ids)
    )
    assert on_box.mean() > 0.15 and off_box.mean() > 0.2
    diff = np.abs(view_a.image.astype(int) - view_b.image.astype(int)).max(axis=2)
    assert np.median(diff[on_box]) <= 1
    assert np.median(diff[off_box]) > 20


def test_same_seed_same_frames_other_seed_other_textures(room_scene: Scene) -> None:
    config = SimConfig(width_px=160, height_px=120, image_noise_std=3.0)
    a = SimRig(config).frame(7)
    b = SimRig(config, room_scene).frame(7)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.depth_m is not None and b.depth_m is not None
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert a.imu == b.imu
    other = SimRig(SimConfig(width_px=160, height_px=120, image_noise_std=3.0, seed=1)).frame(7)
    assert np.abs(other.image.astype(int) - a.image.astype(int)).mean() > 20
    assert other.depth_m is not None
    np.testing.assert_array_equal(other.depth_m, a.depth_m)  # same geometry, other textures


def test_noise_has_the_configured_spread(room_scene: Scene) -> None:
    clean = _rig(room_scene, width_px=320, height_px=240, **CLEAN).frame(5)
    noisy = _rig(
        room_scene, width_px=320, height_px=240, image_noise_std=4.0, motion_blur=False
    ).frame(5)
    diff = noisy.image.astype(np.float64) - clean.image.astype(np.float64)
    unclipped = (clean.image > 20) & (clean.image < 235)
    assert diff[unclipped].std() == pytest.approx(4.0, rel=0.1)
    assert abs(diff[unclipped].mean()) < 0.1
    depth = _rig(room_scene, width_px=320, height_px=240, depth_noise_std_m=0.01, **CLEAN).frame(5)
    assert clean.depth_m is not None and depth.depth_m is not None
    assert (depth.depth_m - clean.depth_m).std() == pytest.approx(0.01, rel=0.1)


def test_blank_frames_are_black_with_zero_depth(room_scene: Scene) -> None:
    rig = _rig(room_scene, width_px=160, height_px=120, blank_start=2, blank_count=2, frames=5)
    frames = [rig.frame(i) for i in range(5)]
    for i, frame in enumerate(frames):
        assert frame.depth_m is not None
        if i in (2, 3):
            assert not frame.image.any() and not frame.depth_m.any()
        else:
            assert frame.image.mean() > 40 and frame.depth_m.min() > 0
        assert len(frame.imu) >= (6 if i > 0 else 1)  # the IMU keeps running
    stereo = _rig(
        room_scene, sensor="stereo", width_px=160, height_px=120, blank_start=0, blank_count=1
    )
    first = stereo.frame(0)
    assert first.image_right is not None and not first.image_right.any() and not first.image.any()


def test_renderer_matches_a_brute_force_ray_tracer(room_scene: Scene) -> None:
    """An independent float64 ray-rectangle intersection at random pixels gives the same
    nearest face and depth (catches any error in intrinsics, pose or the homographies)."""
    rig = _rig(room_scene, **CLEAN)
    rng = np.random.default_rng(1)
    for index in (0, 77, 333):
        world_from_cam = rig.world_from_cam(index)
        view = rig.renderer(world_from_cam)
        pixels = np.stack([rng.integers(0, 640, 400), rng.integers(0, 480, 400)], 1)
        rays_cam = np.linalg.solve(rig.camera.K, np.c_[pixels, np.ones(400)].T).T  # z = 1
        rays = rays_cam @ world_from_cam[:3, :3].T
        origin = world_from_cam[:3, 3]
        best_t = np.full(400, np.inf)
        best_face = np.full(400, -1)
        for f, face in enumerate(room_scene.faces):
            normal = face.normal
            denom = rays @ normal
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((face.origin_m - origin) @ normal) / denom
            hit = origin + t[:, None] * rays
            a = (hit - face.origin_m) @ face.axis_u
            b = (hit - face.origin_m) @ face.axis_v
            ok = (
                (denom < 0)
                & (t > 0)
                & (a >= 0)
                & (a <= face.size_m[0])
                & (b >= 0)
                & (b <= face.size_m[1])
            )
            closer = ok & (t < best_t)
            best_t[closer] = t[closer]
            best_face[closer] = f
        depth = view.depth_m[pixels[:, 1], pixels[:, 0]]
        faces = view.face_index[pixels[:, 1], pixels[:, 0]]
        assert (best_face >= 0).all()
        agree = faces == best_face
        assert agree.mean() > 0.99  # only pixels within float rounding of an edge may differ
        np.testing.assert_allclose(depth[agree], best_t[agree], rtol=2e-6)
