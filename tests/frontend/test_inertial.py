"""InertialOdometry on the simulator's IMU (frames without rendering): static and moving
initialisation, gyro prediction through fast turns, bounded propagation, gaps and
out-of-order samples."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from slamfront.config import ImuConfig, SimConfig
from slamfront.frontend.inertial_odometry import InertialOdometry
from slamfront.geometry import invert_pose, rotation_angle_deg
from slamfront.sim.imu import GRAVITY_WORLD_M_S2, ImuErrors, imu_samples, imu_stamps_ns
from slamfront.sim.rig import BODY_FROM_CAM, sim_camera
from slamfront.sim.trajectories import TrajectoryModel, get_trajectory
from slamfront.types import Frame

FPS = 30.0
# the simulator's default errors: biases, and per-sample noise of a consumer IMU at 200 Hz
ERRORS = ImuErrors((0.001, -0.002, 0.0015), (0.02, -0.01, 0.03), 0.002, 0.02)
_IMAGE = np.zeros((8, 8), np.uint8)
_CAMERA = sim_camera(SimConfig())


def _frames(name: str, count: int, errors: ImuErrors = ERRORS, seed: int = 0) -> list[Frame]:
    model = get_trajectory(name)
    rng = np.random.default_rng(seed)
    frames = []
    previous = -1
    for index in range(count):
        stamp = round(index * 1e9 / FPS)
        stamps = imu_stamps_ns(previous, stamp, 200.0)
        samples = imu_samples(model, BODY_FROM_CAM, stamps, errors, rng)
        frames.append(
            Frame(index, stamp, _IMAGE, _CAMERA, imu=samples, body_from_cam=BODY_FROM_CAM)
        )
        previous = stamp
    return frames


def _truth(name: str, frame: Frame) -> np.ndarray:
    pose: np.ndarray = get_trajectory(name).world_from_cam(frame.stamp_ns * 1e-9)
    return pose


def _gravity_error_deg(imu: InertialOdometry) -> float:
    assert imu.gravity_world is not None
    cos = float(imu.gravity_world @ GRAVITY_WORLD_M_S2) / 9.81
    return math.degrees(math.acos(min(1.0, cos)))


def test_static_start_gives_gravity_and_gyro_bias() -> None:
    imu = InertialOdometry(ImuConfig(init_window_s=0.5))
    for frame in _frames("still", 20):
        imu.integrate(frame)
        imu.update(frame.stamp_ns, _truth("still", frame))
    assert _gravity_error_deg(imu) < 0.3  # the accelerometer bias tilts it slightly
    assert np.linalg.norm(imu.gyro_bias_rad_s - np.array(ERRORS.gyro_bias_rad_s)) < 5e-4


def test_moving_start_aligns_gravity_with_the_tracked_poses() -> None:
    imu = InertialOdometry(ImuConfig(init_window_s=0.5))
    rng = np.random.default_rng(3)
    for frame in _frames("loop", 30):
        pose = _truth("loop", frame).copy()
        pose[:3, 3] += rng.normal(0.0, 0.001, 3)  # millimetre tracking noise
        imu.integrate(frame)
        imu.update(frame.stamp_ns, pose)
    assert imu.gravity_world is not None
    assert _gravity_error_deg(imu) < 1.0


def test_prediction_follows_a_fast_head_turn() -> None:
    """Through turns of up to 400 deg/s the gyro predicts the rotation to a small fraction
    of what a constant-velocity model misses."""
    name = "headturn"
    frames = _frames(name, 240)
    imu = InertialOdometry(ImuConfig())
    worst_imu = worst_cv = 0.0
    previous: np.ndarray | None = None
    before: np.ndarray | None = None
    for frame in frames:
        imu.integrate(frame)
        truth = _truth(name, frame)
        if previous is not None and before is not None:
            constant_velocity = previous @ invert_pose(before) @ previous
            predicted = imu.predict(constant_velocity)
            assert predicted is not None
            worst_imu = max(worst_imu, rotation_angle_deg(predicted[:3, :3].T @ truth[:3, :3]))
            worst_cv = max(
                worst_cv, rotation_angle_deg(constant_velocity[:3, :3].T @ truth[:3, :3])
            )
        imu.update(frame.stamp_ns, truth)
        before, previous = previous, truth
    assert worst_cv > 2.0
    assert worst_imu < 0.1


def test_propagation_is_bounded_in_time_and_close_to_the_truth() -> None:
    name = "loop"
    frames = _frames(name, 70)
    imu = InertialOdometry(ImuConfig(max_propagation_s=0.5))
    for frame in frames[:45]:
        imu.integrate(frame)
        imu.update(frame.stamp_ns, _truth(name, frame))
    last_visual_ns = frames[44].stamp_ns
    for frame in frames[45:]:
        imu.integrate(frame)
        propagated = imu.propagate(frame.stamp_ns)
        if (frame.stamp_ns - last_visual_ns) * 1e-9 > 0.5:
            assert propagated is None
            imu.lose()
            continue
        assert propagated is not None
        truth = _truth(name, frame)
        assert np.linalg.norm(propagated[:3, 3] - truth[:3, 3]) < 0.02
        assert rotation_angle_deg(propagated[:3, :3].T @ truth[:3, :3]) < 0.3
    assert imu.gravity_world is None  # the chain broke: gravity waits for the next pose
    imu.update(frames[-1].stamp_ns, _truth(name, frames[-1]))
    assert _gravity_error_deg(imu) < 1.0  # carried through the gap by the gyro


def test_a_sample_gap_is_never_integrated_across() -> None:
    frames = _frames("loop", 12)
    imu = InertialOdometry(ImuConfig(max_sample_gap_s=0.02))
    for frame in frames[:6]:
        imu.integrate(frame)
        imu.update(frame.stamp_ns, _truth("loop", frame))
    assert imu.gravity_world is None  # (the window is still short)
    # frame 6 lost its samples: a gap at its end, and one before frame 7's first sample
    imu.integrate(replace(frames[6], imu=()))
    assert not imu.has_delta and imu.gaps == 1
    assert imu.predict(_truth("loop", frames[6])) is None
    imu.lose()
    imu.integrate(frames[7])
    assert not imu.has_delta and imu.gaps == 2
    imu.update(frames[7].stamp_ns, _truth("loop", frames[7]))
    imu.integrate(frames[8])  # from here on the samples are continuous again
    assert imu.has_delta and imu.gaps == 2
    assert imu.predict(_truth("loop", frames[7])) is not None


def test_out_of_order_samples_are_dropped_and_counted() -> None:
    frames = _frames("loop", 4)
    imu = InertialOdometry(ImuConfig())
    imu.integrate(frames[0])
    imu.integrate(frames[1])
    late = replace(frames[2], imu=(frames[1].imu[-1], *frames[2].imu))  # a repeated sample
    imu.integrate(late)
    assert imu.samples_dropped == 1
    assert imu.has_delta and imu.gaps == 0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="max_propagation_s"):
        ImuConfig(max_propagation_s=-1.0)
    with pytest.raises(ValueError, match="time_offset_s"):
        ImuConfig(time_offset_s=0.5)


def test_poses_of_unknown_scale_get_rotation_prediction_only() -> None:
    """Monocular poses (arbitrary scale): no moving start, no velocity, no propagation, but
    the gyro still predicts the rotation."""
    name = "loop"
    imu = InertialOdometry(ImuConfig(init_window_s=0.5))
    frames = _frames(name, 40)
    for frame in frames[:-1]:
        imu.integrate(frame)
        pose = _truth(name, frame).copy()
        pose[:3, 3] *= 0.3  # the scale a monocular start happened to pick
        imu.update(frame.stamp_ns, pose, metric=False)
    assert imu.gravity_world is None
    imu.integrate(frames[-1])
    previous = _truth(name, frames[-2])
    predicted = imu.predict(previous)
    assert predicted is not None
    truth = _truth(name, frames[-1])
    assert rotation_angle_deg(predicted[:3, :3].T @ truth[:3, :3]) < 0.05
    assert imu.propagate(frames[-1].stamp_ns) is None


def _model_frames(model: TrajectoryModel, count: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    frames, previous = [], -1
    for index in range(count):
        stamp = round(index * 1e9 / FPS)
        samples = imu_samples(
            model, BODY_FROM_CAM, imu_stamps_ns(previous, stamp, 200.0), ERRORS, rng
        )
        frames.append(
            Frame(index, stamp, _IMAGE, _CAMERA, imu=samples, body_from_cam=BODY_FROM_CAM)
        )
        previous = stamp
    return frames


def _monocular(
    model: TrajectoryModel, count: int, map_scale: float
) -> tuple[InertialOdometry, float | None]:
    """Poses of ``model`` at ``map_scale`` (as a monocular start picks it) with millimetre
    noise, fed as the tracker does: once the IMU gives a scale the map (and so every later
    pose) is rescaled. Returns the odometry and the scale it found (None: none)."""
    imu = InertialOdometry(ImuConfig())
    rng = np.random.default_rng(5)
    applied = None
    for frame in _model_frames(model, count):
        pose = model.world_from_cam(frame.stamp_ns * 1e-9).copy()
        pose[:3, 3] += rng.normal(0.0, 0.001, 3)
        pose[:3, 3] *= map_scale * (applied if applied is not None else 1.0)
        imu.integrate(frame)
        imu.update(frame.stamp_ns, pose, metric=False)
        found = imu.take_scale()
        if found is not None:
            applied = found * (applied if applied is not None else 1.0)
            imu.rescale(found)
    return imu, applied


def test_monocular_scale_and_gravity_from_the_imu() -> None:
    """Up-to-scale poses on the loop (accelerations of a walking rig, the simulator's biases
    and noise): the alignment measures the map's scale and gravity."""
    imu, scale = _monocular(get_trajectory("loop"), 240, map_scale=0.3)
    assert scale is not None and imu.scale_known
    assert abs(scale * 0.3 - 1.0) < 0.02, scale * 0.3
    assert _gravity_error_deg(imu) < 1.0


def test_monocular_scale_waits_for_acceleration() -> None:
    """At constant velocity the IMU cannot tell the scale: no scale is given, however long."""
    velocity = np.array([0.4, 0.0, 0.1])

    def poses(t: np.ndarray) -> np.ndarray:
        out = np.repeat(np.eye(4)[None], t.size, axis=0)
        out[:, :3, :3] = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # looking along y
        out[:, :3, 3] = t[:, None] * velocity
        return out

    line = TrajectoryModel("line", "room", 10.0, None, poses)
    imu, scale = _monocular(line, 180, map_scale=0.3)
    assert scale is None and not imu.scale_known
    assert imu.last_alignment is None or imu.last_alignment.scale_rel_std > 0.01


def test_a_rig_cruising_at_constant_velocity_starts_with_its_velocity() -> None:
    """Driving straight at a steady 9 m/s the IMU reads what it reads at rest (gravity, no
    turn): it starts with gravity and gyro bias as at rest, but with the velocity the tracked
    poses show, so its first prediction moves with the car."""
    velocity = np.array([9.0, 0.0, 0.0])

    def poses(t: np.ndarray) -> np.ndarray:
        out = np.repeat(np.eye(4)[None], t.size, axis=0)
        out[:, :3, :3] = np.array([[0.0, 0, 1.0], [-1.0, 0, 0], [0, -1.0, 0]])  # looking along x
        out[:, :3, 3] = t[:, None] * velocity + [0.0, 0.0, 1.65]
        return out

    cruise = TrajectoryModel("cruise", "street", 5.0, None, poses)
    imu = InertialOdometry(ImuConfig(init_window_s=0.5))
    frames = _model_frames(cruise, 40)
    first = None
    for index, frame in enumerate(frames):
        imu.integrate(frame)
        if first is not None:
            break
        imu.update(frame.stamp_ns, cruise.world_from_cam(frame.stamp_ns * 1e-9))
        first = index if imu.gravity_world is not None else None
    assert first is not None and _gravity_error_deg(imu) < 0.3
    predicted = imu.predict(None)
    assert predicted is not None
    truth = cruise.world_from_cam(frames[first + 1].stamp_ns * 1e-9)
    assert np.linalg.norm(predicted[:3, 3] - truth[:3, 3]) < 0.01
