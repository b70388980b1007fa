"""Structure-only refinement of landmarks seen from fixed keyframes, and the joint bundle
adjustment of a keyframe window (poses and landmarks).

Levenberg-Marquardt on the Huber reprojection cost, with the loss and the damped step of
``pose.py``. All functions work on undistorted pinhole pixels and ``cam_from_world`` poses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from slamfront.frontend.pose import MIN_DEPTH_M, damped_step, huber_sum, huber_weight
from slamfront.geometry import make_pose, pose_jacobian, project, projection_jacobian, so3_exp

_MIN_LANDMARK_DEPTH_M = 1e-3
"""Points at most this far in front of a camera (or behind it) give no residual in
:func:`refine_points`."""


def refine_points(
    points_world: np.ndarray,
    landmark_index: np.ndarray,
    cam_from_world: np.ndarray,
    pixels: np.ndarray,
    camera_k: np.ndarray,
    *,
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
        w = huber_weight(res, huber_px) * valid
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
        step[ok] = -_solve3(hess[ok], grad[ok])
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
    *,
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
    cost = _bundle_cost(poses, points, kf, lm, px, camera_k, huber_px=huber_px)
    for _ in range(iterations):
        res, j_pose, j_point, weight = _bundle_terms(
            poses, points, kf, lm, px, camera_k, huber_px=huber_px
        )
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
        step = partial(
            _schur_step,
            h_pp=h_pp,
            g_p=g_p,
            h_ll=h_ll,
            g_l=g_l,
            coupling=coupling,
            w_pl=w_pl,
            fslot=fslot[on],
            lm=lm[on],
        )
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
        accepted, cost, lam = damped_step(propose, cost, lam)
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
    *,
    huber_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residuals (M, 2), Jacobians wrt a left pose perturbation (M, 2, 6; translation then
    rotation, as in refine_pose) and wrt the point (M, 2, 3), and Huber weights (M,)."""
    rot = poses[kf, :3, :3]
    pc = (rot @ points[lm][:, :, None])[:, :, 0] + poses[kf, :3, 3]
    valid = pc[:, 2] > MIN_DEPTH_M
    res = project(camera_k, pc, MIN_DEPTH_M) - px
    d_proj = projection_jacobian(camera_k, pc, MIN_DEPTH_M)
    j_pose = pose_jacobian(d_proj, pc)
    j_point = d_proj @ rot
    weight = huber_weight(res, huber_px) * valid
    return np.where(valid[:, None], res, 0.0), j_pose, j_point, weight


def _schur_step(
    damping: float,
    *,
    h_pp: np.ndarray,
    g_p: np.ndarray,
    h_ll: np.ndarray,
    g_l: np.ndarray,
    coupling: np.ndarray,
    w_pl: np.ndarray,
    fslot: np.ndarray,
    lm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One damped Gauss-Newton step: poses from the reduced (Schur) system, then points.

    h_pp (F, 6, 6), g_p (F, 6): free poses; h_ll (L, 3, 3), g_l (L, 3): points; coupling
    (F, L, 6, 3): pose-point blocks, also given per observation of a free pose as w_pl
    (M, 6, 3) with that pose ``fslot`` (M,) and point ``lm`` (M,).
    """
    num_free, num_points = h_pp.shape[0], h_ll.shape[0]
    diag = np.arange(3)
    v = h_ll.copy()
    v[:, diag, diag] *= 1.0 + damping
    ok = _well_conditioned(v, 1e-6)
    v_inv = np.zeros_like(v)  # a degenerate point stays where it is
    v_inv[ok] = _inverse3(v[ok])
    step_p = np.zeros((num_free, 6))
    if num_free:
        # as (6F, 3L) matrices: W (pose-point blocks) and W V^-1
        w_dense = coupling.transpose(0, 2, 1, 3).reshape(6 * num_free, 3 * num_points)
        y_dense = (coupling @ v_inv).transpose(0, 2, 1, 3).reshape(6 * num_free, 3 * num_points)
        blocks = np.zeros((num_free, 6, num_free, 6))
        blocks[np.arange(num_free), :, np.arange(num_free), :] = h_pp
        system = blocks.reshape(6 * num_free, 6 * num_free)
        system[np.diag_indices_from(system)] *= 1.0 + damping
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
    *,
    huber_px: float,
) -> float:
    pc = (poses[kf, :3, :3] @ points[lm][:, :, None])[:, :, 0] + poses[kf, :3, 3]
    res = project(camera_k, pc, MIN_DEPTH_M) - px
    err = np.hypot(res[:, 0], res[:, 1])
    return huber_sum(np.where(pc[:, 2] > MIN_DEPTH_M, err, 1e6), huber_px)


def _well_conditioned(m: np.ndarray, share: float) -> np.ndarray:
    """(N,) mask of the symmetric (N, 3, 3) matrices whose smallest eigenvalue exceeds
    ``share`` of their trace, i.e. m - share * trace * I is positive definite (Sylvester's
    criterion: its leading principal minors are positive)."""
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    shifted = m.copy()
    shifted[:, [0, 1, 2], [0, 1, 2]] -= (share * np.maximum(trace, 1e-12))[:, None]
    out: np.ndarray = (shifted[:, 0, 0] > 0) & (_minor2(shifted) > 0) & (_det3(shifted) > 0)
    return out


def _inverse3(m: np.ndarray) -> np.ndarray:
    """(N, 3, 3) inverses of invertible (N, 3, 3) matrices, by the adjugate (np.linalg's
    inverse and solve are an LU per matrix, many times slower on small batches)."""
    adjugate = np.empty_like(m)
    adjugate[:, 0, 0] = m[:, 1, 1] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 1]
    adjugate[:, 1, 0] = m[:, 1, 2] * m[:, 2, 0] - m[:, 1, 0] * m[:, 2, 2]
    adjugate[:, 2, 0] = m[:, 1, 0] * m[:, 2, 1] - m[:, 1, 1] * m[:, 2, 0]
    adjugate[:, 0, 1] = m[:, 0, 2] * m[:, 2, 1] - m[:, 0, 1] * m[:, 2, 2]
    adjugate[:, 1, 1] = m[:, 0, 0] * m[:, 2, 2] - m[:, 0, 2] * m[:, 2, 0]
    adjugate[:, 2, 1] = m[:, 0, 1] * m[:, 2, 0] - m[:, 0, 0] * m[:, 2, 1]
    adjugate[:, 0, 2] = m[:, 0, 1] * m[:, 1, 2] - m[:, 0, 2] * m[:, 1, 1]
    adjugate[:, 1, 2] = m[:, 0, 2] * m[:, 1, 0] - m[:, 0, 0] * m[:, 1, 2]
    adjugate[:, 2, 2] = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    det = (
        m[:, 0, 0] * adjugate[:, 0, 0]
        + m[:, 0, 1] * adjugate[:, 1, 0]
        + m[:, 0, 2] * adjugate[:, 2, 0]
    )
    out: np.ndarray = adjugate / det[:, None, None]
    return out


def _solve3(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) solutions x of m x = b for invertible (N, 3, 3) ``m`` and (N, 3) ``b``."""
    return np.einsum("nij,nj->ni", _inverse3(m), b)


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
