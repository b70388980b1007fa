"""``sim:NAME`` source: spec strings, config, frame contents per sensor, IMU, ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slamfront import ConfigError, SourceError, open_source
from slamfront.config import Config, load_config
from slamfront.sim.scene import Scene, build_scene
from slamfront.sources.sim import SimSource

SMALL = ["sim.width_px=160", "sim.height_px=120"]


@pytest.fixture(scope="module")
def room() -> Scene:
    return build_scene("room", 0)


def _source(scene: Scene, *overrides: str) -> SimSource:
    return SimSource(load_config("fast", [*SMALL, *overrides]), scene)


def test_bare_sim_spec_takes_the_trajectory_from_the_config() -> None:
    config = load_config(
        "fast", [*SMALL, "sim.frames=3", "sim.sensor=stereo", "sim.trajectory=still"]
    )
    with open_source("sim", config) as source:
        assert isinstance(source, SimSource)
        assert source.trajectory.name == "still" and len(source) == 3
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.source_path == "sim:still" and f.image_right is not None for f in frames)


def test_default_trajectory_is_the_loop_at_its_natural_length(room: Scene) -> None:
    config = load_config("fast", SMALL)
    source = SimSource(config, room)
    assert source.trajectory.name == config.sim.trajectory == "loop"
    assert len(source) == round(source.trajectory.duration_s * 30.0) == 465
    assert 7.0 < source.path_length_m < 10.0


def test_unknown_trajectory_and_mismatched_scene_are_source_errors() -> None:
    with pytest.raises(SourceError, match=r"sim.trajectory.*known: loop, figure8, still"):
        open_source("sim:spiral", load_config("fast", SMALL))
    with pytest.raises(SourceError, match=r"sim.scene.*made for scene 'room'"):
        open_source("sim:loop", load_config("fast", [*SMALL, "sim.scene=repeated"]))


def test_rgbd_frames_stamps_depth_and_ground_truth(room: Scene) -> None:
    source = _source(room, "sim.frames=4")
    frames = list(source)
    assert [f.stamp_ns for f in frames] == [0, 33_333_333, 66_666_667, 100_000_000]
    gt = source.groundtruth()
    assert len(gt) == 4
    np.testing.assert_array_equal(gt.stamps_ns, [f.stamp_ns for f in frames])
    for frame, pose in zip(frames, gt.world_from_body, strict=True):
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
        assert frame.depth_m is not None and frame.depth_m.dtype == np.float32
        assert frame.depth_m.shape == (120, 160) and frame.depth_m.min() > 0.3
        assert frame.image_right is None and frame.stereo is None
        np.testing.assert_allclose(pose, source.trajectory.world_from_cam(frame.stamp_ns * 1e-9))
        cam = frame.camera
        assert (cam.width_px, cam.height_px) == (160, 120) and cam.distortion == "none"
        assert cam.fx == cam.fy == pytest.approx(80.0 / np.tan(np.radians(35.0)))
        assert frame.body_from_cam is not None
        assert not np.allclose(frame.body_from_cam, np.eye(4))
        np.testing.assert_allclose(
            frame.body_from_cam[:3, :3].T @ frame.body_from_cam[:3, :3], np.eye(3), atol=1e-12
        )
    # The ground truth moves with the camera: 0.1 s of a ~0.5 m/s path.
    step = np.linalg.norm(np.diff(gt.positions_m, axis=0), axis=1)
    assert np.all((step > 0.005) & (step < 0.04))


def test_stereo_frames_carry_a_rectified_rig_and_no_depth(room: Scene) -> None:
    source = _source(room, "sim.frames=2", "sim.sensor=stereo", "sim.baseline_m=0.08")
    frame = next(iter(source))
    assert frame.depth_m is None and frame.image_right is not None
    assert frame.image_right.shape == frame.image.shape and frame.image_right.dtype == np.uint8
    rig = frame.stereo
    assert rig is not None and rig.rectified
    assert rig.left == rig.right == frame.camera
    np.testing.assert_allclose(
        rig.right_from_left, [[1, 0, 0, -0.08], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    assert rig.baseline_m == pytest.approx(0.08)
    assert not np.array_equal(frame.image, frame.image_right)


def test_mono_frames_carry_an_image_only(room: Scene) -> None:
    frame = next(iter(_source(room, "sim.frames=1", "sim.sensor=mono")))
    assert frame.depth_m is None and frame.image_right is None and frame.stereo is None
    assert frame.image.shape == (120, 160, 3) and len(frame.imu) == 1


def test_imu_samples_tile_the_time_between_yielded_frames(room: Scene) -> None:
    source = _source(room, "sim.frames=12", "source.start_frame=2", "source.stride=3")
    frames = list(source)
    assert [f.index for f in frames] == [2, 5, 8, 11] and source.frame_indices == [2, 5, 8, 11]
    previous = round(1e9 / 30.0)  # the first yielded frame follows recorded frame 1
    for frame in frames:
        stamps = [s.stamp_ns for s in frame.imu]
        assert all(previous < s <= frame.stamp_ns for s in stamps)
        expected = np.arange(0, frame.stamp_ns + 1, 5_000_000)
        assert stamps == expected[expected > previous].tolist()  # every 200 Hz sample, no gap
        previous = frame.stamp_ns
    assert len(source.groundtruth()) == 4


def test_max_frames_caps_and_frames_extends(room: Scene) -> None:
    assert len(_source(room, "source.max_frames=5")) == 5
    long = _source(room, "sim.frames=600")  # beyond the 465-frame lap: the path goes on
    assert len(long) == 600
    gt = long.groundtruth()
    assert gt.stamps_ns[-1] == round(599 * 1e9 / 30.0)
    assert np.linalg.norm(gt.positions_m[-1] - gt.positions_m[465]) > 0.3


def test_blank_frames_keep_ground_truth_and_imu(room: Scene) -> None:
    source = _source(room, "sim.frames=6", "sim.blank_start=2", "sim.blank_count=3")
    frames = list(source)
    blank = [not f.image.any() for f in frames]
    assert blank == [False, False, True, True, True, False]
    assert all(f.depth_m is not None and not f.depth_m.any() for f in frames[2:5])
    assert len(source.groundtruth()) == 6 and all(len(f.imu) >= 6 for f in frames[1:])


def test_iteration_is_repeatable_and_random_access_agrees(room: Scene) -> None:
    source = _source(room, "sim.frames=3")
    first = [f.image for f in source]
    second = [f.image for f in source]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(source.rig.frame(2).image, first[2])


def test_the_documented_usage_with_presets_and_overrides(room: Scene) -> None:
    config = load_config("fast", ["sim.sensor=stereo", *SMALL, "sim.frames=2"])
    assert isinstance(config, Config)
    with open_source("sim:loop", config) as src:
        for frame in src:
            assert frame.image_right is not None and frame.source_path == "sim:loop"
    # A scene built for another seed is refused rather than silently used.
    with pytest.raises(SourceError, match="seed"):
        other = dataclasses.replace(config, sim=dataclasses.replace(config.sim, seed=5))
        SimSource(other, room)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sim.blank_count=-1", "sim.blank_count"),
        ("sim.exposure_ms=-2", "sim.exposure_ms"),
        ("sim.hfov_deg=5", "sim.hfov_deg"),
        ("sim.sensor=lidar", "sim.sensor"),
        ("sim.scene=garden", "sim.scene"),
        ("sim.frames=0", "sim.frames"),
    ],
)
def test_bad_sim_settings_are_config_errors_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("fast", [override])
