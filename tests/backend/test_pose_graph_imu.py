"""IMU factors in the pose graph: preintegrated simulator IMU between keyframes corrects
odometry whose rotation drifts, and gives the keyframes' velocities."""

from __future__ import annotations

import numpy as np
import pytest

from slamfront.backend.pose_graph import PoseGraph
from slamfront.config import BackendConfig
from slamfront.geometry import invert_pose, rotation_angle_deg, so3_exp
from slamfront.sim.imu import GRAVITY_WORLD_M_S2, ImuErrors, body_motion, imu_samples, imu_stamps_ns
from slamfront.sim.rig import BODY_FROM_CAM
from slamfront.sim.trajectories import get_trajectory
from slamfront.types import ImuNoise, KeyframeImu, LoopCandidate

pytest.importorskip("gtsam")

RATE_HZ = 200.0
DRIFT_RAD = 0.005  # the odometry's rotation error per keyframe, about the optical axis
ERRORS = ImuErrors((0.001, -0.002, 0.0015), (0.02, -0.01, 0.03), 0.002, 0.02)
NOISE = ImuNoise(0.002 / RATE_HZ**0.5, 1e-5, 0.02 / RATE_HZ**0.5, 1e-4, RATE_HZ)


def _graph(with_imu: bool) -> tuple[PoseGraph, list[np.ndarray], list[int]]:
    model = get_trajectory("loop")
    stamps = [round(t * 1e9) for t in np.arange(0.0, 4.01, 0.25)]
    truth = [model.world_from_cam(s * 1e-9) for s in stamps]
    rng = np.random.default_rng(1)
    graph = PoseGraph(BackendConfig())
    information = np.diag([1.0 / 0.01**2] * 3 + [1.0 / 0.02**2] * 3)  # a weak odometry
    estimate = truth[0]
    for k, stamp in enumerate(stamps):
        if k == 0:
            graph.add_keyframe(0, truth[0])
            continue
        relative = invert_pose(truth[k - 1]) @ truth[k]
        relative[:3, :3] = relative[:3, :3] @ so3_exp(np.array([0.0, 0.0, DRIFT_RAD]))
        estimate = estimate @ relative
        graph.add_keyframe(k, estimate, prev_from_cur=relative, information=information)
        if with_imu:
            samples = imu_samples(
                model, BODY_FROM_CAM, imu_stamps_ns(stamps[k - 1] - 5_000_000, stamp, RATE_HZ),
                ERRORS, rng,
            )  # fmt: skip
            link = KeyframeImu(
                k - 1, stamps[k - 1], stamp, samples, BODY_FROM_CAM, NOISE, GRAVITY_WORLD_M_S2
            )
            graph.add_imu(k, link)
    return graph, truth, stamps


def _worst_errors(poses: np.ndarray, truth: list[np.ndarray]) -> tuple[float, float]:
    """Largest position (m) and rotation (deg) error."""
    pairs = list(zip(poses, truth, strict=True))
    return (
        max(float(np.linalg.norm(p[:3, 3] - t[:3, 3])) for p, t in pairs),
        max(rotation_angle_deg(p[:3, :3].T @ t[:3, :3]) for p, t in pairs),
    )


def test_imu_factors_correct_a_drifting_odometry() -> None:
    odometry, truth, _ = _graph(with_imu=False)
    inertial, _, stamps = _graph(with_imu=True)
    moved_odometry, turned_odometry = _worst_errors(odometry.optimize().world_from_cam, truth)
    moved_inertial, turned_inertial = _worst_errors(inertial.optimize().world_from_cam, truth)
    assert turned_odometry > 3.0
    assert turned_inertial < 0.2 * turned_odometry
    assert moved_inertial < 0.3 * moved_odometry
    # the camera's velocity at each keyframe (about 0.6 m/s)
    motion = body_motion(get_trajectory("loop"), np.eye(4), np.array(stamps) * 1e-9)
    for k, truth_m_s in enumerate(motion.velocity_world_m_s):
        assert np.linalg.norm(inertial.velocity_of(k) - truth_m_s) < 0.1


def test_exact_imu_gives_the_exact_velocities() -> None:
    """Two keyframes at their true poses, a noise-free IMU 4.4 cm from the camera and turned
    against it: the factor holds at the true camera velocities (lever arm included)."""
    model = get_trajectory("headturn")
    stamps = [1_601_700_000, 1_903_300_000]  # inside the first fast turn, between samples
    truth = [model.world_from_cam(s * 1e-9) for s in stamps]
    graph = PoseGraph(BackendConfig())
    graph.add_keyframe(0, truth[0])
    exact = np.diag([1e8] * 6)
    graph.add_keyframe(
        1, truth[1], prev_from_cur=invert_pose(truth[0]) @ truth[1], information=exact
    )
    stamps_imu = imu_stamps_ns(stamps[0] - 5_000_000, stamps[1], RATE_HZ)
    samples = imu_samples(model, BODY_FROM_CAM, stamps_imu, ImuErrors(), None)
    graph.add_imu(
        1, KeyframeImu(0, stamps[0], stamps[1], samples, BODY_FROM_CAM, NOISE, GRAVITY_WORLD_M_S2)
    )
    graph.optimize()
    motion = body_motion(model, np.eye(4), np.array(stamps) * 1e-9)
    for k in (0, 1):
        assert np.linalg.norm(graph.velocity_of(k) - motion.velocity_world_m_s[k]) < 0.003


def test_imu_factor_needs_both_keyframes() -> None:
    graph = PoseGraph(BackendConfig())
    graph.add_keyframe(0, np.eye(4))
    link = KeyframeImu(0, 0, 10, (), BODY_FROM_CAM, NOISE, GRAVITY_WORLD_M_S2)
    with pytest.raises(Exception, match="unknown keyframe 1"):
        graph.add_imu(1, link)


def test_maps_with_imu_factors_merge() -> None:
    """Two maps each with an IMU chain (gravity in its own frame): the merge keeps the older
    map's IMU factors, drops the absorbed one's, and the merged graph is exact."""
    model = get_trajectory("loop")
    stamps = [round(t * 1e9) for t in np.arange(0.0, 3.0, 0.25)]
    truth = [model.world_from_cam(s * 1e-9) for s in stamps]
    second_from_world = invert_pose(truth[6])  # map 1 starts at the identity
    graph = PoseGraph(BackendConfig())
    exact = np.diag([1e6] * 6)
    for k, stamp in enumerate(stamps):
        map_id = 0 if k < 6 else 1
        frame_from_world = np.eye(4) if map_id == 0 else second_from_world
        if k in (0, 6):
            graph.add_keyframe(k, frame_from_world @ truth[k], map_id=map_id)
            continue
        relative = invert_pose(truth[k - 1]) @ truth[k]
        graph.add_keyframe(
            k,
            frame_from_world @ truth[k],
            prev_from_cur=relative,
            information=exact,
            reference_keyframe_id=k - 1,
            map_id=map_id,
        )
        stamps_imu = imu_stamps_ns(stamps[k - 1] - 5_000_000, stamp, RATE_HZ)
        samples = imu_samples(model, BODY_FROM_CAM, stamps_imu, ImuErrors(), None)
        gravity = frame_from_world[:3, :3] @ GRAVITY_WORLD_M_S2
        graph.add_imu(
            k, KeyframeImu(k - 1, stamps[k - 1], stamp, samples, BODY_FROM_CAM, NOISE, gravity)
        )
    before = graph.optimize()
    np.testing.assert_allclose(before.world_from_cam[6], np.eye(4), atol=1e-6)
    loop = invert_pose(truth[0]) @ truth[11]
    graph.merge_maps(
        1,
        0,
        invert_pose(second_from_world),
        LoopCandidate(11, 0, 0.9, loop, 100, 0.9, np.diag([1e4] * 6)),
    )
    after = graph.optimize()
    assert after.map_ids == (0,) * 12
    np.testing.assert_allclose(after.world_from_cam, np.stack(truth), atol=1e-3)
    motion = body_motion(model, np.eye(4), np.array(stamps[:6]) * 1e-9)
    for k in range(6):
        assert np.linalg.norm(graph.velocity_of(k) - motion.velocity_world_m_s[k]) < 0.01
