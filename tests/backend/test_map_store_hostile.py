"""Hostile map files: a decompression bomb, wrong header types, NaN poses and keypoints.
Each is refused with a MapFileError before it costs memory or reaches the tracker."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slamfront.backend.map_store import Landmarks, load_map, save_map
from slamfront.backend.pose_graph import GraphEdge
from slamfront.config import load_config
from slamfront.errors import MapFileError
from slamfront.pipeline import load_run_parts
from slamfront.types import CameraModel, Features, Keyframe

CAMERA = CameraModel(640, 480, 500.0, 501.0, 320.5, 239.5)


def _keyframe(kid: int, rng: np.random.Generator, n: int = 20) -> Keyframe:
    pose = np.eye(4)
    pose[:3, 3] = rng.normal(size=3)
    points = rng.normal(size=(n, 3)) + np.array([0.0, 0.0, 3.0])
    points[::3] = np.nan  # unknown depth: allowed
    return Keyframe(
        keyframe_id=kid,
        frame_index=kid,
        stamp_ns=kid * 33_000_000,
        world_from_cam=pose,
        camera=CAMERA,
        features=Features(
            keypoints=rng.uniform(0, 480, (n, 2)).astype(np.float32),
            scores=rng.uniform(size=n).astype(np.float32),
            descriptors=rng.normal(size=(n, 64)).astype(np.float32),
            image_size=(640, 480),
        ),
        points_cam_m=points,
        global_descriptor=rng.normal(size=32).astype(np.float32),
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "small.map"
    edges = [GraphEdge(0, 1, np.eye(4), np.eye(6), "odometry")]
    save_map(path, [_keyframe(0, rng), _keyframe(1, rng)], Landmarks.empty(), edges)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


def _replace_array(path: Path, name: str, array: np.ndarray) -> None:
    """Swap one array for ``array`` with a consistent header entry and checksum."""
    members = _members(path)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    blob = buffer.getvalue()
    header = json.loads(members["header.json"])
    header["arrays"][name] = {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "dtype": array.dtype.str,
        "shape": list(array.shape),
    }
    members["header.json"] = json.dumps(header).encode()
    members[f"{name}.npy"] = blob
    _write(path, members)


def _edit_header(path: Path, **changes: Any) -> None:
    members = _members(path)
    header = json.loads(members["header.json"])
    header.update(changes)
    members["header.json"] = json.dumps(header).encode()
    _write(path, members)


def test_the_fixture_map_loads(saved: Path) -> None:
    loaded = load_map(saved)
    assert [kf.keyframe_id for kf in loaded.keyframes] == [0, 1]
    assert np.isnan(loaded.keyframes[0].points_cam_m[0]).all()


def test_a_decompression_bomb_is_refused_in_little_memory(saved: Path) -> None:
    """A 1.5 GB member deflated into a few megabytes, declared consistently in the header."""
    members = _members(saved)
    rows = (1536 << 20) // (64 * 4)
    header = json.loads(members["header.json"])
    shape = [rows, 64]
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)}
    )
    header["arrays"]["feature_descriptors"] = {"sha256": "0" * 64, "dtype": "<f4", "shape": shape}
    members["header.json"] = json.dumps(header).encode()
    del members["feature_descriptors.npy"]
    with zipfile.ZipFile(saved, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, blob in members.items():
            archive.writestr(name, blob, compress_type=zipfile.ZIP_STORED)
        with archive.open("feature_descriptors.npy", "w", force_zip64=True) as handle:
            handle.write(npy.getvalue())
            chunk = bytes(16 << 20)
            for _ in range(96):
                handle.write(chunk)
    assert saved.stat().st_size < 20 << 20
    tracemalloc.start()
    try:
        with pytest.raises(MapFileError, match=r"feature_descriptors.npy declares .*bomb"):
            load_map(saved)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20  # far under the 500 MB bar: nothing was decompressed


def test_a_member_larger_than_its_array_is_refused_before_reading(saved: Path) -> None:
    members = _members(saved)
    members["edge_kind.npy"] += bytes(1 << 17)
    _write(saved, members)
    with pytest.raises(MapFileError, match=r"edge_kind.npy declares \d+ bytes, more than"):
        load_map(saved)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"version": True}, "map format version True"),
        ({"version": 1.0}, "map format version 1.0"),
        ({"version": "1"}, "map format version '1'"),
        ({"descriptor_kind": 3}, "descriptor_kind must be a string"),
        ({"cameras": [{"width_px": 640}]}, "inconsistent map contents"),
        ({"cameras": ["x"]}, "inconsistent map contents"),
    ],
)
def test_wrong_header_types_are_refused(saved: Path, changes: dict[str, Any], needle: str) -> None:
    _edit_header(saved, **changes)
    with pytest.raises(MapFileError, match=needle):
        load_map(saved)


def test_a_camera_with_a_nan_focal_length_is_refused(saved: Path) -> None:
    members = _members(saved)
    text = members["header.json"].decode().replace('"fx": 500.0', '"fx": NaN')
    members["header.json"] = text.encode()
    _write(saved, members)
    with pytest.raises(MapFileError, match="non-finite number"):
        load_map(saved)


@pytest.mark.parametrize(
    ("name", "array", "needle"),
    [
        ("feature_keypoints", np.full((40, 2), np.nan, np.float32), "feature_keypoints holds NaN"),
        ("keyframe_world_from_cam", np.full((2, 4, 4), np.nan), "world_from_cam holds NaN"),
        ("keyframe_world_from_cam", np.zeros((2, 4, 4)), "not a rigid pose"),
        ("keyframe_world_from_cam", np.zeros((2, 3)), "keyframe_world_from_cam is <f8"),
        ("feature_points_cam_m", np.full((40, 3), np.inf), "infinite"),
        ("edge_information", np.full((1, 6, 6), np.inf), "edge_information holds NaN"),
        ("keyframe_id", np.array([0.0, 1.0]), "keyframe_id is <f8"),
        ("feature_scores", np.zeros(39, np.float32), "feature_scores has shape"),
        # these three reached the tracker: nothing tracked, or a mismatch error mid-run
        ("keyframe_image_size", np.zeros((2, 2), np.int64), "keyframe_image_size holds a size"),
        ("keyframe_camera", np.array([0, 5]), "refers to camera 5; the header lists 1"),
        ("landmark_descriptors", np.zeros((0, 32), np.float32), "not of the keyframes' kind"),
    ],
)
def test_bad_array_contents_are_refused(
    saved: Path, name: str, array: np.ndarray, needle: str
) -> None:
    _replace_array(saved, name, array)
    with pytest.raises(MapFileError, match=needle):
        load_map(saved)


def test_an_array_whose_npy_header_disagrees_is_refused_before_loading(saved: Path) -> None:
    members = _members(saved)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (1 << 36,)}
    )
    blob = buffer.getvalue()
    header = json.loads(members["header.json"])
    header["arrays"]["edge_kind"]["sha256"] = hashlib.sha256(blob).hexdigest()
    members["header.json"] = json.dumps(header).encode()
    members["edge_kind.npy"] = blob
    _write(saved, members)
    with pytest.raises(MapFileError, match=r"edge_kind.npy is <f8\[68719476736\], the header"):
        load_map(saved)


def test_an_unknown_distortion_model_is_named(saved: Path) -> None:
    header = json.loads(_members(saved)["header.json"])
    camera = {**header["cameras"][0], "distortion": "fisheye9"}
    _edit_header(saved, cameras=[camera])
    with pytest.raises(MapFileError, match="unknown distortion model 'fisheye9'"):
        load_map(saved)


def test_descriptors_the_extractor_does_not_make_are_refused_before_the_run(saved: Path) -> None:
    """The fixture's 64-d float descriptors against ORB's 32 bytes: refused at load, not by
    the matcher at the first frame with the run folder already written."""
    config = load_config("classic")
    with pytest.raises(MapFileError, match=r"descriptors are <f4\[64\].*makes \|u1\[32\]"):
        load_run_parts(config, saved)
