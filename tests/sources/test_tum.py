"""TUM RGB-D source: generated folders, every error path, and the real fr2/desk clip."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.geometry import distort_points, undistort_points
from slamfront.sources.tum import (
    KINECT_READOUT_S,
    TUM_INTRINSICS,
    TumSource,
    associate,
    tum_camera,
)

TUM_CLIP = "data/tum/rgbd_dataset_freiburg2_desk_clip"


def _open(folder: Path, *overrides: str) -> TumSource:
    source = open_source(f"tum:{folder}", load_config("fast", list(overrides)))
    assert isinstance(source, TumSource)
    return source


def test_rgbd_frames_associate_and_scale_depth(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, count=4)
    with _open(made["folder"], "source.undistort=false") as source:  # type: ignore[arg-type]
        assert len(source) == 4  # the 5th colour frame has no depth within 20 ms
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[1].stamp_ns == 1311868169_100000000
    for i, frame in enumerate(frames):
        assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
        assert frame.depth_m is not None and frame.depth_m.dtype == np.float32
        assert frame.depth_m[100, 100] == pytest.approx(1000 * (i + 1) / 5000.0)
        assert frame.depth_m[10, 10] == 0.0
    # raw colour comes back exactly as written, converted BGR -> RGB
    stamp = made["stamps"][2]  # type: ignore[index]
    bgr = cv2.imread(str(made["folder"] / "rgb" / f"{stamp}.png"))  # type: ignore[operator]
    np.testing.assert_array_equal(frames[2].image, bgr[:, :, ::-1])
    assert frames[0].camera.distortion == "radtan"
    assert frames[0].camera.dist_coeffs == TUM_INTRINSICS["fr1"][1]


def test_association_window_and_depth_scale_are_configurable(
    tmp_path: Path, recorded: ModuleType
) -> None:
    made = recorded.make_tum(tmp_path, count=3)
    with pytest.raises(SourceError, match=r"depth\.txt: no depth image within 0\.005 s"):
        _open(made["folder"], "source.tum_max_time_diff_s=0.005")  # type: ignore[arg-type]
    with _open(made["folder"], "source.tum_depth_scale=1000.0", "source.undistort=false") as s:  # type: ignore[arg-type]
        depth = next(iter(s)).depth_m
    assert depth is not None and depth[200, 300] == pytest.approx(1.0)


def test_associate_pairs_closest_first_each_stamp_once() -> None:
    rgb = np.array([0, 100, 200, 300], dtype=np.int64)
    depth = np.array([5, 96, 104, 260], dtype=np.int64)
    # 100 is 4 from both 96 and 104 (a tie goes to the earlier depth); 200 has nothing
    # within 30; 300 pairs with 260 only within 50.
    assert associate(rgb, depth, 30) == [(0, 0), (1, 1)]
    assert associate(rgb, depth, 50) == [(0, 0), (1, 1), (3, 3)]


def test_undistortion_moves_a_dot_to_its_pinhole_position(
    tmp_path: Path, recorded: ModuleType
) -> None:
    made = recorded.make_tum(tmp_path, count=1)
    folder: Path = made["folder"]  # type: ignore[assignment]
    camera = tum_camera("fr1")
    ideal = np.array([[80.0, 70.0]])  # near a corner, where fr1 distortion is strong
    raw_xy = distort_points(camera, ideal)[0]
    assert np.linalg.norm(raw_xy - ideal[0]) > 5.0
    stamp = made["stamps"][0]  # type: ignore[index]
    image = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(image, (round(raw_xy[0]), round(raw_xy[1])), 3, (255, 255, 255), -1)
    cv2.imwrite(str(folder / "rgb" / f"{stamp}.png"), image)
    with _open(folder) as source:
        frame = next(iter(source))
    assert frame.camera.distortion == "none" and frame.camera.fx == camera.fx
    grey = frame.image[:, :, 0].astype(np.float64)
    ys, xs = np.nonzero(grey > 100)
    centre = np.array([np.average(xs, weights=grey[ys, xs]), np.average(ys, weights=grey[ys, xs])])
    expected = undistort_points(camera, np.array([[round(raw_xy[0]), round(raw_xy[1])]], float))[0]
    assert np.linalg.norm(centre - expected) < 1.0
    # depth goes through the same map with nearest interpolation: no blended values
    assert frame.depth_m is not None
    assert np.isin(np.unique(frame.depth_m), np.array([0.0, 0.2], np.float32)).all()


def test_colour_camera_rolls_unless_configured(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, count=1)
    folder: Path = made["folder"]  # type: ignore[assignment]
    for overrides, readout_s in (
        ((), KINECT_READOUT_S),
        (("source.undistort=false",), KINECT_READOUT_S),
        (("camera.readout_ms=15",), 0.015),
        (("camera.readout_ms=0",), 0.0),
    ):
        with _open(folder, *overrides) as source:
            assert source.camera.readout_s == pytest.approx(readout_s)
            assert next(iter(source)).camera.readout_s == pytest.approx(readout_s)


def test_monocular_without_depth_txt_and_groundtruth(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, count=3, depth=False)
    with _open(made["folder"]) as source:  # type: ignore[arg-type]
        assert not source.has_depth and len(source) == 3
        frames = list(source)
        gt = source.groundtruth()
    assert all(f.depth_m is None for f in frames)
    assert gt is not None and len(gt) == 3
    np.testing.assert_allclose(gt.world_from_body, made["groundtruth"], atol=1e-8)  # type: ignore[arg-type]
    assert gt.stamps_ns[2] == 1311868169_200000000


def test_start_stride_max_frames(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, count=6, depth=False)
    with _open(made["folder"], "source.start_frame=1", "source.stride=2") as source:  # type: ignore[arg-type]
        assert len(source) == 3
        assert [f.index for f in source] == [1, 3, 5]
    overrides = ("source.start_frame=1", "source.stride=2", "source.max_frames=2")
    with _open(made["folder"], *overrides) as source:  # type: ignore[arg-type]
        assert [f.index for f in source] == [1, 3]


def test_calibration_from_folder_name_or_config(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, name="my_sequence", count=1, depth=False)
    with pytest.raises(SourceError, match=r"source\.tum_intrinsics"):
        _open(made["folder"])  # type: ignore[arg-type]
    with _open(made["folder"], "source.tum_intrinsics=fr3") as source:  # type: ignore[arg-type]
        assert (source.camera.fx, source.camera.cy) == (535.4, 247.6)
        assert source.camera.distortion == "none"


def test_errors_name_file_and_line(tmp_path: Path, recorded: ModuleType) -> None:
    with pytest.raises(SourceError, match="TUM sequence folder not found"):
        _open(tmp_path / "rgbd_dataset_freiburg1_missing")
    made = recorded.make_tum(tmp_path, count=3)
    folder: Path = made["folder"]  # type: ignore[assignment]
    rgb_txt = folder / "rgb.txt"
    good = rgb_txt.read_text()
    lines = good.splitlines()

    rgb_txt.write_text("\n".join([*lines[:3], "1311868169.1x00000 rgb/a.png", *lines[4:]]))
    with pytest.raises(SourceError, match=rf"{rgb_txt}:4: cannot parse timestamp"):
        _open(folder)
    rgb_txt.write_text("\n".join([*lines[:3], "1311868169.100000", *lines[4:]]))
    with pytest.raises(SourceError, match=rf"{rgb_txt}:4: expected 'timestamp filename'"):
        _open(folder)
    rgb_txt.write_text("\n".join([*lines[:3], "1311868169.100000 rgb/nope.png", *lines[4:]]))
    with pytest.raises(SourceError, match=rf"{rgb_txt}:4: names 'rgb/nope.png', which does not"):
        _open(folder)
    rgb_txt.write_text("\n".join([lines[0], lines[1], lines[3], lines[2], *lines[4:]]))
    with pytest.raises(SourceError, match=rf"{rgb_txt}:4: timestamp .* does not increase"):
        _open(folder)
    rgb_txt.unlink()
    with pytest.raises(SourceError, match=r"rgb\.txt: TUM index rgb\.txt not found"):
        _open(folder)


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_tum(tmp_path, count=4)
    folder: Path = made["folder"]  # type: ignore[assignment]
    stamps: list[str] = made["stamps"]  # type: ignore[assignment]
    (folder / "rgb" / f"{stamps[1]}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "depth" / "1311868169.207000.png").write_bytes(b"not a png at all")
    with _open(folder) as source:
        frames = list(source)
        assert [f.index for f in frames] == [0, 3]
        assert source.frames_skipped == 2


def test_realtime_sleeps_to_the_recorded_rate(
    tmp_path: Path, recorded: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slamfront.sources._files as files

    clock = {"now": 100.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(files.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(files.time, "sleep", sleep)
    made = recorded.make_tum(tmp_path, count=3, depth=False)
    with _open(made["folder"], "source.realtime=true") as source:  # type: ignore[arg-type]
        assert len(list(source)) == 3
    assert sleeps == pytest.approx([0.1, 0.1])
    sleeps.clear()
    with _open(made["folder"]) as source:  # type: ignore[arg-type]
        list(source)
    assert sleeps == []


# ----------------------------------------------------------------------------- real clip


def test_real_fr2_desk_clip(shared: Path) -> None:
    folder = shared / TUM_CLIP
    with open_source(f"tum:{folder}") as source:
        assert isinstance(source, TumSource)
        assert len(source) == 20 and source.calibration == "fr2" and not source.has_depth
        frames = list(source)
        gt = source.groundtruth()
    assert source.frames_skipped == 0
    cam = frames[0].camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (520.908620, 521.007327, 325.141442, 249.701764)
    assert cam.distortion == "none"  # undistorted in the source
    assert frames[0].image.shape == (480, 640, 3)
    assert frames[0].stamp_ns == 1311868169_163498000
    assert frames[-1].stamp_ns == 1311868171_063438000
    stamps = np.array([f.stamp_ns for f in frames])
    assert np.all(np.diff(stamps) > 0)
    assert gt is not None and len(gt) == 20957
    # the clip lies inside the ground truth, which moves the camera by centimetres in 2 s
    inside = (gt.stamps_ns >= stamps[0]) & (gt.stamps_ns <= stamps[-1])
    assert inside.sum() > 150
    travelled = np.linalg.norm(np.diff(gt.positions_m[inside], axis=0), axis=1).sum()
    assert 0.05 < travelled < 2.0

    raw = load_config("fast", ["source.undistort=false"])
    with open_source(f"tum:{folder}", raw) as source:
        first = next(iter(source))
    assert first.camera.dist_coeffs == TUM_INTRINSICS["fr2"][1]
    # undistortion really changed the pixels (fr2 has k1 = 0.23)
    assert np.mean(np.abs(first.image.astype(int) - frames[0].image.astype(int))) > 2.0
