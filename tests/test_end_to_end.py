"""End to end on the synthetic rig and the real EuRoC clip: the accuracy bars of the tracker
(issue 5) and the back end (issue 6), each run once per module and shared by the tests.

Runs go through ``run_to_directory``, i.e. the same code as ``slamfront run``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import slamfront as sf
from slamfront.eval.trajectory_metrics import evaluate_trajectories
from slamfront.geometry import invert_pose, rotation_angle_deg
from slamfront.io.trajectory import read_tum_trajectory
from slamfront.pipeline import RunStats, run_to_directory
from tests.fakes import IgnoringSink

pytestmark = pytest.mark.slow


class LoopCollector(IgnoringSink):
    """A sink that keeps which frame each keyframe is and the latest optimised poses."""

    def __init__(self) -> None:
        self.frame_of: dict[int, int] = {}
        self.optimized: sf.OptimizedPoses | None = None
        self.matched_frames = 0  # frames the tracker ran the matcher on

    def on_result(self, frame: sf.Frame, result: sf.TrackResult) -> None:
        self.matched_frames += result.matches is not None

    def on_keyframe(self, keyframe: sf.Keyframe) -> None:
        self.frame_of[keyframe.keyframe_id] = keyframe.frame_index

    def on_optimized(self, poses: sf.OptimizedPoses) -> None:
        self.optimized = poses


@dataclass(frozen=True)
class Run:
    out: Path
    stats: RunStats
    truth: sf.Trajectory
    path_m: float
    loops: LoopCollector

    def ate_m(self, name: str = "trajectory.tum", align: str = "se3") -> float:
        estimate = read_tum_trajectory(self.out / name)
        result = evaluate_trajectories(reference=self.truth, estimate=estimate, align=align)  # type: ignore[arg-type]
        assert result.num_matched_poses == len(estimate)
        return float(result.ate_m.rmse)

    def stats_json(self) -> dict[str, object]:
        return json.loads((self.out / "stats.json").read_text())


def run(
    tmp: Path,
    spec: str,
    preset: str,
    *overrides: str,
    save_map: Path | None = None,
    load_map: Path | None = None,
) -> Run:
    config = sf.load_config(preset, list(overrides))
    loops = LoopCollector()
    with sf.open_source(spec, config) as source:
        stats = run_to_directory(
            source,
            config,
            tmp,
            frames_skipped=lambda: source.frames_skipped,
            save_map=save_map,
            load_map=load_map,
            extra_sinks=[loops],
        )
        truth = source.groundtruth()
    assert truth is not None
    steps = np.diff(truth.positions_m, axis=0)
    return Run(tmp, stats, truth, float(np.linalg.norm(steps, axis=1).sum()), loops)


SEEDS = (0, 1, 2)
"""Renderings of the synthetic room (textures and noise differ by seed) on which the tracker
is compared with ORB: one run's ATE swings by half a millimetre with details of the texture
(ORB alone: 1.8-2.5 mm over these seeds), so one seed alone could decide a comparison by chance."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, shared_weights: Path) -> dict[str, Run]:
    """``fast_<sensor>``: the fast preset with the back end (seed 0; ``fast_rgbd_<seed>`` for
    the other RGB-D seeds); ``alone_<sensor>_<seed>`` and ``classic_<sensor>_<seed>``: the fast
    and ORB trackers with no back end at all."""
    del shared_weights  # the fixture only makes sure the published weights are reachable
    base = tmp_path_factory.mktemp("e2e")
    alone = "backend.enabled=false"
    plans: dict[str, tuple[str, ...]] = {
        "fast_stereo": ("sim:loop", "fast", "sim.sensor=stereo"),
        "alone_stereo_0": ("sim:loop", "fast", "sim.sensor=stereo", alone),
        "classic_stereo_0": ("sim:loop", "classic", "sim.sensor=stereo", alone),
        "every_rgbd_0": ("sim:loop", "fast", "tracker.match_every_frame=true", alone),
    }
    for seed in SEEDS:
        plans[f"alone_rgbd_{seed}"] = ("sim:loop", "fast", f"sim.seed={seed}", alone)
        plans[f"classic_rgbd_{seed}"] = ("sim:loop", "classic", f"sim.seed={seed}", alone)
        if seed:
            plans[back_end_run("rgbd", seed)] = ("sim:loop", "fast", f"sim.seed={seed}")
    runs = {name: run(base / name, *plan) for name, plan in plans.items()}
    runs["fast_rgbd"] = run(base / "fast_rgbd", "sim:loop", "fast", save_map=base / "room.map")
    return runs


def back_end_run(sensor: str, seed: int) -> str:
    """Name of the fast preset's run with the back end on ``seed``."""
    return f"fast_{sensor}" if seed == 0 else f"fast_{sensor}_{seed}"


def ate_summary(runs: dict[str, Run], sensor: str) -> str:
    """Every run of ``sensor``: the trackers alone per seed, and the back end where it ran."""
    parts = []
    for seed in SEEDS:
        if f"alone_{sensor}_{seed}" not in runs:
            continue
        part = (
            f"seed {seed}: fast alone {runs[f'alone_{sensor}_{seed}'].ate_m() * 1e3:.2f} / "
            f"classic alone {runs[f'classic_{sensor}_{seed}'].ate_m() * 1e3:.2f} mm"
        )
        if back_end_run(sensor, seed) in runs:
            fast = runs[back_end_run(sensor, seed)]
            part += (
                f", with the back end {fast.ate_m() * 1e3:.2f} mm (its raw poses "
                f"{fast.ate_m('trajectory_raw.tum') * 1e3:.2f} mm)"
            )
        parts.append(part)
    return f"{sensor}: {'; '.join(parts)}; path {runs[f'fast_{sensor}'].path_m:.2f} m"


@pytest.mark.parametrize("sensor", ["rgbd", "stereo"])
def test_tracker_alone_is_within_one_percent(runs: dict[str, Run], sensor: str) -> None:
    alone = runs[f"alone_{sensor}_0"]
    assert alone.stats.frames_lost == 0
    assert alone.ate_m() <= 0.01 * alone.path_m, ate_summary(runs, sensor)
    # well under the percent, so that a regression shows
    assert alone.ate_m() <= 0.0025, ate_summary(runs, sensor)


@pytest.mark.parametrize(
    ("sensor", "seed", "margin"),
    [("rgbd", 0, 1.0), ("rgbd", 1, 1.0), ("rgbd", 2, 1.0), ("stereo", 0, 1.1)],
)
def test_tracker_alone_beats_orb(
    runs: dict[str, Run], sensor: str, seed: int, margin: float
) -> None:
    """On every RGB-D seed. On stereo the ORB tracker, refined by the same alignment, comes
    within the tracker's run-to-run spread on this rig (a change of the rendering at the level
    of a grey level moves either by a third): there the learned tracker may not be more than
    10 % worse."""
    fast, classic = runs[f"alone_{sensor}_{seed}"], runs[f"classic_{sensor}_{seed}"]
    assert fast.ate_m() < margin * classic.ate_m(), ate_summary(runs, sensor)


def test_motion_model_tracker_matches_rarely(runs: dict[str, Run]) -> None:
    """The preset tracks a frame by the local-map search from the motion model's pose and
    runs the matcher only when that finds too little (measured: on 1 frame of 465)."""
    fast = runs["alone_rgbd_0"]
    assert fast.loops.matched_frames < 0.1 * fast.stats.frames_tracked


def test_matcher_every_frame_tracker_stays_accurate(runs: dict[str, Run]) -> None:
    """``tracker.match_every_frame=true`` (the matcher on every frame, against the reference
    keyframe) keeps the bars of the preset's tracker (measured: ATE 1.68 mm, seed 0)."""
    every, classic = runs["every_rgbd_0"], runs["classic_rgbd_0"]
    assert every.stats.frames_lost == 0
    assert every.loops.matched_frames == every.stats.frames_tracked - 1  # all but the first
    assert every.ate_m() <= 0.0025
    assert every.ate_m() < classic.ate_m(), ate_summary(runs, "rgbd")


def assert_loops_are_true(run: Run) -> None:
    """Every accepted loop joins keyframes of one place, with their true relative pose."""
    collector = run.loops
    assert collector.optimized is not None
    poses = dict(
        zip(collector.optimized.keyframe_ids, collector.optimized.world_from_cam, strict=True)
    )
    truth = run.truth.world_from_body
    for query, match in collector.optimized.loop_edges:
        true_rel = invert_pose(truth[collector.frame_of[match]]) @ truth[collector.frame_of[query]]
        # the same place (the repeated boxes stand 3 m apart), and the graph agrees with truth
        # (a false factor that the robust kernel merely down-weights fails the first check)
        assert np.linalg.norm(true_rel[:3, 3]) < 1.5, (query, match)
        error = invert_pose(true_rel) @ (invert_pose(poses[match]) @ poses[query])
        assert np.linalg.norm(error[:3, 3]) < 0.1, (query, match)
        assert rotation_angle_deg(error[:3, :3]) < 3.0, (query, match)


@pytest.mark.parametrize("sensor", ["rgbd", "stereo"])
def test_back_end_closes_the_revisit(runs: dict[str, Run], sensor: str) -> None:
    """The loop trajectory comes back to its start at frame 420 (14 s) and goes on for 45
    frames: the back end must join that stretch to the first keyframes, and only truly."""
    fast = runs[f"fast_{sensor}"]
    collector = fast.loops
    assert collector.optimized is not None
    revisits = [
        (collector.frame_of[q], collector.frame_of[m]) for q, m in collector.optimized.loop_edges
    ]
    assert any(q >= 420 and m < 60 for q, m in revisits), revisits
    assert_loops_are_true(fast)
    optimized = fast.ate_m()
    assert optimized <= 0.005 * fast.path_m, ate_summary(runs, sensor)
    assert optimized < fast.ate_m("trajectory_raw.tum"), ate_summary(runs, sensor)
    # the optimised file holds every tracked frame, as the back end's final poses give them
    written = read_tum_trajectory(fast.out / "trajectory.tum")
    assert len(written) == fast.stats.frames_tracked
    final = collector.optimized.frame_trajectory
    assert final is not None
    assert np.array_equal(written.stamps_ns, final.stamps_ns)
    assert np.allclose(written.positions_m, final.positions_m, rtol=0, atol=1e-9)  # 9 decimals


@pytest.mark.parametrize(("sensor", "seed"), [("rgbd", 0), ("rgbd", 1), ("rgbd", 2), ("stereo", 0)])
def test_back_end_halves_the_tracker_error(runs: dict[str, Run], sensor: str, seed: int) -> None:
    """Against the same tracker with no back end at all (the raw file of a run with the back
    end already follows the loop corrections live). Measured (2026-12-05): RGB-D seeds 0-2
    0.26 / 0.29 / 0.23 mm from 0.71 / 1.13 / 1.04 mm, stereo 0.54 from 1.42 mm (0.37x / 0.26x /
    0.22x, 0.38x). Seed 0 needs the frames refitted with their measured depths: on pixels
    alone 0.45 mm, 0.64x."""
    optimized = runs[back_end_run(sensor, seed)].ate_m()
    assert optimized <= 0.5 * runs[f"alone_{sensor}_{seed}"].ate_m(), ate_summary(runs, sensor)


@pytest.mark.parametrize(("sensor", "seed"), [("rgbd", 0), ("rgbd", 1), ("rgbd", 2), ("stereo", 0)])
def test_back_end_halves_the_orb_tracker_error(
    runs: dict[str, Run], sensor: str, seed: int
) -> None:
    """Measured: 0.26 / 0.29 / 0.23 mm vs ORB 2.70 / 1.82 / 2.15 mm (RGB-D seeds 0-2), 0.54 vs
    2.23 mm (stereo)."""
    optimized = runs[back_end_run(sensor, seed)].ate_m()
    assert optimized <= 0.5 * runs[f"classic_{sensor}_{seed}"].ate_m(), ate_summary(runs, sensor)


def test_outputs_of_a_run(runs: dict[str, Run]) -> None:
    fast = runs["fast_rgbd"]
    stats = fast.stats_json()
    assert stats["frames_read"] == len(fast.truth) == stats["frames_tracked"]
    assert set(stats["median_ms"]) >= {"read_ms", "extract_ms", "match_ms", "pose_ms"}  # type: ignore[arg-type]
    config = sf.load_config(str(fast.out / "config.yaml"))
    assert config.extractor.model == "xfeat"


def poses_of(out: Path) -> np.ndarray:
    return read_tum_trajectory(out / "trajectory.tum").world_from_body


def drift(poses: np.ndarray) -> tuple[float, float]:
    """Largest distance (m) and rotation (deg) of any pose from the first."""
    first_inv = invert_pose(poses[0])
    dist = max(float(np.linalg.norm(p[:3, 3] - poses[0][:3, 3])) for p in poses)
    angle = max(rotation_angle_deg((first_inv @ p)[:3, :3]) for p in poses)
    return dist, angle


def test_still_rig_stays_put(tmp_path: Path, shared_weights: Path) -> None:
    result = run(tmp_path, "sim:still", "fast", "sim.frames=60")
    dist, angle = drift(poses_of(tmp_path))
    assert result.stats.frames_tracked == 60
    assert dist < 0.03 and angle < 1.0


def test_euroc_clip_stays_put(tmp_path: Path, shared: Path, shared_weights: Path) -> None:
    config = sf.load_config("fast")
    clip = shared / "data" / "euroc" / "V1_01_easy_clip"
    with sf.open_source(f"euroc:{clip}", config) as source:
        stats = run_to_directory(source, config, tmp_path)
    assert stats.frames_tracked == stats.frames_read == 95
    dist, angle = drift(poses_of(tmp_path))
    assert dist < 0.03 and angle < 1.0


def test_blank_frames_lose_then_relocalise(tmp_path: Path, shared_weights: Path) -> None:
    result = run(
        tmp_path,
        "sim:loop",
        "fast",
        "sim.frames=150",
        "sim.blank_start=70",
        "sim.blank_count=10",
        "backend.enabled=false",
        "tracker.imu.enabled=false",  # visual relocalisation (the IMU would bridge the gap)
    )
    tracked = read_tum_trajectory(tmp_path / "trajectory.tum")
    stamps = set(tracked.stamps_ns.tolist())
    truth_stamps = result.truth.stamps_ns
    assert not stamps & set(truth_stamps[70:80].tolist())  # no pose invented while lost
    assert result.stats.frames_lost >= 10
    assert set(truth_stamps[80:85].tolist()) & stamps  # back within 5 frames
    assert result.ate_m() <= 0.01 * result.path_m


def test_a_new_map_after_a_long_loss_merges_at_the_revisit(
    tmp_path: Path, shared_weights: Path
) -> None:
    """1.5 s of black frames with relocalisation among old keyframes off: tracking starts a
    second map in its own frame, and when the loop comes back to the start the back end joins
    it to the first through a verified loop. trajectory.tum then holds every tracked frame in
    one frame (the first map's), as accurate as an uninterrupted run."""
    result = run(
        tmp_path,
        "sim:loop",
        "fast",
        "sim.blank_start=150",
        "sim.blank_count=45",
        "tracker.relocalization.candidates=0",
        "tracker.imu.enabled=false",  # the visual maps (the IMU would bridge 0.5 s of it)
    )
    stats = result.stats_json()
    assert stats["maps_made"] == 2 and stats["maps_merged"] == 1
    assert stats["final_map_id"] == 0
    assert stats["poses_per_map"] == {"0": result.stats.frames_tracked}
    assert stats["frames_lost_by_cause"] == {"few_features": 31}  # the first 1 s of black
    assert stats["frames_initializing_by_cause"] == {"few_features": 14}
    assert not (tmp_path / "trajectory_map1.tum").exists()
    assert_loops_are_true(result)
    assert result.ate_m() <= 0.001, result.ate_m()


@pytest.fixture(scope="module")
def mono(tmp_path_factory: pytest.TempPathFactory, shared_weights: Path) -> Run:
    del shared_weights
    out = tmp_path_factory.mktemp("mono")
    return run(out, "sim:loop", "fast", "sim.sensor=mono", "tracker.imu.enabled=false")


def test_monocular_initialises_and_tracks(mono: Run) -> None:
    """Two-view start (frame 18), then keyframe triangulation keeps the map alive to the
    end of the loop; scale is arbitrary and the run says so."""
    tracked = read_tum_trajectory(mono.out / "trajectory.tum")
    stamps = set(tracked.stamps_ns.tolist())
    assert len(stamps & set(mono.truth.stamps_ns[20:].tolist())) == len(mono.truth) - 20
    assert "scale is arbitrary" in " ".join(mono.stats.notes)


def test_monocular_scale_holds_around_the_loop(mono: Run) -> None:
    """The scale of the track (20-frame steps, estimated over true length) stays put from
    the start to the end of the loop, the turns included. Before new landmarks were
    triangulated from aligned positions it collapsed after frame 240 on five seeds in nine
    (0.36 to 0.19 of the truth within 60 frames on seed 1)."""
    tracked = read_tum_trajectory(mono.out / "trajectory.tum")
    row_of = {stamp: i for i, stamp in enumerate(tracked.stamps_ns.tolist())}
    frames = range(20, len(mono.truth), 20)
    rows = [row_of[int(mono.truth.stamps_ns[f])] for f in frames]
    estimated = np.linalg.norm(np.diff(tracked.positions_m[rows], axis=0), axis=1)
    true = np.linalg.norm(np.diff(mono.truth.positions_m[list(frames)], axis=0), axis=1)
    scales = estimated / true
    assert scales.max() < 1.05 * scales.min(), np.round(scales, 3)


def test_monocular_within_two_percent_around_the_loop(mono: Run) -> None:
    """The issue's 2 % bar (after Sim(3)) over the whole loop: measured 0.04-0.09 % on
    seeds 0-8 (this run: seed 0)."""
    tracked = read_tum_trajectory(mono.out / "trajectory.tum")
    result = evaluate_trajectories(reference=mono.truth, estimate=tracked, align="sim3")
    assert result.num_matched_poses >= len(mono.truth) - 20  # initialised at frame 18
    assert result.ate_m.rmse <= 0.02 * mono.path_m
    # near what it measures today, so that a regression shows
    assert result.ate_m.rmse <= 0.0025 * mono.path_m


KITTI_LIKE = ("sim.width_px=1241", "sim.height_px=376", "sim.hfov_deg=81.6")
"""KITTI's image shape and focal length (the drive's frames come at KITTI's 10 Hz)."""


def test_monocular_car_drive_through_a_turn(tmp_path: Path, shared_weights: Path) -> None:
    """A car at 8-9.5 m/s with a 90 deg left turn, monocular as KITTI's left camera (no IMU):
    the issue's held-back bars for such a drive are a start within 20 frames, 90 % of frames
    tracked and 2 % of the path after Sim(3). Measured on seed 0: started at frame 1, 199
    of 200 frames, 0.044 % of the path."""
    del shared_weights
    drive = run(
        tmp_path, "sim:drive", "fast", *KITTI_LIKE, "sim.sensor=mono", "tracker.imu.enabled=false"
    )
    tracked = read_tum_trajectory(drive.out / "trajectory.tum")
    first = int(np.flatnonzero(drive.truth.stamps_ns == tracked.stamps_ns[0])[0])
    assert first <= 10
    assert drive.stats.frames_tracked == len(drive.truth) - first
    result = evaluate_trajectories(reference=drive.truth, estimate=tracked, align="sim3")
    # near what it measures today, so that a regression shows
    assert result.ate_m.rmse <= 0.002 * drive.path_m, result.ate_m.rmse


def test_identical_objects_never_close_a_false_loop(tmp_path: Path, shared_weights: Path) -> None:
    """The corridor passes five identical boxes 3 m apart and never comes back: a loop may
    only join keyframes that truly see the same place, with the true relative pose."""
    result = run(tmp_path, "sim:repeated", "fast", "sim.frames=450")
    assert result.stats.frames_tracked >= 440
    assert_loops_are_true(result)
    assert result.ate_m() <= 0.01 * result.path_m


def test_second_session_starts_in_the_saved_map(runs: dict[str, Run], tmp_path: Path) -> None:
    """A run started half-way round the room, from the first run's map, is expressed in
    that map's frame from its first frame: both sessions agree within 2 cm."""
    first = runs["fast_rgbd"]
    map_file = first.out.parent / "room.map"
    second = run(
        tmp_path, "sim:loop", "fast", "source.start_frame=230", "sim.frames=320", load_map=map_file
    )
    estimate1 = read_tum_trajectory(first.out / "trajectory.tum")
    truth = dict(zip(first.truth.stamps_ns.tolist(), first.truth.world_from_body, strict=True))
    map_from_truth = estimate1.world_from_body[0] @ invert_pose(truth[int(estimate1.stamps_ns[0])])
    estimate2 = read_tum_trajectory(tmp_path / "trajectory.tum")
    assert len(estimate2) >= 85  # tracked from (nearly) its first frame
    errors = [
        np.linalg.norm(pose[:3, 3] - (map_from_truth @ truth[int(stamp)])[:3, 3])
        for stamp, pose in zip(estimate2.stamps_ns, estimate2.world_from_body, strict=True)
    ]
    assert max(errors) < 0.02
    assert second.stats.frames_tracked == len(estimate2)


def test_map_of_another_extractor_is_refused(runs: dict[str, Run], tmp_path: Path) -> None:
    map_file = runs["fast_rgbd"].out.parent / "room.map"
    with pytest.raises(sf.MapFileError, match="holds 'xfeat' descriptors"):
        run(tmp_path, "sim:loop", "classic", "sim.frames=5", load_map=map_file)
