"""Temporary files for atomic writes (write beside the target, then rename over it).

A temporary file is named after its target and the writing process
(``.NAME.<pid>-<random><suffix>``), never the target itself, so a reader of the target sees
the old file or the new one. A process killed while writing leaves its temporary file
behind; the next write to the same target removes those whose process is gone.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def open_temp(target: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new temporary file beside ``target`` (after removing stale ones; mode 0o666
    less the umask, as ``open`` makes) and return its open descriptor and path; the caller
    renames it over ``target`` or unlinks it."""
    remove_stale_temps(target, suffix)
    folder = target.parent if str(target.parent) else Path(".")
    while True:
        tmp = folder / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - a 32-bit random name taken
            continue
        return fd, tmp


def remove_stale_temps(target: Path, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files of ``target`` left by processes that no longer run;
    return them. Files of running processes (a concurrent save) are left alone."""
    folder = target.parent if str(target.parent) else Path(".")
    prefix = f".{target.name}."
    removed: list[Path] = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(suffix)]
    except OSError:
        return removed
    for name in names:
        owner, dash, _ = name[len(prefix) : -len(suffix)].partition("-")
        if not dash or not owner.isdigit() or _running(int(owner)):
            continue
        try:
            (folder / name).unlink()
        except OSError:
            continue
        removed.append(folder / name)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, ValueError):
        return False  # no process has such a number
    return pid > 0
