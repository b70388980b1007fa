"""Every numeric config field is bounded; bad values are refused at load, naming key and origin."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from slamfront import cli
from slamfront.config import Bounds, Config, build_config, load_config
from slamfront.errors import ConfigError


def _numeric(hint: Any) -> type | None:
    """int or float when ``hint`` is a number, an optional number or a tuple of numbers."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, tuple):
        inner = [a for a in typing.get_args(hint) if a not in (type(None), Ellipsis)]
        return _numeric(inner[0]) if len(inner) == 1 else None
    return hint if hint in (int, float) else None


def _numeric_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, type, Any]]:
    """(dotted key, int or float, field) of every numeric field of the config tree."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            out.extend(_numeric_fields(hint, f"{prefix}{f.name}."))
        elif (kind := _numeric(hint)) is not None:
            out.append((f"{prefix}{f.name}", kind, f))
    return out


FIELDS = _numeric_fields()


def _nest(key: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def _outside(bounds: Bounds, kind: type) -> Any:
    """A value just outside ``bounds`` (of the field's type)."""
    step = 1 if kind is int else 1e-6
    if bounds.ge is not None:
        value = bounds.ge - step
    elif bounds.gt is not None:
        value = bounds.gt if kind is float else math.floor(bounds.gt)
    elif bounds.le is not None:
        value = bounds.le + step
    else:
        assert bounds.lt is not None
        value = bounds.lt
    return kind(value)


def test_there_are_numeric_fields() -> None:
    assert len(FIELDS) > 100
    assert "pipeline.queue_size" in [key for key, _, _ in FIELDS]


@pytest.mark.parametrize(("key", "kind", "f"), FIELDS, ids=[k for k, _, _ in FIELDS])
def test_every_numeric_field_is_bounded_and_checked(key: str, kind: type, f: Any) -> None:
    bounds = f.metadata.get("bounds")
    assert isinstance(bounds, Bounds), f"{key} has no bounds (declare it with bounded(...))"
    assert any(v is not None for v in (bounds.ge, bounds.gt, bounds.le, bounds.lt)), key
    bad = _outside(bounds, kind)
    value = [bad] if isinstance(f.default, tuple) else bad
    with pytest.raises(ConfigError, match=rf"^config: {key}: must be .*got"):
        build_config(_nest(key, value))
    if kind is float:
        for special in (math.nan, math.inf, -math.inf):
            value = [special] if isinstance(f.default, tuple) else special
            with pytest.raises(ConfigError, match=rf"{key}: must be"):
                build_config(_nest(key, value))


@pytest.mark.parametrize(
    "override",
    [
        "pipeline.queue_size=0",
        "pipeline.queue_size=-3",
        "source.tum_depth_scale=0",
        "source.tum_depth_scale=-5000",
        "source.tum_max_time_diff_s=.nan",
        "source.tum_max_time_diff_s=.inf",
        "source.fps=.nan",
        "source.fps=1e999",
        "rerun.queue_size=0",
    ],
)
def test_values_that_silently_broke_a_run_are_refused(override: str) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^override '{override}': {key}: must be"):
        load_config("fast", [override])


def test_a_bad_value_in_a_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: fast\nsim:\n  frames: 5\npipeline:\n  queue_size: 0\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5: pipeline.queue_size: must be >= 1"):
        load_config(str(path))


def test_special_values_outside_the_limits_are_kept() -> None:
    assert load_config("fast", ["matcher.depth_confidence=-1"]).matcher.depth_confidence == -1
    with pytest.raises(ConfigError, match=r"matcher\.depth_confidence"):
        load_config("fast", ["matcher.depth_confidence=-0.5"])


def test_queue_size_zero_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = cli.main(["run", "sim:still", "pipeline.queue_size=0", "--out", str(out)])
    assert code == 2
    assert "pipeline.queue_size: must be >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_extends_resolves_beside_the_including_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "base.yaml").write_text("extends: fast\nsim:\n  fps: 12\n")
    (folder / "child.yaml").write_text("extends: base.yaml\nsim:\n  frames: 7\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "base.yaml").write_text("sim:\n  fps: 99\n")  # a decoy in the working folder
    monkeypatch.chdir(elsewhere)
    config = load_config(str(folder / "child.yaml"))
    assert (config.sim.frames, config.sim.fps) == (7, 12.0)


@pytest.mark.parametrize(
    "text",
    [
        "sim:\n  frames: !!python/object/apply:os.system ['true']\n",
        "sim:\n  frames: !custom 3\n",
        "sim: !!python/name:os.system\n",
        "sim: !!python/object:os.system {frames: 3}\n",  # a tagged section was walked as is
        "!!python/object:os.system\nsim: {}\n",
        "sim: !!set {frames, fps}\n",
        "sim:\n  frames: 3\ntracker: !!omap [{mode: mono}]\n",
    ],
)
def test_refused_yaml_tags_are_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tagged.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: "):
        load_config(str(path))


def test_an_unknown_section_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("extends: fast\nsim:\n  frames: 3\ntrackr:\n  mode: mono\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: unknown key 'trackr'"):
        load_config(str(path))


def test_hostile_yaml_structures_are_config_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("sim: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(str(deep))
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config("fast", ["sim.frames=" + "[" * 5000])
    bomb = tmp_path / "bomb.yaml"  # each level doubles the keys a walk would visit
    lines = ["x0: &x0 {p: 1, q: 1}"]
    lines += [f"x{i}: &x{i} {{p: *x{i - 1}, q: *x{i - 1}}}" for i in range(1, 40)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="more than 10000 keys"):
        load_config(str(bomb))
    list_key = tmp_path / "list_key.yaml"
    list_key.write_text("? [a, b]\n: 1\n")
    with pytest.raises(ConfigError, match=r"list_key.yaml:1: a key must be a name"):
        load_config(str(list_key))
