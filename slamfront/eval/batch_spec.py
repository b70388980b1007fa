"""The SPEC file of ``slamfront eval-batch``: which sequences, which presets, how to evaluate.

A SPEC is YAML::

    sequences:                      # required: source specs (as `slamfront run` takes)
      - sim:loop
      - source: euroc:data/V1_01_easy   # relative paths: from the SPEC file's folder
        name: v101                      # optional label (default from the spec)
        overrides: {source.max_frames: 300}
    presets:                        # required: preset names or YAML files
      - fast
      - classic
      - config: fast
        name: fast-full-depth
        overrides: [matcher.depth_confidence=-1, matcher.width_confidence=-1]
    overrides: {sim.frames: 120}    # optional, for every job
    evaluation:                     # optional
      align: auto                   # auto (sim3 for monocular, else se3) | se3 | sim3 | none
      max_time_diff_s: 0.02
      rpe_delta: 1
      rpe_delta_unit: frames        # frames | m | deg

Overrides are a mapping of dotted keys or a list of ``key=value`` strings; each job applies
the global ones, then its sequence's, then its preset's. Loading is strict: an unknown key or
a bad value is a :class:`~slamfront.errors.ConfigError` naming the SPEC file and line; every
job's configuration is built (and so checked) before any job runs.

Relative paths (sequence folders, preset files) are taken from the SPEC file's folder and
made absolute here, so jobs may run anywhere (another process, a Ray worker).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slamfront.config import load_config, preset_names
from slamfront.errors import ConfigError, SlamfrontError
from slamfront.sources import split_spec
from slamfront.sources.kitti import split_kitti_spec

if TYPE_CHECKING:
    from collections.abc import Callable

    import yaml

Align = Literal["auto", "se3", "sim3", "none"]

_ALIGNS = ("auto", "se3", "sim3", "none")
_DELTA_UNITS = ("frames", "m", "deg")
_PATH_SCHEMES = ("tum", "euroc", "kitti", "images", "video", "realsense-file")


@dataclass(frozen=True)
class Evaluation:
    """How each job's trajectory is evaluated."""

    align: Align = "auto"
    """auto: Sim(3) when the frames had neither depth nor a right image, else SE(3)."""
    max_time_diff_s: float = 0.02
    rpe_delta: float = 1.0
    rpe_delta_unit: Literal["frames", "m", "deg"] = "frames"


@dataclass(frozen=True)
class SequenceEntry:
    name: str
    source: str
    overrides: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class PresetEntry:
    name: str
    config: str
    """A preset name, or a YAML file (absolute)."""
    overrides: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class BatchSpec:
    path: Path
    sequences: tuple[SequenceEntry, ...]
    presets: tuple[PresetEntry, ...]
    overrides: tuple[str, ...] = ()
    evaluation: Evaluation = Evaluation()


def load_batch_spec(path: str | os.PathLike[str]) -> BatchSpec:
    """Read and strictly validate a SPEC file (see the module docstring)."""
    import yaml

    spec_path = Path(path)
    try:
        text = spec_path.read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{spec_path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{spec_path}: invalid YAML: {exc}") from exc
    reader = _SpecReader(spec_path, yaml.SafeLoader(text))
    if root is None:
        raise ConfigError(f"{spec_path}:1: empty SPEC; it needs 'sequences' and 'presets'")
    top = reader.mapping(root, "(top level)", {"sequences", "presets", "overrides", "evaluation"})
    for required in ("sequences", "presets"):
        if required not in top:
            raise ConfigError(f"{spec_path}:{root.start_mark.line + 1}: missing {required!r}")
    overrides = reader.overrides(top["overrides"], "overrides") if "overrides" in top else ()
    evaluation = reader.evaluation(top["evaluation"]) if "evaluation" in top else Evaluation()
    sequences = tuple(
        reader.sequence(node, f"sequences[{i}]")
        for i, node in enumerate(reader.items(top["sequences"], "sequences"))
    )
    presets = tuple(
        reader.preset(node, f"presets[{i}]")
        for i, node in enumerate(reader.items(top["presets"], "presets"))
    )
    for kind, entries in (("sequence", sequences), ("preset", presets)):
        seen: dict[str, int] = {}
        for entry in entries:
            if entry.name in seen:
                raise ConfigError(
                    f"{spec_path}:{entry.line}: {kind} name {entry.name!r} is already used at "
                    f"line {seen[entry.name]}; give one of them a different 'name'"
                )
            seen[entry.name] = entry.line
    spec = BatchSpec(spec_path, sequences, presets, overrides, evaluation)
    _check_configs(spec)
    return spec


class _SpecReader:
    """Turns YAML nodes into checked values; every error names the file and line."""

    def __init__(self, path: Path, constructor: yaml.SafeLoader) -> None:
        self.path = path
        self._constructor = constructor

    def fail(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def scalar(self, node: yaml.Node) -> Any:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            return self._constructor.construct_object(node, deep=True)
        return self._constructor.construct_object(node)

    def mapping(self, node: yaml.Node, key: str, known: set[str]) -> dict[str, yaml.Node]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{key} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = key_node.value
            if name not in known:
                raise self.fail(
                    key_node,
                    f"unknown key {name!r} in {key} (known: {', '.join(sorted(known))})",
                )
            if name in out:
                raise self.fail(key_node, f"duplicate key {name!r} in {key}")
            out[name] = value_node
        return out

    def items(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        import yaml

        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, f"{key} must be a non-empty list")
        return list(node.value)

    def string(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{key} must be a non-empty string, got {value!r}")
        return value.strip()

    def name(self, node: yaml.Node, key: str) -> str:
        value = self.string(node, key)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", value):
            raise self.fail(
                node, f"{key} {value!r}: use letters, digits and . _ + - (it names a folder)"
            )
        return value

    def overrides(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        import yaml

        if isinstance(node, yaml.MappingNode):
            out = []
            for key_node, value_node in node.value:
                dotted = key_node.value
                if not isinstance(dotted, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", dotted):
                    raise self.fail(key_node, f"{key}: bad key {dotted!r}")
                out.append(f"{dotted}={json.dumps(self.scalar(value_node))}")
            return tuple(out)
        if isinstance(node, yaml.SequenceNode):
            out = []
            for item in node.value:
                text = self.scalar(item)
                if not isinstance(text, str) or "=" not in text or not text.partition("=")[0]:
                    raise self.fail(item, f"{key}: expected key=value, got {text!r}")
                out.append(text)
            return tuple(out)
        raise self.fail(node, f"{key} must be a mapping of keys or a list of key=value")

    def evaluation(self, node: yaml.Node) -> Evaluation:
        fields = self.mapping(
            node, "evaluation", {"align", "max_time_diff_s", "rpe_delta", "rpe_delta_unit"}
        )
        values: dict[str, Any] = {}
        for name, value_node in fields.items():
            value = self.scalar(value_node)
            key = f"evaluation.{name}"
            if name == "align" and value not in _ALIGNS:
                raise self.fail(value_node, f"{key} must be one of {', '.join(_ALIGNS)}")
            if name == "rpe_delta_unit" and value not in _DELTA_UNITS:
                raise self.fail(value_node, f"{key} must be one of {', '.join(_DELTA_UNITS)}")
            if name in ("max_time_diff_s", "rpe_delta"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise self.fail(value_node, f"{key} must be a positive number, got {value!r}")
                value = float(value)
            values[name] = value
        result = Evaluation(**values)
        if result.rpe_delta_unit == "frames" and result.rpe_delta != int(result.rpe_delta):
            raise self.fail(node, "evaluation.rpe_delta in frames must be a whole number")
        return result

    def sequence(self, node: yaml.Node, key: str) -> SequenceEntry:
        return SequenceEntry(*self._entry(node, key, "source", self._source))

    def preset(self, node: yaml.Node, key: str) -> PresetEntry:
        return PresetEntry(*self._entry(node, key, "config", self._config))

    def _entry(
        self,
        node: yaml.Node,
        key: str,
        field: str,
        resolve: Callable[[yaml.Node, str], str],
    ) -> tuple[str, str, tuple[str, ...], int]:
        """A list entry: ``VALUE`` or ``{field: VALUE, name: ..., overrides: ...}``, as
        (name, resolved value, overrides, line)."""
        import yaml

        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            value = resolve(node, key)
            return _label(value), value, (), line
        fields = self.mapping(node, key, {field, "name", "overrides"})
        if field not in fields:
            raise self.fail(node, f"{key}: missing '{field}'")
        value = resolve(fields[field], f"{key}.{field}")
        name = self.name(fields["name"], f"{key}.name") if "name" in fields else _label(value)
        extra = (
            self.overrides(fields["overrides"], f"{key}.overrides") if "overrides" in fields else ()
        )
        return name, value, extra, line

    def _source(self, node: yaml.Node, key: str) -> str:
        spec = self.string(node, key)
        try:
            scheme, rest = split_spec(spec)
        except SlamfrontError as exc:
            raise self.fail(node, f"{key}: {exc}") from exc
        return _absolute_source(scheme, rest, self.path.parent)

    def _config(self, node: yaml.Node, key: str) -> str:
        value = self.string(node, key)
        if value.endswith((".yaml", ".yml")):
            path = Path(value).expanduser()
            path = path if path.is_absolute() else (self.path.parent / path)
            if not path.is_file():
                raise self.fail(node, f"{key}: config file not found: {path}")
            return str(path.resolve())
        if value not in preset_names():
            known = ", ".join(preset_names()) or "(none found)"
            raise self.fail(node, f"{key}: unknown preset {value!r}; known presets: {known}")
        return value


def _absolute_source(scheme: str, rest: str, base: Path) -> str:
    """The spec with a relative path made absolute against ``base`` (the SPEC's folder)."""
    if scheme not in _PATH_SCHEMES or not rest:
        return f"{scheme}:{rest}" if rest else scheme
    tail = ""
    if scheme == "kitti":
        folder, sequence = split_kitti_spec(rest)
        tail = f":{sequence}" if sequence is not None else ""
        path = folder
    else:
        path = Path(rest).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    return f"{scheme}:{path}{tail}"


def _label(text: str) -> str:
    """A folder-safe label: the scheme and the last path part (``euroc-V1_01_easy``)."""
    scheme, _, rest = text.partition(":")
    if text.endswith((".yaml", ".yml")) and not rest:
        return Path(text).stem
    tail = Path(rest.rstrip("/")).name if rest else ""
    if scheme == "kitti" and rest:
        folder, sequence = split_kitti_spec(rest)
        tail = f"{folder.name}-{sequence}" if sequence else folder.name
    raw = f"{scheme}-{tail}" if tail else scheme
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", raw).strip("_") or "job"


def _check_configs(spec: BatchSpec) -> None:
    """Build every job's config now, so a bad override fails before any job runs."""
    where = spec.path
    try:
        load_config("fast", spec.overrides)
    except ConfigError as exc:
        raise ConfigError(f"{where}: overrides: {exc}") from exc
    for pre in spec.presets:
        try:
            load_config(pre.config, [*spec.overrides, *pre.overrides])
        except ConfigError as exc:
            raise ConfigError(f"{where}:{pre.line}: preset {pre.name!r}: {exc}") from exc
    for seq in spec.sequences:
        for pre in spec.presets:
            try:
                load_config(pre.config, [*spec.overrides, *seq.overrides, *pre.overrides])
            except ConfigError as exc:
                raise ConfigError(
                    f"{where}:{seq.line}: sequence {seq.name!r} with preset {pre.name!r} "
                    f"(line {pre.line}): {exc}"
                ) from exc


__all__ = ["Align", "BatchSpec", "Evaluation", "PresetEntry", "SequenceEntry", "load_batch_spec"]
