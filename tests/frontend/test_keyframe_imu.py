"""Inertial links between keyframes: every sample from one keyframe to the next of an
unbroken chain; none across a frame without a pose, another map or a sample gap."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import ImuConfig, SimConfig
from slamfront.frontend.keyframe_imu import KeyframeImuLinks
from slamfront.sim.imu import ImuErrors, imu_samples, imu_stamps_ns
from slamfront.sim.rig import BODY_FROM_CAM, sim_camera
from slamfront.sim.trajectories import get_trajectory
from slamfront.types import Features, Frame, Keyframe, TrackingState, TrackResult

CAMERA = sim_camera(SimConfig())
GRAVITY = np.array([0.0, 0.0, -1.0])


def _frame(index: int) -> Frame:
    stamp = round(index * 1e9 / 30)
    previous = round((index - 1) * 1e9 / 30) if index else -1
    stamps = imu_stamps_ns(previous, stamp, 200.0)
    samples = imu_samples(get_trajectory("loop"), BODY_FROM_CAM, stamps, ImuErrors(), None)
    image = np.zeros((8, 8), np.uint8)
    return Frame(index, stamp, image, CAMERA, imu=samples, body_from_cam=BODY_FROM_CAM)


def _result(frame: Frame, pose: bool = True, map_id: int = 0) -> TrackResult:
    return TrackResult(
        frame.index,
        frame.stamp_ns,
        TrackingState.OK if pose else TrackingState.LOST,
        np.eye(4) if pose else None,
        map_id=map_id,
        gravity_world=GRAVITY if pose else None,
    )


def _keyframe(frame: Frame, keyframe_id: int, map_id: int = 0) -> Keyframe:
    features = Features(
        np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 8), np.float32), (8, 8)
    )
    return Keyframe(
        keyframe_id,
        frame.index,
        frame.stamp_ns,
        np.eye(4),
        CAMERA,
        features,
        np.zeros((0, 3)),
        map_id=map_id,
    )


def test_links_span_the_samples_between_keyframes() -> None:
    links = KeyframeImuLinks(ImuConfig())
    frames = [_frame(i) for i in range(12)]
    first = links.step(frames[0], _result(frames[0]), [_keyframe(frames[0], 0)])
    assert first[0].imu is None  # nothing before the first keyframe
    for frame in frames[1:6]:
        assert links.step(frame, _result(frame), []) == []
    (second,) = links.step(frames[6], _result(frames[6]), [_keyframe(frames[6], 1)])
    link = second.imu
    assert (
        link is not None and link.previous_keyframe_id == 0 and link.stamp_ns == frames[6].stamp_ns
    )
    stamps = [s.stamp_ns for s in link.samples]
    assert stamps[0] <= frames[0].stamp_ns and stamps[-1] <= frames[6].stamp_ns
    assert np.all(np.diff(stamps) == 5_000_000)  # every sample, none missing
    np.testing.assert_allclose(link.gravity_world, GRAVITY * 9.81)
    # a frame without a pose breaks the chain: the next keyframe has no link
    links.step(frames[7], _result(frames[7], pose=False), [])
    (third,) = links.step(frames[8], _result(frames[8]), [_keyframe(frames[8], 2)])
    assert third.imu is None
    # a sample gap (over max_sample_gap_s) too
    links.step(replace(frames[9], imu=()), _result(frames[9]), [])
    gapped = replace(frames[10], imu=frames[10].imu[-1:])
    (fourth,) = links.step(gapped, _result(gapped), [_keyframe(gapped, 3)])
    assert fourth.imu is None
    (fifth,) = links.step(frames[11], _result(frames[11]), [_keyframe(frames[11], 4)])
    assert fifth.imu is not None and fifth.imu.previous_keyframe_id == 3


def test_another_map_breaks_the_chain() -> None:
    links = KeyframeImuLinks(ImuConfig())
    frames = [_frame(i) for i in range(3)]
    links.step(frames[0], _result(frames[0]), [_keyframe(frames[0], 0)])
    (kf,) = links.step(frames[1], _result(frames[1], map_id=1), [_keyframe(frames[1], 1, 1)])
    assert kf.imu is None
    (kf,) = links.step(frames[2], _result(frames[2], map_id=1), [_keyframe(frames[2], 2, 1)])
    assert kf.imu is not None and kf.imu.previous_keyframe_id == 1
