"""Property-based fuzzing of every parser a user's file reaches: TUM, EuRoC and KITTI index and
calibration files, camera calibration files, ROS bags, trajectory files for ``eval``, config
YAML and ``key=value`` overrides, and map files. Not here: RealSense recordings, which the
SDK's own C++ reader (pyrealsense2) parses. Inputs are generated, mutated from valid files, or
random bytes; the only outcomes allowed are a result or slamfront's own error with a message
(no other exception, no hang: each case has a deadline). Cases are derandomised: every run
checks the same ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slamfront.backend.map_store import Landmarks, load_map, save_map
from slamfront.backend.pose_graph import GraphEdge
from slamfront.config import Config, load_config
from slamfront.errors import SlamfrontError
from slamfront.eval.trajectory_metrics import evaluate_files
from slamfront.io.trajectory import read_trajectory
from slamfront.sources import open_source
from slamfront.sources.calibration import read_calibration
from slamfront.types import CameraModel, Features, Frame, Keyframe

T = TypeVar("T")

EXPLORE = int(os.environ.get("SLAMFRONT_FUZZ_EXAMPLES", "0"))
"""Set: that many new random cases per test (a longer hunt by hand); unset: the fixed suite."""
EXAMPLES = EXPLORE or 150
"""Cases per fuzz test (docs/how-it-works.md, Development, states the total)."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=20),  # far above any case (ms); catches a hang, not load
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _recorded() -> ModuleType:
    path = Path(__file__).parent / "sources" / "recorded_fixtures.py"
    spec = importlib.util.spec_from_file_location("slamfront_tests_fuzz_recorded", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recorded = _recorded()


def result_or_own_error(parse: Callable[[], T]) -> T | None:
    """``parse()``'s result, or None after a SlamfrontError with a message; any other
    exception propagates and fails the test."""
    try:
        return parse()
    except SlamfrontError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return None


# ----------------------------------------------------------------------------- strategies


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, payload in edits:
        at = where % (len(out) + 1)
        if kind == "flip" and out:
            out[at % len(out)] ^= payload[0] or 1
        elif kind == "delete":
            del out[at : at + len(payload)]
        elif kind == "insert":
            out[at:at] = payload
        elif kind == "truncate":
            del out[at:]
        elif kind == "duplicate":
            out[at:at] = out[at : at + 64]
    return bytes(out)


def mutations(valid: bytes, max_edits: int = 6) -> st.SearchStrategy[bytes]:
    """``valid`` with a few byte flips, deletions, insertions, duplications or a truncation."""
    edit = st.tuples(
        st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]),
        st.integers(0, 1 << 30),
        st.binary(min_size=1, max_size=12),
    )
    return st.lists(edit, min_size=1, max_size=max_edits).map(lambda e: _apply(valid, e))


STAMPS = st.one_of(
    st.sampled_from(
        [
            "1311868169.163498",
            "0",
            "-1",
            "1e30",
            "-1e300",
            "1311868169163498000",
            "9223372036.854775808",
            "nan",
            "inf",
            "1e-999999",
            "1e999999999",
            "",
            "0x1F",
            "1_000",
            "\u0661\u0662",
        ]
    ),
    st.floats().map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=12),
)
NUMBERS = st.one_of(
    st.floats().map(repr),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.sampled_from(["0", "1", "-0", "1e400", "nan", "", "x", "1,5", "0.5", "1e-320"]),
)
NAMES = st.one_of(
    st.sampled_from(
        ["../x.png", "/etc/hostname", "a/../../x.png", "", ".", "..", "C:\\x.png", "\x00"]
    ),
    st.text(max_size=20),
)


def line_of(
    *parts: st.SearchStrategy[str], seps: tuple[str, ...] = (" ",)
) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(seps), *parts).map(lambda t: t[0].join(t[1:]))


def text_file(lines: st.SearchStrategy[str], max_lines: int = 8) -> st.SearchStrategy[bytes]:
    """Files of generated lines (comments and blank lines mixed in), as UTF-8 bytes."""
    line = st.one_of(lines, st.sampled_from(["", "# comment", "   ", "\t#x"]))
    ending = st.sampled_from(["\n", "\r\n", ""])
    return st.tuples(st.lists(line, max_size=max_lines), ending).map(
        lambda t: (t[1].join(t[0]) + t[1]).encode("utf-8", "surrogatepass")
    )


def files(valid: bytes, lines: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Generated files, mutations of a valid one, and random bytes."""
    return st.one_of(text_file(lines), mutations(valid), st.binary(max_size=300))


def _first_frames(source: Any) -> list[Any]:
    frames = list(islice(iter(source), 2))
    source.close()
    return frames


# ----------------------------------------------------------------------------- sequences


@pytest.fixture(scope="module")
def tum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = recorded.make_tum(tmp_path_factory.mktemp("tum"), count=3)["folder"]
    yield folder


@given(
    which=st.sampled_from(["rgb.txt", "depth.txt"]),
    data=st.data(),
)
@FUZZ
def test_tum_index_files(tum: Path, which: str, data: st.DataObject) -> None:
    target = tum / which
    valid = target.read_bytes()
    name = "rgb/1311868169.000000.png" if which == "rgb.txt" else "depth/1311868169.007000.png"
    lines = line_of(STAMPS, st.one_of(NAMES, st.just(name)), seps=(" ", "\t", ",", "  "))
    target.write_bytes(data.draw(files(valid, lines)))
    try:
        config = load_config("fast", ["source.tum_intrinsics=fr1"])
        source = result_or_own_error(lambda: open_source(f"tum:{tum}", config))
        if source is not None:
            result_or_own_error(lambda: _first_frames(source))
    finally:
        target.write_bytes(valid)


@pytest.fixture(scope="module")
def euroc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return recorded.make_euroc(tmp_path_factory.mktemp("euroc"), count=2, stereo=True)


@given(
    which=st.sampled_from(["cam0/data.csv", "cam1/data.csv", "imu0/data.csv"]),
    data=st.data(),
)
@FUZZ
def test_euroc_index_and_imu_files(euroc: dict[str, Any], which: str, data: st.DataObject) -> None:
    target = euroc["mav0"] / which
    valid = target.read_bytes()
    stamp = str(euroc["stamps"][0])
    if which.startswith("imu"):
        lines = line_of(st.one_of(STAMPS, st.just(stamp)), *[NUMBERS] * 6, seps=(",", ", "))
    else:
        names = st.one_of(NAMES, st.just(f"{stamp}.png"))
        lines = line_of(st.one_of(STAMPS, st.just(stamp)), names, seps=(",", ", ", " "))
    target.write_bytes(data.draw(files(valid, lines)))
    try:
        source = result_or_own_error(lambda: open_source(f"euroc:{euroc['root']}", Config()))
        if source is not None:
            result_or_own_error(lambda: _first_frames(source))
    finally:
        target.write_bytes(valid)


YAML_VALUES = st.one_of(
    NUMBERS,
    st.sampled_from(
        ["[1, 2]", "[]", "{}", "null", "~", "!!binary AAAA", "*x", "&a 1", "'x'", "[" * 1000]
    ),
    st.lists(NUMBERS, max_size=17).map(lambda v: "[" + ", ".join(v) + "]"),
)
SENSOR_KEYS = st.sampled_from(
    [
        "intrinsics",
        "resolution",
        "distortion_coefficients",
        "distortion_model",
        "camera_model",
        "rate_hz",
        "T_BS",
        "T_BS:\n  data",
        "T_BS:\n  rows",
    ]
)


@given(data=st.data())
@FUZZ
def test_euroc_sensor_yaml(euroc: dict[str, Any], data: st.DataObject) -> None:
    target = euroc["mav0"] / "cam0" / "sensor.yaml"
    valid = target.read_bytes()
    lines = line_of(SENSOR_KEYS, YAML_VALUES, seps=(": ", ":", " : "))
    target.write_bytes(data.draw(files(valid, lines)))
    try:
        source = result_or_own_error(lambda: open_source(f"euroc:{euroc['root']}", Config()))
        if source is not None:
            result_or_own_error(lambda: _first_frames(source))
    finally:
        target.write_bytes(valid)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return recorded.make_kitti(tmp_path_factory.mktemp("kitti"), count=2)


@given(which=st.sampled_from(["calib.txt", "times.txt"]), data=st.data())
@FUZZ
def test_kitti_calibration_and_times(
    kitti: dict[str, Any], which: str, data: st.DataObject
) -> None:
    target = kitti["folder"] / which
    valid = target.read_bytes()
    if which == "calib.txt":
        name = st.sampled_from(["P0:", "P1:", "P2:", "P0", ":", "Tr:"])
        lines = line_of(name, *[NUMBERS] * 12)
    else:
        lines = STAMPS
    target.write_bytes(data.draw(files(valid, lines)))
    try:
        source = result_or_own_error(lambda: open_source(f"kitti:{kitti['folder']}", Config()))
        if source is not None:
            result_or_own_error(lambda: _first_frames(source))
    finally:
        target.write_bytes(valid)


CAMERA_INFO = b"""image_width: 752
image_height: 480
camera_matrix:
  rows: 3
  cols: 3
  data: [458.6, 0, 367.2, 0, 457.3, 248.4, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.28, 0.07, 0.0002, 0.00002, 0]
"""
KALIBR = b"""cam0:
  T_cam_imu:
  - [1, 0, 0, 0.1]
  - [0, 1, 0, 0]
  - [0, 0, 1, 0]
  - [0, 0, 0, 1]
  camera_model: pinhole
  intrinsics: [458.6, 457.3, 367.2, 248.4]
  distortion_model: equidistant
  distortion_coeffs: [0.003, 0.0007, -0.002, 0.0002]
  resolution: [752, 480]
cam1:
  T_cn_cnm1:
  - [1, 0, 0, -0.11]
  - [0, 1, 0, 0]
  - [0, 0, 1, 0]
  - [0, 0, 0, 1]
  camera_model: pinhole
  intrinsics: [458.6, 457.3, 367.2, 248.4]
  distortion_model: equidistant
  distortion_coeffs: [0.003, 0.0007, -0.002, 0.0002]
  resolution: [752, 480]
"""
ORBSLAM3 = b"""%YAML:1.0
File.version: "1.0"
Camera.type: "PinHole"
Camera1.fx: 458.6
Camera1.fy: 457.3
Camera1.cx: 367.2
Camera1.cy: 248.4
Camera1.k1: -0.28
Camera1.k2: 0.07
Camera1.p1: 0.0002
Camera1.p2: 0.00002
Camera.width: 752
Camera.height: 480
Stereo.b: 0.11
IMU.T_b_c1: !!opencv-matrix
  rows: 4
  cols: 4
  dt: f
  data: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
"""
CALIBRATION_KEYS = st.sampled_from(
    [
        "image_width",
        "image_height",
        "camera_matrix",
        "distortion_model",
        "K",
        "D",
        "cam0",
        "cam1",
        "Camera.type",
        "Camera1.fx",
        "Camera.width",
        "Stereo.b",
        "Stereo.T_c1_c2",
        "IMU.T_b_c1",
        "Tlr",
    ]
)


@given(
    content=st.one_of(
        mutations(CAMERA_INFO),
        mutations(KALIBR),
        mutations(ORBSLAM3),
        text_file(line_of(CALIBRATION_KEYS, YAML_VALUES, seps=(": ",))),
        st.binary(max_size=300),
    ),
    size=st.sampled_from([None, (752, 480), (0, 0)]),
)
@FUZZ
def test_calibration_files(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, size: tuple[int, int] | None
) -> None:
    folder = tmp_path_factory.getbasetemp() / "fuzz_calibration"
    folder.mkdir(exist_ok=True)
    path = folder / "camera.yaml"
    path.write_bytes(content)
    result_or_own_error(lambda: read_calibration(path, size))


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ROS 1 bag of three RGB-D frames with CameraInfo, written by test_bag's writer."""
    pytest.importorskip("rosbags")
    path = Path(__file__).parent / "sources" / "test_bag.py"
    spec = importlib.util.spec_from_file_location("slamfront_tests_fuzz_bag_writer", path)
    assert spec is not None and spec.loader is not None
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    camera = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
    frames = [
        Frame(
            index=i,
            stamp_ns=10**9 + i * 33_000_000,
            image=recorded.textured(48, 64, i),
            camera=camera,
            depth_m=np.full((48, 64), 1.5, np.float32),
        )
        for i in range(3)
    ]
    out = tmp_path_factory.mktemp("bag") / "valid.bag"
    writer.write_tum_bag(out, frames, "ros1")
    return out


@given(data=st.data())
@settings(FUZZ, max_examples=EXAMPLES // 2)
def test_bag_files(bag: Path, data: st.DataObject) -> None:
    path = bag.with_name("mutated.bag")
    path.write_bytes(data.draw(mutations(bag.read_bytes(), max_edits=4)))
    config = load_config("fast", ["bag.depth_scale=5000"])
    source = result_or_own_error(lambda: open_source(f"bag:{path}", config))
    if source is not None:
        result_or_own_error(lambda: list(source))
        source.close()


# ----------------------------------------------------------------------------- trajectories

TUM_LINE = line_of(STAMPS, *[NUMBERS] * 7)
KITTI_LINE = line_of(*[NUMBERS] * 12)
EUROC_LINE = line_of(STAMPS, *[NUMBERS] * 7, seps=(",",))
VALID_TUM = b"# t x y z qx qy qz qw\n1.0 0 0 0 0 0 0 1\n2.0 1 0 0 0 0 0.7071 0.7071\n"


@given(
    suffix=st.sampled_from([".tum", ".txt", ".csv", ".kitti"]),
    content=st.one_of(
        files(VALID_TUM, st.one_of(TUM_LINE, KITTI_LINE, EUROC_LINE)),
        text_file(KITTI_LINE),
        text_file(EUROC_LINE),
    ),
)
@FUZZ
def test_trajectory_files(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, content: bytes
) -> None:
    folder = tmp_path_factory.getbasetemp() / "fuzz_trajectories"
    folder.mkdir(exist_ok=True)
    path = folder / f"trajectory{suffix}"
    path.write_bytes(content)
    trajectory = result_or_own_error(lambda: read_trajectory(path))
    if trajectory is not None:
        poses = np.asarray(trajectory.world_from_body)
        assert np.all(np.isfinite(poses))
        assert len(trajectory.stamps_ns) == poses.shape[0] > 0


@pytest.fixture(scope="module")
def groundtruth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gt") / "groundtruth.tum"
    stamps = [f"{1.0 + 0.1 * i:.1f}" for i in range(12)]
    recorded.write_tum_file(path, stamps, recorded.poses(12))
    return path


@given(
    content=st.one_of(files(VALID_TUM, TUM_LINE), text_file(TUM_LINE, max_lines=14)),
    align=st.sampled_from(["se3", "sim3", "none"]),
)
@settings(FUZZ, max_examples=EXAMPLES // 2)
def test_eval_of_a_fuzzed_estimate(groundtruth: Path, content: bytes, align: str) -> None:
    estimate = groundtruth.with_name("estimate.tum")
    estimate.write_bytes(content)
    result_or_own_error(
        lambda: evaluate_files(reference=groundtruth, estimate=estimate, align=align)
    )


# ----------------------------------------------------------------------------- config

CONFIG_KEYS = st.sampled_from(
    [
        "extends",
        "preset",
        "sim",
        "sim.frames",
        "pipeline.queue_size",
        "source.fps",
        "source.tum_depth_scale",
        "source.start_frame",
        "tracker.depth.max_m",
        "tracker.min_inliers",
        "matcher.depth_confidence",
        "extractor.tensorrt_min_size_px",
        "camera.dist_coeffs",
        "camera.distortion",
        "rerun.mode",
        "tracker",
        "tracker.nope",
        "tracker.min_depth_m",
        "",
        ".",
        "a..b",
    ]
)
CONFIG_VALUES = st.one_of(
    YAML_VALUES,
    st.sampled_from(
        ["fast", "classic", "base.yaml", "/nonexistent.yaml", "!!python/name:os.system", "yes"]
    ),
    st.text(max_size=10),
)


def _yaml_entry(key: str, value: str) -> str:
    *parents, last = key.split(".") if key else [""]
    text = ""
    for depth, part in enumerate(parents):
        text += "  " * depth + f"{part}:\n"
    return text + "  " * len(parents) + f"{last}: {value}"


@given(
    content=st.one_of(
        text_file(st.builds(_yaml_entry, CONFIG_KEYS, CONFIG_VALUES)),
        mutations(b"extends: fast\nsim:\n  frames: 5\n  fps: 10\npipeline:\n  queue_size: 3\n"),
        st.binary(max_size=200),
    )
)
@FUZZ
def test_config_files(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    folder = tmp_path_factory.getbasetemp() / "fuzz_config"
    folder.mkdir(exist_ok=True)
    (folder / "base.yaml").write_text("sim:\n  fps: 12\n")
    path = folder / "mine.yaml"
    path.write_bytes(content)
    result_or_own_error(lambda: load_config(str(path)))


@given(
    overrides=st.lists(
        st.one_of(
            st.builds(lambda k, v: f"{k}={v}", CONFIG_KEYS, CONFIG_VALUES),
            st.text(max_size=30),
        ),
        max_size=4,
    )
)
@FUZZ
def test_config_overrides(overrides: list[str]) -> None:
    result_or_own_error(lambda: load_config("fast", overrides))


# ----------------------------------------------------------------------------- maps


def _sample_map(path: Path) -> None:
    rng = np.random.default_rng(5)
    camera = CameraModel(640, 480, 500.0, 501.0, 320.5, 239.5, "radtan", (0.1, -0.05, 0.0, 0.0))
    keyframes = []
    for kid, n in ((0, 12), (1, 0), (3, 9)):
        points = rng.normal(size=(n, 3)) + np.array([0.0, 0.0, 3.0])
        points[::3] = np.nan
        keyframes.append(
            Keyframe(
                keyframe_id=kid,
                frame_index=kid,
                stamp_ns=kid * 10**8,
                world_from_cam=np.eye(4),
                camera=camera,
                features=Features(
                    keypoints=rng.uniform(0, 400, (n, 2)).astype(np.float32),
                    scores=rng.uniform(size=n).astype(np.float32),
                    descriptors=rng.normal(size=(n, 8)).astype(np.float32),
                    image_size=(640, 480),
                ),
                points_cam_m=points,
                global_descriptor=rng.normal(size=4).astype(np.float32),
            )
        )
    landmarks = Landmarks(
        positions_world_m=rng.normal(size=(4, 3)),
        descriptors=rng.normal(size=(4, 8)).astype(np.float32),
        colors_rgb=rng.integers(0, 256, (4, 3), dtype=np.uint8),
        observations=np.array([[0, 0, 1], [3, 3, 2]], np.int64),
    )
    edges = [
        GraphEdge(0, 1, np.eye(4), np.eye(6), "odometry"),
        GraphEdge(1, 3, np.eye(4), np.eye(6), "loop"),
    ]
    save_map(path, keyframes, landmarks, edges, descriptor_kind="xfeat")


@pytest.fixture(scope="module")
def valid_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("map") / "valid.map"
    _sample_map(path)
    return path


def _check_loaded(path: Path) -> None:
    loaded = result_or_own_error(lambda: load_map(path))
    if loaded is None:
        return
    for kf in loaded.keyframes:
        assert np.all(np.isfinite(kf.world_from_cam))
        assert np.all(np.isfinite(kf.features.keypoints))
        assert kf.points_cam_m.shape == (len(kf.features), 3)


@given(data=st.data())
@FUZZ
def test_map_file_bytes(valid_map: Path, data: st.DataObject) -> None:
    path = valid_map.with_name("mutated.map")
    path.write_bytes(data.draw(mutations(valid_map.read_bytes(), max_edits=3)))
    _check_loaded(path)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(data=st.data())
@FUZZ
def test_map_headers(valid_map: Path, data: st.DataObject) -> None:
    members = _members(valid_map)
    header = json.loads(members["header.json"])
    spots: list[tuple[Any, Any]] = [(header, k) for k in header]
    spots += [(header["cameras"][0], k) for k in header["cameras"][0]]
    for spec in header["arrays"].values():
        spots += [(spec, k) for k in spec]
    for _ in range(data.draw(st.integers(1, 3))):
        parent, key = data.draw(st.sampled_from(spots))
        if data.draw(st.booleans()):
            parent[key] = data.draw(JSON_VALUES)
        else:
            parent.pop(key, None)
    members["header.json"] = json.dumps(header).encode()
    path = valid_map.with_name("header.map")
    _write_members(path, members)
    _check_loaded(path)


ARRAY_DTYPES = st.sampled_from(["<f4", "<f8", "<i8", "|u1", "|b1", "<i4", "<c8", "<U3"])


@given(data=st.data())
@FUZZ
def test_map_arrays(valid_map: Path, data: st.DataObject) -> None:
    members = _members(valid_map)
    header = json.loads(members["header.json"])
    name = data.draw(st.sampled_from(sorted(header["arrays"])))
    shape = tuple(data.draw(st.lists(st.integers(0, 13), max_size=3)))
    dtype = np.dtype(data.draw(ARRAY_DTYPES))
    count = int(np.prod(shape))
    raw = data.draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
    array = (
        np.frombuffer(raw, dtype=dtype).reshape(shape)
        if dtype.kind != "U"
        else np.array(["abc"] * count, dtype=dtype).reshape(shape)
    )
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    blob = buffer.getvalue()
    header["arrays"][name] = {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "dtype": array.dtype.str,
        "shape": list(array.shape),
    }
    members["header.json"] = json.dumps(header).encode()
    members[f"{name}.npy"] = blob
    path = valid_map.with_name("arrays.map")
    _write_members(path, members)
    _check_loaded(path)


def test_the_fuzzed_originals_are_valid(
    tum: Path,
    euroc: dict[str, Any],
    kitti: dict[str, Any],
    valid_map: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The files the fuzzers mutate parse as they are (so mutations start from valid input)."""
    config = load_config("fast", ["source.tum_intrinsics=fr1"])
    assert len(_first_frames(open_source(f"tum:{tum}", config))) == 2
    assert len(_first_frames(open_source(f"euroc:{euroc['root']}", Config()))) == 2
    assert len(_first_frames(open_source(f"kitti:{kitti['folder']}", Config()))) == 2
    assert len(load_map(valid_map).keyframes) == 3
    if importlib.util.find_spec("rosbags") is not None:
        bag_file = request.getfixturevalue("bag")
        config = load_config("fast", ["bag.depth_scale=5000"])
        assert len(_first_frames(open_source(f"bag:{bag_file}", config))) == 2
