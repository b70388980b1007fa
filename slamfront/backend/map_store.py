"""Saved maps: keyframes, landmarks and pose-graph edges in one versioned file.

The file is a zip archive of ``.npy`` arrays plus ``header.json``, which carries the format
name and version, the cameras, and the sha256, dtype and shape of every array. It is written
atomically: to a temporary file in the same folder, flushed and fsync'ed, then renamed over
the target, so a crash during a save leaves any existing map untouched (and the temporary
file, which the next save to that target removes). :func:`load_map`
checks everything and raises :class:`~slamfront.errors.MapFileError` naming the file and the
fault for a corrupt, truncated, foreign or other-version file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slamfront.backend.pose_graph import EdgeKind, GraphEdge
from slamfront.errors import InputError, MapFileError
from slamfront.io.atomic import open_temp
from slamfront.types import CameraModel, Features, Keyframe

MAP_FORMAT = "slamfront-map"
MAP_FORMAT_VERSION = 1
_HEADER = "header.json"
MAX_HEADER_BYTES = 64 << 20
"""Largest header.json read."""
MAX_MAP_BYTES = 16 << 30
"""Largest total of the arrays a map file may declare (16 GiB)."""
_MAX_IMAGE_SIDE_PX = 1 << 16
"""Largest keyframe image side a map may declare."""
MAX_COMPRESSION_RATIO = 20
"""Members are written stored (uncompressed); one that declares more than this many times its
compressed size (and over a megabyte) is refused as a decompression bomb before it is read."""
_NPY_HEADER_SLACK = 1 << 16
_DTYPES = frozenset({"<f4", "<f8", "<i8", "|u1", "|b1"})
_EDGE_KINDS: tuple[EdgeKind, ...] = ("odometry", "loop")


def _empty_observations() -> np.ndarray:
    return np.zeros((0, 3), np.int64)


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Map points.

    positions_world_m: (L, 3) float64; descriptors: (L, D) float32 or uint8, or None;
    colors_rgb: (L, 3) uint8 or None; observations: (O, 3) int64 rows
    ``(landmark_row, keyframe_id, keypoint_index)`` linking a landmark to a keyframe keypoint.
    """

    positions_world_m: np.ndarray
    descriptors: np.ndarray | None = None
    colors_rgb: np.ndarray | None = None
    observations: np.ndarray = field(default_factory=_empty_observations)

    @staticmethod
    def empty() -> Landmarks:
        return Landmarks(np.zeros((0, 3), np.float64))

    def __len__(self) -> int:
        return int(self.positions_world_m.shape[0])


@dataclass(frozen=True, eq=False)
class SavedMap:
    """What :func:`load_map` returns.

    ``descriptor_kind`` names the extractor whose local descriptors the keyframes carry
    (e.g. ``xfeat``); ``vocabulary_id`` identifies the vocabulary of the global descriptors
    (recompute them from the local ones when it differs from the one in use).
    """

    keyframes: tuple[Keyframe, ...]
    landmarks: Landmarks
    edges: tuple[GraphEdge, ...]
    descriptor_kind: str = ""
    vocabulary_id: str = ""


def save_map(
    path: str | os.PathLike[str],
    keyframes: Sequence[Keyframe],
    landmarks: Landmarks | None = None,
    edges: Sequence[GraphEdge] = (),
    descriptor_kind: str = "",
    vocabulary_id: str = "",
) -> None:
    """Write a map file atomically (temporary file + fsync + rename); see the module docstring."""
    target = Path(path)
    arrays, cameras = _pack(keyframes, landmarks or Landmarks.empty(), edges)
    header: dict[str, Any] = {
        "format": MAP_FORMAT,
        "version": MAP_FORMAT_VERSION,
        "descriptor_kind": descriptor_kind,
        "vocabulary_id": vocabulary_id,
        "cameras": cameras,
        "arrays": {},
    }
    blobs: dict[str, bytes] = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        blob = buffer.getvalue()
        blobs[name] = blob
        header["arrays"][name] = {
            "sha256": hashlib.sha256(blob).hexdigest(),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise MapFileError(f"{target}: folder {folder} does not exist")
    fd, tmp = open_temp(target)  # also removes what a killed save left here
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr(_HEADER, json.dumps(header, indent=1))
                for name, blob in blobs.items():
                    archive.writestr(f"{name}.npy", blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def is_map_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file that names itself a slamfront map (its header alone is
    read; its contents are checked by :func:`load_map`)."""
    try:
        with zipfile.ZipFile(path, "r") as archive:
            info = archive.getinfo(_HEADER)
            if info.file_size > MAX_HEADER_BYTES:
                return False
            header = json.loads(_read_member(archive, info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError, EOFError):
        return False
    return isinstance(header, dict) and header.get("format") == MAP_FORMAT


def load_map(path: str | os.PathLike[str]) -> SavedMap:
    """Read and check a map written by :func:`save_map`; any fault is a MapFileError."""
    source = Path(path)
    if not source.is_file():
        raise MapFileError(f"{source}: map file not found")
    try:
        with zipfile.ZipFile(source, "r") as archive:
            header = _read_header(archive, source)
            _check_sizes(archive, source, header["arrays"])
            arrays = {
                name: _read_array(archive, source, name, spec)
                for name, spec in header["arrays"].items()
            }
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise MapFileError(f"{source}: corrupt or truncated map file ({exc})") from exc
    except (OSError, EOFError, RuntimeError, ValueError) as exc:
        raise MapFileError(f"{source}: cannot read map file ({exc})") from exc
    try:
        return _unpack(arrays, header)
    except (KeyError, ValueError, IndexError, TypeError, OverflowError) as exc:
        raise MapFileError(f"{source}: inconsistent map contents: {exc}") from exc


# ----------------------------------------------------------------------------- writing


def _pack(
    keyframes: Sequence[Keyframe], landmarks: Landmarks, edges: Sequence[GraphEdge]
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    cameras: list[dict[str, Any]] = []
    camera_rows: list[int] = []
    for kf in keyframes:
        entry = _camera_to_json(kf.camera)
        if entry not in cameras:
            cameras.append(entry)
        camera_rows.append(cameras.index(entry))
    desc_dtypes = {
        (kf.features.descriptors.dtype.str, kf.features.descriptors.shape[1]) for kf in keyframes
    }
    if len(desc_dtypes) > 1:
        raise InputError(f"keyframes mix descriptor types {sorted(desc_dtypes)}")
    dtype, width = desc_dtypes.pop() if desc_dtypes else ("<f4", 0)
    sizes = [len(kf.features) for kf in keyframes]
    for kf, size in zip(keyframes, sizes, strict=True):
        f = kf.features
        if not (f.scores.shape == (size,) and f.descriptors.shape[0] == size):
            raise InputError(f"keyframe {kf.keyframe_id}: feature arrays disagree in length")
        if kf.points_cam_m.shape != (size, 3):
            raise InputError(f"keyframe {kf.keyframe_id}: points_cam_m must be ({size}, 3)")
    global_dims = {
        kf.global_descriptor.shape[0] for kf in keyframes if kf.global_descriptor is not None
    }
    if len(global_dims) > 1:
        raise InputError(f"keyframes mix global descriptor sizes {sorted(global_dims)}")
    global_dim = global_dims.pop() if global_dims else 0
    global_desc = np.zeros((len(keyframes), global_dim), np.float32)
    for row, kf in enumerate(keyframes):
        if kf.global_descriptor is not None:
            global_desc[row] = kf.global_descriptor
    ids = np.array([kf.keyframe_id for kf in keyframes], np.int64)
    if len(set(ids.tolist())) != len(ids):
        raise InputError("keyframe ids are not unique")

    def stack(items: list[np.ndarray], shape: tuple[int, ...], dt: Any) -> np.ndarray:
        return np.concatenate(items).astype(dt) if items else np.zeros(shape, dt)

    arrays: dict[str, np.ndarray] = {
        "keyframe_id": ids,
        "keyframe_frame_index": np.array([kf.frame_index for kf in keyframes], np.int64),
        "keyframe_stamp_ns": np.array([kf.stamp_ns for kf in keyframes], np.int64),
        "keyframe_world_from_cam": stack(
            [kf.world_from_cam[None] for kf in keyframes], (0, 4, 4), np.float64
        ),
        "keyframe_camera": np.array(camera_rows, np.int64),
        "keyframe_image_size": np.array(
            [kf.features.image_size for kf in keyframes], np.int64
        ).reshape(-1, 2),
        "keyframe_reprojection_rmse_px": np.array(
            [kf.reprojection_rmse_px for kf in keyframes], np.float64
        ),
        "keyframe_map_id": np.array([kf.map_id for kf in keyframes], np.int64),
        "keyframe_offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "keyframe_global_descriptor": global_desc,
        "keyframe_has_global_descriptor": np.array(
            [kf.global_descriptor is not None for kf in keyframes], np.bool_
        ),
        "feature_keypoints": stack([kf.features.keypoints for kf in keyframes], (0, 2), np.float32),
        "feature_scores": stack([kf.features.scores for kf in keyframes], (0,), np.float32),
        "feature_descriptors": stack(
            [kf.features.descriptors for kf in keyframes], (0, width), np.dtype(dtype)
        ),
        "feature_points_cam_m": stack([kf.points_cam_m for kf in keyframes], (0, 3), np.float64),
        "landmark_positions_world_m": np.asarray(landmarks.positions_world_m, np.float64),
        "landmark_observations": np.asarray(landmarks.observations, np.int64).reshape(-1, 3),
        "edge_ids": np.array([[e.from_id, e.to_id] for e in edges], np.int64).reshape(-1, 2),
        "edge_from_from_to": stack([e.from_from_to[None] for e in edges], (0, 4, 4), np.float64),
        "edge_information": stack([e.information[None] for e in edges], (0, 6, 6), np.float64),
        "edge_kind": np.array([_EDGE_KINDS.index(e.kind) for e in edges], np.uint8),
    }
    if landmarks.descriptors is not None:
        arrays["landmark_descriptors"] = np.asarray(landmarks.descriptors)
    if landmarks.colors_rgb is not None:
        arrays["landmark_colors_rgb"] = np.asarray(landmarks.colors_rgb, np.uint8)
    return arrays, cameras


def _camera_to_json(camera: CameraModel) -> dict[str, Any]:
    return {
        "width_px": camera.width_px,
        "height_px": camera.height_px,
        "fx": camera.fx,
        "fy": camera.fy,
        "cx": camera.cx,
        "cy": camera.cy,
        "distortion": camera.distortion,
        "dist_coeffs": list(camera.dist_coeffs),
    }


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- reading


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, reading no more than it declares (the size was checked first)."""
    with archive.open(info) as handle:
        blob = handle.read(info.file_size + 1)
    if len(blob) != info.file_size:
        raise zipfile.BadZipFile(f"{info.filename} is not the {info.file_size} bytes it declares")
    return blob


def _read_header(archive: zipfile.ZipFile, source: Path) -> dict[str, Any]:
    try:
        info = archive.getinfo(_HEADER)
    except KeyError:
        raise MapFileError(f"{source}: not a slamfront map (no {_HEADER})") from None
    if info.file_size > MAX_HEADER_BYTES:
        raise MapFileError(f"{source}: {_HEADER} declares {info.file_size} bytes (too large)")
    raw = _read_member(archive, info)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MapFileError(f"{source}: {_HEADER} is corrupt ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != MAP_FORMAT:
        raise MapFileError(f"{source}: not a slamfront map (format field is not {MAP_FORMAT!r})")
    version = header.get("version")
    if type(version) is not int or version != MAP_FORMAT_VERSION:
        raise MapFileError(
            f"{source}: map format version {version!r}; this slamfront reads version "
            f"{MAP_FORMAT_VERSION} only"
        )
    if not isinstance(header.get("arrays"), dict) or not isinstance(header.get("cameras"), list):
        raise MapFileError(f"{source}: {_HEADER} lacks the 'arrays' or 'cameras' table")
    for key in ("descriptor_kind", "vocabulary_id"):
        if not isinstance(header.get(key, ""), str):
            raise MapFileError(f"{source}: {_HEADER}: {key} must be a string")
    for name, spec in header["arrays"].items():
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("sha256"), str)
            and isinstance(spec.get("dtype"), str)
            and spec["dtype"] in _DTYPES
            and isinstance(spec.get("shape"), list)
            and len(spec["shape"]) <= 3
            and all(type(n) is int and 0 <= n < 1 << 40 for n in spec["shape"])
        ):
            raise MapFileError(
                f"{source}: {_HEADER}: array {name!r} needs sha256, dtype (one of "
                f"{', '.join(sorted(_DTYPES))}) and shape (a list of sizes)"
            )
    return header


def _check_sizes(archive: zipfile.ZipFile, source: Path, specs: dict[str, Any]) -> None:
    """Refuse, before reading any array, a member larger than its header entry allows, one
    compressed suspiciously well, or arrays adding up to more than MAX_MAP_BYTES."""
    total = 0
    for name, spec in specs.items():
        member = f"{name}.npy"
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise MapFileError(f"{source}: array {member} is missing") from None
        expected = int(np.prod(spec["shape"], dtype=object)) * np.dtype(spec["dtype"]).itemsize
        if info.file_size > expected + _NPY_HEADER_SLACK:
            raise MapFileError(
                f"{source}: {member} declares {info.file_size} bytes, more than its "
                f"{spec['dtype']}{spec['shape']} array needs"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > MAX_COMPRESSION_RATIO:
            raise MapFileError(
                f"{source}: {member} declares {info.file_size} bytes in {info.compress_size} "
                f"compressed (ratio {ratio:.0f}): refused as a decompression bomb"
            )
        total += info.file_size
    if total > MAX_MAP_BYTES:
        raise MapFileError(
            f"{source}: the arrays declare {total} bytes, over the {MAX_MAP_BYTES}-byte limit"
        )


def _read_array(archive: zipfile.ZipFile, source: Path, name: str, spec: Any) -> np.ndarray:
    member = f"{name}.npy"
    blob = _read_member(archive, archive.getinfo(member))
    if hashlib.sha256(blob).hexdigest() != spec["sha256"]:
        raise MapFileError(f"{source}: checksum mismatch in {member} (file is corrupt)")
    try:
        stream = io.BytesIO(blob)
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version}")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(stream)  # the array's header only, no data
        if dtype.str != spec["dtype"] or list(shape) != spec["shape"]:
            raise MapFileError(
                f"{source}: {member} is {dtype.str}{list(shape)}, the header says "
                f"{spec['dtype']}{spec['shape']}"
            )
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise MapFileError(f"{source}: {member} is not a readable array ({exc})") from exc
    if array.dtype.str != spec.get("dtype") or list(array.shape) != spec.get("shape"):
        raise MapFileError(
            f"{source}: {member} is {array.dtype.str}{list(array.shape)}, the header says "
            f"{spec.get('dtype')}{spec.get('shape')}"
        )
    return array


# Array name -> (dtype kinds allowed, shape). Sizes: K keyframes, F features, L landmarks,
# E edges, "K+1" offsets, None any.
_LAYOUT: dict[str, tuple[str, tuple[str | int | None, ...]]] = {
    "keyframe_id": ("i", ("K",)),
    "keyframe_frame_index": ("i", ("K",)),
    "keyframe_stamp_ns": ("i", ("K",)),
    "keyframe_world_from_cam": ("f", ("K", 4, 4)),
    "keyframe_camera": ("i", ("K",)),
    "keyframe_image_size": ("i", ("K", 2)),
    "keyframe_reprojection_rmse_px": ("f", ("K",)),
    "keyframe_map_id": ("i", ("K",)),
    "keyframe_offsets": ("i", ("K+1",)),
    "keyframe_global_descriptor": ("f", ("K", None)),
    "keyframe_has_global_descriptor": ("b", ("K",)),
    "feature_keypoints": ("f", ("F", 2)),
    "feature_scores": ("f", ("F",)),
    "feature_descriptors": ("fu", ("F", None)),
    "feature_points_cam_m": ("f", ("F", 3)),
    "landmark_positions_world_m": ("f", ("L", 3)),
    "landmark_observations": ("i", (None, 3)),
    "landmark_descriptors": ("fu", ("L", None)),
    "landmark_colors_rgb": ("u", ("L", 3)),
    "edge_ids": ("i", ("E", 2)),
    "edge_from_from_to": ("f", ("E", 4, 4)),
    "edge_information": ("f", ("E", 6, 6)),
    "edge_kind": ("u", ("E",)),
}
# Arrays that must hold finite numbers only (points_cam_m uses NaN for "unknown").
_FINITE = (
    "keyframe_world_from_cam",
    "keyframe_global_descriptor",
    "feature_keypoints",
    "feature_scores",
    "feature_descriptors",
    "landmark_positions_world_m",
    "landmark_descriptors",
    "edge_from_from_to",
    "edge_information",
)


def _check_layout(arrays: dict[str, np.ndarray]) -> None:
    """ValueError naming the first array of the wrong kind, shape, or with NaN/inf values."""

    def rows(name: str) -> int:
        return int(arrays[name].shape[0]) if arrays[name].ndim else -1

    sizes = {
        "K": rows("keyframe_id"),
        "F": rows("feature_keypoints"),
        "L": rows("landmark_positions_world_m"),
        "E": rows("edge_ids"),
    }
    for name, (kinds, dims) in _LAYOUT.items():
        if name not in arrays:
            if name in ("keyframe_map_id", "landmark_descriptors", "landmark_colors_rgb"):
                continue  # optional
            raise KeyError(f"array {name} is missing")
        array = arrays[name]
        want = tuple(
            sizes["K"] + 1 if d == "K+1" else sizes[d] if isinstance(d, str) else d for d in dims
        )
        if array.dtype.kind not in kinds or len(array.shape) != len(want):
            raise ValueError(f"{name} is {array.dtype.str}{list(array.shape)}")
        if any(w is not None and n != w for n, w in zip(array.shape, want, strict=True)):
            raise ValueError(f"{name} has shape {list(array.shape)}, expected {list(want)}")
    for name in _FINITE:
        values = arrays.get(name)
        if values is not None and values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds NaN or infinite values")
    if np.any(np.isinf(arrays["feature_points_cam_m"])):
        raise ValueError("feature_points_cam_m holds infinite values")
    poses = arrays["keyframe_world_from_cam"]
    rotations = poses[:, :3, :3]
    gram = np.einsum("kji,kjl->kil", rotations, rotations)
    if not (
        np.allclose(poses[:, 3], [0.0, 0.0, 0.0, 1.0])
        and np.allclose(gram, np.eye(3), atol=1e-4)
        and np.all(np.linalg.det(rotations) > 0)
    ):
        raise ValueError("keyframe_world_from_cam holds a matrix that is not a rigid pose")


def _camera_from_json(entry: Any) -> CameraModel:
    if not isinstance(entry, dict):
        raise ValueError(f"a camera entry must be a mapping, got {entry!r:.80}")
    numbers = [entry.get(k) for k in ("width_px", "height_px", "fx", "fy", "cx", "cy")]
    coeffs = entry.get("dist_coeffs")
    if not isinstance(coeffs, list):
        raise ValueError("a camera's dist_coeffs must be a list")
    values = [*numbers, *coeffs]
    if not all(
        type(v) in (int, float) and math.isfinite(v) and abs(v) < 1e9 for v in values
    ) or not all(type(v) is int for v in numbers[:2]):
        raise ValueError(f"a camera entry holds a wrong or non-finite number: {entry!r:.200}")
    return CameraModel(**{**entry, "dist_coeffs": tuple(coeffs)})


def _unpack(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> SavedMap:
    cameras = [_camera_from_json(entry) for entry in header["cameras"]]
    _check_layout(arrays)
    ids = arrays["keyframe_id"]
    offsets = arrays["keyframe_offsets"]
    count = ids.shape[0]
    total = arrays["feature_keypoints"].shape[0]
    if offsets.shape != (count + 1,) or offsets[0] != 0 or offsets[-1] != total:
        raise ValueError("keyframe_offsets do not cover the feature arrays")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("keyframe_offsets are not increasing")
    camera_rows = arrays["keyframe_camera"]
    unknown = camera_rows[(camera_rows < 0) | (camera_rows >= len(cameras))]
    if unknown.size:
        raise ValueError(
            f"keyframe_camera refers to camera {int(unknown[0])}; the header lists "
            f"{len(cameras)} (0 to {len(cameras) - 1})"
        )
    sizes = arrays["keyframe_image_size"]
    if count and (sizes.min() <= 0 or sizes.max() > _MAX_IMAGE_SIDE_PX):
        raise ValueError(f"keyframe_image_size holds a size out of 1..{_MAX_IMAGE_SIDE_PX} px")
    landmark_descriptors = arrays.get("landmark_descriptors")
    feature_descriptors = arrays["feature_descriptors"]
    if landmark_descriptors is not None and (
        landmark_descriptors.shape[1:] != feature_descriptors.shape[1:]
        or landmark_descriptors.dtype != feature_descriptors.dtype
    ):
        raise ValueError(
            "landmark_descriptors are not of the keyframes' kind: "
            f"{landmark_descriptors.dtype.str}{list(landmark_descriptors.shape[1:])} against "
            f"{feature_descriptors.dtype.str}{list(feature_descriptors.shape[1:])}"
        )
    for name in ("feature_scores", "feature_descriptors", "feature_points_cam_m"):
        if arrays[name].shape[0] != total:
            raise ValueError(f"{name} has {arrays[name].shape[0]} rows, expected {total}")
    # files written before maps were numbered hold one map
    map_ids = arrays.get("keyframe_map_id", np.zeros(count, np.int64))
    if map_ids.shape != (count,):
        raise ValueError(f"keyframe_map_id has shape {map_ids.shape}, expected ({count},)")
    keyframes = []
    for row in range(count):
        lo, hi = int(offsets[row]), int(offsets[row + 1])
        width, height = (int(v) for v in arrays["keyframe_image_size"][row])
        features = Features(
            keypoints=arrays["feature_keypoints"][lo:hi],
            scores=arrays["feature_scores"][lo:hi],
            descriptors=arrays["feature_descriptors"][lo:hi],
            image_size=(width, height),
        )
        has_global = bool(arrays["keyframe_has_global_descriptor"][row])
        keyframes.append(
            Keyframe(
                keyframe_id=int(ids[row]),
                frame_index=int(arrays["keyframe_frame_index"][row]),
                stamp_ns=int(arrays["keyframe_stamp_ns"][row]),
                world_from_cam=arrays["keyframe_world_from_cam"][row],
                camera=cameras[int(arrays["keyframe_camera"][row])],
                features=features,
                points_cam_m=arrays["feature_points_cam_m"][lo:hi],
                global_descriptor=(
                    arrays["keyframe_global_descriptor"][row] if has_global else None
                ),
                reprojection_rmse_px=float(arrays["keyframe_reprojection_rmse_px"][row]),
                map_id=int(map_ids[row]),
            )
        )
    known = set(ids.tolist())
    edges = []
    for row, (from_id, to_id) in enumerate(arrays["edge_ids"].tolist()):
        if from_id not in known or to_id not in known:
            raise ValueError(f"edge {row} links unknown keyframes {from_id}->{to_id}")
        edges.append(
            GraphEdge(
                from_id=int(from_id),
                to_id=int(to_id),
                from_from_to=arrays["edge_from_from_to"][row],
                information=arrays["edge_information"][row],
                kind=_EDGE_KINDS[int(arrays["edge_kind"][row])],
            )
        )
    positions = arrays["landmark_positions_world_m"]
    observations = arrays["landmark_observations"]
    if observations.size and (
        observations[:, 0].min() < 0 or observations[:, 0].max() >= positions.shape[0]
    ):
        raise ValueError("landmark_observations refer to landmarks that do not exist")
    landmarks = Landmarks(
        positions_world_m=positions,
        descriptors=arrays.get("landmark_descriptors"),
        colors_rgb=arrays.get("landmark_colors_rgb"),
        observations=observations,
    )
    return SavedMap(
        keyframes=tuple(keyframes),
        landmarks=landmarks,
        edges=tuple(edges),
        descriptor_kind=str(header.get("descriptor_kind", "")),
        vocabulary_id=str(header.get("vocabulary_id", "")),
    )
