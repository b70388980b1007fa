"""RerunSink on hand-made frames, results and keyframes, saved to .rrd and read back with
Rerun's own tools: every entity of the tree, with the exact frames, points and values."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront.config import RerunConfig
from slamfront.geometry import distort_points, make_pose, so3_exp
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    FrameIssue,
    Keyframe,
    Matches,
    OptimizedPoses,
    StageTimings,
    TrackingState,
    TrackResult,
)

rr = pytest.importorskip("rerun")

from slamfront.sinks.rerun_session import RerunSession, parse_mode  # noqa: E402
from slamfront.sinks.rerun_sink import (  # noqa: E402
    NEW_CLASS,
    TRACKED_CLASS,
    TRAJECTORY_CHUNK,
    RerunSink,
)

W, H = 160, 120
CAMERA = CameraModel(W, H, 150.0, 150.0, 80.0, 60.0)
N = 40
OK, LOST = TrackingState.OK, TrackingState.LOST
FULL = RerunConfig(image_scale=1.0, jpeg_quality=None)  # raw pixels: compared exactly


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _features(i: int) -> Features:
    rng = np.random.default_rng(100 + i)
    kp = np.column_stack([rng.uniform(2, W - 3, N), rng.uniform(2, H - 3, N)]).astype(np.float32)
    return Features(kp, np.ones(N, np.float32), np.zeros((N, 8), np.float32), (W, H))


def _pose(i: int) -> np.ndarray:
    return make_pose(so3_exp(np.array([0.0, 0.05 * i, 0.0])), np.array([0.1 * i, 0.0, 0.02 * i]))


def _matches(i: int, m: int = 25) -> Matches:
    rng = np.random.default_rng(200 + i)
    i0 = rng.choice(N, m, replace=False)
    i1 = rng.choice(N, m, replace=False)
    return Matches(
        np.column_stack([i0, i1]).astype(np.int64),
        np.full(m, 0.9, np.float32),
        layers_run=3 + i,
        points_kept=(80, 60, 50 - i),
    )


def _points_cam(i: int) -> np.ndarray:
    rng = np.random.default_rng(300 + i)
    points = np.column_stack([rng.uniform(-1, 1, N), rng.uniform(-1, 1, N), rng.uniform(1, 3, N)])
    points[::3] = np.nan  # a third have no depth
    return points


@dataclass
class Step:
    state: TrackingState
    keyframe_id: int | None = None
    reference_id: int | None = None
    matched: bool = True


# frame: 0 first keyframe, 1-2 tracked, 3 a new keyframe, 4 lost, 5 tracked again
SCRIPT = [
    Step(OK, keyframe_id=0, reference_id=0, matched=False),
    Step(OK, reference_id=0),
    Step(OK, reference_id=0),
    Step(OK, keyframe_id=1, reference_id=1),
    Step(LOST),
    Step(OK, reference_id=1),
]


def _frame(i: int, stamp_ns: int, camera: CameraModel = CAMERA) -> Frame:
    return Frame(i, stamp_ns, _image(i), camera)


def _result(i: int, step: Step, stamp_ns: int) -> TrackResult:
    matches = _matches(i) if step.matched else None
    return TrackResult(
        frame_index=i,
        stamp_ns=stamp_ns,
        state=step.state,
        world_from_cam=_pose(i) if step.state == OK else None,
        num_features=N,
        num_matches=len(matches) if matches is not None else 0,
        num_inliers=20 + i,
        reprojection_rmse_px=0.5 + 0.1 * i,
        is_keyframe=step.keyframe_id is not None,
        keyframe_id=step.keyframe_id,
        reference_keyframe_id=step.reference_id,
        matches=matches,
        features=_features(i),
        timings=StageTimings(read_ms=1.0, extract_ms=2.0 + i, match_ms=3.0, pose_ms=4.0),
        issue=FrameIssue.FEW_INLIERS if step.state != OK else None,
    )


def _keyframe(i: int, kid: int, camera: CameraModel = CAMERA) -> Keyframe:
    return Keyframe(kid, i, _stamp(i), _pose(i), camera, _features(i), _points_cam(i))


def _stamp(i: int, base: int = 0) -> int:
    return base + i * 33_333_333


def _run_script(
    sink: RerunSink, camera: CameraModel = CAMERA, base_stamp: int = 0, drop: tuple[int, ...] = ()
) -> None:
    for i, step in enumerate(SCRIPT):
        if i not in drop:
            sink.on_result(
                _frame(i, _stamp(i, base_stamp), camera), _result(i, step, _stamp(i, base_stamp))
            )
        if step.keyframe_id is not None:
            sink.on_keyframe(_keyframe(i, step.keyframe_id, camera))


def _record(path: Path, config: RerunConfig = FULL, **kwargs: object) -> Path:
    with RerunSession(parse_mode(f"save:{path}"), config) as session:
        sink = RerunSink(session.recording, config)
        _run_script(sink, **kwargs)  # type: ignore[arg-type]
        moved = _pose(3) @ make_pose(np.eye(3), np.array([0.0, 0.5, 0.0]))
        sink.on_optimized(OptimizedPoses(1, (0, 1), np.stack([_pose(0), moved]), num_loops=0))
        sink.close()
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, rrd: ModuleType) -> dict:
    path = _record(tmp_path_factory.mktemp("rerun") / "script.rrd")
    return rrd.read_rrd(path) | {"__file__": path}


TREE = [
    "/world",
    "/world/cam",
    "/world/cam/image",
    "/world/cam/image/keypoints",
    "/world/trajectory/raw/0",
    "/world/trajectory/optimized",
    "/world/keyframes/0",
    "/world/keyframes/1",
    "/world/map/points/0",
    "/world/map/points/1",
    "/matches",
    "/matches/lines",
    "/plot/latency_ms",
    "/plot/tracking",
    "/plot/state",
    "/plot/reprojection_rmse_px",
    "/plot/matcher/layers_run",
    "/plot/matcher/points_kept",
    "/plot/fps",
    "/plot/backend/loops",
    "/status",
]


def test_file_verifies_and_rerun_lists_every_entity(recorded: dict, rrd: ModuleType) -> None:
    path = recorded["__file__"]
    rrd.verify(path)
    listed = rrd.stats_entities(path)
    missing = [p for p in TREE if p not in listed]
    assert not missing, f"rerun rrd stats lacks {missing}"
    assert "/world/loops" not in listed  # no loop edges were given


def test_static_view_coordinates_and_camera(recorded: dict) -> None:
    assert recorded["/world"].static["ViewCoordinates:xyz"] == [[3, 2, 5]]  # Right, Down, Fwd
    cam = recorded["/world/cam"].static
    assert cam["Pinhole:resolution"] == [[W, H]]
    k = np.array(cam["Pinhole:image_from_camera"][0]).reshape(3, 3).T  # column-major
    np.testing.assert_allclose(k, CAMERA.K, atol=1e-4)


def test_image_and_keypoints_every_frame(recorded: dict) -> None:
    image = recorded["/world/cam/image"]
    assert image.frames == list(range(6))
    buffer = np.frombuffer(bytes(image.rows[2]["Image:buffer"][0]), np.uint8)
    np.testing.assert_array_equal(buffer.reshape(H, W, 3), _image(2))
    keypoints = recorded["/world/cam/image/keypoints"]
    assert keypoints.frames == list(range(6))
    for i, row in enumerate(keypoints.rows):
        positions = np.array(row["Points2D:positions"])
        np.testing.assert_allclose(positions, _features(i).keypoints, atol=1e-4)
        classes = np.array(row["Points2D:class_ids"])
        expected = np.full(N, NEW_CLASS)
        if SCRIPT[i].matched:
            expected[np.unique(_matches(i).indices[:, 1])] = TRACKED_CLASS
        np.testing.assert_array_equal(classes, expected)
    context = recorded["/world/cam/image/keypoints"].static["AnnotationContext:context"]
    labels = {c["class_id"]: c["class_description"]["info"]["label"] for c in context[0]}
    assert labels == {TRACKED_CLASS: "tracked", NEW_CLASS: "new"}


def test_camera_pose_only_when_tracked(recorded: dict) -> None:
    cam = recorded["/world/cam"]
    assert cam.frames_with("Transform3D:translation") == [0, 1, 2, 3, 5]
    for i, t in zip([0, 1, 2, 3, 5], cam.column("Transform3D:translation"), strict=True):
        np.testing.assert_allclose(t[0], _pose(i)[:3, 3], atol=1e-6)
    rotation = np.array(cam.column("Transform3D:mat3x3")[-1][0]).reshape(3, 3).T
    np.testing.assert_allclose(rotation, _pose(5)[:3, :3], atol=1e-6)


def test_raw_trajectory_breaks_where_tracking_was_lost(recorded: dict) -> None:
    raw = recorded["/world/trajectory/raw/0"]
    assert raw.frames == [0, 1, 2, 3, 5]
    strips = raw.last("LineStrips3D:strips")
    assert len(strips) == 2
    np.testing.assert_allclose(strips[0], [_pose(i)[:3, 3] for i in range(4)], atol=1e-6)
    np.testing.assert_allclose(strips[1], [_pose(5)[:3, 3]], atol=1e-6)


def test_keyframes_map_points_and_optimisation(recorded: dict) -> None:
    for kid, i in ((0, 0), (1, 3)):
        frustum = recorded[f"/world/keyframes/{kid}"]
        assert frustum.static["Pinhole:resolution"] == [[W, H]]
        points = recorded[f"/world/map/points/{kid}"]
        expected = _points_cam(i)
        valid = np.isfinite(expected).all(axis=1)
        logged = np.array(points.last("Points3D:positions"))
        assert logged.shape == (int(valid.sum()), 3)
        np.testing.assert_allclose(logged, expected[valid], atol=1e-5)
        # coloured from the keyframe's own image at its keypoints
        kp = np.rint(_features(i).keypoints[valid]).astype(int)
        rgb = _image(i)[kp[:, 1], kp[:, 0]]
        packed = np.array(points.last("Points3D:colors"), dtype=np.uint64)
        unpacked = np.column_stack([(packed >> s) & 0xFF for s in (24, 16, 8)])
        np.testing.assert_array_equal(unpacked, rgb)
    # keyframe 0 did not move in the optimisation: one pose; keyframe 1 moved: two
    kf0 = recorded["/world/keyframes/0"]
    kf1 = recorded["/world/keyframes/1"]
    assert kf0.frames_with("Transform3D:translation") == [0]
    assert kf1.frames_with("Transform3D:translation") == [3, 5]
    np.testing.assert_allclose(
        kf1.last("Transform3D:translation")[0],
        (_pose(3) @ make_pose(np.eye(3), np.array([0.0, 0.5, 0.0])))[:3, 3],
        atol=1e-6,
    )
    assert recorded["/world/map/points/1"].frames_with("Transform3D:translation") == [3, 5]
    optimized = recorded["/world/trajectory/optimized"]
    assert optimized.frames == [5]
    strip = np.array(optimized.last("LineStrips3D:strips")[0])
    assert strip.shape == (2, 3)
    np.testing.assert_allclose(strip[0], _pose(0)[:3, 3], atol=1e-6)
    assert recorded["/plot/backend/loops"].column("Scalars:scalars") == [[0.0]]


def test_matches_view_side_by_side(recorded: dict) -> None:
    view = recorded["/matches"]
    # frame 3 made keyframe 1 but was matched against keyframe 0; frame 4 (lost) against 1
    assert view.frames == [1, 2, 3, 4, 5]
    lines = recorded["/matches/lines"]
    assert lines.frames == [1, 2, 3, 4, 5]
    reference_frame = {1: 0, 2: 0, 3: 0, 4: 3, 5: 3}
    for row, i in zip(lines.rows, lines.frames, strict=True):
        segments = np.array(row["LineStrips2D:strips"])
        idx = _matches(i).indices
        assert segments.shape == (len(idx), 2, 2)
        np.testing.assert_allclose(
            segments[:, 0], _features(reference_frame[i]).keypoints[idx[:, 0]], atol=1e-4
        )
        np.testing.assert_allclose(
            segments[:, 1], _features(i).keypoints[idx[:, 1]] + [W, 0], atol=1e-4
        )
    canvas = view.rows[2]
    fmt = canvas["Image:format"][0]
    assert (fmt["width"], fmt["height"]) == (2 * W, H)
    pixels = np.frombuffer(bytes(canvas["Image:buffer"][0]), np.uint8).reshape(H, 2 * W, 3)
    np.testing.assert_array_equal(pixels[:, :W], _image(0))
    np.testing.assert_array_equal(pixels[:, W:], _image(3))


def test_plots(recorded: dict) -> None:
    latency = recorded["/plot/latency_ms"]
    assert latency.frames == list(range(6))
    assert latency.rows[2]["Scalars:scalars"] == pytest.approx([1.0, 4.0, 3.0, 4.0, 12.0])
    names = latency.static["SeriesLines:names"]
    assert names == ["read", "extract", "match", "pose", "total"]
    tracking = recorded["/plot/tracking"]
    assert tracking.rows[1]["Scalars:scalars"] == pytest.approx([N, 25, 21])
    assert [v[0] for v in recorded["/plot/state"].column("Scalars:scalars")] == [
        1,
        1,
        1,
        1,
        -1,
        1,
    ]
    # one status line per change: tracking, lost (and why), tracking again
    status = recorded["/status"]
    assert status.frames == [0, 4, 5]
    texts = [v[0] for v in status.column("TextLog:text")]
    assert texts == ["ok, map 0", "lost (few_inliers), map 0", "ok, map 0"]
    assert [v[0] for v in status.column("TextLog:level")] == ["INFO", "WARN", "INFO"]
    rmse = recorded["/plot/reprojection_rmse_px"]
    assert rmse.frames == [0, 1, 2, 3, 5]
    layers = recorded["/plot/matcher/layers_run"]
    assert layers.frames == [1, 2, 3, 4, 5]
    assert [v[0] for v in layers.column("Scalars:scalars")] == [4, 5, 6, 7, 8]
    kept = recorded["/plot/matcher/points_kept"]
    assert [v[0] for v in kept.column("Scalars:scalars")] == [49, 48, 47, 46, 45]
    fps = recorded["/plot/fps"]
    assert fps.frames == [1, 2, 3, 4, 5]
    assert all(v[0] > 0 for v in fps.column("Scalars:scalars"))


def test_sensor_time_is_a_duration_for_small_stamps(recorded: dict) -> None:
    image = recorded["/world/cam/image"]
    assert image.index_types["sensor_time"].startswith("duration")


def test_epoch_stamps_become_timestamps(tmp_path: Path, rrd: ModuleType) -> None:
    base = 1_305_031_102_175_304_000  # a TUM stamp, 2011
    logs = rrd.read_rrd(_record(tmp_path / "epoch.rrd", base_stamp=base))
    image = logs["/world/cam/image"]
    assert image.index_types["sensor_time"].startswith("timestamp")


def test_loop_edges_when_the_back_end_gives_them(tmp_path: Path, rrd: ModuleType) -> None:
    @dataclass(frozen=True, eq=False)
    class PosesWithLoops(OptimizedPoses):
        loop_edges: tuple[tuple[int, int], ...] = ()

    config = FULL
    path = tmp_path / "loops.rrd"
    poses = np.stack([_pose(0), _pose(3), _pose(5)])
    with RerunSession(parse_mode(f"save:{path}"), config) as session:
        sink = RerunSink(session.recording, config)
        _run_script(sink)
        sink.on_optimized(PosesWithLoops(2, (0, 1, 2), poses, num_loops=1, loop_edges=((2, 0),)))
        sink.close()
    logs = rrd.read_rrd(path)
    segments = np.array(logs["/world/loops"].last("LineStrips3D:strips"))
    assert segments.shape == (1, 2, 3)
    np.testing.assert_allclose(segments[0], [_pose(5)[:3, 3], _pose(0)[:3, 3]], atol=1e-6)
    assert logs["/plot/backend/loops"].column("Scalars:scalars") == [[1.0]]


def test_downscaled_jpeg_images(tmp_path: Path, rrd: ModuleType) -> None:
    config = RerunConfig(image_scale=0.5, jpeg_quality=85)
    logs = rrd.read_rrd(_record(tmp_path / "jpeg.rrd", config))
    image = logs["/world/cam/image"]
    assert image.frames == list(range(6))
    assert image.rows[0]["EncodedImage:media_type"] == ["image/jpeg"]
    decoded = cv2.imdecode(np.frombuffer(bytes(image.rows[0]["EncodedImage:blob"][0]), np.uint8), 1)
    assert decoded.shape == (H // 2, W // 2, 3)
    small = cv2.resize(_image(0), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(decoded[:, :, ::-1].astype(int) - small).mean() < 30  # RGB kept, not BGR
    cam = logs["/world/cam"].static
    assert cam["Pinhole:resolution"] == [[W // 2, H // 2]]
    k = np.array(cam["Pinhole:image_from_camera"][0]).reshape(3, 3).T
    np.testing.assert_allclose(k[:2], CAMERA.K[:2] * 0.5, atol=1e-4)
    positions = np.array(logs["/world/cam/image/keypoints"].rows[1]["Points2D:positions"])
    np.testing.assert_allclose(positions, _features(1).keypoints * 0.5, atol=1e-4)
    matches = logs["/matches"].rows[0]
    assert matches["EncodedImage:media_type"] == ["image/jpeg"]
    canvas = cv2.imdecode(np.frombuffer(bytes(matches["EncodedImage:blob"][0]), np.uint8), 1)
    assert canvas.shape == (H // 2, W, 3)


def test_keypoints_land_on_the_raw_image_of_a_distorted_camera(
    tmp_path: Path, rrd: ModuleType
) -> None:
    camera = CameraModel(W, H, 150.0, 150.0, 80.0, 60.0, "radtan", (-0.3, 0.1, 0.001, -0.001))
    logs = rrd.read_rrd(_record(tmp_path / "distorted.rrd", camera=camera))
    positions = np.array(logs["/world/cam/image/keypoints"].rows[1]["Points2D:positions"])
    expected = distort_points(camera, _features(1).keypoints.astype(np.float64))
    np.testing.assert_allclose(positions, expected, atol=1e-3)
    assert np.abs(positions - _features(1).keypoints).max() > 1.0  # really moved


def test_keyframe_whose_frame_was_dropped_gets_grey_points(tmp_path: Path, rrd: ModuleType) -> None:
    logs = rrd.read_rrd(_record(tmp_path / "dropped.rrd", drop=(3,)))
    colors = np.array(logs["/world/map/points/1"].last("Points3D:colors"), dtype=np.uint64)
    assert len(colors) == int(np.isfinite(_points_cam(3)).all(axis=1).sum())
    assert set(colors.tolist()) == {(170 << 24) | (170 << 16) | (170 << 8) | 0xFF}
    # without keyframe 1's image the matches view skips frames matched against it
    assert logs["/matches"].frames == [1, 2]


def test_raw_trajectory_is_logged_in_chunks(tmp_path: Path, rrd: ModuleType) -> None:
    config = FULL
    path = tmp_path / "chunks.rrd"
    count = TRAJECTORY_CHUNK + 10
    with RerunSession(parse_mode(f"save:{path}"), config) as session:
        sink = RerunSink(session.recording, config)
        for i in range(count):
            result = TrackResult(i, _stamp(i), OK, _pose(i))
            sink.on_result(Frame(i, _stamp(i), np.zeros((H, W), np.uint8), CAMERA), result)
        sink.close()
    logs = rrd.read_rrd(path)
    first = logs["/world/trajectory/raw/0"]
    second = logs["/world/trajectory/raw/1"]
    assert first.frames == list(range(TRAJECTORY_CHUNK))
    assert second.frames == list(range(TRAJECTORY_CHUNK, count))
    assert len(first.last("LineStrips3D:strips")[0]) == TRAJECTORY_CHUNK
    strip = np.array(second.last("LineStrips3D:strips")[0])
    assert strip.shape == (11, 3)  # continues from the last pose of chunk 0
    np.testing.assert_allclose(strip[0], _pose(TRAJECTORY_CHUNK - 1)[:3, 3], atol=1e-6)
    # grey images stay single-channel
    fmt = logs["/world/cam/image"].rows[0]["Image:format"][0]
    assert (fmt["width"], fmt["height"]) == (W, H)


def test_matches_view_keeps_the_best_lines(tmp_path: Path, rrd: ModuleType) -> None:
    config = RerunConfig(image_scale=1.0, jpeg_quality=None, max_match_lines=5)
    path = tmp_path / "best.rrd"
    rng = np.random.default_rng(7)
    scores = rng.permutation(np.linspace(0.1, 0.95, 30)).astype(np.float32)
    pairs = np.column_stack([np.arange(30), np.arange(30)[::-1]]).astype(np.int64)
    with RerunSession(parse_mode(f"save:{path}"), config) as session:
        sink = RerunSink(session.recording, config)
        sink.on_result(_frame(0, 0), _result(0, SCRIPT[0], 0))
        sink.on_keyframe(_keyframe(0, 0))
        result = replace(_result(1, SCRIPT[1], _stamp(1)), matches=Matches(pairs, scores))
        sink.on_result(_frame(1, _stamp(1)), result)
        sink.close()
    segments = np.array(rrd.read_rrd(path)["/matches/lines"].last("LineStrips2D:strips"))
    best = np.sort(np.argsort(-scores)[:5])  # the five best, in their original order
    assert segments.shape == (5, 2, 2)
    np.testing.assert_allclose(segments[:, 0], _features(0).keypoints[pairs[best, 0]], atol=1e-4)
    np.testing.assert_allclose(
        segments[:, 1], _features(1).keypoints[pairs[best, 1]] + [W, 0], atol=1e-4
    )


def test_frame_tracked_without_the_matcher_shows_its_landmarks(
    tmp_path: Path, rrd: ModuleType
) -> None:
    """A motion-model frame has no matches: its "tracked" keypoints are those its pose was
    solved on, and the matches view joins each to the keyframe's keypoint of the same
    landmark (landmarks the keyframe does not observe have no line)."""
    path = tmp_path / "motion.rrd"
    landmarks = np.full(N, -1, np.int64)
    landmarks[:30] = np.arange(100, 130)  # keyframe keypoint k observes landmark 100 + k
    current = np.array([5, 9, 17, 33, 2])  # frame 1's keypoints, found for ...
    ids = np.array([110, 103, 999, 125, 129])  # ... these landmarks (999: not in keyframe 0)
    with RerunSession(parse_mode(f"save:{path}"), FULL) as session:
        sink = RerunSink(session.recording, FULL)
        sink.on_result(_frame(0, 0), _result(0, SCRIPT[0], 0))
        sink.on_keyframe(replace(_keyframe(0, 0), landmark_ids=landmarks))
        result = replace(
            _result(1, SCRIPT[1], _stamp(1)),
            matches=None,
            landmark_ids=ids,
            landmark_pixels=_features(1).keypoints[current].astype(np.float64),
            landmark_keypoints=current,
        )
        sink.on_result(_frame(1, _stamp(1)), result)
        sink.close()
    logs = rrd.read_rrd(path)
    classes = np.array(logs["/world/cam/image/keypoints"].rows[1]["Points2D:class_ids"])
    expected = np.full(N, NEW_CLASS)
    expected[current] = TRACKED_CLASS
    np.testing.assert_array_equal(classes, expected)
    segments = np.array(logs["/matches/lines"].last("LineStrips2D:strips"))
    keyframe_keypoints = np.array([10, 3, 25, 29])
    assert segments.shape == (4, 2, 2)
    np.testing.assert_allclose(
        segments[:, 0], _features(0).keypoints[keyframe_keypoints], atol=1e-4
    )
    np.testing.assert_allclose(
        segments[:, 1], _features(1).keypoints[current[[0, 1, 3, 4]]] + [W, 0], atol=1e-4
    )
