"""Map files: exact round trip, atomic saves, and clear errors for damaged or foreign files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slamfront.backend import map_store
from slamfront.backend.map_store import Landmarks, load_map, save_map
from slamfront.backend.pose_graph import GraphEdge
from slamfront.errors import InputError, MapFileError
from slamfront.types import CameraModel, Features, Keyframe

CAMERA = CameraModel(640, 480, 500.0, 501.0, 320.5, 239.5, "radtan", (0.1, -0.05, 1e-3, 2e-3))
PINHOLE = CameraModel(752, 480, 458.6, 457.3, 367.2, 248.4)


def make_keyframe(
    kid: int, rng: np.random.Generator, n: int, binary: bool = False, with_global: bool = True
) -> Keyframe:
    if binary:
        desc = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    else:
        desc = rng.normal(size=(n, 64)).astype(np.float32)
    points = rng.normal(size=(n, 3)) + np.array([0, 0, 3.0])
    points[::4] = np.nan
    pose = np.eye(4)
    pose[:3, 3] = rng.normal(size=3)
    return Keyframe(
        keyframe_id=kid,
        frame_index=10 * kid,
        stamp_ns=1_700_000_000_000_000_000 + kid * 33_333_333,
        world_from_cam=pose,
        camera=CAMERA if kid % 2 else PINHOLE,
        features=Features(
            keypoints=rng.uniform(0, 480, (n, 2)).astype(np.float32),
            scores=rng.uniform(size=n).astype(np.float32),
            descriptors=desc,
            image_size=(640, 480) if kid % 2 else (752, 480),
        ),
        points_cam_m=points,
        global_descriptor=rng.normal(size=256).astype(np.float32) if with_global else None,
        reprojection_rmse_px=float(kid) + 0.5,
    )


def sample_map(
    rng: np.random.Generator, binary: bool = False
) -> tuple[list[Keyframe], Landmarks, list[GraphEdge]]:
    keyframes = [
        make_keyframe(k, rng, n, binary, with_global=k != 2)
        for k, n in zip((0, 1, 2, 5), (30, 0, 17, 44), strict=True)
    ]
    # two maps: keyframe 5 was made in a second map, in its own frame
    keyframes[3] = dataclasses.replace(keyframes[3], map_id=1)
    landmarks = Landmarks(
        positions_world_m=rng.normal(size=(12, 3)),
        descriptors=(  # of the keyframes' kind, as the tracker makes them
            rng.integers(0, 256, (12, 32), dtype=np.uint8)
            if binary
            else rng.normal(size=(12, 64)).astype(np.float32)
        ),
        colors_rgb=rng.integers(0, 256, (12, 3), dtype=np.uint8),
        observations=np.array([[0, 0, 3], [0, 5, 7], [11, 2, 16]], np.int64),
    )
    edges = [
        GraphEdge(0, 1, np.eye(4), np.diag(np.arange(1.0, 7.0)), "odometry"),
        GraphEdge(1, 2, np.eye(4), 2 * np.eye(6), "odometry"),
        GraphEdge(0, 5, np.eye(4), 3 * np.eye(6), "loop"),
    ]
    return keyframes, landmarks, edges


def assert_same_keyframe(a: Keyframe, b: Keyframe) -> None:
    assert (a.keyframe_id, a.frame_index, a.stamp_ns) == (b.keyframe_id, b.frame_index, b.stamp_ns)
    assert a.camera == b.camera
    assert a.features.image_size == b.features.image_size
    assert a.reprojection_rmse_px == b.reprojection_rmse_px
    np.testing.assert_array_equal(a.world_from_cam, b.world_from_cam)
    for name in ("keypoints", "scores", "descriptors"):
        x, y = getattr(a.features, name), getattr(b.features, name)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.points_cam_m, b.points_cam_m)  # NaN positions equal too
    assert a.map_id == b.map_id
    if a.global_descriptor is None:
        assert b.global_descriptor is None
    else:
        assert b.global_descriptor is not None
        np.testing.assert_array_equal(a.global_descriptor, b.global_descriptor)


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_is_exact(tmp_path: Path, binary: bool) -> None:
    keyframes, landmarks, edges = sample_map(np.random.default_rng(0), binary)
    path = tmp_path / "room.map"
    kind = "orb" if binary else "xfeat"
    save_map(path, keyframes, landmarks, edges, descriptor_kind=kind, vocabulary_id="v1")
    loaded = load_map(path)
    assert loaded.descriptor_kind == kind
    assert loaded.vocabulary_id == "v1"
    assert len(loaded.keyframes) == 4
    for a, b in zip(keyframes, loaded.keyframes, strict=True):
        assert_same_keyframe(a, b)
    np.testing.assert_array_equal(loaded.landmarks.positions_world_m, landmarks.positions_world_m)
    np.testing.assert_array_equal(loaded.landmarks.descriptors, landmarks.descriptors)
    np.testing.assert_array_equal(loaded.landmarks.colors_rgb, landmarks.colors_rgb)
    np.testing.assert_array_equal(loaded.landmarks.observations, landmarks.observations)
    assert [(e.from_id, e.to_id, e.kind) for e in loaded.edges] == [
        (0, 1, "odometry"),
        (1, 2, "odometry"),
        (0, 5, "loop"),
    ]
    np.testing.assert_array_equal(loaded.edges[0].information, np.diag(np.arange(1.0, 7.0)))


def test_empty_map_round_trips(tmp_path: Path) -> None:
    save_map(tmp_path / "empty.map", [])
    loaded = load_map(tmp_path / "empty.map")
    assert loaded.keyframes == () and loaded.edges == () and len(loaded.landmarks) == 0


def test_mixed_descriptors_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    keyframes = [make_keyframe(0, rng, 5), make_keyframe(1, rng, 5, binary=True)]
    with pytest.raises(InputError, match="mix descriptor"):
        save_map(tmp_path / "bad.map", keyframes)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "room.map"
    save_map(path, *sample_map(np.random.default_rng(2)))
    return path


def test_truncated_file_is_a_clear_error(saved: Path) -> None:
    data = saved.read_bytes()
    for keep in (len(data) // 2, len(data) - 30, 10):
        saved.write_bytes(data[:keep])
        with pytest.raises(MapFileError, match="corrupt or truncated"):
            load_map(saved)


def test_flipped_bytes_are_detected(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("feature_descriptors.npy")
    # Inside the stored data of one array, past its local header and the .npy header.
    position = info.header_offset + 30 + len(info.filename) + 200
    data[position] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(MapFileError, match="corrupt"):
        load_map(saved)


def rewrite(
    path: Path, edit_header: object = None, replace: dict[str, bytes] | None = None
) -> None:
    """Re-zip ``path`` with an edited header and/or replaced members (CRCs stay valid)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(members["header.json"])
    if callable(edit_header):
        edit_header(header)
    members["header.json"] = json.dumps(header).encode()
    members.update(replace or {})
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


def test_a_map_written_before_maps_were_numbered_is_one_map(saved: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    del members["keyframe_map_id.npy"]
    header = json.loads(members["header.json"])
    del header["arrays"]["keyframe_map_id"]
    members["header.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(saved, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    assert {kf.map_id for kf in load_map(saved).keyframes} == {0}


def test_other_version_is_refused(saved: Path) -> None:
    rewrite(saved, lambda h: h.update(version=2))
    with pytest.raises(MapFileError, match="version 2; this slamfront reads version 1"):
        load_map(saved)


def test_checksum_mismatch_is_refused(saved: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 4, 4)))
    rewrite(saved, replace={"keyframe_world_from_cam.npy": buffer.getvalue()})
    with pytest.raises(MapFileError, match=r"checksum mismatch in keyframe_world_from_cam\.npy"):
        load_map(saved)


def test_inconsistent_contents_are_refused(saved: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[0, 99]], np.int64))
    blob = buffer.getvalue()

    def edit(header: dict[str, dict[str, object]]) -> None:
        import hashlib

        header["arrays"]["edge_ids"] = {
            "sha256": hashlib.sha256(blob).hexdigest(),
            "dtype": "<i8",
            "shape": [1, 2],
        }

    rewrite(saved, edit, {"edge_ids.npy": blob})
    with pytest.raises(MapFileError, match="inconsistent map contents"):
        load_map(saved)


def test_foreign_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MapFileError, match="not found"):
        load_map(tmp_path / "nothing.map")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(MapFileError, match="corrupt or truncated"):
        load_map(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(MapFileError, match="not a slamfront map"):
        load_map(other)


def test_failed_save_keeps_the_existing_map(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()
    calls = {"n": 0}
    real_writestr = zipfile.ZipFile.writestr

    def failing_writestr(self: zipfile.ZipFile, name: str, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        real_writestr(self, name, data)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        save_map(saved, *sample_map(np.random.default_rng(3)))
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]  # no temporary left


def test_killed_save_keeps_the_existing_map(saved: Path) -> None:
    """A process dying just before the rename leaves the old map intact and loadable."""
    before = saved.read_bytes()
    script = f"""
import os, numpy as np
from slamfront.backend import map_store
os.replace = lambda *a, **k: os._exit(3)
map_store.save_map({str(saved)!r}, [])
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == 3
    assert saved.read_bytes() == before
    assert len(load_map(saved).keyframes) == 4


def test_a_killed_save_leaves_nothing_the_next_save_or_a_load_trips_over(saved: Path) -> None:
    """The temporary file of a save killed before its rename is never read, and the next
    save to that map removes it; a running process's temporary file is left alone."""
    script = f"""
import os
from slamfront.backend import map_store
os.replace = lambda *a, **k: os._exit(3)
map_store.save_map({str(saved)!r}, [])
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == 3
    stale = [p for p in saved.parent.iterdir() if p != saved]
    assert len(stale) == 1 and stale[0].name.startswith(f".{saved.name}.")
    assert len(load_map(saved).keyframes) == 4  # the old map, not the partial one
    running = saved.parent / f".{saved.name}.{os.getpid()}-0000.tmp"  # a save under way
    running.write_bytes(b"partial")
    save_map(saved, *sample_map(np.random.default_rng(5)))
    assert sorted(p.name for p in saved.parent.iterdir()) == sorted([saved.name, running.name])
    assert len(load_map(saved).keyframes) == 4


def test_save_replaces_an_existing_map(saved: Path) -> None:
    save_map(saved, [])
    assert load_map(saved).keyframes == ()
    assert map_store.MAP_FORMAT_VERSION == 1
