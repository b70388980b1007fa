"""Content hashes of exported files in the on-disk caches.

An export records its file's sha256 beside it (``.NAME.sha256``) once the file is complete;
a cache entry is used only while its content still has that hash, so a truncated or damaged
file (a killed export, a full disk, a stray edit) is rebuilt instead of failing every run.
"""

from __future__ import annotations

import os
from pathlib import Path

from slamfront.weights import sha256_of


def digest_path(path: Path) -> Path:
    """Where the recorded hash of ``path`` lives (a hidden file beside it)."""
    return path.with_name(f".{path.name}.sha256")


def record_digest(path: Path) -> str:
    """Hash ``path`` and record it beside the file (atomically); returns the hash."""
    digest = sha256_of(path)
    target = digest_path(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text(digest + "\n")
    os.replace(tmp, target)
    return digest


def recorded_digest(path: Path) -> str | None:
    """The hash recorded for ``path``, None when there is none (or it cannot be read)."""
    try:
        text = digest_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) == 64 else None


def is_intact(path: Path) -> bool:
    """True when ``path`` exists and its content has the hash recorded for it."""
    expected = recorded_digest(path)
    if expected is None or not path.is_file():
        return False
    try:
        return sha256_of(path) == expected
    except OSError:
        return False
