"""Camera pose from 2-D/3-D correspondences: PnP in RANSAC and robust motion-only refinement.

Also the pieces of the robust least squares that ``bundle.py`` (landmarks, keyframe window)
shares: the Huber loss and its weights, one damped Levenberg-Marquardt step, the depth limit.
All functions work on undistorted pinhole pixels and ``cam_from_world`` poses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from slamfront.geometry import (
    make_pose,
    pose_jacobian,
    project,
    projected_pose_jacobian,
    reprojection_error_sq,
    so3_exp,
    transform_points,
)

_T = TypeVar("_T")

MIN_DEPTH_M = 1e-6
"""Points at most this far in front of a camera (or behind it) give no reprojection residual."""


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
    *,
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
    *,
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
    # None: every residual at 1 px (no scaling to apply)
    inv_sigma = None if pixel_sigma is None or np.all(pixel_sigma == 1.0) else 1.0 / pixel_sigma
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
            huber_px=huber_px,
            inv_sigma=inv_sigma[active] if inv_sigma is not None else None,
            iterations=iterations,
            disparity=disparity[active] if disparity is not None else None,
            focal_baseline=focal_baseline,
        )
        points_cam = transform_points(pose, points_world)
        diff = project(camera_k, points_cam, MIN_DEPTH_M) - pixels
        residuals = np.sqrt(
            _residual_sq(points_cam, diff, pose, points_world, disparity, focal_baseline)
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
    *,
    huber_px: float,
    inv_sigma: np.ndarray | None,
    iterations: int,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(pose, Gauss-Newton Hessian at it) minimising the Huber reprojection cost, plus the
    disparity residual ``focal_baseline / z - disparity`` where ``disparity`` is finite."""
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
    # the accepted candidate's camera-frame points and pixel residuals serve the next step
    cost, pc, res = cost_of(cam_from_world)
    pose = cam_from_world.copy()
    hessian = np.zeros((6, 6))
    for _ in range(iterations):
        j = projected_pose_jacobian(camera_k, pc, MIN_DEPTH_M)
        if disparity is not None:
            # d(f b / z) / d(point_cam) = (0, 0, -f b / z^2)
            ranged = np.isfinite(disparity)
            inv_z = 1.0 / np.maximum(pc[:, 2], MIN_DEPTH_M)
            res_d = np.where(ranged, focal_baseline * inv_z - disparity, 0.0)
            d_point = np.zeros((pc.shape[0], 1, 3))
            d_point[:, 0, 2] = -focal_baseline * inv_z * inv_z * ranged
            res = np.concatenate([res, res_d[:, None]], axis=1)
            j = np.concatenate([j, pose_jacobian(d_point, pc)], axis=1)
        if inv_sigma is not None:
            res *= inv_sigma[:, None]
        weight = huber_weight(res, huber_px)
        weight = np.where(pc[:, 2] > MIN_DEPTH_M, weight, 0.0)
        if inv_sigma is not None:
            j *= inv_sigma[:, None, None]
        # J^T W J and J^T W r over all 2N residual rows, as matrix products (BLAS)
        wj = (j * weight[:, None, None]).reshape(-1, 6)
        hessian = wj.T @ j.reshape(-1, 6)
        gradient = wj.T @ res.reshape(-1)
        previous = cost
        propose = partial(
            _pose_candidate, pose=pose, hessian=hessian, gradient=gradient, cost=cost_of
        )
        accepted, cost, lam = damped_step(propose, cost, lam)
        if accepted is None:
            break
        pose, step, pc, res = accepted
        if np.linalg.norm(step) < 1e-10 or previous - cost < 1e-9 * previous:
            break
    return pose, hessian


_Evaluated = tuple[float, np.ndarray, np.ndarray]
"""A pose's robust cost, camera-frame points (N, 3) and pixel residuals (N, 2)."""


def _pose_candidate(
    damping: float,
    pose: np.ndarray,
    hessian: np.ndarray,
    gradient: np.ndarray,
    cost: Callable[[np.ndarray], _Evaluated],
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]:
    """The pose after a damped Gauss-Newton step (and the step, the pose's camera-frame
    points and pixel residuals), with its cost."""
    step = np.linalg.solve(hessian + damping * np.diag(np.diag(hessian) + 1e-9), -gradient)
    candidate = make_pose(so3_exp(step[3:]), step[:3]) @ pose
    value, points_cam, residuals = cost(candidate)
    return (candidate, step, points_cam, residuals), value


def damped_step(
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
    *,
    huber_px: float,
    inv_sigma: np.ndarray | None,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> _Evaluated:
    """The pose's Huber cost, with its camera-frame points and pixel residuals."""
    points_cam = transform_points(pose, points_world)
    diff = project(camera_k, points_cam, MIN_DEPTH_M) - pixels
    sq = _residual_sq(points_cam, diff, pose, points_world, disparity, focal_baseline)
    err = np.sqrt(sq) if inv_sigma is None else np.sqrt(sq) * inv_sigma
    return huber_sum(np.where(np.isfinite(err), err, 1e6), huber_px), points_cam, diff


def _residual_sq(
    points_cam: np.ndarray,
    diff: np.ndarray,
    cam_from_world: np.ndarray,
    points_world: np.ndarray,
    disparity: np.ndarray | None,
    focal_baseline: float,
) -> np.ndarray:
    """Squared reprojection error (of pixel residuals ``diff`` of camera-frame points,
    infinite for points not in front), plus the squared disparity error where ``disparity``
    (measured, pixels) is given and finite."""
    err2 = np.where(points_cam[:, 2] > MIN_DEPTH_M, diff[:, 0] ** 2 + diff[:, 1] ** 2, np.inf)
    if disparity is None:
        return err2
    z = points_world @ cam_from_world[2, :3] + cam_from_world[2, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity_err = focal_baseline / z - disparity
    return err2 + np.where(np.isfinite(disparity) & (z > MIN_DEPTH_M), disparity_err**2, 0.0)


def huber_weight(residuals: np.ndarray, huber_px: float) -> np.ndarray:
    """(N,) iteratively-reweighted least-squares weights of the Huber loss of the norms of
    (N, R) residual rows: 1 inside ``huber_px``, ``huber_px / norm`` outside."""
    norm = np.sqrt(np.add.reduce(residuals * residuals, axis=1))  # np.linalg.norm's sum
    weight: np.ndarray = np.where(norm <= huber_px, 1.0, huber_px / np.maximum(norm, 1e-12))
    return weight


def huber_sum(err: np.ndarray, huber_px: float) -> float:
    """Sum of the Huber loss of residual norms ``err``."""
    quad = err <= huber_px
    return float(np.sum(np.where(quad, 0.5 * err**2, huber_px * (err - 0.5 * huber_px))))
