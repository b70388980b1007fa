"""The trajectory sink writes what it is given: the tracker's poses as they come, and at the
end (with a back end) the final frame poses of the back end's last ``OptimizedPoses``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slamfront.geometry import make_pose, so3_exp
from slamfront.io.trajectory import read_tum_trajectory, write_tum_trajectory
from slamfront.sinks.trajectory import TrajectorySink
from slamfront.types import (
    CameraModel,
    Frame,
    OptimizedPoses,
    TrackingState,
    TrackResult,
    Trajectory,
)

CAMERA = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0)


def random_poses(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.array(
        [make_pose(so3_exp(rng.normal(0, 0.5, 3)), rng.normal(0, 2.0, 3)) for _ in range(count)]
    )


def feed(sink: TrajectorySink, tracked: np.ndarray) -> list[int]:
    """Frames 0-5 with the tracker's poses ``tracked`` (4 of them), frames 2 and 4 lost;
    returns the stamps of the tracked ones."""
    image = np.zeros((480, 640), np.uint8)
    stamps, poses = [], iter(tracked)
    for index in range(6):
        stamp_ns = 1_000_000_000 + index * 33_333_333
        if index in (2, 4):
            result = TrackResult(index, stamp_ns, TrackingState.LOST, None)
        else:
            result = TrackResult(index, stamp_ns, TrackingState.OK, next(poses))
            stamps.append(stamp_ns)
        sink.on_result(Frame(index, stamp_ns, image, CAMERA), result)
    return stamps


def correction(revision: int, final: Trajectory | None = None) -> OptimizedPoses:
    return OptimizedPoses(revision, (0,), np.eye(4)[None], frame_trajectory=final)


def test_the_final_frame_poses_are_written_as_given(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tracked = random_poses(rng, 4)
    sink = TrajectorySink(tmp_path / "trajectory.tum", tmp_path / "trajectory_raw.tum")
    stamps = feed(sink, tracked)
    given = Trajectory(np.array(stamps, np.int64), random_poses(rng, 4))
    sink.on_optimized(correction(1))  # a loop during the run: no frame poses yet
    sink.on_optimized(correction(2, given))
    sink.close()
    write_tum_trajectory(tmp_path / "expected.tum", given)
    written = (tmp_path / "trajectory.tum").read_bytes()
    assert written == (tmp_path / "expected.tum").read_bytes()
    raw = read_tum_trajectory(tmp_path / "trajectory_raw.tum")
    assert raw.stamps_ns.tolist() == stamps
    assert np.allclose(raw.world_from_body, tracked, atol=1e-6)  # the tracker's, as they came


def test_without_final_frame_poses_the_tracker_poses_stay(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tracked = random_poses(rng, 4)
    sink = TrajectorySink(tmp_path / "trajectory.tum", tmp_path / "trajectory_raw.tum")
    feed(sink, tracked)
    sink.on_optimized(correction(1))
    sink.close()
    written = read_tum_trajectory(tmp_path / "trajectory.tum")
    assert np.allclose(written.world_from_body, tracked, atol=1e-6)
    assert sink.poses_written == 4


def test_without_a_raw_file_the_final_poses_are_written_all_the_same(tmp_path: Path) -> None:
    # a monocular-inertial run without a back end: its final poses are the map at the scale
    # the IMU measured, frames held back for it included
    rng = np.random.default_rng(2)
    sink = TrajectorySink(tmp_path / "trajectory.tum")
    stamps = feed(sink, random_poses(rng, 4))
    final = random_poses(rng, 6)
    all_stamps = np.concatenate([np.array(stamps) - 2, np.array(stamps)[-2:] + 1])
    sink.on_optimized(correction(1, Trajectory(np.sort(all_stamps), final)))
    sink.close()
    written = read_tum_trajectory(tmp_path / "trajectory.tum")
    assert np.allclose(written.world_from_body, final, atol=1e-6)
    assert not (tmp_path / "trajectory_raw.tum").exists()
