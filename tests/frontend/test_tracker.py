"""Tracker logic on a feature-level world (no images, so no image alignment): known 3-D
points, an exact camera path, an "extractor" that projects the points (with pixel noise) and a
nearest-neighbour matcher. Image rendering and learned networks are tested elsewhere; this
isolates the geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slamfront.backend.vocabulary import Vocabulary, train_vocabulary
from slamfront.config import AlignmentConfig, RelocalizationConfig, TrackerConfig
from slamfront.frontend.tracker import Tracker
from slamfront.geometry import invert_pose, make_pose, so3_exp, transform_points
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    FrameIssue,
    Matches,
    StereoRig,
    TrackingState,
)
from tests.fakes import FakeExtractor, nn_matcher

CAMERA = CameraModel(640, 480, 450.0, 450.0, 320.0, 240.0)
FPS = 30.0
# the feature-level world has no images to align
UNALIGNED = TrackerConfig(alignment=AlignmentConfig(enabled=False))


class PointWorld:
    """Random points in a shell 2-4 m around the origin (furniture and walls of a room),
    each with its own descriptor."""

    def __init__(self, seed: int = 0, count: int = 6000) -> None:
        rng = np.random.default_rng(seed)
        direction = rng.normal(size=(count, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        direction[:, 1] *= 0.5  # a room is wider than it is high
        self.points = direction * rng.uniform(2.0, 4.0, size=(count, 1))
        desc = rng.normal(size=(count, 32)).astype(np.float32)
        self.descriptors = desc / np.linalg.norm(desc, axis=1, keepdims=True)
        self.rng = rng

    def observe(
        self, cam_from_world: np.ndarray, noise_px: float = 0.3, camera: CameraModel = CAMERA
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pc = transform_points(cam_from_world, self.points)
        front = pc[:, 2] > 0.2
        uv = pc[:, :2] / np.where(front, pc[:, 2], 1.0)[:, None]
        px = uv * [camera.fx, camera.fy] + [camera.cx, camera.cy]
        inside = (
            front
            & (px[:, 0] > 2)
            & (px[:, 0] < camera.width_px - 3)
            & (px[:, 1] > 2)
            & (px[:, 1] < camera.height_px - 3)
        )
        ids = np.flatnonzero(inside)
        noisy = px[ids] + self.rng.normal(scale=noise_px, size=(ids.size, 2))
        return ids, noisy.astype(np.float32), pc[ids, 2]


def trajectory(n: int, radius: float = 1.0) -> list[np.ndarray]:
    """world_from_cam along a circle, looking outwards and turning slowly."""
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        rot = so3_exp(np.array([0.0, a, 0.0]))
        poses.append(make_pose(rot, [radius * np.sin(a), 0.1 * np.sin(3 * a), radius * np.cos(a)]))
    return poses


def make_frames(
    world: PointWorld,
    poses: list[np.ndarray],
    extractor: FakeExtractor,
    sensor: str,
    blank: range = range(0),
    noise_px: float = 0.3,
) -> list[Frame]:
    frames = []
    rig = StereoRig(CAMERA, CAMERA, make_pose(np.eye(3), [-0.1, 0, 0]), rectified=True)
    for i, world_from_cam in enumerate(poses):
        tag = 2 * i
        image = np.zeros((4, 4), np.uint8)
        image[0, :2] = divmod(tag, 256)
        right = image.copy()
        right[0, :2] = divmod(tag + 1, 256)
        cam_from_world = invert_pose(world_from_cam)
        if i in blank:
            empty = Features(
                np.zeros((0, 2), np.float32),
                np.zeros(0, np.float32),
                np.zeros((0, 32), np.float32),
                (640, 480),
            )
            extractor.by_tag[tag] = extractor.by_tag[tag + 1] = empty
            depth = np.zeros((480, 640), np.float32)
        else:
            ids, px, z = world.observe(cam_from_world, noise_px)
            desc = world.descriptors[ids]
            extractor.by_tag[tag] = Features(px, np.ones(len(ids), np.float32), desc, (640, 480))
            rids, rpx, _ = world.observe(rig.right_from_left @ cam_from_world, noise_px)
            extractor.by_tag[tag + 1] = Features(
                rpx, np.ones(len(rids), np.float32), world.descriptors[rids], (640, 480)
            )
            depth = np.zeros((480, 640), np.float32)
            col = np.rint(px[:, 0]).astype(int)
            row = np.rint(px[:, 1]).astype(int)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    depth[row + dr, col + dc] = z
        frames.append(
            Frame(
                index=i,
                stamp_ns=int(i * 1e9 / FPS),
                image=image,
                camera=CAMERA,
                depth_m=depth if sensor == "rgbd" else None,
                image_right=right if sensor == "stereo" else None,
                stereo=rig if sensor == "stereo" else None,
            )
        )
    return frames


def run(
    sensor: str, n: int = 150, blank: range = range(0), config: TrackerConfig | None = None
) -> tuple[list, list[np.ndarray]]:
    world = PointWorld()
    poses = trajectory(n)
    extractor = FakeExtractor()
    frames = make_frames(world, poses, extractor, sensor, blank)
    tracker = Tracker(config or UNALIGNED, extractor, nn_matcher)
    return [tracker.step(f) for f in frames], poses


def position_errors(
    results: list, poses: list[np.ndarray], scale_align: bool = False
) -> np.ndarray:
    """Errors after expressing the estimate in the ground truth's frame via the first pose."""
    est = [(r.frame_index, r.world_from_cam) for r in results if r.world_from_cam is not None]
    first_index, first = est[0]
    gt_from_est = poses[first_index] @ invert_pose(first)
    pos_est = np.array([(gt_from_est @ p)[:3, 3] for _, p in est])
    pos_gt = np.array([poses[i][:3, 3] for i, _ in est])
    if scale_align:
        origin = poses[first_index][:3, 3]
        scale = np.sum((pos_gt - origin) * (pos_est - origin)) / np.sum((pos_est - origin) ** 2)
        pos_est = origin + scale * (pos_est - origin)
    return np.linalg.norm(pos_est - pos_gt, axis=1)


# stereo depth searches the right image's pixels, which these point-world frames do not draw:
# stereo tracking is covered on rendered pairs (tests/test_end_to_end.py, real recordings)
@pytest.mark.parametrize("sensor", ["rgbd"])
def test_metric_tracking_is_accurate(sensor: str) -> None:
    results, poses = run(sensor)
    assert results[0].state == TrackingState.OK
    assert all(r.state == TrackingState.OK for r in results)
    errors = position_errors(results, poses)
    assert errors.max() < 0.02, errors.max()
    keyframes = sum(r.is_keyframe for r in results)
    assert 5 <= keyframes <= 60
    ok = [r for r in results[1:]]
    assert np.median([r.num_inliers for r in ok]) > 100
    assert np.median([r.reprojection_rmse_px for r in ok]) < 0.8


def test_monocular_initialises_and_tracks_up_to_scale() -> None:
    results, poses = run("mono", n=150)
    states = [r.state for r in results]
    assert states[0] == TrackingState.INITIALIZING
    first_ok = states.index(TrackingState.OK)
    assert first_ok < 20
    assert all(s == TrackingState.OK for s in states[first_ok:])
    errors = position_errors(results, poses, scale_align=True)
    path = sum(np.linalg.norm(poses[i + 1][:3, 3] - poses[i][:3, 3]) for i in range(len(poses) - 1))
    assert errors.max() < 0.03 * path


def test_blank_frames_lose_then_relocalise() -> None:
    blank = range(60, 70)
    results, poses = run("rgbd", blank=blank)
    for i in blank:
        assert results[i].state == TrackingState.LOST
        assert results[i].world_from_cam is None
    after = [r.state for r in results[70:]]
    assert TrackingState.OK in after[:5]
    assert all(s == TrackingState.OK for s in after[after.index(TrackingState.OK) :])
    errors = position_errors(results, poses)
    assert errors.max() < 0.03


def test_reanchor_moves_live_pose_with_corrected_keyframe() -> None:
    world = PointWorld()
    extractor = FakeExtractor()
    frames = make_frames(world, trajectory(40), extractor, "rgbd", noise_px=0.0)
    plain = Tracker(UNALIGNED, extractor, nn_matcher)
    moved = Tracker(UNALIGNED, extractor, nn_matcher)
    for f in frames[:20]:
        plain.step(f)
        moved.step(f)
    reference = moved.keyframes()[-1]
    shift = make_pose(so3_exp([0, 0.02, 0]), [0.2, 0.0, -0.1])
    assert moved.reanchor(reference.keyframe_id, shift @ reference.world_from_cam)
    for f in frames[20:25]:
        expected = shift @ plain.step(f).world_from_cam
        result = moved.step(f)
        assert result.state == TrackingState.OK
        np.testing.assert_allclose(result.world_from_cam, expected, atol=1e-6)
    assert not moved.reanchor(10_000, np.eye(4))


def test_keyframe_records_carry_points_in_camera_frame() -> None:
    world = PointWorld()
    extractor = FakeExtractor()
    frames = make_frames(world, trajectory(30), extractor, "rgbd")
    tracker = Tracker(UNALIGNED, extractor, nn_matcher)
    for f in frames:
        tracker.step(f)
    for kf in tracker.keyframes():
        has = np.isfinite(kf.points_cam_m[:, 0])
        assert has.sum() > 50
        # points in the keyframe's camera frame project onto its keypoints
        px = kf.points_cam_m[has, :2] / kf.points_cam_m[has, 2:3] * 450.0 + [320, 240]
        assert np.median(np.linalg.norm(px - kf.features.keypoints[has], axis=1)) < 1.0


class CountingMatcher:
    """nn_matcher that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, f0: Features, f1: Features) -> Matches:
        self.calls += 1
        return nn_matcher(f0, f1)


def run_motion_model(sensor: str, poses: list[np.ndarray]) -> tuple[list, CountingMatcher]:
    extractor = FakeExtractor()
    frames = make_frames(PointWorld(), poses, extractor, sensor)
    matcher = CountingMatcher()
    config = dataclasses.replace(UNALIGNED, match_every_frame=False)
    tracker = Tracker(config, extractor, matcher)
    return [tracker.step(f) for f in frames], matcher


@pytest.mark.parametrize("sensor", ["rgbd"])  # rgbd only: see test_metric_tracking_is_accurate
def test_motion_model_tracks_without_the_matcher(sensor: str) -> None:
    """With ``match_every_frame`` off the matcher runs on the first tracked frames only (no
    velocity yet); the local-map search from the predicted pose tracks the rest as well."""
    poses = trajectory(150)
    results, matcher = run_motion_model(sensor, poses)
    assert all(r.state == TrackingState.OK for r in results)
    assert position_errors(results, poses).max() < 0.02
    matched = [r.frame_index for r in results if r.matches is not None]
    assert matched == [1], matched  # frame 0 starts the map; frame 1 has no velocity yet
    assert matcher.calls == 1
    assert 5 <= sum(r.is_keyframe for r in results) <= 60
    assert np.median([r.num_inliers for r in results[2:]]) > 100


def test_motion_model_falls_back_to_the_matcher_after_a_jump() -> None:
    """A sudden 6 degree turn puts the landmarks ~47 px from where the motion model projects
    them, beyond the 12 px search: that frame is matched, and tracking goes on exactly."""
    poses = trajectory(150)
    jump = make_pose(so3_exp(np.array([0.0, np.radians(6.0), 0.0])), np.zeros(3))
    poses = poses[:80] + [p @ jump for p in poses[80:]]
    results, _ = run_motion_model("rgbd", poses)
    assert all(r.state == TrackingState.OK for r in results)
    assert results[80].matches is not None
    assert all(r.matches is None for r in results[83:])
    assert position_errors(results, poses).max() < 0.02


def test_monocular_motion_model_runs_the_matcher_only_to_start() -> None:
    """Monocular frames are tracked by the motion model's search as well: after the two-view
    start the matcher does not run (keyframes pair their landmarks along epipolar lines)."""
    poses = trajectory(150)
    results, matcher = run_motion_model("mono", poses)
    first_ok = [r.state for r in results].index(TrackingState.OK)
    assert first_ok < 20
    assert all(r.state == TrackingState.OK for r in results[first_ok:])
    assert all(r.matches is None for r in results[first_ok + 1 :])
    assert matcher.calls == first_ok  # one per start attempt
    errors = position_errors(results, poses, scale_align=True)
    path = sum(np.linalg.norm(poses[i + 1][:3, 3] - poses[i][:3, 3]) for i in range(len(poses) - 1))
    assert errors.max() < 0.03 * path


class BlindMatcher:
    """nn_matcher until ``blind_from`` calls have been made, then no matches at all."""

    def __init__(self, blind_from: int) -> None:
        self.calls = 0
        self.blind_from = blind_from

    def __call__(self, f0: Features, f1: Features) -> Matches:
        self.calls += 1
        return nn_matcher(f0, f1) if self.calls <= self.blind_from else Matches.empty()


def test_search_pose_stands_when_the_matcher_does_worse() -> None:
    """The matcher backs up a local-map search that found less than ``motion.min_share`` of
    the last frame's landmarks (1.0 here: nearly every frame); when the matcher then finds
    nothing, the search's pose is kept instead of losing the frame."""
    extractor = FakeExtractor()
    poses = trajectory(100)
    frames = make_frames(PointWorld(), poses, extractor, "rgbd")
    matcher = BlindMatcher(blind_from=1)
    motion = dataclasses.replace(UNALIGNED.motion, min_share=1.0)
    config = dataclasses.replace(UNALIGNED, match_every_frame=False, motion=motion)
    tracker = Tracker(config, extractor, matcher)
    results = [tracker.step(f) for f in frames]
    assert matcher.calls > 10  # the search alone was too little on many frames
    assert all(r.state == TrackingState.OK for r in results)
    assert position_errors(results, poses).max() < 0.02


def test_frames_without_a_pose_say_why() -> None:
    blank = range(60, 70)
    results, _ = run("rgbd", blank=blank)
    assert all(r.issue is None for r in results if r.state == TrackingState.OK)
    assert {results[i].issue for i in blank} == {FrameIssue.FEW_FEATURES}
    # an RGB-D start without any valid depth waits, saying so
    world, extractor = PointWorld(), FakeExtractor()
    frames = make_frames(world, trajectory(3), extractor, "rgbd")
    no_depth = dataclasses.replace(frames[0], depth_m=np.zeros((480, 640), np.float32))
    result = Tracker(UNALIGNED, extractor, nn_matcher).step(no_depth)
    assert result.state == TrackingState.INITIALIZING
    assert result.issue == FrameIssue.NO_DEPTH


def lost_then_back(
    config: TrackerConfig, vocabulary: Vocabulary | None = None
) -> tuple[list, list[np.ndarray], Tracker]:
    """Out along the circle for 100 frames, 1.5 s of blank frames, then on again from where
    frame 20 was: a view the window (the last keyframes) no longer holds, but the map does."""
    world = PointWorld()
    circle = trajectory(300)
    poses = circle[:100] + circle[55:100] + circle[20:120]
    extractor = FakeExtractor()
    frames = make_frames(world, poses, extractor, "rgbd", blank=range(100, 145))
    tracker = Tracker(config, extractor, nn_matcher, vocabulary=vocabulary)
    return [tracker.step(f) for f in frames], poses, tracker


def world_vocabulary() -> Vocabulary:
    """A vocabulary of the point world's descriptors, as the packaged ones are of images."""
    world = PointWorld()
    rng = np.random.default_rng(5)
    return train_vocabulary([world.descriptors[rng.choice(6000, 500)] for _ in range(8)], "world")


def test_lost_beyond_the_window_relocalises_among_every_keyframe() -> None:
    config = dataclasses.replace(UNALIGNED, relocalization=RelocalizationConfig(candidates=3))
    results, poses, tracker = lost_then_back(config, world_vocabulary())
    assert all(r.issue == FrameIssue.FEW_FEATURES for r in results[100:145])
    assert all(r.state == TrackingState.OK for r in results[145:])
    assert {r.map_id for r in results if r.world_from_cam is not None} == {0}
    assert tracker.maps_made == 1
    assert position_errors(results, poses).max() < 0.03


def test_lost_too_long_without_recognition_starts_a_new_map() -> None:
    config = dataclasses.replace(UNALIGNED, relocalization=RelocalizationConfig(candidates=0))
    results, poses, tracker = lost_then_back(config)
    assert tracker.maps_made == 2
    first = [r for r in results if r.world_from_cam is not None and r.map_id == 0]
    second = [r for r in results if r.world_from_cam is not None and r.map_id == 1]
    assert len(first) == 100 and len(second) == 100
    # the new map has its own frame: its first pose is the identity, and it is accurate in it
    np.testing.assert_allclose(second[0].world_from_cam, np.eye(4), atol=1e-12)
    assert position_errors(second, poses).max() < 0.03
    assert {kf.map_id for kf in tracker.keyframes()} == {1}
