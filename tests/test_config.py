from __future__ import annotations

from pathlib import Path

import pytest

from slamfront.config import (
    MOVED_KEYS,
    Config,
    config_to_dict,
    dump_config,
    load_config,
    preset_names,
)
from slamfront.errors import ConfigError


def test_presets_load_and_differ() -> None:
    names = preset_names()
    assert {"fast", "accurate", "classic", "superpoint"} <= set(names)
    for name in names:
        config = load_config(name)
        assert isinstance(config, Config)
        assert config.preset == name
    assert load_config("classic").extractor.model == "orb"
    assert load_config("accurate").extractor.model == "disk"


def test_override_sets_typed_value() -> None:
    config = load_config("fast", ["tracker.min_inliers=40", "extractor.subpixel=false"])
    assert config.tracker.min_inliers == 40
    assert config.extractor.subpixel is False
    # ints are accepted for floats and converted
    assert load_config("fast", ["matcher.ratio=1"]).matcher.ratio == 1.0


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("tracker.min_inlier=3", "unknown key 'tracker.min_inlier'"),
        ("tracker.min_inliers=abc", "tracker.min_inliers must be an integer"),
        ("tracker.min_inliers=3", "tracker.min_inliers: must be >= 6"),
        ("extractor.model=sift", "extractor.model must be one of"),
        ("extractor.subpixel=1", "extractor.subpixel must be true or false"),
        ("nonsense", "expected key=value"),
        ("camera.readout_ms=-1", "camera.readout_ms: must be >= 0"),
        ("tracker.shutter.rate_intervals=0", "tracker.shutter.rate_intervals: must be >= 1"),
    ],
)
def test_bad_override_names_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("fast", [override])
    assert needle in str(info.value)
    if "=" in override:
        assert f"override {override!r}" in str(info.value)


def test_bad_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: fast\ntracker:\n  min_inliers: 30\n  min_inlers: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert f"{path}:4" in str(info.value)
    assert "tracker.min_inlers" in str(info.value)


def test_wrong_type_in_file_names_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("matcher:\n  model: lightglue\n  ratio: high\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: matcher.ratio must be a number"):
        load_config(str(path))


def test_numbers_in_exponent_notation_without_a_dot(tmp_path: Path) -> None:
    # YAML 1.1 reads 3e-3 as a string; a float field takes it as the number it spells
    path = tmp_path / "mine.yaml"
    path.write_text("tracker:\n  huber_px: 15e-1\n")
    config = load_config(str(path), ["tracker.search.max_distance=3e-1"])
    assert config.tracker.huber_px == 1.5
    assert config.tracker.search.max_distance == 0.3
    with pytest.raises(ConfigError, match=r"tracker\.min_inliers must be an integer"):
        load_config("fast", ["tracker.min_inliers=3e1"])
    with pytest.raises(ConfigError, match=r"tracker\.huber_px must be a number"):
        load_config("fast", ["tracker.huber_px=3e"])


def test_moved_tracker_keys_name_their_new_place(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("tracker:\n  mode: rgbd\n  lk_refine: false\n")
    with pytest.raises(
        ConfigError,
        match=rf"{path}:3: 'tracker.lk_refine' has moved: use 'tracker.alignment.enabled'",
    ):
        load_config(str(path))
    with pytest.raises(
        ConfigError, match=r"'tracker.max_depth_m' has moved: use 'tracker.depth.max_m'"
    ):
        load_config("fast", ["tracker.max_depth_m=6"])
    # every moved key points at a key that exists
    for new in MOVED_KEYS.values():
        section = config_to_dict(load_config("fast"))
        for part in new.split("."):
            section = section[part]


def test_nested_tracker_sections_check_their_ranges() -> None:
    with pytest.raises(ConfigError, match=r"tracker\.depth\.max_m: must exceed min_m"):
        load_config("fast", ["tracker.depth.min_m=7", "tracker.depth.max_m=6"])
    with pytest.raises(ConfigError, match=r"tracker\.alignment\.window_px: must be odd"):
        load_config("fast", ["tracker.alignment.window_px=8"])
    config = load_config("fast", ["tracker.motion.max_jump_share=0.3"])
    assert config.tracker.motion.max_jump_share == 0.3
    with pytest.raises(ConfigError, match=r"'tracker.max_speed_m_s' was removed: .*max_jump_share"):
        load_config("fast", ["tracker.max_speed_m_s=30"])


def test_extends_chain_and_file_preset_name(tmp_path: Path) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text("extends: classic\ntracker:\n  min_inliers: 33\n")
    config = load_config(str(path))
    assert config.preset == "rig"
    assert config.extractor.model == "orb"
    assert config.tracker.min_inliers == 33


def test_unknown_preset_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"known presets: .*fast"):
        load_config("fastest")


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("tracker: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(bad))
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(str(top))


def test_dump_round_trip(tmp_path: Path) -> None:
    config = load_config("classic", ["sim.gyro_bias_rad_s=[0.0, 0.1, 0.2]"])
    out = tmp_path / "config.yaml"
    dump_config(config, out)
    again = load_config(str(out))
    assert config_to_dict(again) == config_to_dict(config) | {"preset": "classic"}
