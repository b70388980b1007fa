from __future__ import annotations

import numpy as np
import pytest

from slamfront import geometry as g
from slamfront.types import CameraModel, StereoRig


def random_pose(rng: np.random.Generator) -> np.ndarray:
    return g.make_pose(g.so3_exp(rng.normal(size=3)), rng.normal(size=3))


def test_pose_inverse_and_quaternion_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        pose = random_pose(rng)
        np.testing.assert_allclose(pose @ g.invert_pose(pose), np.eye(4), atol=1e-12)
        quat = g.rotation_to_quat_xyzw(pose[:3, :3])
        assert quat[3] >= 0
        np.testing.assert_allclose(g.quat_xyzw_to_rotation(quat), pose[:3, :3], atol=1e-12)
        rotvec = g.so3_log(pose[:3, :3])
        np.testing.assert_allclose(g.so3_exp(rotvec), pose[:3, :3], atol=1e-10)


def test_rotation_angle() -> None:
    rot = g.so3_exp(np.array([0.0, 0.0, np.radians(30.0)]))
    assert g.rotation_angle_deg(rot) == pytest.approx(30.0)
    tiny = g.so3_exp(np.array([1e-7, 0.0, 0.0]))
    assert g.rotation_angle_deg(tiny) == pytest.approx(np.degrees(1e-7), rel=1e-6)
    flip = g.so3_exp(np.array([0.0, np.pi - 1e-9, 0.0]))
    assert g.rotation_angle_deg(flip) == pytest.approx(180.0, abs=1e-6)
    # a known quaternion: 90 deg about z
    rot_z = g.quat_xyzw_to_rotation(np.array([0, 0, np.sqrt(0.5), np.sqrt(0.5)]))
    np.testing.assert_allclose(rot_z @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_project_unproject_triangulate() -> None:
    rng = np.random.default_rng(1)
    k = CameraModel(640, 480, 500.0, 505.0, 320.0, 240.0).K
    points_world = rng.uniform([-2, -2, 4], [2, 2, 8], size=(100, 3))
    cam0_from_world = np.eye(4)
    cam1_from_world = g.make_pose(g.so3_exp(np.array([0.0, 0.05, 0.0])), [-0.5, 0.0, 0.0])
    px0 = g.project(k, g.transform_points(cam0_from_world, points_world))
    px1 = g.project(k, g.transform_points(cam1_from_world, points_world))
    back = g.unproject(k, px0, points_world[:, 2])
    np.testing.assert_allclose(back, points_world, atol=1e-9)
    tri = g.triangulate(cam0_from_world, cam1_from_world, k, px0, px1)
    np.testing.assert_allclose(tri, points_world, atol=1e-6)


def test_projection_and_pose_jacobians_match_central_differences() -> None:
    rng = np.random.default_rng(3)
    k = CameraModel(640, 480, 500.0, 505.0, 320.0, 240.0).K
    cam_from_world = random_pose(rng)
    points_cam = rng.uniform([-2, -2, 2], [2, 2, 6], size=(30, 3))
    points_world = g.transform_points(g.invert_pose(cam_from_world), points_cam)
    d_point = g.projection_jacobian(k, points_cam)
    d_pose = g.pose_jacobian(d_point, points_cam)
    step = 1e-6
    for axis in range(3):
        offset = np.zeros(3)
        offset[axis] = step
        change = g.project(k, points_cam + offset) - g.project(k, points_cam - offset)
        np.testing.assert_allclose(change / (2 * step), d_point[:, :, axis], atol=1e-5)
    for axis in range(6):
        delta = np.zeros(6)
        delta[axis] = step
        moved = [
            g.project(
                k,
                g.transform_points(
                    g.make_pose(g.so3_exp(sign * delta[3:]), sign * delta[:3]) @ cam_from_world,
                    points_world,
                ),
            )
            for sign in (1.0, -1.0)
        ]
        np.testing.assert_allclose(
            (moved[0] - moved[1]) / (2 * step), d_pose[:, :, axis], atol=1e-4
        )


def test_points_not_in_front_get_finite_stand_ins_and_infinite_errors() -> None:
    k = CameraModel(640, 480, 500.0, 505.0, 320.0, 240.0).K
    points = np.array([[0.2, -0.1, 2.0], [0.2, -0.1, 0.0], [0.2, -0.1, -3.0]])
    pixels = g.project(k, points, min_depth_m=1e-6)
    assert np.isfinite(pixels).all()
    np.testing.assert_allclose(pixels[0], g.project(k, points[:1])[0])
    at_depth_one = np.array([[0.2, -0.1, 1.0]])
    np.testing.assert_allclose(pixels[1], g.project(k, at_depth_one)[0])
    assert np.isfinite(g.projection_jacobian(k, points, min_depth_m=1e-6)).all()
    errors = g.reprojection_error_sq(k, np.eye(4), points, pixels + np.array([3.0, 4.0]))
    assert errors[0] == pytest.approx(25.0)
    assert np.isinf(errors[1:]).all()


def test_view_warp_is_the_derivative_of_the_transfer_through_a_fronto_parallel_plane() -> None:
    """Pixel offsets in camera a, moved along the plane z_a = const through the point and
    projected into camera b, match the warp to first order (central differences)."""
    rng = np.random.default_rng(2)
    k = CameraModel(640, 480, 500.0, 505.0, 320.0, 240.0).K
    a_from_world = random_pose(rng)
    b_from_a = g.make_pose(g.so3_exp(np.array([0.05, -0.1, 0.2])), [0.3, -0.1, 0.4])
    b_from_world = b_from_a @ a_from_world
    points_a = rng.uniform([-1, -1, 3], [1, 1, 5], size=(20, 3))
    points_world = g.transform_points(g.invert_pose(a_from_world), points_a)
    warp = g.view_warp(k, a_from_world, b_from_world, points_world)
    pixels_a = g.project(k, points_a)
    step = 1e-3
    for axis in range(2):
        offset = np.zeros(2)
        offset[axis] = step
        moved = [
            g.project(k, g.transform_points(b_from_a, g.unproject(k, pixels_a + s, points_a[:, 2])))
            for s in (offset, -offset)
        ]
        np.testing.assert_allclose((moved[0] - moved[1]) / (2 * step), warp[:, :, axis], atol=1e-6)
    # the same camera: no change
    same = g.view_warp(k, a_from_world, a_from_world, points_world)
    np.testing.assert_allclose(same, np.broadcast_to(np.eye(2), same.shape), atol=1e-12)


def test_sample_depth_bilinear_on_surfaces_and_none_at_edges_holes_and_outside() -> None:
    # a slanted plane: depth grows by 1 % per column, so bilinear is exact and nearest is not
    cols = np.arange(8, dtype=np.float32)
    depth = np.tile(2.0 + 0.02 * cols, (6, 1)).astype(np.float32)
    px = np.array([[3.3, 2.0], [4.75, 3.5]])
    np.testing.assert_allclose(g.sample_depth(depth, px), 2.0 + 0.02 * px[:, 0], rtol=1e-6)
    # outside the image: none
    outside = np.array([[-1.0, 2.0], [8.0, 2.0], [3.0, 6.5]])
    np.testing.assert_array_equal(g.sample_depth(depth, outside), [0, 0, 0])
    # a hole next to the pixel, and an occlusion edge (a 50 % jump): none
    holed = depth.copy()
    holed[2, 4] = 0.0
    assert g.sample_depth(holed, np.array([[3.2, 2.0]]))[0] == 0
    edged = depth.copy()
    edged[:, 5:] = 4.0
    sampled = g.sample_depth(edged, np.array([[4.0, 2.0], [2.0, 2.0]]))
    assert sampled[0] == 0 and sampled[1] == pytest.approx(2.04)
    # a looser edge ratio accepts the jump
    assert g.sample_depth(edged, np.array([[4.0, 2.0]]), edge_ratio=1.5)[0] > 0


@pytest.mark.parametrize(
    ("model", "coeffs"),
    [("radtan", (-0.28, 0.07, 0.0002, 0.00002)), ("equidistant", (-0.01, 0.02, -0.01, 0.003))],
)
def test_distort_undistort_inverse(model: str, coeffs: tuple[float, ...]) -> None:
    camera = CameraModel(752, 480, 458.0, 457.0, 367.0, 248.0, model, coeffs)  # type: ignore[arg-type]
    grid = np.stack(np.meshgrid(np.linspace(80, 670, 9), np.linspace(60, 420, 7)), -1)
    pixels = grid.reshape(-1, 2)
    raw = g.distort_points(camera, pixels)
    assert np.abs(raw - pixels).max() > 1.0  # the lens really bends
    np.testing.assert_allclose(g.undistort_points(camera, raw), pixels, atol=1e-3)
    maps = g.undistortion_maps(camera)
    # map at an ideal pixel points to where that pixel is in the raw image
    for (u, v), (ru, rv) in zip(
        pixels.astype(int), g.distort_points(camera, pixels.astype(int)), strict=True
    ):
        assert maps.map_x[v, u] == pytest.approx(ru, abs=0.05)
        assert maps.map_y[v, u] == pytest.approx(rv, abs=0.05)


def test_rectify_stereo_aligns_rows() -> None:
    left = CameraModel(640, 480, 450.0, 450.0, 320.0, 240.0, "radtan", (-0.2, 0.05, 0.0, 0.0))
    right = CameraModel(640, 480, 455.0, 452.0, 318.0, 242.0, "radtan", (-0.21, 0.05, 0.0, 0.0))
    right_from_left = g.make_pose(g.so3_exp(np.array([0.01, -0.02, 0.005])), [-0.11, 0.002, 0.001])
    rect = g.rectify_stereo(StereoRig(left, right, right_from_left))
    assert rect.rig.rectified
    assert rect.rig.baseline_m == pytest.approx(0.11, abs=0.002)
    rng = np.random.default_rng(2)
    points_left = rng.uniform([-1, -1, 2], [1, 1, 6], size=(50, 3))
    raw_left = g.distort_points(left, g.project(left.K, points_left))
    points_right = g.transform_points(right_from_left, points_left)
    raw_right = g.distort_points(right, g.project(right.K, points_right))
    # where these raw pixels land in the rectified images: invert the remap numerically
    rect_left = g.project(rect.rig.left.K, g.transform_points(rect.rect_from_left, points_left))
    rect_from_right = (
        rect.rig.right_from_left @ rect.rect_from_left @ g.invert_pose(right_from_left)
    )
    rect_right = g.project(rect.rig.right.K, g.transform_points(rect_from_right, points_right))
    np.testing.assert_allclose(rect_left[:, 1], rect_right[:, 1], atol=1e-6)
    u, v = np.round(rect_left[0]).astype(int)
    # the left table maps a rectified pixel back to the raw pixel of the same ray
    assert abs(rect.left.map_x[v, u] - raw_left[0, 0]) < 1.0
    assert abs(rect.left.map_y[v, u] - raw_left[0, 1]) < 1.0
    disparity = rect_left[:, 0] - rect_right[:, 0]
    depth_rect = g.transform_points(rect.rect_from_left, points_left)[:, 2]
    np.testing.assert_allclose(
        disparity, rect.rig.left.fx * rect.rig.baseline_m / depth_rect, rtol=1e-6
    )
    assert raw_right.shape == (50, 2)
