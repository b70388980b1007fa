"""The final pose of every tracked frame (backend/frame_refit.py): frames placed on their
keyframe's optimised pose, then refitted on the bundle-adjusted landmarks they were tracked on;
on a wall of landmarks with exact ground truth, alone and through ``BackEnd.finish``."""

from __future__ import annotations

import numpy as np

from slamfront.backend.back_end import BackEnd
from slamfront.backend.frame_refit import TrackedFrame, TrackedFrames, refit_frames
from slamfront.config import BackendConfig, LoopClosureConfig
from slamfront.geometry import invert_pose, make_pose, project, so3_exp, transform_points
from slamfront.types import (
    CameraModel,
    Features,
    Keyframe,
    Matches,
    OptimizedPoses,
    TrackingState,
    TrackResult,
)

CAMERA = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0)


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Landmark ids and positions (a wall 3 m ahead) and five camera poses along x."""
    points_world = np.column_stack(
        [rng.uniform(-2, 2, 300), rng.uniform(-1.5, 1.5, 300), rng.uniform(2.5, 3.5, 300)]
    )
    ids = np.arange(1000, 1300, dtype=np.int64)
    poses = [
        make_pose(so3_exp(np.array([0, 0.02 * i, 0])), np.array([0.05 * i, 0, 0])) for i in range(5)
    ]
    return ids, points_world, poses


def tracked_results(
    rng: np.random.Generator,
    ids: np.ndarray,
    points_world: np.ndarray,
    truth: list[np.ndarray],
    world_from_keyframe: np.ndarray,
    observed: int = 300,
    pixel_noise_px: float = 0.0,
) -> list[TrackResult]:
    """Frames 1-4 tracked against keyframe 0 (at ``world_from_keyframe``) with a 5 mm /
    0.2 deg error in their pose relative to it (frame 0 is the keyframe itself); each sees
    ``observed`` landmarks at their (noisy) pixels and measures their exact depth."""
    results = []
    for index, world_from_cam in enumerate(truth):
        error = make_pose(so3_exp(rng.normal(0, 0.002, 3)), rng.normal(0, 0.005, 3))
        reference_from_cam = (
            invert_pose(truth[0]) @ world_from_cam @ (error if index else np.eye(4))
        )
        points_cam = transform_points(invert_pose(world_from_cam), points_world)
        pixels = project(CAMERA.K, points_cam) + rng.normal(0, pixel_noise_px, (len(ids), 2))
        results.append(
            TrackResult(
                frame_index=index,
                stamp_ns=(index + 1) * 10**8,
                state=TrackingState.OK,
                world_from_cam=world_from_keyframe @ reference_from_cam,
                reference_keyframe_id=0,
                reference_from_cam=reference_from_cam,
                landmark_ids=ids[:observed],
                landmark_pixels=pixels[:observed],
                landmark_depths_m=points_cam[:observed, 2].astype(np.float32),
            )
        )
    return results


def refit(
    landmarks: tuple[np.ndarray, np.ndarray] | None,
    observed: int = 300,
    pixel_noise_px: float = 0.0,
    range_baseline_m: float | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames of :func:`tracked_results` (through the temporary file) refitted on
    ``landmarks`` (ids, positions), their optimised keyframe at its true pose. Returns the
    true poses and the final ones."""
    rng = np.random.default_rng(3)
    ids, points_world, truth = scene(rng)
    frames = TrackedFrames()
    for result in tracked_results(
        rng, ids, points_world, truth, truth[0], observed, pixel_noise_px
    ):
        frames.append(result)
    poses = OptimizedPoses(
        1,
        (0,),
        truth[0][None],
        landmark_ids=None if landmarks is None else landmarks[0],
        landmarks_world_m=None if landmarks is None else landmarks[1],
        range_baseline_m=range_baseline_m,
    )
    trajectory, map_ids = refit_frames(frames, poses, CAMERA.K)
    assert np.array_equal(map_ids, np.zeros(len(trajectory), np.int64))
    frames.close()
    assert trajectory.stamps_ns.tolist() == [(i + 1) * 10**8 for i in range(5)]
    return truth, trajectory.world_from_body


def position_errors_m(truth: list[np.ndarray], poses: np.ndarray) -> np.ndarray:
    return np.array(
        [np.linalg.norm(p[:3, 3] - t[:3, 3]) for p, t in zip(poses, truth, strict=True)]
    )


def test_frames_are_refitted_on_the_adjusted_landmarks() -> None:
    ids, points_world, _ = scene(np.random.default_rng(3))
    truth, poses = refit((ids, points_world))
    # two refit steps from a placement 5 mm off end within microns
    assert position_errors_m(truth, poses).max() < 1e-5


def test_without_adjusted_landmarks_frames_ride_on_their_keyframe() -> None:
    truth, poses = refit(None)
    errors = position_errors_m(truth, poses)
    assert errors[0] < 1e-9 and errors[1:].min() > 1e-3


def test_a_frame_with_too_few_known_landmarks_keeps_its_placement() -> None:
    ids, points_world, _ = scene(np.random.default_rng(3))
    # the adjustment placed only 10 of the landmarks the frames saw
    truth, poses = refit((ids[:10], points_world[:10]))
    assert position_errors_m(truth, poses)[1:].min() > 1e-3


def test_frames_measured_depths_take_out_what_noisy_pixels_leave() -> None:
    """Pixels with 0.5 px noise: on pixels alone the refit stays 1.2-1.5 mm off (measured);
    with the frame's exact depths weighed as a 30 m virtual baseline, 0.1-0.35 mm."""
    ids, points_world, _ = scene(np.random.default_rng(3))
    errors_m = []
    for baseline_m in (None, 30.0):
        truth, poses = refit((ids, points_world), 300, 0.5, baseline_m)
        errors_m.append(position_errors_m(truth, poses)[1:].mean())
    pixels_only_m, with_depths_m = errors_m
    assert with_depths_m < 0.25 * pixels_only_m, errors_m


def test_a_frame_not_on_a_known_keyframe_keeps_the_tracker_pose() -> None:
    """A frame whose reference keyframe is not among the optimised ones, or that has none."""
    rng = np.random.default_rng(3)
    ids, points_world, truth = scene(rng)
    frames = TrackedFrames()
    elsewhere = make_pose(np.eye(3), np.array([0.3, 0.0, 0.0]))
    results = tracked_results(rng, ids, points_world, truth, elsewhere)
    results[1] = TrackResult(
        1, results[1].stamp_ns, TrackingState.OK, results[1].world_from_cam
    )  # no reference
    for result in results:
        frames.append(result)
    other_keyframe = OptimizedPoses(
        1, (7,), truth[0][None], landmark_ids=ids, landmarks_world_m=points_world
    )
    trajectory, _ = refit_frames(frames, other_keyframe, CAMERA.K)
    for result, pose in zip(results, trajectory.world_from_body, strict=True):
        assert result.world_from_cam is not None
        assert np.array_equal(pose, result.world_from_cam)


def test_tracked_frames_give_back_what_was_appended() -> None:
    """Exact poses, ids and depths; pixels to float32; frames without a pose are not kept;
    missing observations read back empty, missing depths as 0."""
    rng = np.random.default_rng(4)
    ids = np.array([5, 9, 2], np.int64)
    pixels = rng.uniform(0, 640, (3, 2))
    depths_m = np.array([1.5, 0.0, 2.25], np.float32)
    pose = make_pose(so3_exp(rng.normal(0, 0.3, 3)), rng.normal(0, 1.0, 3))
    relative = make_pose(so3_exp(rng.normal(0, 0.3, 3)), rng.normal(0, 1.0, 3))
    frames = TrackedFrames()
    appended = [
        TrackResult(
            0,
            10,
            TrackingState.OK,
            pose,
            reference_keyframe_id=3,
            reference_from_cam=relative,
            landmark_ids=ids,
            landmark_pixels=pixels,
            landmark_depths_m=depths_m,
        ),
        TrackResult(1, 20, TrackingState.LOST, None),
        TrackResult(2, 30, TrackingState.INITIALIZING, None),
        TrackResult(3, 40, TrackingState.OK, pose, landmark_ids=ids, landmark_pixels=pixels),
        TrackResult(4, 50, TrackingState.OK, pose),
    ]
    for result in appended:
        frames.append(result)
    assert len(frames) == 3
    first, second, third = read = list(frames)
    assert [frame.stamp_ns for frame in read] == [10, 40, 50]
    assert [frame.stamp_ns for frame in frames] == [10, 40, 50]  # read again, same order
    assert all(isinstance(frame, TrackedFrame) for frame in read)
    assert np.array_equal(first.world_from_cam, pose)
    assert first.reference_keyframe_id == 3
    assert np.array_equal(first.reference_from_cam, relative)
    assert np.array_equal(first.landmark_ids, ids)
    assert np.array_equal(first.landmark_pixels, pixels.astype(np.float32))
    assert np.array_equal(first.landmark_depths_m, depths_m)
    assert second.reference_keyframe_id is None
    assert np.array_equal(second.reference_from_cam, np.eye(4))
    assert np.array_equal(second.landmark_depths_m, np.zeros(3, np.float32))
    assert third.landmark_ids.shape == (0,) and third.landmark_pixels.shape == (0, 2)
    frames.append(appended[0])  # appending goes on after a read
    assert [frame.stamp_ns for frame in frames] == [10, 40, 50, 10]
    frames.close()


def wall_keyframe(
    keyframe_id: int,
    world_from_cam: np.ndarray,
    ids: np.ndarray,
    points_world: np.ndarray,
    seed_world_from_cam: np.ndarray,
    world_from_reference: np.ndarray | None = None,
) -> Keyframe:
    """A keyframe at ``world_from_cam`` that sees the wall's landmarks at their exact pixels
    and depths, carrying the pose ``seed_world_from_cam``."""
    points_cam = transform_points(invert_pose(world_from_cam), points_world)
    pixels = project(CAMERA.K, points_cam)
    seen = (
        (points_cam[:, 2] > 0)
        & (pixels[:, 0] >= 0)
        & (pixels[:, 0] < 640)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 1] < 480)
    )
    count = int(seen.sum())
    return Keyframe(
        keyframe_id=keyframe_id,
        frame_index=keyframe_id * 4,
        stamp_ns=(keyframe_id * 4 + 1) * 10**8,
        world_from_cam=seed_world_from_cam,
        camera=CAMERA,
        features=Features(
            pixels[seen].astype(np.float32),
            np.ones(count, np.float32),
            np.zeros((count, 64), np.float32),
            (640, 480),
        ),
        points_cam_m=points_cam[seen],
        reprojection_rmse_px=0.3,
        reference_keyframe_id=None if world_from_reference is None else 0,
        reference_from_cam=(
            None
            if world_from_reference is None
            else invert_pose(world_from_reference) @ seed_world_from_cam
        ),
        landmark_ids=ids[seen],
        depth_m=points_cam[seen, 2].astype(np.float32),
    )


def test_back_end_finish_gives_every_frame_its_refitted_pose() -> None:
    """Keyframes at frames 0 and 4 (the second seeded 5 mm off) and frames 1-4 tracked with
    5 mm errors relative to keyframe 0: the final adjustment puts the keyframe back, and each
    frame ends on its true pose; with the adjustment off, frames only ride on the keyframe."""
    rng = np.random.default_rng(3)
    ids, points_world, truth = scene(rng)
    results = tracked_results(rng, ids, points_world, truth, truth[0])
    seed = make_pose(truth[4][:3, :3], truth[4][:3, 3] + np.array([0.005, -0.003, 0.002]))
    final_m = {}
    for adjust in (True, False):
        config = BackendConfig(
            final_adjustment=adjust, loop_closure=LoopClosureConfig(enabled=False)
        )
        back_end = BackEnd(config, lambda f0, f1: Matches.empty(), "xfeat")
        back_end.step(wall_keyframe(0, truth[0], ids, points_world, truth[0]))
        back_end.step(wall_keyframe(1, truth[4], ids, points_world, seed, truth[0]))
        frames = TrackedFrames()
        for result in results:
            frames.append(result)
        final = back_end.finish(frames)
        frames.close()
        assert final is not None and final.frame_trajectory is not None
        trajectory = final.frame_trajectory
        assert trajectory.stamps_ns.tolist() == [result.stamp_ns for result in results]
        final_m[adjust] = position_errors_m(truth, trajectory.world_from_body)
    tracker_m = position_errors_m(truth, np.array([result.world_from_cam for result in results]))
    assert tracker_m[1:].min() > 1e-3
    assert final_m[True].max() < 1e-5, final_m
    assert final_m[False][1:].min() > 1e-3, final_m  # placed on keyframe 0, which was exact


def test_back_end_finish_without_frames_has_no_frame_trajectory() -> None:
    rng = np.random.default_rng(3)
    ids, points_world, truth = scene(rng)
    config = BackendConfig(loop_closure=LoopClosureConfig(enabled=False))
    back_end = BackEnd(config, lambda f0, f1: Matches.empty(), "xfeat")
    back_end.step(wall_keyframe(0, truth[0], ids, points_world, truth[0]))
    final = back_end.finish()
    assert final is not None and final.keyframe_ids == (0,)
    assert final.frame_trajectory is None
