"""Reading .rrd files back with Rerun's own tools: the ``rerun rrd verify`` / ``rerun rrd stats``
commands of the real binary, and the SDK's chunk reader (``rr.chunk.RrdReader``)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slamfront.sinks.rerun_session import rerun_binary


@dataclass
class EntityLog:
    """What one entity holds: its temporal rows ordered by ``frame`` and its static values."""

    path: str
    frames: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    static: dict[str, Any] = field(default_factory=dict)
    index_types: dict[str, str] = field(default_factory=dict)

    def column(self, component: str) -> list[Any]:
        """The value of ``component`` in every temporal row that has it, in frame order."""
        return [row[component] for row in self.rows if row.get(component) is not None]

    def frames_with(self, component: str) -> list[int]:
        return [
            f
            for f, row in zip(self.frames, self.rows, strict=True)
            if row.get(component) is not None
        ]

    def last(self, component: str) -> Any:
        values = self.column(component)
        assert values, f"{self.path} has no {component}"
        return values[-1]


def read_rrd(path: Path) -> dict[str, EntityLog]:
    """Every entity of the recording store (not the blueprint) of an .rrd file."""
    import rerun as rr

    entities: dict[str, EntityLog] = {}
    staged: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    order = 0
    for chunk in rr.chunk.RrdReader(path).stream():
        entity = entities.setdefault(chunk.entity_path, EntityLog(chunk.entity_path))
        batch = chunk.to_record_batch()
        names = [n for n in batch.schema.names if n != "rerun.controls.RowId"]
        components = [n for n in names if ":" in n]
        columns = {n: batch.column(n).to_pylist() for n in names}
        for n in names:
            if ":" not in n:
                entity.index_types[n] = str(batch.schema.field(n).type)
        for i in range(batch.num_rows):
            row = {c: columns[c][i] for c in components}
            if chunk.is_static:
                entity.static.update({c: v for c, v in row.items() if v is not None})
            else:
                staged.setdefault(chunk.entity_path, []).append((columns["frame"][i], order, row))
                order += 1
    for path_, rows in staged.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        entities[path_].frames = [r[0] for r in rows]
        entities[path_].rows = [r[2] for r in rows]
    return entities


def verify(path: Path) -> str:
    """``rerun rrd verify PATH``: raises with its output unless the file loads cleanly."""
    out = subprocess.run(
        [str(rerun_binary()), "rrd", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "verified without error" in text, text
    return text


def stats_entities(path: Path) -> set[str]:
    """Entity paths listed by ``rerun rrd stats PATH`` (section "Num chunks per entity")."""
    out = subprocess.run(
        [str(rerun_binary()), "rrd", "stats", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.splitlines()
    start = lines.index("Num chunks per entity") + 2
    found = set()
    for line in lines[start:]:
        if not line.strip():
            break
        found.add(line.rsplit(":", 1)[0].strip())
    return found
