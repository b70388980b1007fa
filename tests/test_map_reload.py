"""A map a run saved reloads in a later run (issue 24): short maps, maps the new run sees
only part of, and a new run that never recognises the map all end with a pose graph that
solves, never gtsam's indeterminate system.

Runs go through ``run_to_directory`` (the code of ``slamfront run``) on the ``classic``
preset, the quickest with a back end, at 640x480 (at 320x240 the tracker's information is
weaker and the old fault did not show); ``fast`` failed the same way before the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import slamfront as sf
from slamfront.backend.back_end import BackEnd
from slamfront.backend.map_store import load_map
from slamfront.geometry import invert_pose
from slamfront.io.trajectory import read_tum_trajectory
from slamfront.pipeline import RunStats, run_to_directory


def run(
    out: Path, *overrides: str, load_map: Path | None = None, save_map: Path | None = None
) -> tuple[RunStats, sf.Trajectory]:
    config = sf.load_config("classic", list(overrides))
    with sf.open_source("sim:loop", config) as source:
        stats = run_to_directory(source, config, out, load_map=load_map, save_map=save_map)
        truth = source.groundtruth()
    assert truth is not None
    return stats, truth


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The map of the room's first 40 frames (five keyframes), and the map's frame from
    ground truth's (the first run started at its first camera)."""
    base = tmp_path_factory.mktemp("map")
    _, truth = run(base / "a", "sim.frames=40", save_map=base / "m.map")
    first = read_tum_trajectory(base / "a" / "trajectory.tum")
    return base / "m.map", first.world_from_body[0] @ invert_pose(truth.world_from_body[0])


def test_a_forty_frame_map_reloads_and_the_run_is_in_its_frame(
    saved: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """The issue's reproduction (then gtsam's IndeterminateSystemException at the first
    keyframe after the placement), started 20 frames in so that the map's frame is not the
    new run's first camera: every pose within 2 cm of the truth in the map's frame."""
    stats, truth = run(tmp_path, "source.start_frame=20", "sim.frames=40", load_map=saved[0])
    estimate = read_tum_trajectory(tmp_path / "trajectory.tum")
    assert stats.frames_tracked == len(estimate) >= 18
    assert stats.final_map_id == 0
    assert stats.maps_made == 1  # it went on in the saved map (the saved one is not counted)
    to_map = saved[1]
    pose_of = dict(zip(truth.stamps_ns.tolist(), truth.world_from_body, strict=True))
    errors_m = [
        np.linalg.norm(pose[:3, 3] - (to_map @ pose_of[int(stamp)])[:3, 3])
        for stamp, pose in zip(estimate.stamps_ns, estimate.world_from_body, strict=True)
    ]
    assert max(errors_m) < 0.02
    # the new run's first camera is 20 frames along the path, not at the map's origin
    assert np.linalg.norm(estimate.world_from_body[0][:3, 3]) > 0.05


def test_a_map_of_one_keyframe_reloads_and_saves_again(tmp_path: Path) -> None:
    """A map of a single keyframe (3 frames); the second run saves a map holding both
    runs' keyframes, which loads."""
    run(tmp_path / "a", "sim.frames=3", save_map=tmp_path / "one.map")
    assert len(load_map(tmp_path / "one.map").keyframes) == 1
    one, two = tmp_path / "one.map", tmp_path / "two.map"
    stats, _ = run(tmp_path / "b", "sim.frames=15", load_map=one, save_map=two)
    assert stats.frames_tracked == 15
    both = load_map(tmp_path / "two.map")
    assert len(both.keyframes) > 1
    assert {kf.map_id for kf in both.keyframes} == {0}


@pytest.mark.slow
def test_a_run_the_map_never_recognises_starts_a_map_of_its_own(
    saved: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """Across the room from the saved stretch: after ``relocalization.new_map_after_s`` of
    frames the saved map did not place, the run goes on in a map of its own (the saved map
    stays a separate, fixed part of the graph) and both are saved."""
    stats, _ = run(
        tmp_path,
        "source.start_frame=250",
        "sim.frames=300",
        "tracker.relocalization.new_map_after_s=0.3",
        load_map=saved[0],
        save_map=tmp_path / "both.map",
    )
    assert stats.frames_tracked >= 35
    assert stats.final_map_id == 1 and stats.maps_made == 1
    maps = {kf.map_id for kf in load_map(tmp_path / "both.map").keyframes}
    assert maps == {0, 1}
    # a map file of two unconnected maps reloads too: the view is placed in the second
    again, _ = run(
        tmp_path / "again",
        "source.start_frame=270",
        "sim.frames=285",
        load_map=tmp_path / "both.map",
    )
    assert again.frames_tracked == 15 and again.final_map_id == 1


def test_a_failing_pose_graph_keeps_the_run_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net for what is left: gtsam failing on a system (RuntimeError, as for an
    indeterminate one) no longer loses the run; its files hold the tracker's poses and the
    run's notes say why."""

    def fail(self: BackEnd, keyframe: sf.Keyframe) -> None:
        raise RuntimeError("Indeterminate linear system detected near k1")

    monkeypatch.setattr(BackEnd, "step", fail)
    stats, _ = run(tmp_path, "sim.frames=12")
    assert len(read_tum_trajectory(tmp_path / "trajectory.tum")) == stats.frames_tracked == 12
    assert any("back end failed (RuntimeError: Indeterminate" in n for n in stats.notes)
