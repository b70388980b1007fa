"""launch/*.yaml: every profile loads under the strict schema into the config it promises,
and names a source that resolves (with a path from the command line for replay profiles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slamfront.config import Config, load_config
from slamfront.errors import ConfigError
from slamfront.sources import resolve_spec, split_spec

LAUNCH = Path(__file__).resolve().parent.parent / "launch"
PROFILES = sorted(LAUNCH.glob("*.yaml"))

EXPECTED = {
    "d435i_rgbd": {"realsense.mode": "rgbd", "tracker.mode": "rgbd", "realsense.accel_hz": 63},
    "d435i_stereo_imu": {
        "realsense.mode": "stereo",
        "realsense.emitter": False,
        "realsense.imu": True,
        "tracker.mode": "stereo",
        "realsense.width_px": 848,
        "tracker.imu.enabled": True,
    },
    "d455_rgbd": {"realsense.mode": "rgbd", "realsense.accel_hz": 100, "source.undistort": True},
    "jetson_orin_d435i": {
        "extractor.runtime": "tensorrt",
        "matcher.runtime": "tensorrt",
        "extractor.max_keypoints": 512,
        "realsense.fps": 30,
        "realsense.width_px": 640,
    },
    "replay_realsense": {"source.spec": "realsense-file:", "source.realtime": False},
    "replay_tum_rgbd": {"source.spec": "tum:", "tracker.mode": "rgbd"},
    "replay_euroc": {
        "source.spec": "euroc:",
        "tracker.mode": "stereo",
        "tracker.imu.enabled": "auto",
    },
    "replay_kitti": {"source.spec": "kitti:", "tracker.mode": "stereo"},
}


def _get(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_every_profile_is_checked_here() -> None:
    assert {p.stem for p in PROFILES} == set(EXPECTED)


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_builds_its_config(path: Path) -> None:
    config = load_config(path)
    for key, value in EXPECTED[path.stem].items():
        assert _get(config, key) == value, key
    # built on the default preset: what a profile does not set keeps the preset's value
    assert config.extractor.model == "xfeat" and config.matcher.model == "lightglue"
    profile_spec = config.source.spec
    assert profile_spec is not None
    if profile_spec.endswith(":"):  # a replay profile: the path comes from the command line
        spec = resolve_spec("/data/sequence", config)
        assert spec == f"{profile_spec}/data/sequence"
        assert split_spec(spec) == (profile_spec[:-1], "/data/sequence")
        with pytest.raises(ConfigError, match="needs a path"):
            resolve_spec(None, config)
    else:  # a live profile runs on its own
        assert resolve_spec(None, config) == profile_spec
        assert split_spec(profile_spec)[0] == "realsense"


def test_live_profiles_open_the_camera_and_overrides_still_apply() -> None:
    config = load_config(LAUNCH / "d435i_rgbd.yaml", ["source.spec=realsense:123456"])
    assert resolve_spec(None, config) == "realsense:123456"
    # an explicit spec on the command line wins over the profile's
    assert resolve_spec("realsense-file:walk.db3", config) == "realsense-file:walk.db3"


def test_resolve_spec_without_a_profile_source() -> None:
    assert resolve_spec("tum:/x", Config()) == "tum:/x"
    with pytest.raises(ConfigError, match="no source given"):
        resolve_spec(None, Config())


def test_profile_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: fast\nrealsense:\n  mode: rgbd\n  emiter: false\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:4: unknown key 'realsense\.emiter'"):
        load_config(bad)
    bad.write_text("realsense:\n  timeout_s: 0\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2: realsense\.timeout_s"):
        load_config(bad)
