"""A run's output folder and the files it saves elsewhere: checked before anything is
written, then claimed whole, so that two runs' files never mix.

:func:`check_output_folder` and :func:`check_file_target` only look (and probe that a file
can be created beside the target, removing it again); :func:`claim_output_folder` is the
first write of a run: it creates the folder, or with ``overwrite`` replaces an existing one
by an empty folder (renames, so the earlier run's files go all at once).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from slamfront.errors import OutputError

RUN_MARKER = "config.yaml"
"""The file every run writes first into its folder: ``--overwrite`` replaces only a folder
holding it (an earlier run's), never another folder of files."""


def check_output_folder(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Raise :class:`OutputError` unless ``path`` can become this run's empty folder: it is
    a folder or can be made one, is empty (or ``overwrite`` and an earlier run's folder that
    holds none of the run's ``inputs``), and its parent is writable."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        if any(out.iterdir()) and not overwrite:
            raise OutputError(
                f"--out {out}: folder is not empty (an earlier run's?); give another folder "
                "or --overwrite to replace it"
            )
        # replacing it (or writing into it) needs both it and its parent writable
        _probe_writable(out, f"--out {out}")
        cwd = Path.cwd()
        if overwrite and out.resolve() in (cwd, *cwd.parents):
            raise OutputError(f"--out {out}: will not replace the current folder or one above it")
        if overwrite and any(out.iterdir()):
            _check_replaceable(out, inputs)
            folder = out.resolve() if out.is_symlink() else out
            _probe_writable(_parent(folder), f"--out {out}: its parent folder")
        return
    _probe_writable(_existing_ancestor(out, f"--out {out}"), f"--out {out}")


def check_writable_folder(path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`OutputError` unless files can be written in the folder ``path`` (made
    when missing; files already in it are kept); ``what`` names the option (``--out``)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder}: exists and is not a folder")
    existing = folder if folder.is_dir() else _existing_ancestor(folder, f"{what} {folder}")
    _probe_writable(existing, f"{what} {folder}")


def check_file_target(
    path: str | os.PathLike[str], what: str, replaceable: Callable[[Path], bool] | None = None
) -> None:
    """Raise :class:`OutputError` unless a file can be written (atomically, beside it) at
    ``path``; ``what`` names the option in messages (``--save-map``, ``--rerun save:``).
    An existing file is replaced only when ``replaceable(path)`` says so (``None``: any
    file may be)."""
    target = Path(path)
    label = f"{what}{target}" if what.endswith(":") else f"{what} {target}"
    if target.is_dir():
        raise OutputError(f"{label}: is a folder")
    folder = _parent(target)
    if not folder.is_dir():
        raise OutputError(f"{label}: folder {folder} does not exist")
    if replaceable is not None and target.exists() and not replaceable(target):
        raise OutputError(
            f"{label}: the file exists (an earlier run's?); give another name or "
            "--overwrite to replace it"
        )
    _probe_writable(folder, label)


def claim_output_folder(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Make ``path`` an empty folder for this run (see the module docstring) and return it.
    An existing non-empty folder is replaced only with ``overwrite``: a fresh folder is
    made beside it and swapped in, then the old one is deleted."""
    out = Path(path)
    check_output_folder(out, overwrite)
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot create the folder ({exc})") from exc
        return out
    if not any(out.iterdir()):
        return out
    # through a symbolic link, the folder it names is replaced (the link stays a link)
    folder = out.resolve() if out.is_symlink() else out
    parent = _parent(folder)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    fresh, old = parent / f".{folder.name}.new-{tag}", parent / f".{folder.name}.old-{tag}"
    try:
        fresh.mkdir()  # with the usual permissions (umask), as mkdir of ``out`` would
        os.replace(folder, old)
        try:
            os.replace(fresh, folder)
        except OSError:
            os.replace(old, folder)  # put the earlier run back
            raise
    except OSError as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise OutputError(f"--out {out}: cannot replace the folder ({exc})") from exc
    shutil.rmtree(old, ignore_errors=True)
    return out


def _check_replaceable(out: Path, inputs: Sequence[str | os.PathLike[str]]) -> None:
    if not (out / RUN_MARKER).is_file():
        raise OutputError(
            f"--out {out}: --overwrite replaces an earlier run's folder only (one holding "
            f"{RUN_MARKER}); this one is not: give another folder, or empty it yourself"
        )
    folder = out.resolve()
    for given in inputs:
        if Path(given).resolve().is_relative_to(folder):
            raise OutputError(
                f"--out {out}: --overwrite would delete {given}, an input of this run, with it"
            )


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest folder above ``path`` that exists; an error if a file is in the way."""
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{what}: {ancestor} is a file, not a folder")
            return ancestor
    raise OutputError(f"{what}: no existing folder above it")  # pragma: no cover


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder`` (permission bits alone do not tell: root,
    read-only mounts, ACLs)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".slamfront-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(name)
