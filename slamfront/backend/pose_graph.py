"""Keyframe pose graph on iSAM2: the only module of slamfront that imports gtsam.

Variables are keyframe poses ``world_from_cam`` (gtsam ``Pose3``, one key per keyframe_id).
Factors: a prior on the first keyframe, one odometry ``BetweenFactorPose3`` per new keyframe
weighted by the tracker's own information matrix, loop-closure factors behind a robust
kernel (``backend.robust_kernel``), and with an IMU a ``CombinedImuFactor`` between
consecutive keyframes (velocity ``v`` of the camera and bias ``b`` variables per keyframe, a
gravity direction ``g`` per map,
the samples moved to the camera's frame and origin, then preintegrated by
``PreintegratedCombinedMeasurements`` with the rig's noise model). Every
:meth:`PoseGraph.optimize` hands iSAM2 only the factors and values added since the previous
call.

:func:`adjust_keyframes` is the final keyframe bundle adjustment (poses and landmarks from
pixel observations, batch Levenberg-Marquardt), seeded by the graph's estimate.

Information matrices are 6x6 in gtsam's ``Pose3`` tangent order ``(rx, ry, rz, tx, ty, tz)``
(radians, metres) for a perturbation of the *second* pose in its own frame
(``b_from_b' = Exp(xi)``), the convention of ``BetweenFactorPose3(a, b, a_from_b)``.
:func:`pose_information` builds one from the inlier 3-D points of a PnP estimate.

A ``PoseGraph`` is owned by one thread (the back-end worker); it is not locked. What it
returns (:class:`~slamfront.types.OptimizedPoses`, :class:`GraphEdge`) are frozen records
holding read-only copies, safe to hand to other threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from slamfront.errors import InputError
from slamfront.geometry import (
    orthonormalized,
    project,
    projection_jacobian,
    so3_exp,
)
from slamfront.types import KeyframeImu, LoopCandidate, OptimizedPoses

if TYPE_CHECKING:
    from slamfront.config import BackendConfig

EdgeKind = Literal["odometry", "loop"]


@dataclass(frozen=True, eq=False)
class GraphEdge:
    """One relative-pose factor between two keyframes.

    ``from_id`` / ``to_id`` are keyframe ids; ``from_from_to`` is the measured 4x4 pose of the
    ``to`` camera in the ``from`` camera; ``information`` is 6x6 in ``(rx, ry, rz, tx, ty, tz)``
    order (see the module docstring); loop edges carry the robust kernel at optimisation time.
    """

    from_id: int
    to_id: int
    from_from_to: np.ndarray
    information: np.ndarray
    kind: EdgeKind


def pose_information(
    points_cam_m: np.ndarray,
    focal_px: float,
    reprojection_rmse_px: float,
    min_sigma_px: float = 0.5,
) -> np.ndarray:
    """6x6 information of a camera pose estimated from 2-D/3-D inliers (Gauss-Newton J^T J).

    ``points_cam_m`` (N, 3): the inlier 3-D points expressed in the estimated camera's frame
    (z forward, positive); ``focal_px``: focal length; the pixel noise is the estimate's
    reprojection RMSE, floored at ``min_sigma_px``. Few, distant or clustered inliers and large
    residuals give a weak (small) information; the matrix is in the ``Pose3`` tangent order
    ``(rx, ry, rz, tx, ty, tz)`` for a perturbation of the camera in its own frame.
    """
    points = np.asarray(points_cam_m, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points_cam_m must be (N, 3), got shape {points.shape}")
    points = points[np.all(np.isfinite(points), axis=1) & (points[:, 2] > 1e-6)]
    if points.shape[0] < 3:
        raise InputError(f"need at least 3 finite points in front of the camera, got {len(points)}")
    if not (focal_px > 0 and np.isfinite(reprojection_rmse_px)):
        raise InputError(
            f"focal_px must be positive and reprojection_rmse_px finite, "
            f"got {focal_px}, {reprojection_rmse_px}"
        )
    sigma_px = max(float(reprojection_rmse_px), float(min_sigma_px))
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    d_pix = projection_jacobian(np.diag([focal_px, focal_px, 1.0]), points)  # (N, 2, 3)
    # Point in the perturbed camera: p' = Exp(xi)^-1 p  ~  p + [p]x w - v
    d_point = np.zeros((points.shape[0], 3, 6))
    d_point[:, 0, 1], d_point[:, 0, 2] = -z, y
    d_point[:, 1, 0], d_point[:, 1, 2] = z, -x
    d_point[:, 2, 0], d_point[:, 2, 1] = -y, x
    d_point[:, :, 3:] = -np.eye(3)
    jac = np.einsum("nij,njk->nik", d_pix, d_point).reshape(-1, 6)
    info = jac.T @ jac / sigma_px**2
    return 0.5 * (info + info.T)


class PoseGraph:
    """Incremental keyframe pose graph (iSAM2). Owned by one thread; see the module docstring.

    Usage: ``add_keyframe`` for every new keyframe (the first one gets the prior), ``add_loop``
    for every verified loop, then ``optimize()`` -> :class:`~slamfront.types.OptimizedPoses`.
    """

    def __init__(self, config: BackendConfig) -> None:
        import gtsam

        self._gtsam: Any = gtsam
        self._config = config
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(config.relinearize_threshold)
        params.relinearizeSkip = 1
        self._isam = gtsam.ISAM2(params)
        self._new_factors = gtsam.NonlinearFactorGraph()
        self._new_values = gtsam.Values()
        self._estimate = gtsam.Values()
        self._ids: list[int] = []
        self._id_set: set[int] = set()
        self._map_of: dict[int, int] = {}  # keyframe id -> its map after merges
        self._factors: list[tuple[Any, int | None]] = []  # every factor; gauge priors: map id
        self._merges: list[tuple[int, int]] = []
        self._edges: list[GraphEdge] = []
        self._num_loops = 0
        self._pending_loops = 0
        self._revision = 0
        self._inertial: dict[int, int] = {}  # keyframe id -> map, with velocity and bias
        self._gravity_maps: set[int] = set()  # maps with a gravity-direction variable

    # ----------------------------------------------------------------------------- inputs

    def add_keyframe(
        self,
        keyframe_id: int,
        world_from_cam_estimate: np.ndarray,
        *,
        prev_from_cur: np.ndarray | None = None,
        information: np.ndarray | None = None,
        reference_keyframe_id: int | None = None,
        map_id: int = 0,
    ) -> None:
        """Add a keyframe variable (of map ``map_id``) and its odometry factor.

        ``prev_from_cur``: the tracker's relative pose of this keyframe in the reference
        keyframe (``reference_keyframe_id``, default the previously added keyframe), with its
        6x6 ``information``. The first keyframe takes no relative pose: it is held by a prior
        at ``world_from_cam_estimate`` (``backend.prior_sigma_*``). A later keyframe without
        ``prev_from_cur`` starts a new chain (e.g. after tracking was lost) held by a prior
        with ``information`` if given (make it weak when a loop may connect the chain later),
        else by the same tight prior. The first keyframe of a map is held by the tight prior
        (the gauge of that map's frame) until :meth:`merge_maps` joins the map to another.
        """
        gtsam = self._gtsam
        keyframe_id = int(keyframe_id)
        if keyframe_id in self._id_set:
            raise InputError(f"keyframe_id {keyframe_id} is already in the pose graph")
        world_from_cam = _checked_pose(world_from_cam_estimate, "world_from_cam_estimate")
        key = gtsam.symbol("k", keyframe_id)
        map_id = self._merged(int(map_id))
        if prev_from_cur is None or not self._ids:
            gauge = None
            if information is not None and map_id in self._map_of.values():
                info = _checked_information(information, f"keyframe {keyframe_id} information")
                noise = gtsam.noiseModel.Gaussian.Information(info)
            else:
                sigmas = np.array(
                    [self._config.prior_sigma_rad] * 3 + [self._config.prior_sigma_m] * 3
                )
                noise = gtsam.noiseModel.Diagonal.Sigmas(sigmas)
                gauge = map_id
            self._add(gtsam.PriorFactorPose3(key, gtsam.Pose3(world_from_cam), noise), gauge)
            initial = world_from_cam
        else:
            if information is None:
                raise InputError(f"keyframe {keyframe_id}: prev_from_cur needs an information")
            ref_id = self._ids[-1] if reference_keyframe_id is None else int(reference_keyframe_id)
            if ref_id not in self._id_set:
                raise InputError(f"keyframe {keyframe_id}: unknown reference keyframe {ref_id}")
            relative = _checked_pose(prev_from_cur, "prev_from_cur")
            info = _checked_information(information, f"keyframe {keyframe_id} information")
            noise = gtsam.noiseModel.Gaussian.Information(info)
            self._add(
                gtsam.BetweenFactorPose3(
                    gtsam.symbol("k", ref_id), key, gtsam.Pose3(relative), noise
                )
            )
            self._edges.append(_edge(ref_id, keyframe_id, relative, info, "odometry"))
            # Start from the corrected reference, not from the tracker's drifted world pose.
            initial = self._current_pose(ref_id) @ relative
        self._new_values.insert(key, gtsam.Pose3(initial))
        self._ids.append(keyframe_id)
        self._id_set.add(keyframe_id)
        self._map_of[keyframe_id] = map_id

    def add_imu(self, keyframe_id: int, link: KeyframeImu) -> None:
        """A preintegrated IMU factor from ``link.previous_keyframe_id`` to ``keyframe_id``
        (both added): velocity and bias variables are created as needed (a chain's first
        with a weak velocity prior and a bias prior at zero)."""
        gtsam = self._gtsam
        prev_id, cur_id = int(link.previous_keyframe_id), int(keyframe_id)
        for kid in (prev_id, cur_id):
            if kid not in self._id_set:
                raise InputError(f"IMU factor {prev_id}->{cur_id}: unknown keyframe {kid}")
        if cur_id in self._inertial:
            raise InputError(f"keyframe {cur_id} already has an IMU factor")
        pim = _preintegrated(gtsam, link, self._bias_of(prev_id))
        if pim is None:
            return
        map_id = self._map_of[cur_id]
        v, b = partial(gtsam.symbol, "v"), partial(gtsam.symbol, "b")
        prev_pose = self._current_pose(prev_id)
        cur_pose = self._current_pose(cur_id)
        dt_s = (link.stamp_ns - link.previous_stamp_ns) * 1e-9
        if prev_id not in self._inertial:
            guess = (cur_pose[:3, 3] - prev_pose[:3, 3]) / max(pim.deltaTij(), dt_s, 1e-3)
            self._new_values.insert(v(prev_id), guess)
            self._new_values.insert(b(prev_id), gtsam.imuBias.ConstantBias())
            self._add(
                gtsam.PriorFactorVector(
                    v(prev_id), guess, gtsam.noiseModel.Isotropic.Sigma(3, _VELOCITY_PRIOR_M_S)
                ),
                map_id,
            )
            self._add(
                gtsam.PriorFactorConstantBias(
                    b(prev_id),
                    gtsam.imuBias.ConstantBias(),
                    gtsam.noiseModel.Diagonal.Sigmas(_BIAS_PRIOR_SIGMAS),
                ),
                map_id,
            )
            self._inertial[prev_id] = map_id
        bias = self._bias_of(prev_id)
        state = gtsam.NavState(gtsam.Pose3(prev_pose), self.velocity_of(prev_id))
        self._new_values.insert(v(cur_id), pim.predict(state, bias).velocity())
        self._new_values.insert(b(cur_id), bias)
        self._inertial[cur_id] = map_id
        gravity_key = gtsam.symbol("g", map_id)
        if map_id not in self._gravity_maps:
            direction = gtsam.Unit3(np.asarray(link.gravity_world, np.float64))
            self._new_values.insert(gravity_key, direction)
            prior = gtsam.noiseModel.Isotropic.Sigma(2, _GRAVITY_PRIOR_RAD)
            self._add(gtsam.PriorFactorUnit3(gravity_key, direction, prior), map_id)
            self._gravity_maps.add(map_id)
        factor = gtsam.CombinedImuFactorWithGravityDirection(
            gtsam.symbol("k", prev_id), v(prev_id), gtsam.symbol("k", cur_id), v(cur_id),
            b(prev_id), b(cur_id), gravity_key, pim, float(np.linalg.norm(link.gravity_world)),
        )  # fmt: skip
        self._add(factor, map_id)

    def add_loop(self, candidate: LoopCandidate, information: np.ndarray | None = None) -> None:
        """Add a verified loop ``match_from_query`` as a robust factor (see ``robust_kernel``).

        ``information`` defaults to the candidate's own (from its PnP inliers).
        """
        gtsam = self._gtsam
        if information is None:
            information = candidate.information
        if information is None:
            raise InputError(
                f"loop {candidate.query_keyframe_id}->{candidate.match_keyframe_id}: "
                "no information matrix (neither given nor on the candidate)"
            )
        for kid in (candidate.query_keyframe_id, candidate.match_keyframe_id):
            if kid not in self._id_set:
                raise InputError(
                    f"loop {candidate.query_keyframe_id}->"
                    f"{candidate.match_keyframe_id}: unknown keyframe {kid}"
                )
        relative = _checked_pose(candidate.match_from_query, "match_from_query")
        info = _checked_information(information, "loop information")
        noise = _loop_noise(gtsam, info, self._config)
        self._add(
            gtsam.BetweenFactorPose3(
                gtsam.symbol("k", candidate.match_keyframe_id),
                gtsam.symbol("k", candidate.query_keyframe_id),
                gtsam.Pose3(relative),
                noise,
            )
        )
        self._edges.append(
            _edge(candidate.match_keyframe_id, candidate.query_keyframe_id, relative, info, "loop")
        )
        self._pending_loops += 1

    def map_of(self, keyframe_id: int) -> int:
        """The map a keyframe belongs to now (after merges)."""
        return self._map_of[int(keyframe_id)]

    def pose_of(self, keyframe_id: int) -> np.ndarray:
        """A keyframe's current estimate (4x4 world_from_cam)."""
        return self._current_pose(int(keyframe_id))

    def merge_maps(
        self,
        absorbed: int,
        into: int,
        into_from_absorbed: np.ndarray,
        connection: LoopCandidate,
    ) -> None:
        """Join map ``absorbed`` to map ``into`` at the loop ``connection`` between them: the
        absorbed keyframes are re-expressed in ``into``'s frame by ``into_from_absorbed``
        (4x4), its gauge prior goes, and the graph is rebuilt from every other factor and the
        loop at those values."""
        gtsam = self._gtsam
        transform = _checked_pose(into_from_absorbed, "into_from_absorbed")
        self.optimize()
        self.add_loop(connection)
        values = gtsam.Values()
        # the absorbed map's IMU factors go with its gauge (their gravity is in its frame)
        self._inertial = {k: m for k, m in self._inertial.items() if m != absorbed}
        self._gravity_maps.discard(absorbed)
        for map_id in self._gravity_maps:
            key = gtsam.symbol("g", map_id)
            values.insert(key, self._estimate.atUnit3(key))
        for kid in self._inertial:
            values.insert(gtsam.symbol("v", kid), self.velocity_of(kid))
            values.insert(gtsam.symbol("b", kid), self._bias_of(kid))
        for kid in self._ids:
            pose = self._current_pose(kid)
            if self._map_of[kid] == absorbed:
                pose = transform @ pose
                self._map_of[kid] = into
            values.insert(gtsam.symbol("k", kid), gtsam.Pose3(orthonormalized(pose)))
        self._factors = [(f, gauge) for f, gauge in self._factors if gauge != absorbed]
        graph = gtsam.NonlinearFactorGraph()
        for factor, _ in self._factors:
            graph.add(factor)
        params = gtsam.ISAM2Params()
        params.setRelinearizeThreshold(self._config.relinearize_threshold)
        params.relinearizeSkip = 1
        self._isam = gtsam.ISAM2(params)
        self._isam.update(graph, values)
        for _ in range(self._config.loop_iterations):
            self._isam.update()
        self._new_factors = gtsam.NonlinearFactorGraph()
        self._num_loops += self._pending_loops
        self._pending_loops = 0
        self._estimate = self._isam.calculateEstimate()
        self._merges.append((int(absorbed), int(into)))
        self._revision += 1

    # ----------------------------------------------------------------------------- output

    def optimize(self) -> OptimizedPoses:
        """Hand the new factors and values to iSAM2 and return every keyframe's pose."""
        if self._new_factors.size() or self._new_values.size():
            self._isam.update(self._new_factors, self._new_values)
            if self._pending_loops:
                for _ in range(self._config.loop_iterations):
                    self._isam.update()
            self._new_factors = self._gtsam.NonlinearFactorGraph()
            self._new_values = self._gtsam.Values()
            self._num_loops += self._pending_loops
            self._pending_loops = 0
            self._estimate = self._isam.calculateEstimate()
            self._revision += 1
        poses = np.zeros((len(self._ids), 4, 4))
        for row, kid in enumerate(self._ids):
            poses[row] = self._estimate.atPose3(self._gtsam.symbol("k", kid)).matrix()
        poses.setflags(write=False)
        return OptimizedPoses(
            revision=self._revision,
            keyframe_ids=tuple(self._ids),
            world_from_cam=poses,
            num_loops=self._num_loops,
            map_ids=tuple(self._map_of[kid] for kid in self._ids),
            map_merges=tuple(self._merges),
        )

    @property
    def edges(self) -> tuple[GraphEdge, ...]:
        """Every odometry and loop factor added so far (for saving the map)."""
        return tuple(self._edges)

    def _add(self, factor: Any, gauge_of_map: int | None = None) -> None:
        self._new_factors.add(factor)
        self._factors.append((factor, gauge_of_map))

    def _merged(self, map_id: int) -> int:
        """The map ``map_id`` was merged into (itself if never)."""
        for absorbed, into in self._merges:
            if map_id == absorbed:
                map_id = into
        return map_id

    def velocity_of(self, keyframe_id: int) -> np.ndarray:
        """(3,) a keyframe's IMU velocity estimate in the world, m/s (it needs an IMU factor)."""
        key = self._gtsam.symbol("v", keyframe_id)
        values = self._new_values if self._new_values.exists(key) else self._estimate
        return np.asarray(values.atVector(key), dtype=np.float64)

    def _bias_of(self, keyframe_id: int) -> Any:
        """The keyframe's current bias estimate (zero without one)."""
        gtsam = self._gtsam
        key = gtsam.symbol("b", keyframe_id)
        for values in (self._new_values, self._estimate):
            if values.exists(key):
                return values.atConstantBias(key)
        return gtsam.imuBias.ConstantBias()

    def _current_pose(self, keyframe_id: int) -> np.ndarray:
        key = self._gtsam.symbol("k", keyframe_id)
        values = self._new_values if self._new_values.exists(key) else self._estimate
        return np.asarray(values.atPose3(key).matrix(), dtype=np.float64)


_VELOCITY_PRIOR_M_S = 1.0
"""A chain's first velocity: only a weak guess from the keyframe poses."""
_BIAS_PRIOR_SIGMAS = np.array([0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
_GRAVITY_PRIOR_RAD = 0.02
"""The tracker's gravity direction for a map, refined by its IMU factors."""
_MIN_GYRO_WALK = 1e-5
_MIN_ACCEL_WALK = 1e-4
"""Floors on the bias random walks (rad/s^2/sqrt(Hz), m/s^3/sqrt(Hz)): a rig declaring an
almost constant bias would otherwise make the bias links too stiff for iSAM2 to solve."""
"""A chain's first bias, about zero: accelerometer (m/s^2) then gyroscope (rad/s)."""


def _preintegrated(gtsam: Any, link: KeyframeImu, bias: Any) -> Any:
    """The link's samples preintegrated from the previous keyframe's stamp to this one's (IMU
    clock), measurements linear between samples (held beyond the last); None without any
    interval."""
    noise = link.noise
    eye = np.eye(3)
    params = gtsam.PreintegrationCombinedParams(np.asarray(link.gravity_world, np.float64))
    params.setGyroscopeCovariance(noise.gyro_noise_density**2 * eye)
    params.setAccelerometerCovariance(noise.accel_noise_density**2 * eye)
    params.setIntegrationCovariance(1e-8 * eye)
    gyro_walk = max(noise.gyro_random_walk, _MIN_GYRO_WALK)
    accel_walk = max(noise.accel_random_walk, _MIN_ACCEL_WALK)
    params.setBiasOmegaCovariance(gyro_walk**2 * eye)
    params.setBiasAccCovariance(accel_walk**2 * eye)
    pim = gtsam.PreintegratedCombinedMeasurements(params, bias)
    offset_ns = round(link.time_offset_s * 1e9)
    start_ns, end_ns = link.previous_stamp_ns + offset_ns, link.stamp_ns + offset_ns
    stamps = np.array([sample.stamp_ns for sample in link.samples], np.int64)
    if stamps.size < 2 or end_ns <= start_ns:
        return None
    gyro = np.array([sample.gyro_rad_s for sample in link.samples], np.float64)
    accel = np.array([sample.accel_m_s2 for sample in link.samples], np.float64)
    # pieces from the start (interpolated) through every later sample, each integrated at
    # its midpoint's measurement (the mean of its ends), moved to the camera: rotated into its
    # frame, the specific force at its origin (lever arm with angular acceleration and
    # centripetal terms). gtsam applies the acceleration in the piece's starting attitude, so
    # it is handed over turned from the midpoint's into it.
    inside = (stamps > start_ns) & (stamps < end_ns)
    knots = np.concatenate([[start_ns], stamps[inside], [end_ns]])
    t = (stamps - stamps[0]).astype(np.float64)
    tk = (knots - stamps[0]).astype(np.float64)
    gyro_k = np.stack([np.interp(tk, t, gyro[:, a]) for a in range(3)], axis=1)
    accel_k = np.stack([np.interp(tk, t, accel[:, a]) for a in range(3)], axis=1)
    cam_from_body_rot = link.body_from_cam[:3, :3].T
    lever_body_m = link.body_from_cam[:3, 3]
    gyro_bias_cam = np.asarray(bias.gyroscope(), np.float64)
    for k in range(knots.size - 1):
        dt_s = (knots[k + 1] - knots[k]) * 1e-9
        omega_body = 0.5 * (gyro_k[k] + gyro_k[k + 1])
        alpha_body = (gyro_k[k + 1] - gyro_k[k]) / dt_s
        force_body = 0.5 * (accel_k[k] + accel_k[k + 1])
        force_body = force_body + np.cross(alpha_body, lever_body_m)
        force_body = force_body + np.cross(omega_body, np.cross(omega_body, lever_body_m))
        omega_cam = cam_from_body_rot @ omega_body
        turn = so3_exp((omega_cam - gyro_bias_cam) * (0.5 * dt_s))
        pim.integrateMeasurement(turn @ (cam_from_body_rot @ force_body), omega_cam, dt_s)
    return pim


@dataclass(frozen=True, eq=False)
class KeyframeObservations:
    """Landmark observations for :func:`adjust_keyframes`: observation ``i`` is landmark
    ``landmark_rows[i]`` seen at ``pixels[i]`` (undistorted pixels) by keyframe
    ``keyframe_rows[i]``, at depth ``depths_m[i]`` as measured there (0: no depth, the pixel
    alone); ``landmarks_world_m`` (L, 3) seeds the landmark positions."""

    keyframe_rows: np.ndarray
    landmark_rows: np.ndarray
    pixels: np.ndarray
    depths_m: np.ndarray
    landmarks_world_m: np.ndarray


@dataclass(frozen=True)
class ObservationWeights:
    """Noise of the final adjustment's observations: ``sigma_px`` on each pixel coordinate,
    and a depth entering as the disparity a stereo camera of ``range_baseline_m`` would see,
    with that same sigma (so a larger baseline is a more trusted depth)."""

    sigma_px: float
    range_baseline_m: float


def adjust_keyframes(
    keyframe_ids: Sequence[int],
    world_from_cam: np.ndarray,
    intrinsics: np.ndarray,
    held: np.ndarray,
    observations: KeyframeObservations,
    edges: Sequence[GraphEdge],
    config: BackendConfig,
) -> tuple[np.ndarray, np.ndarray, ObservationWeights]:
    """Bundle adjustment of keyframe poses and the landmarks they observe; returns the
    adjusted ``world_from_cam`` (K, 4, 4) in the order of ``keyframe_ids``, the adjusted
    landmark positions (L, 3) in the order of ``observations.landmarks_world_m``, and the
    weights of the last pass.

    ``world_from_cam`` (K, 4, 4) seeds the poses (the pose graph's estimate); ``intrinsics``
    (K, 4) holds each keyframe's pinhole ``fx, fy, cx, cy``; ``held`` (K,) marks keyframes
    pinned where they are (the gauge, or a loaded map). An observation with a depth is a
    gtsam stereo factor (the depth as a virtual stereo camera's disparity), one without a
    projection factor, each behind a Huber kernel. ``edges``: odometry factors enter weighted
    by ``adjustment_odometry_weight`` (they only keep a keyframe with few observations in
    place), loop factors as in the pose graph. A keyframe that is not held and has no
    odometry edge into it (a restarted chain) gets a weak prior at its seed.

    Re-weighting passes (one iteration each) measure the noise of the pixels and the depths
    from their residuals (:func:`residual_weights`) until the weights settle (within 10 %) or
    ``final_adjustment_passes - 1`` of them ran; they need only two figures, so they adjust
    at most ``final_adjustment_weighting_landmarks`` landmarks, evenly spread (the others
    then move with the keyframe they were seeded from). The last pass runs
    ``final_adjustment_iterations`` on every landmark at those weights from where the previous
    one ended. Raises ``RuntimeError`` (gtsam's) if the system is singular.
    """
    poses = np.asarray(world_from_cam, dtype=np.float64)
    if poses.shape != (len(keyframe_ids), 4, 4) or intrinsics.shape != (len(keyframe_ids), 4):
        raise InputError(
            f"{len(keyframe_ids)} keyframes need (K, 4, 4) poses and (K, 4) intrinsics, "
            f"got {poses.shape} and {intrinsics.shape}"
        )
    landmarks_m = np.asarray(observations.landmarks_world_m, dtype=np.float64)
    weights = ObservationWeights(config.adjustment_sigma_px, config.adjustment_range_baseline_m)
    adjust = partial(
        _adjust_once, keyframe_ids, intrinsics=intrinsics, held=held, edges=edges, config=config
    )
    chosen, sample = _landmark_sample(observations, config.final_adjustment_weighting_landmarks)
    sampled_poses, sampled_m = poses, landmarks_m[chosen]
    for _ in range(config.final_adjustment_passes - 1):
        sampled_poses, sampled_m = adjust(
            sampled_poses, sampled_m, observations=sample, weights=weights, iterations=1
        )
        measured = residual_weights(sampled_poses, sampled_m, intrinsics, sample, weights)
        settled = _close(measured.sigma_px, weights.sigma_px) and _close(
            measured.range_baseline_m, weights.range_baseline_m
        )
        weights = measured
        if settled:
            break
    if sample is observations:
        landmarks_m = sampled_m
    elif sampled_poses is not poses:
        landmarks_m = _moved_with_seed_keyframe(landmarks_m, observations, poses, sampled_poses)
        landmarks_m[chosen] = sampled_m
    poses, landmarks_m = adjust(
        sampled_poses,
        landmarks_m,
        observations=observations,
        weights=weights,
        iterations=config.final_adjustment_iterations,
    )
    return poses, landmarks_m, weights


def _landmark_sample(
    observations: KeyframeObservations, limit: int | None
) -> tuple[np.ndarray, KeyframeObservations]:
    """At most ``limit`` landmark rows, evenly spread over the rows (all when None or not
    fewer), and the observations of those alone, their landmarks renumbered in that order."""
    count = len(observations.landmarks_world_m)
    if limit is None or count <= limit:
        return np.arange(count), observations
    chosen = np.arange(0, count, -(-count // limit))
    new_row = np.full(count, -1)
    new_row[chosen] = np.arange(chosen.size)
    kept = new_row[observations.landmark_rows] >= 0
    return chosen, KeyframeObservations(
        observations.keyframe_rows[kept],
        new_row[observations.landmark_rows[kept]],
        observations.pixels[kept],
        observations.depths_m[kept],
        np.asarray(observations.landmarks_world_m, dtype=np.float64)[chosen],
    )


def _moved_with_seed_keyframe(
    landmarks_world_m: np.ndarray,
    observations: KeyframeObservations,
    before_world_from_cam: np.ndarray,
    after_world_from_cam: np.ndarray,
) -> np.ndarray:
    """Each landmark moved rigidly with the keyframe of its first observation (the one its
    seed was measured from) from ``before`` to ``after`` (both (K, 4, 4)); a landmark without
    observations stays."""
    seen, first = np.unique(observations.landmark_rows, return_index=True)
    moved = after_world_from_cam @ np.linalg.inv(before_world_from_cam)
    by_landmark = moved[observations.keyframe_rows[first]]
    out = np.array(landmarks_world_m, dtype=np.float64)
    out[seen] = np.einsum("nij,nj->ni", by_landmark[:, :3, :3], out[seen]) + by_landmark[:, :3, 3]
    return out


def _close(a: float, b: float, tolerance: float = 0.1) -> bool:
    """Whether two weights agree within ``tolerance`` of the larger."""
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def residual_weights(
    world_from_cam: np.ndarray,
    landmarks_world_m: np.ndarray,
    intrinsics: np.ndarray,
    observations: KeyframeObservations,
    weights: ObservationWeights,
) -> ObservationWeights:
    """The noise the residuals of an adjustment show (variance components, robustly):
    ``sigma_px`` from the median absolute pixel residual, and the baseline at which the
    depths' disparity residuals would have that same sigma. Both are floored (at 0.01 px,
    and within a factor 100 of the previous baseline) so that exact synthetic data cannot
    make a weight infinite."""
    rows = observations.keyframe_rows
    cam_from_world = np.linalg.inv(world_from_cam)[rows]
    points_cam = (
        np.einsum(
            "nij,nj->ni", cam_from_world[:, :3, :3], landmarks_world_m[observations.landmark_rows]
        )
        + cam_from_world[:, :3, 3]
    )
    fx, fy, cx, cy = intrinsics[rows].T
    camera_k = np.zeros((rows.size, 3, 3))
    camera_k[:, 0, 0], camera_k[:, 1, 1], camera_k[:, 0, 2], camera_k[:, 1, 2] = fx, fy, cx, cy
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = project(camera_k, points_cam)
    pixel_residuals = (observations.pixels - projected).ravel()
    pixel_residuals = pixel_residuals[np.isfinite(pixel_residuals)]
    if pixel_residuals.size == 0:  # nothing observed in front of a camera: keep the weights
        return weights
    sigma_px = max(1.4826 * float(np.median(np.abs(pixel_residuals))), 0.01)
    ranged = (observations.depths_m > 0) & (points_cam[:, 2] > 0)
    if not ranged.any():
        return ObservationWeights(sigma_px, weights.range_baseline_m)
    focal_baseline = fx[ranged] * weights.range_baseline_m
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity_residuals = (
            focal_baseline / observations.depths_m[ranged] - focal_baseline / points_cam[ranged, 2]
        )
    sigma_disparity_px = max(1.4826 * float(np.median(np.abs(disparity_residuals))), 1e-6)
    ratio = float(np.clip(sigma_px / sigma_disparity_px, 0.01, 100.0))
    return ObservationWeights(sigma_px, weights.range_baseline_m * ratio)


def _adjust_once(
    keyframe_ids: Sequence[int],
    poses: np.ndarray,
    landmarks_m: np.ndarray,
    *,
    intrinsics: np.ndarray,
    held: np.ndarray,
    observations: KeyframeObservations,
    edges: Sequence[GraphEdge],
    config: BackendConfig,
    weights: ObservationWeights,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One Levenberg-Marquardt run of :func:`adjust_keyframes` at ``weights``."""
    import gtsam

    ids = [int(kid) for kid in keyframe_ids]
    row_of = {kid: row for row, kid in enumerate(ids)}
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    keys = [gtsam.symbol("k", kid) for kid in ids]
    tight = gtsam.noiseModel.Diagonal.Sigmas(
        np.array([config.prior_sigma_rad] * 3 + [config.prior_sigma_m] * 3)
    )
    weak = gtsam.noiseModel.Diagonal.Sigmas(np.array([1.0] * 3 + [0.1] * 3))
    reached = {edge.to_id for edge in edges if edge.kind == "odometry"}
    for row, kid in enumerate(ids):
        values.insert(keys[row], gtsam.Pose3(poses[row]))
        if held[row] or kid not in reached:
            prior = tight if held[row] else weak
            graph.add(gtsam.PriorFactorPose3(keys[row], gtsam.Pose3(poses[row]), prior))
    for edge in edges:
        if edge.from_id not in row_of or edge.to_id not in row_of:
            continue
        noise: Any
        if edge.kind == "loop":
            noise = _loop_noise(gtsam, edge.information, config)
        else:
            weighted = edge.information * config.adjustment_odometry_weight
            noise = gtsam.noiseModel.Gaussian.Information(weighted)
        graph.add(
            gtsam.BetweenFactorPose3(
                keys[row_of[edge.from_id]],
                keys[row_of[edge.to_id]],
                gtsam.Pose3(edge.from_from_to),
                noise,
            )
        )
    landmark_keys = [gtsam.symbol("l", row) for row in range(len(landmarks_m))]
    for key, position in zip(landmark_keys, landmarks_m, strict=True):
        values.insert(key, gtsam.Point3(position))
    baseline_m = weights.range_baseline_m
    stereo_calibrations = [
        gtsam.Cal3_S2Stereo(fx, fy, 0.0, cx, cy, baseline_m) for fx, fy, cx, cy in intrinsics
    ]
    calibrations = [gtsam.Cal3_S2(fx, fy, 0.0, cx, cy) for fx, fy, cx, cy in intrinsics]
    huber = gtsam.noiseModel.mEstimator.Huber.Create(1.345)
    stereo_noise = gtsam.noiseModel.Robust.Create(
        huber, gtsam.noiseModel.Isotropic.Sigma(3, weights.sigma_px)
    )
    pixel_noise = gtsam.noiseModel.Robust.Create(
        huber, gtsam.noiseModel.Isotropic.Sigma(2, weights.sigma_px)
    )
    depths_m = observations.depths_m
    with np.errstate(divide="ignore"):
        disparity_px = np.where(
            depths_m > 0, intrinsics[observations.keyframe_rows, 0] * baseline_m / depths_m, 0.0
        )
    for row, landmark, (u, v), disparity in zip(
        observations.keyframe_rows.tolist(),
        observations.landmark_rows.tolist(),
        observations.pixels.tolist(),
        disparity_px.tolist(),
        strict=True,
    ):
        if disparity > 0:
            graph.add(
                gtsam.GenericStereoFactor3D(
                    gtsam.StereoPoint2(u, u - disparity, v),
                    stereo_noise,
                    keys[row],
                    landmark_keys[landmark],
                    stereo_calibrations[row],
                )
            )
        else:
            graph.add(
                gtsam.GenericProjectionFactorCal3_S2(
                    gtsam.Point2(u, v),
                    pixel_noise,
                    keys[row],
                    landmark_keys[landmark],
                    calibrations[row],
                )
            )
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(iterations)
    # landmarks eliminated first: the reduced system is over the keyframe poses alone
    ordering = gtsam.Ordering()
    for key in (*landmark_keys, *keys):
        ordering.push_back(key)
    params.setOrdering(ordering)
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    adjusted_poses = np.array([result.atPose3(key).matrix() for key in keys])
    adjusted_landmarks = np.array([result.atPoint3(key) for key in landmark_keys]).reshape(-1, 3)
    return adjusted_poses, adjusted_landmarks


def _loop_noise(gtsam: Any, information: np.ndarray, config: BackendConfig) -> Any:
    """A loop factor's noise: the Gaussian of ``information`` behind ``robust_kernel``."""
    noise = gtsam.noiseModel.Gaussian.Information(information)
    if config.robust_kernel == "none":
        return noise
    estimator = {
        "cauchy": gtsam.noiseModel.mEstimator.Cauchy,
        "huber": gtsam.noiseModel.mEstimator.Huber,
    }[config.robust_kernel].Create(config.robust_kernel_scale)
    return gtsam.noiseModel.Robust.Create(estimator, noise)


def _edge(
    from_id: int, to_id: int, relative: np.ndarray, info: np.ndarray, kind: EdgeKind
) -> GraphEdge:
    relative = relative.copy()
    info = info.copy()
    relative.setflags(write=False)
    info.setflags(write=False)
    return GraphEdge(int(from_id), int(to_id), relative, info, kind)


def _checked_pose(pose: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(pose, dtype=np.float64)
    if out.shape != (4, 4) or not np.all(np.isfinite(out)):
        raise InputError(f"{name} must be a finite 4x4 pose, got shape {out.shape}")
    rot = out[:3, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-6 or np.linalg.det(rot) < 0:
        raise InputError(f"{name} has a rotation block that is not orthonormal")
    return out


def _checked_information(information: np.ndarray, name: str) -> np.ndarray:
    info = np.asarray(information, dtype=np.float64)
    if info.shape != (6, 6) or not np.all(np.isfinite(info)):
        raise InputError(f"{name} must be a finite 6x6 matrix, got shape {info.shape}")
    info = 0.5 * (info + info.T)
    if np.linalg.eigvalsh(info).min() <= 0:
        raise InputError(f"{name} is not positive definite")
    return info
