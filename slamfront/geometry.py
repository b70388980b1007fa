"""SE(3) helpers, projection, triangulation, distortion and stereo rectification.

All poses are 4x4 float64 ``a_from_b`` matrices; camera frames are x right, y down, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slamfront.types import CameraModel, StereoRig


def make_pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 pose from a 3x3 rotation and a 3-vector translation."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return pose


def invert_pose(a_from_b: np.ndarray) -> np.ndarray:
    """b_from_a for a rigid 4x4 a_from_b (uses the rotation transpose, not a general inverse)."""
    rot = a_from_b[:3, :3]
    out = np.eye(4)
    out[:3, :3] = rot.T
    out[:3, 3] = -rot.T @ a_from_b[:3, 3]
    return out


def orthonormalized(pose: np.ndarray) -> np.ndarray:
    """The nearest rigid pose: the rotation block projected onto SO(3) (by SVD).

    Products of many poses drift from orthonormal by rounding; a pose that is applied
    repeatedly (a correction) must be projected back, or the drift compounds.
    """
    u, _, vt = np.linalg.svd(pose[:3, :3])
    rot = u @ vt
    if np.linalg.det(rot) < 0:
        u[:, -1] *= -1
        rot = u @ vt
    out = pose.astype(np.float64, copy=True)
    out[:3, :3] = rot
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out


def transform_points(a_from_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Apply a 4x4 pose to (N, 3) points."""
    return points_b @ a_from_b[:3, :3].T + a_from_b[:3, 3]


def skew(v: np.ndarray) -> np.ndarray:
    x, y, z = np.asarray(v, dtype=np.float64).reshape(3)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def so3_exp(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis * angle in radians), Rodrigues' formula."""
    rotvec = np.asarray(rotvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(rotvec))
    k = skew(rotvec)
    if theta < 1e-8:
        return np.eye(3) + k + 0.5 * k @ k
    return (
        np.eye(3)
        + (np.sin(theta) / theta) * k
        + ((1.0 - np.cos(theta)) / (theta * theta)) * (k @ k)
    )


def so3_log(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector (radians) of a rotation matrix."""
    quat = rotation_to_quat_xyzw(rotation)
    vec, w = quat[:3], quat[3]
    if w < 0:
        vec, w = -vec, -w
    norm = float(np.linalg.norm(vec))
    if norm < 1e-12:
        return 2.0 * vec
    return (2.0 * np.arctan2(norm, w) / norm) * vec


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a rotation matrix in degrees, in [0, 180]."""
    cos = (np.trace(rotation) - 1.0) / 2.0
    axis = np.array(
        [
            rotation[2, 1] - rotation[1, 2],
            rotation[0, 2] - rotation[2, 0],
            rotation[1, 0] - rotation[0, 1],
        ]
    )
    sin = 0.5 * float(np.linalg.norm(axis))
    return float(np.degrees(np.arctan2(sin, cos)))  # accurate for tiny angles, unlike arccos


def quat_xyzw_to_rotation(quat_xyzw: np.ndarray) -> np.ndarray:
    """3x3 rotation from a quaternion (x, y, z, w); the quaternion is normalised first."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64).reshape(4)
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if n == 0.0:
        raise ValueError("zero quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_quat_xyzw(rotation: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) with w >= 0 of a 3x3 rotation (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array(
            [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
        )
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array(
            [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
        )
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array(
            [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
        )
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array(
            [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
        )
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def pose_from_tum_row(txyz: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    return make_pose(quat_xyzw_to_rotation(quat_xyzw), txyz)


def project(
    camera_k: np.ndarray, points_cam: np.ndarray, min_depth_m: float | None = None
) -> np.ndarray:
    """(N, 2) pixels of (N, 3) camera-frame points through an undistorted pinhole K (3, 3),
    or each through its own, K (N, 3, 3).

    With ``min_depth_m``, points not beyond that depth are projected as if at depth 1: finite
    stand-ins for the caller to mask with ``points_cam[:, 2] > min_depth_m``.
    """
    z = _depth(points_cam, min_depth_m)
    pixels = np.empty((points_cam.shape[0], 2))
    pixels[:, 0] = points_cam[:, 0] / z * camera_k[..., 0, 0] + camera_k[..., 0, 2]
    pixels[:, 1] = points_cam[:, 1] / z * camera_k[..., 1, 1] + camera_k[..., 1, 2]
    return pixels


def projection_jacobian(
    camera_k: np.ndarray, points_cam: np.ndarray, min_depth_m: float | None = None
) -> np.ndarray:
    """(N, 2, 3) derivative of :func:`project`'s pixels wrt the camera-frame point (the same
    stand-in depth for points not beyond ``min_depth_m``)."""
    fx, fy = camera_k[0, 0], camera_k[1, 1]
    inv_z = 1.0 / _depth(points_cam, min_depth_m)
    x, y = points_cam[:, 0] * inv_z, points_cam[:, 1] * inv_z
    jac = np.zeros((points_cam.shape[0], 2, 3))
    jac[:, 0, 0] = fx * inv_z
    jac[:, 0, 2] = -fx * x * inv_z
    jac[:, 1, 1] = fy * inv_z
    jac[:, 1, 2] = -fy * y * inv_z
    return jac


def pose_jacobian(d_point_cam: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """(N, R, 6) derivative of R values per camera-frame point wrt a left perturbation of
    cam_from_world (``make_pose(so3_exp(rotation), translation) @ cam_from_world``; tangent
    order translation, rotation), from their derivative wrt the point, ``d_point_cam``
    (N, R, 3). The point moves by ``translation - [p]x rotation``, so each row's rotation
    block is ``p x row``."""
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    jac = np.empty((*d_point_cam.shape[:2], 6))
    jac[:, :, :3] = d_point_cam
    for row in range(d_point_cam.shape[1]):
        dx, dy, dz = d_point_cam[:, row, 0], d_point_cam[:, row, 1], d_point_cam[:, row, 2]
        jac[:, row, 3] = y * dz - z * dy
        jac[:, row, 4] = z * dx - x * dz
        jac[:, row, 5] = x * dy - y * dx
    return jac


def projected_pose_jacobian(
    camera_k: np.ndarray, points_cam: np.ndarray, min_depth_m: float | None = None
) -> np.ndarray:
    """(N, 2, 6) :func:`pose_jacobian` of :func:`projection_jacobian`, built in one pass
    (the same values, without the products by the projection's zero entries)."""
    fx, fy = camera_k[0, 0], camera_k[1, 1]
    inv_z = 1.0 / _depth(points_cam, min_depth_m)
    px, py, pz = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    u_x = fx * inv_z
    u_z = -fx * (px * inv_z) * inv_z
    v_y = fy * inv_z
    v_z = -fy * (py * inv_z) * inv_z
    jac = np.zeros((points_cam.shape[0], 2, 6))
    jac[:, 0, 0] = u_x
    jac[:, 0, 2] = u_z
    jac[:, 0, 3] = py * u_z
    jac[:, 0, 4] = pz * u_x - px * u_z
    jac[:, 0, 5] = -(py * u_x)
    jac[:, 1, 1] = v_y
    jac[:, 1, 2] = v_z
    jac[:, 1, 3] = py * v_z - pz * v_y
    jac[:, 1, 4] = -(px * v_z)
    jac[:, 1, 5] = px * v_y
    return jac


def reprojection_error_sq(
    camera_k: np.ndarray,
    cam_from_world: np.ndarray,
    points_world: np.ndarray,
    pixels: np.ndarray,
    *,
    min_depth_m: float = 1e-6,
) -> np.ndarray:
    """(N,) squared pixel distance between the projections of (N, 3) world points and
    ``pixels`` (N, 2); infinite for points not beyond ``min_depth_m`` in front of the camera."""
    points_cam = transform_points(cam_from_world, points_world)
    diff = project(camera_k, points_cam, min_depth_m) - pixels
    return np.where(points_cam[:, 2] > min_depth_m, diff[:, 0] ** 2 + diff[:, 1] ** 2, np.inf)


def _depth(points_cam: np.ndarray, min_depth_m: float | None) -> np.ndarray:
    """The points' depths, 1 where not beyond ``min_depth_m`` (when given)."""
    z = points_cam[:, 2]
    return z if min_depth_m is None else np.where(z > min_depth_m, z, 1.0)


def unproject(camera_k: np.ndarray, pixels: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points of (N, 2) pixels at depths (N,) (z, not ray length)."""
    fx, fy, cx, cy = camera_k[0, 0], camera_k[1, 1], camera_k[0, 2], camera_k[1, 2]
    x = (pixels[:, 0] - cx) / fx * depth_m
    y = (pixels[:, 1] - cy) / fy * depth_m
    return np.stack([x, y, depth_m], axis=1)


def view_warp(
    camera_k: np.ndarray,
    a_from_world: np.ndarray,
    b_from_world: np.ndarray,
    points_world: np.ndarray,
) -> np.ndarray:
    """(N, 2, 2) local linear map from pixel offsets around each point's image in camera a to
    offsets around its image in camera b (same intrinsics ``camera_k``), for a small patch of
    surface through the point facing camera a (fronto-parallel: the normal is unknown).
    """
    fx, fy = camera_k[0, 0], camera_k[1, 1]
    points_a = transform_points(a_from_world, points_world)
    points_b = transform_points(b_from_world, points_world)
    b_from_a = b_from_world[:3, :3] @ a_from_world[:3, :3].T
    # a pixel offset in a moves the point within its plane z_a = const
    d_point_a = np.zeros((points_a.shape[0], 3, 2))
    d_point_a[:, 0, 0] = points_a[:, 2] / fx
    d_point_a[:, 1, 1] = points_a[:, 2] / fy
    warp: np.ndarray = projection_jacobian(camera_k, points_b) @ b_from_a @ d_point_a
    return warp


def sample_depth(depth_m: np.ndarray, pixels: np.ndarray, edge_ratio: float = 0.05) -> np.ndarray:
    """(N,) float32 depth at sub-pixel positions, bilinear between the four pixels around
    each; 0 (none) outside the image, where any pixel of the 3x3 neighbourhood is invalid, or
    where depth there varies by more than ``edge_ratio`` of the centre's (an occlusion edge,
    where interpolating would invent a surface).

    Bilinear, not nearest: on a surface seen at a grazing angle depth changes by a few per
    cent per pixel, and a sub-pixel position would otherwise get the depth of a point up to
    half a pixel away.
    """
    h, w = depth_m.shape
    x = pixels[:, 0].astype(np.float64)
    y = pixels[:, 1].astype(np.float64)
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    col = np.rint(x).astype(np.int64)
    row = np.rint(y).astype(np.int64)
    centre = depth_m[row, col].astype(np.float32)
    lo = centre.copy()
    hi = centre.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            d = depth_m[np.clip(row + dr, 0, h - 1), np.clip(col + dc, 0, w - 1)]
            lo = np.minimum(lo, d)
            hi = np.maximum(hi, d)
    ok = inside & (lo > 0) & ((hi - lo) <= edge_ratio * centre)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    bilinear = (
        depth_m[y0, x0] * (1 - fx) * (1 - fy)
        + depth_m[y0, x0 + 1] * fx * (1 - fy)
        + depth_m[y0 + 1, x0] * (1 - fx) * fy
        + depth_m[y0 + 1, x0 + 1] * fx * fy
    )
    return np.where(ok, bilinear, 0.0).astype(np.float32)


def triangulate(
    cam0_from_world: np.ndarray,
    cam1_from_world: np.ndarray,
    camera_k: np.ndarray,
    pixels0: np.ndarray,
    pixels1: np.ndarray,
) -> np.ndarray:
    """(N, 3) world points from two undistorted views (linear DLT, one SVD per point)."""
    proj0 = camera_k @ cam0_from_world[:3]
    proj1 = camera_k @ cam1_from_world[:3]
    rows = np.stack(
        [
            pixels0[:, :1] * proj0[2] - proj0[0],
            pixels0[:, 1:2] * proj0[2] - proj0[1],
            pixels1[:, :1] * proj1[2] - proj1[0],
            pixels1[:, 1:2] * proj1[2] - proj1[1],
        ],
        axis=1,
    )
    _, _, vt = np.linalg.svd(rows)
    homog = vt[:, -1]
    return homog[:, :3] / homog[:, 3:4]


def undistort_points(camera: CameraModel, pixels: np.ndarray) -> np.ndarray:
    """Pixels of an undistorted pinhole with the same K, from (N, 2) distorted pixels."""
    if not camera.is_distorted or pixels.shape[0] == 0:
        return pixels.astype(np.float64, copy=True)
    import cv2

    pts = pixels.reshape(-1, 1, 2).astype(np.float64)
    coeffs = np.array(camera.dist_coeffs, dtype=np.float64)
    if camera.distortion == "equidistant":
        out = cv2.fisheye.undistortPoints(pts, camera.K, coeffs, P=camera.K)
    else:
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        out = cv2.undistortPoints(pts, camera.K, coeffs, R=None, P=camera.K, criteria=criteria)
    return out.reshape(-1, 2)


def distort_points(camera: CameraModel, pixels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`undistort_points`: where ideal pinhole pixels land in the raw image."""
    if not camera.is_distorted or pixels.shape[0] == 0:
        return pixels.astype(np.float64, copy=True)
    import cv2

    k = camera.K
    normalized = (pixels - k[:2, 2]) / np.array([k[0, 0], k[1, 1]])
    coeffs = np.array(camera.dist_coeffs, dtype=np.float64)
    if camera.distortion == "equidistant":
        out = cv2.fisheye.distortPoints(normalized.reshape(-1, 1, 2), k, coeffs)
        return out.reshape(-1, 2)
    points3 = np.concatenate([normalized, np.ones((normalized.shape[0], 1))], axis=1)
    out, _ = cv2.projectPoints(points3, np.zeros(3), np.zeros(3), k, coeffs)
    return out.reshape(-1, 2)


@dataclass(frozen=True, eq=False)
class RemapTables:
    """cv2.remap tables turning a raw image into the ``camera`` image (undistorted/rectified)."""

    map_x: np.ndarray
    map_y: np.ndarray
    camera: CameraModel

    def apply(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        import cv2

        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(image, self.map_x, self.map_y, interp, borderMode=cv2.BORDER_CONSTANT)


def pinhole_like(camera: CameraModel, k: np.ndarray) -> CameraModel:
    """An undistorted camera of intrinsics ``k``, the size and shutter of ``camera``."""
    return CameraModel(
        width_px=camera.width_px,
        height_px=camera.height_px,
        fx=float(k[0, 0]),
        fy=float(k[1, 1]),
        cx=float(k[0, 2]),
        cy=float(k[1, 2]),
        readout_s=camera.readout_s,
    )


def undistortion_maps(camera: CameraModel) -> RemapTables:
    """Remap tables to an undistorted pinhole with the same K and size."""
    import cv2

    size = camera.size_px
    coeffs = np.array(camera.dist_coeffs, dtype=np.float64)
    if camera.distortion == "equidistant":
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
            camera.K, coeffs, np.eye(3), camera.K, size, cv2.CV_32FC1
        )
    else:
        map_x, map_y = cv2.initUndistortRectifyMap(
            camera.K,
            coeffs if camera.is_distorted else None,
            np.eye(3),
            camera.K,
            size,
            cv2.CV_32FC1,
        )
    return RemapTables(map_x, map_y, pinhole_like(camera, camera.K))


@dataclass(frozen=True, eq=False)
class StereoRectification:
    """Remap tables for both images and the rectified rig (identical K, x-only baseline).

    ``rect_from_left`` rotates the raw left camera frame into the rectified left frame.
    """

    left: RemapTables
    right: RemapTables
    rig: StereoRig
    rect_from_left: np.ndarray


def rectify_stereo(rig: StereoRig) -> StereoRectification:
    """Rectify a calibrated stereo pair from its extrinsics (OpenCV's Bouguet method)."""
    import cv2

    left, right = rig.left, rig.right
    if left.size_px != right.size_px:
        raise ValueError(f"stereo images differ in size: {left.size_px} vs {right.size_px}")
    size = left.size_px
    rot = np.ascontiguousarray(rig.right_from_left[:3, :3])  # cv2.fisheye needs contiguous
    trans = np.ascontiguousarray(rig.right_from_left[:3, 3]).reshape(3, 1)
    d0 = np.array(left.dist_coeffs or (0.0,) * 4, dtype=np.float64)
    d1 = np.array(right.dist_coeffs or (0.0,) * 4, dtype=np.float64)
    fisheye = left.distortion == "equidistant"
    init: Any
    if fisheye:
        r0, r1, p0, p1, _ = cv2.fisheye.stereoRectify(
            left.K,
            d0,
            right.K,
            d1,
            size,
            rot,
            trans,
            flags=cv2.CALIB_ZERO_DISPARITY,
            balance=0.0,
            fov_scale=1.0,
        )
        init = cv2.fisheye.initUndistortRectifyMap
    else:
        r0, r1, p0, p1, *_ = cv2.stereoRectify(
            left.K, d0, right.K, d1, size, rot, trans, flags=cv2.CALIB_ZERO_DISPARITY, alpha=0
        )
        init = cv2.initUndistortRectifyMap
    k_rect = p0[:3, :3]
    cam = pinhole_like(left, k_rect)
    m0 = init(left.K, d0, r0, p0, size, cv2.CV_32FC1)
    m1 = init(right.K, d1, r1, p1, size, cv2.CV_32FC1)
    baseline_m = -p1[0, 3] / p1[0, 0]
    right_from_left = make_pose(np.eye(3), np.array([-baseline_m, 0.0, 0.0]))
    rectified = StereoRig(cam, cam, right_from_left, rectified=True)
    return StereoRectification(
        RemapTables(m0[0], m0[1], cam),
        RemapTables(m1[0], m1[1], cam),
        rectified,
        make_pose(r0, np.zeros(3)),
    )
