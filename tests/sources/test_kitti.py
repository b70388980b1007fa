"""KITTI odometry source on generated sequences: layouts, calibration, ground truth, errors."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.sources.kitti import KittiSource, split_kitti_spec


def _open(spec: str, *overrides: str) -> KittiSource:
    source = open_source(spec, load_config("fast", list(overrides)))
    assert isinstance(source, KittiSource)
    return source


def test_split_spec() -> None:
    assert split_kitti_spec("/data/kitti:5") == (Path("/data/kitti"), "05")
    assert split_kitti_spec("/data/kitti:00") == (Path("/data/kitti"), "00")
    assert split_kitti_spec("/data/kitti/sequences/00") == (Path("/data/kitti/sequences/00"), None)


@pytest.mark.parametrize("layout", ["root", "sequence"])
def test_stereo_frames_calibration_and_groundtruth(
    tmp_path: Path, recorded: ModuleType, layout: str
) -> None:
    made = recorded.make_kitti(tmp_path, count=3, seq="05")
    spec = f"kitti:{made['root']}:05" if layout == "root" else f"kitti:{made['folder']}"
    with _open(spec) as source:
        assert len(source) == 3
        frames = list(source)
        gt = source.groundtruth()
    cam = frames[0].camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (recorded.KITTI_FX, recorded.KITTI_FX, 96.5, 50.5)
    assert cam.size_px == (200, 100) and cam.distortion == "none"
    assert cam.readout_s == 0.0  # global-shutter imagers
    rig = frames[0].stereo
    assert rig is not None and rig.rectified
    assert rig.baseline_m == pytest.approx(recorded.KITTI_BASELINE_M, rel=1e-9)
    assert rig.right_from_left[0, 3] == pytest.approx(-recorded.KITTI_BASELINE_M, rel=1e-9)
    assert [f.stamp_ns for f in frames] == [0, 103_000_000, 206_000_000]
    on_disk = cv2.imread(str(made["folder"] / "image_1" / "000002.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(frames[2].image_right, on_disk)
    assert gt is not None
    np.testing.assert_array_equal(gt.stamps_ns, [0, 103_000_000, 206_000_000])
    np.testing.assert_allclose(gt.world_from_body, made["groundtruth"], atol=1e-8)


def test_right_principal_column_comes_from_p1(tmp_path: Path, recorded: ModuleType) -> None:
    """A rectified pair may keep a principal column of its own per image: the right camera
    takes P1's; a P1 of another focal length or principal row is no rectified pair."""
    made = recorded.make_kitti(tmp_path, count=2)
    calib: Path = made["folder"] / "calib.txt"
    good = calib.read_text()
    p1 = next(line for line in good.splitlines() if line.startswith("P1:"))
    calib.write_text(good.replace(p1, p1.replace(" 96.5 ", " 98.25 ")))
    with _open(f"kitti:{made['folder']}") as source:
        rig = next(iter(source)).stereo
    assert rig is not None and (rig.left.cx, rig.right.cx) == (96.5, 98.25)
    assert rig.right.fx == rig.left.fx and rig.right.cy == rig.left.cy
    assert rig.baseline_m == pytest.approx(recorded.KITTI_BASELINE_M, rel=1e-9)
    calib.write_text(good.replace(p1, p1.replace(" 50.5 ", " 51.5 ")))
    with pytest.raises(SourceError, match=rf"{calib}: P1 and P0 differ .* not a rectified pair"):
        _open(f"kitti:{made['folder']}")


def test_monocular_sequence_without_image_1_or_poses(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_kitti(tmp_path, count=4, stereo=False)
    (made["root"] / "poses" / "05.txt").unlink()
    with _open(f"kitti:{made['folder']}", "source.stride=3") as source:
        frames = list(source)
        assert source.groundtruth() is None
    assert [f.index for f in frames] == [0, 3]
    assert all(f.image_right is None and f.stereo is None for f in frames)


def test_errors_name_file_and_line(tmp_path: Path, recorded: ModuleType) -> None:
    with pytest.raises(SourceError, match="KITTI dataset root not found"):
        _open(f"kitti:{tmp_path / 'none'}:00")
    made = recorded.make_kitti(tmp_path, count=3)
    with pytest.raises(SourceError, match="KITTI sequence 07 not found"):
        _open(f"kitti:{made['root']}:07")
    folder: Path = made["folder"]
    (folder / "image_1" / "000001.png").unlink()
    times = folder / "times.txt"
    with pytest.raises(SourceError, match=rf"{times}:2: frame 1 has no image \(image_1/000001"):
        _open(f"kitti:{folder}")
    cv2.imwrite(str(folder / "image_1" / "000001.png"), np.zeros((100, 200), np.uint8))
    good_times = times.read_text()
    times.write_text(good_times.replace("1.030000e-01", "3.0e-01"))
    with pytest.raises(SourceError, match=rf"{times}:3: timestamp .* does not increase"):
        _open(f"kitti:{folder}")
    times.write_text(good_times.replace("1.030000e-01", "0.1x"))
    with pytest.raises(SourceError, match=rf"{times}:2: cannot parse time"):
        _open(f"kitti:{folder}")
    times.write_text(good_times)
    calib = folder / "calib.txt"
    good_calib = calib.read_text()
    calib.write_text(good_calib.replace("P1: ", "P1: 1 2 "))
    with pytest.raises(SourceError, match=rf"{calib}:2: expected 'NAME: 12 numbers'"):
        _open(f"kitti:{folder}")
    calib.write_text("\n".join(line for line in good_calib.splitlines() if line[:2] != "P1"))
    with pytest.raises(SourceError, match=rf"{calib}: image_1/ exists but there is no P1"):
        _open(f"kitti:{folder}")
    calib.write_text(good_calib)
    poses = made["root"] / "poses" / "05.txt"
    lines = poses.read_text().splitlines()
    poses.write_text("\n".join([lines[0], lines[1] + " 7", lines[2]]))
    with _open(f"kitti:{folder}") as source, pytest.raises(SourceError, match=rf"{poses}:2"):
        source.groundtruth()


def test_corrupt_image_is_skipped(tmp_path: Path, recorded: ModuleType) -> None:
    made = recorded.make_kitti(tmp_path, count=3)
    (made["folder"] / "image_0" / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with _open(f"kitti:{made['root']}:05") as source:
        assert [f.index for f in source] == [0, 2]
        assert source.frames_skipped == 1
