"""Camera pose from 2-D/3-D correspondences: PnP in RANSAC, robust motion-only refinement,
and structure-only refinement of landmarks seen from fixed keyframes.

All functions work on undistorted pinhole pixels and ``cam_from_world`` poses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from slamfront.geometry import (
    invert_pose,
    make_pose,
    pose_jacobian,
    project,
    projection_jacobian,
    reprojection_error_sq,
    rotation_angle_deg,
    so3_exp,
    transform_points,
)

_T = TypeVar("_T")

_MIN_DEPTH_M = 1e-6
"""Points at most this far in front of a camera (or behind it) give no reprojection residual."""
_MIN_LANDMARK_DEPTH_M = 1e-3
"""The same depth limit in :func:`refine_points`."""


@dataclass(frozen=True, eq=False)
class PoseEstimate:
    """A refined camera pose.

    cam_from_world: 4x4; inliers: (N,) bool over the given correspondences;
    residuals_px: (N,) reprojection error of every correspondence at the final pose;
    information: 6x6 information matrix of the pose (tangent order: translation, rotation),
    from the Gauss-Newton Hessian scaled by the inlier residual variance.
    """

    cam_from_world: np.ndarray
    inliers: np.ndarray
    residuals_px: np.ndarray
    information: np.ndarray

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    @property
    def rmse_px(self) -> float:
        if not self.inliers.any():
            return float("nan")
        return float(np.sqrt(np.mean(self.residuals_px[self.inliers] ** 2)))


def solve_pnp_ransac(
    points_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    threshold_px: float,
    iterations: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC over minimal P3P samples, then EPnP on the consensus.

    Returns (cam_from_world, inlier mask) or None with fewer than 6 points or no consensus.
    Deterministic for a seed (OpenCV's RANSAC draws from its own global generator, so the
    sampling is done here).
    """
    import cv2

    n = points_world.shape[0]
    if n < 6:
        return None
    obj = np.ascontiguousarray(points_world, dtype=np.float64)
    img = np.ascontiguousarray(pixels, dtype=np.float64)
    rng = np.random.default_rng(seed)
    best_mask: np.ndarray | None = None
    best_count = 0
    thresh2 = threshold_px * threshold_px
    needed = iterations
    it = 0
    while it < needed:
        it += 1
        sample = rng.choice(n, size=4, replace=False)
        try:
            ok, rvec, tvec = cv2.solvePnP(
                obj[sample], img[sample], camera_k, None, flags=cv2.SOLVEPNP_AP3P
            )
        except cv2.error:
            continue
        if not ok:
            continue
        pose = make_pose(cv2.Rodrigues(rvec)[0], tvec.reshape(3))
        err2 = reprojection_error_sq(camera_k, pose, obj, img)
        mask = err2 < thresh2
        count = int(mask.sum())
        if count > best_count:
            best_count, best_mask = count, mask
            ratio = count / n
            # adaptive iteration count for 99.9 % confidence with 4-point samples
            if ratio >= 1.0:
                break
            needed = min(iterations, int(np.ceil(np.log(1e-3) / np.log(1.0 - ratio**4 + 1e-12))))
    if best_mask is None or best_count < 6:
        return None
    ok, rvec, tvec = cv2.solvePnP(
        obj[best_mask], img[best_mask], camera_k, None, flags=cv2.SOLVEPNP_EPNP
    )
    if not ok:
        return None
    pose = make_pose(cv2.Rodrigues(rvec)[0], tvec.reshape(3))
    mask = reprojection_error_sq(camera_k, pose, obj, img) < thresh2
    if mask.sum() < 6:
        return None
    return pose, mask


def refine_pose(
    cam_from_world: np.ndarray,
    points_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float = 2.0,
    inlier_px: float = 3.0,
    iterations: int = 10,
    pixel_sigma: np.ndarray | None = None,
    rounds: int = 3,
    depths_m: np.ndarray | None = None,
    range_baseline_m: float = 0.0,
) -> PoseEstimate:
    """Motion-only bundle adjustment: Levenberg-Marquardt on reprojection error with a Huber
    loss over every correspondence, then ``rounds - 1`` more fits on only the correspondences
    within ``inlier_px`` of the latest pose (re-selected each round, as outliers that were
    pulling the first fit come out). The inliers of the result are those within ``inlier_px``
    of the final pose, over all correspondences.

    The later rounds matter: a Huber loss bounds each outlier's pull but not their sum, and
    a few dozen wrong correspondences leaning the same way (a repeated texture, an occlusion
    edge) can hold the first fit tens of millimetres off while most residuals stay under the
    inlier threshold.

    ``pixel_sigma`` (N,) scales each residual (e.g. keypoint scale); default 1 px.
    ``depths_m`` (N,) adds each measured depth (0: none) as a third residual, the disparity
    a stereo camera of ``range_baseline_m`` would see (pixels; the residuals above include it).
    """
    inv_sigma = 1.0 / pixel_sigma if pixel_sigma is not None else np.ones(points_world.shape[0])
    focal_baseline = camera_k[0, 0] * range_baseline_m
    disparity: np.ndarray | None = None  # measured, pixels; NaN where none
    if depths_m is not None and range_baseline_m > 0 and (depths_m > 0).any():
        with np.errstate(divide="ignore"):
            disparity = np.where(depths_m > 0, focal_baseline / depths_m, np.nan)
    pose = cam_from_world.copy()
    active = np.ones(points_world.shape[0], bool)
    for round_index in range(max(rounds, 1)):
        pose, hessian = _levenberg_marquardt(
            pose,
            points_world[active],
            pixels[active],
            camera_k,
            huber_px,
            inv_sigma[active],
            iterations,
            disparity[active] if disparity is not None else None,
            focal_baseline,
        )
        residuals = np.sqrt(
            _residual_sq(pose, points_world, pixels, camera_k, disparity, focal_baseline)
        )
        inliers = residuals < inlier_px
        if round_index + 1 == rounds or int(inliers.sum()) < 6 or np.array_equal(inliers, active):
            break
        active = inliers
    dof = max(int(inliers.sum()) * 2 - 6, 1)
    variance = float(np.sum(residuals[inliers] ** 2) / dof) if inliers.any() else 1.0
    information = hessian / max(variance, 0.05)
    return PoseEstimate(pose, inliers, residuals, information)


def _levenberg_marquardt(
    cam_from_world: np.ndarray,
    points_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float,
    inv_sigma: np.ndarray,
    iterations: int,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(pose, Gauss-Newton Hessian at it) minimising the Huber reprojection cost, plus the
    disparity residual ``focal_baseline / z - disparity`` where ``disparity`` is finite."""
    pose = cam_from_world.copy()
    cost_of = partial(
        _robust_cost,
        points_world=points_world,
        pixels=pixels,
        camera_k=camera_k,
        huber_px=huber_px,
        inv_sigma=inv_sigma,
        disparity=disparity,
        focal_baseline=focal_baseline,
    )
    lam = 1e-3
    cost = cost_of(pose)
    hessian = np.zeros((6, 6))
    for _ in range(iterations):
        pc = transform_points(pose, points_world)
        res = project(camera_k, pc, _MIN_DEPTH_M) - pixels
        j = pose_jacobian(projection_jacobian(camera_k, pc, _MIN_DEPTH_M), pc)
        if disparity is not None:
            # d(f b / z) / d(point_cam) = (0, 0, -f b / z^2)
            ranged = np.isfinite(disparity)
            inv_z = 1.0 / np.maximum(pc[:, 2], _MIN_DEPTH_M)
            res_d = np.where(ranged, focal_baseline * inv_z - disparity, 0.0)
            d_point = np.zeros((pc.shape[0], 1, 3))
            d_point[:, 0, 2] = -focal_baseline * inv_z * inv_z * ranged
            res = np.concatenate([res, res_d[:, None]], axis=1)
            j = np.concatenate([j, pose_jacobian(d_point, pc)], axis=1)
        res *= inv_sigma[:, None]
        weight = _huber_weight(res, huber_px)
        weight = np.where(pc[:, 2] > _MIN_DEPTH_M, weight, 0.0)
        j *= inv_sigma[:, None, None]
        # J^T W J and J^T W r over all 2N residual rows, as matrix products (BLAS)
        wj = (j * weight[:, None, None]).reshape(-1, 6)
        hessian = wj.T @ j.reshape(-1, 6)
        gradient = wj.T @ res.reshape(-1)
        previous = cost
        propose = partial(
            _pose_candidate, pose=pose, hessian=hessian, gradient=gradient, cost=cost_of
        )
        accepted, cost, lam = _damped_step(propose, cost, lam)
        if accepted is None:
            break
        pose, step = accepted
        if np.linalg.norm(step) < 1e-10 or previous - cost < 1e-9 * previous:
            break
    return pose, hessian


def _pose_candidate(
    damping: float,
    pose: np.ndarray,
    hessian: np.ndarray,
    gradient: np.ndarray,
    cost: Callable[[np.ndarray], float],
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """The pose after a damped Gauss-Newton step (and the step), with its cost."""
    step = np.linalg.solve(hessian + damping * np.diag(np.diag(hessian) + 1e-9), -gradient)
    candidate = make_pose(so3_exp(step[3:]), step[:3]) @ pose
    return (candidate, step), cost(candidate)


def _damped_step(
    propose: Callable[[float], tuple[_T, float]], cost: float, lam: float
) -> tuple[_T | None, float, float]:
    """One Levenberg-Marquardt step: ``propose(damping)`` gives a candidate and its cost;
    the damping grows tenfold until the cost falls (six tries). Returns the accepted
    candidate (None if none), its cost and the damping to start the next step with."""
    for _attempt in range(6):
        candidate, new_cost = propose(lam)
        if new_cost < cost:
            return candidate, new_cost, max(lam / 10.0, 1e-7)
        lam *= 10.0
    return None, cost, lam


def _robust_cost(
    pose: np.ndarray,
    points_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float,
    inv_sigma: np.ndarray,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> float:
    sq = _residual_sq(pose, points_world, pixels, camera_k, disparity, focal_baseline)
    err = np.sqrt(sq) * inv_sigma
    return _huber_sum(np.where(np.isfinite(err), err, 1e6), huber_px)


def _residual_sq(
    cam_from_world: np.ndarray,
    points_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> np.ndarray:
    """Squared reprojection error, plus the squared disparity error where ``disparity``
    (measured, pixels) is given and finite."""
    err2 = reprojection_error_sq(camera_k, cam_from_world, points_world, pixels, _MIN_DEPTH_M)
    if disparity is None:
        return err2
    z = points_world @ cam_from_world[2, :3] + cam_from_world[2, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity_err = focal_baseline / z - disparity
    return err2 + np.where(np.isfinite(disparity) & (z > _MIN_DEPTH_M), disparity_err**2, 0.0)


def _huber_weight(residuals: np.ndarray, huber_px: float) -> np.ndarray:
    """(N,) iteratively-reweighted least-squares weights of the Huber loss of the norms of
    (N, R) residual rows: 1 inside ``huber_px``, ``huber_px / norm`` outside."""
    norm = np.linalg.norm(residuals, axis=1)
    weight: np.ndarray = np.where(norm <= huber_px, 1.0, huber_px / np.maximum(norm, 1e-12))
    return weight


def _huber_sum(err: np.ndarray, huber_px: float) -> float:
    """Sum of the Huber loss of residual norms ``err``."""
    quad = err <= huber_px
    return float(np.sum(np.where(quad, 0.5 * err**2, huber_px * (err - 0.5 * huber_px))))


def refine_points(
    points_world: np.ndarray,
    landmark_index: np.ndarray,
    cam_from_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    depth_m: np.ndarray | None = None,
    depth_sigma_m: np.ndarray | None = None,
    huber_px: float = 2.0,
    iterations: int = 3,
) -> np.ndarray:
    """Structure-only bundle adjustment over fixed cameras, batched over landmarks.

    points_world: (L, 3) initial positions; each observation k has landmark_index[k],
    cam_from_world[k] (K, 4, 4), pixels[k] (K, 2) and optionally a depth measurement
    depth_m[k] (NaN = none) with standard deviation depth_sigma_m[k] (metres).
    Landmarks whose 3x3 normal matrix is ill-conditioned keep their position.
    """
    points = points_world.copy()
    num = points.shape[0]
    if num == 0 or landmark_index.size == 0:
        return points
    rot = cam_from_world[:, :3, :3]
    trans = cam_from_world[:, :3, 3]
    has_depth = np.isfinite(depth_m) if depth_m is not None else np.zeros(len(landmark_index), bool)
    for _ in range(iterations):
        x_world = points[landmark_index]
        pc = np.einsum("kij,kj->ki", rot, x_world) + trans
        z = pc[:, 2]
        valid = z > _MIN_LANDMARK_DEPTH_M
        res = project(camera_k, pc, _MIN_LANDMARK_DEPTH_M) - pixels
        w = _huber_weight(res, huber_px) * valid
        # (K, 2, 3) wrt the world point
        jac = projection_jacobian(camera_k, pc, _MIN_LANDMARK_DEPTH_M) @ rot
        jac_w = jac * w[:, None, None]
        h = jac_w.transpose(0, 2, 1) @ jac
        g = (jac_w.transpose(0, 2, 1) @ res[:, :, None])[:, :, 0]
        if depth_m is not None and depth_sigma_m is not None and has_depth.any():
            jd = rot[:, 2, :]  # d z / d X
            rd = np.where(has_depth, z - np.nan_to_num(depth_m), 0.0)
            wd = np.where(has_depth & valid, 1.0 / np.square(depth_sigma_m), 0.0)
            h += wd[:, None, None] * jd[:, :, None] * jd[:, None, :]
            g += (wd * rd)[:, None] * jd
        # per-landmark sums; bincount adds in observation order, like np.add.at but faster
        hess = _sum_rows(landmark_index, h.reshape(-1, 9), num).reshape(num, 3, 3)
        grad = _sum_rows(landmark_index, g, num)
        ok = _well_conditioned(hess, 1e-3)
        if not ok.any():
            break
        step = np.zeros_like(points)
        step[ok] = -np.linalg.solve(hess[ok], grad[ok][..., None])[..., 0]
        points += step
    return points


def bundle_adjust(
    cam_from_world: np.ndarray,
    fixed: np.ndarray,
    points_world: np.ndarray,
    keyframe_index: np.ndarray,
    landmark_index: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float = 2.0,
    iterations: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Joint bundle adjustment of a few keyframe poses and the landmarks they observe.

    cam_from_world: (K, 4, 4) seeds; ``fixed`` (K,) marks poses held where they are (the
    gauge: one for metric data, two for monocular, where they also hold the scale);
    points_world: (L, 3) seeds; observation m is landmark ``landmark_index[m]`` seen by
    keyframe ``keyframe_index[m]`` at ``pixels[m]`` (undistorted pixels). Levenberg-Marquardt
    on the Huber reprojection cost; each step eliminates the landmarks (Schur complement
    over the free poses, a dense 6F x 6F system: meant for windows of a few keyframes).
    Returns the adjusted poses and points; a landmark seen fewer than twice, or whose
    normal matrix is degenerate, keeps its position.
    """
    poses = np.array(cam_from_world, dtype=np.float64, copy=True)
    points = np.array(points_world, dtype=np.float64, copy=True)
    free_slots = np.flatnonzero(~np.asarray(fixed, bool))
    count = np.bincount(landmark_index, minlength=len(points))
    use = count[landmark_index] >= 2
    if free_slots.size == 0 and not use.any():
        return poses, points
    kf, lm, px = keyframe_index[use], landmark_index[use], pixels[use].astype(np.float64)
    num_free, num_points = free_slots.size, len(points)
    free_of = np.full(len(poses), -1, np.int64)
    free_of[free_slots] = np.arange(num_free)
    fslot = free_of[kf]
    on = fslot >= 0  # observations by a free keyframe
    lam = 1e-3
    cost = _bundle_cost(poses, points, kf, lm, px, camera_k, huber_px)
    for _ in range(iterations):
        res, j_pose, j_point, weight = _bundle_terms(poses, points, kf, lm, px, camera_k, huber_px)
        wj_pose = j_pose * weight[:, None, None]
        wj_point = j_point * weight[:, None, None]
        h_pp = _sum_rows(
            fslot[on], (wj_pose[on].transpose(0, 2, 1) @ j_pose[on]).reshape(-1, 36), num_free
        ).reshape(-1, 6, 6)
        g_p = _sum_rows(
            fslot[on], (wj_pose[on].transpose(0, 2, 1) @ res[on, :, None])[..., 0], num_free
        )
        h_ll = _sum_rows(lm, (wj_point.transpose(0, 2, 1) @ j_point).reshape(-1, 9), num_points)
        h_ll = h_ll.reshape(-1, 3, 3)
        g_l = _sum_rows(lm, (wj_point.transpose(0, 2, 1) @ res[:, :, None])[..., 0], num_points)
        w_pl = wj_pose[on].transpose(0, 2, 1) @ j_point[on]  # (M_free, 6, 3) pose-point blocks
        coupling = np.zeros((num_free, num_points, 6, 3))
        np.add.at(coupling, (fslot[on], lm[on]), w_pl)
        step = partial(_schur_step, h_pp, g_p, h_ll, g_l, coupling, w_pl, fslot[on], lm[on])
        cost_of = partial(_bundle_cost, kf=kf, lm=lm, px=px, camera_k=camera_k, huber_px=huber_px)
        propose = partial(
            _window_candidate,
            poses=poses,
            points=points,
            free_slots=free_slots,
            step=step,
            cost=cost_of,
        )
        previous = cost
        accepted, cost, lam = _damped_step(propose, cost, lam)
        if accepted is None:
            break
        poses, points = accepted
        if previous - cost < 1e-9 * previous:
            break
    return poses, points


def _window_candidate(
    damping: float,
    poses: np.ndarray,
    points: np.ndarray,
    free_slots: np.ndarray,
    step: Callable[[float], tuple[np.ndarray, np.ndarray]],
    cost: Callable[[np.ndarray, np.ndarray], float],
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Poses and points after a damped step (``step(damping)``), with their cost."""
    step_p, step_l = step(damping)
    moved = poses.copy()
    for f, slot in enumerate(free_slots):
        moved[slot] = make_pose(so3_exp(step_p[f, 3:]), step_p[f, :3]) @ poses[slot]
    moved_points = points + step_l
    return (moved, moved_points), cost(moved, moved_points)


def _bundle_terms(
    poses: np.ndarray,
    points: np.ndarray,
    kf: np.ndarray,
    lm: np.ndarray,
    px: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residuals (M, 2), Jacobians wrt a left pose perturbation (M, 2, 6; translation then
    rotation, as in refine_pose) and wrt the point (M, 2, 3), and Huber weights (M,)."""
    rot = poses[kf, :3, :3]
    pc = (rot @ points[lm][:, :, None])[:, :, 0] + poses[kf, :3, 3]
    valid = pc[:, 2] > _MIN_DEPTH_M
    res = project(camera_k, pc, _MIN_DEPTH_M) - px
    d_proj = projection_jacobian(camera_k, pc, _MIN_DEPTH_M)
    j_pose = pose_jacobian(d_proj, pc)
    j_point = d_proj @ rot
    weight = _huber_weight(res, huber_px) * valid
    return np.where(valid[:, None], res, 0.0), j_pose, j_point, weight


def _schur_step(
    h_pp: np.ndarray,
    g_p: np.ndarray,
    h_ll: np.ndarray,
    g_l: np.ndarray,
    coupling: np.ndarray,
    w_pl: np.ndarray,
    fslot: np.ndarray,
    lm: np.ndarray,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One damped Gauss-Newton step: poses from the reduced (Schur) system, then points.

    h_pp (F, 6, 6), g_p (F, 6): free poses; h_ll (L, 3, 3), g_l (L, 3): points; coupling
    (F, L, 6, 3): pose-point blocks, also given per observation of a free pose as w_pl
    (M, 6, 3) with that pose ``fslot`` (M,) and point ``lm`` (M,).
    """
    num_free, num_points = h_pp.shape[0], h_ll.shape[0]
    diag = np.arange(3)
    v = h_ll.copy()
    v[:, diag, diag] *= 1.0 + lam
    ok = _well_conditioned(v, 1e-6)
    v_inv = np.zeros_like(v)  # a degenerate point stays where it is
    v_inv[ok] = np.linalg.inv(v[ok])
    step_p = np.zeros((num_free, 6))
    if num_free:
        # as (6F, 3L) matrices: W (pose-point blocks) and W V^-1
        w_dense = coupling.transpose(0, 2, 1, 3).reshape(6 * num_free, 3 * num_points)
        y_dense = (coupling @ v_inv).transpose(0, 2, 1, 3).reshape(6 * num_free, 3 * num_points)
        blocks = np.zeros((num_free, 6, num_free, 6))
        blocks[np.arange(num_free), :, np.arange(num_free), :] = h_pp
        system = blocks.reshape(6 * num_free, 6 * num_free)
        system[np.diag_indices_from(system)] *= 1.0 + lam
        system[np.diag_indices_from(system)] += 1e-9
        system -= y_dense @ w_dense.T
        rhs = -g_p.reshape(-1) + y_dense @ g_l.reshape(-1)
        step_p = np.linalg.solve(system, rhs).reshape(num_free, 6)
    back = g_l.copy()
    np.add.at(back, lm, (w_pl.transpose(0, 2, 1) @ step_p[fslot][:, :, None])[:, :, 0])
    step_l = -(v_inv @ back[:, :, None])[:, :, 0]
    return step_p, step_l


def _bundle_cost(
    poses: np.ndarray,
    points: np.ndarray,
    kf: np.ndarray,
    lm: np.ndarray,
    px: np.ndarray,
    camera_k: np.ndarray,
    huber_px: float,
) -> float:
    pc = (poses[kf, :3, :3] @ points[lm][:, :, None])[:, :, 0] + poses[kf, :3, 3]
    res = project(camera_k, pc, _MIN_DEPTH_M) - px
    err = np.hypot(res[:, 0], res[:, 1])
    return _huber_sum(np.where(pc[:, 2] > _MIN_DEPTH_M, err, 1e6), huber_px)


def _well_conditioned(m: np.ndarray, share: float) -> np.ndarray:
    """(N,) mask of the symmetric (N, 3, 3) matrices whose smallest eigenvalue exceeds
    ``share`` of their trace, i.e. m - share * trace * I is positive definite (Sylvester's
    criterion: its leading principal minors are positive)."""
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    shifted = m.copy()
    shifted[:, [0, 1, 2], [0, 1, 2]] -= (share * np.maximum(trace, 1e-12))[:, None]
    out: np.ndarray = (shifted[:, 0, 0] > 0) & (_minor2(shifted) > 0) & (_det3(shifted) > 0)
    return out


def _minor2(m: np.ndarray) -> np.ndarray:
    """Determinants of the upper-left 2x2 blocks of (N, 3, 3) matrices."""
    out: np.ndarray = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    return out


def _det3(m: np.ndarray) -> np.ndarray:
    """Determinants of (N, 3, 3) matrices (cofactor expansion; np.linalg.det is an LU per
    matrix, many times slower on small batches)."""
    out: np.ndarray = (
        m[:, 0, 0] * (m[:, 1, 1] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 1])
        - m[:, 0, 1] * (m[:, 1, 0] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 0])
        + m[:, 0, 2] * (m[:, 1, 0] * m[:, 2, 1] - m[:, 1, 1] * m[:, 2, 0])
    )
    return out


def _sum_rows(index: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """(count, C) sums of the rows of ``values`` (K, C) that share an ``index`` (K,)."""
    columns = values.shape[1]
    flat = (index[:, None] * columns + np.arange(columns)).ravel()
    sums = np.bincount(flat, weights=values.ravel(), minlength=count * columns)
    return sums.reshape(count, columns)


def relative_motion_ok(
    predicted_world_from_cam: np.ndarray,
    estimated_world_from_cam: np.ndarray,
    dt_s: float,
    max_speed_m_s: float,
    max_angular_speed_deg_s: float,
    slack_m: float = 0.05,
    slack_deg: float = 5.0,
) -> bool:
    """Whether an estimate is within the motion model's reach of its prediction."""
    delta = invert_pose(predicted_world_from_cam) @ estimated_world_from_cam
    dist = float(np.linalg.norm(delta[:3, 3]))
    angle = rotation_angle_deg(delta[:3, :3])
    return dist <= max_speed_m_s * dt_s + slack_m and angle <= (
        max_angular_speed_deg_s * dt_s + slack_deg
    )
