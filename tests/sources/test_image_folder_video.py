"""Image-folder and video sources: stamps, intrinsics from config, selection, errors."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import SourceError, open_source
from slamfront.config import load_config
from slamfront.io.trajectory import write_tum_trajectory
from slamfront.sources.images import ImageFolderSource, VideoSource
from slamfront.types import Trajectory

CAMERA = ("camera.fx=100.0", "camera.fy=101.0", "camera.cx=31.5", "camera.cy=23.5")


def _folder(tmp_path: Path, recorded: ModuleType, names: list[str]) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), recorded.textured(48, 64, i, 3))
    return folder


def test_images_sorted_by_name_with_fps_stamps(tmp_path: Path, recorded: ModuleType) -> None:
    folder = _folder(tmp_path, recorded, ["b.png", "a.jpg", "c.ppm", "d.bmp"])
    (folder / "notes.txt").write_text("not an image")
    with open_source(f"images:{folder}", load_config("fast", [*CAMERA, "source.fps=20"])) as s:
        assert isinstance(s, ImageFolderSource)
        assert len(s) == 4
        frames = list(s)
    assert [Path(f.source_path).name for f in frames] == ["a.jpg", "b.png", "c.ppm", "d.bmp"]
    assert [f.stamp_ns for f in frames] == [0, 50_000_000, 100_000_000, 150_000_000]
    cam = frames[0].camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.size_px) == (100.0, 101.0, 31.5, 23.5, (64, 48))
    assert cam.readout_s == 0.0
    rolling = load_config("fast", [*CAMERA, "camera.readout_ms=12"])
    with open_source(f"images:{folder}", rolling) as s:
        assert s.camera.readout_s == pytest.approx(0.012)
    bgr = cv2.imread(str(folder / "b.png"))
    np.testing.assert_array_equal(frames[1].image, bgr[:, :, ::-1])


def test_times_file_grey_images_and_groundtruth(tmp_path: Path, recorded: ModuleType) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:06d}.png"), recorded.textured(48, 64, i, 1))
    (folder / "times.txt").write_text("1.5\n1.6\n1.75\n")
    gt = Trajectory(np.array([1_500_000_000, 1_600_000_000], np.int64), recorded.poses(2))
    write_tum_trajectory(tmp_path / "gt.txt", gt)
    config = load_config("fast", [*CAMERA, f"source.groundtruth={tmp_path / 'gt.txt'}"])
    with open_source(f"images:{folder}", config) as source:
        frames = list(source)
        read_gt = source.groundtruth()
    assert [f.stamp_ns for f in frames] == [1_500_000_000, 1_600_000_000, 1_750_000_000]
    assert frames[0].image.ndim == 2
    assert read_gt is not None
    np.testing.assert_allclose(read_gt.world_from_body, gt.world_from_body, atol=1e-9)


def test_images_need_intrinsics(tmp_path: Path, recorded: ModuleType) -> None:
    folder = _folder(tmp_path, recorded, ["a.png"])
    with pytest.raises(SourceError, match=r"set camera\.fx, camera\.fy, camera\.cx, camera\.cy"):
        open_source(f"images:{folder}")
    with pytest.raises(SourceError, match=r"set camera\.cy in the config"):
        open_source(f"images:{folder}", load_config("fast", list(CAMERA[:3])))


def test_images_errors_and_corrupt_file(tmp_path: Path, recorded: ModuleType) -> None:
    config = load_config("fast", list(CAMERA))
    with pytest.raises(SourceError, match="image folder not found"):
        open_source(f"images:{tmp_path / 'missing'}", config)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(f"images:{tmp_path / 'empty'}", config)
    folder = _folder(tmp_path, recorded, ["0.png", "1.png", "2.png"])
    (folder / "times.txt").write_text("0.0\n0.1\n")
    with pytest.raises(SourceError, match=r"times\.txt: 2 times for 3 images"):
        open_source(f"images:{folder}", config)
    (folder / "times.txt").write_text("0.0\n0.2\n0.1\n")
    with pytest.raises(SourceError, match=r"times\.txt:3: timestamp .* does not increase"):
        open_source(f"images:{folder}", config)
    (folder / "times.txt").unlink()
    (folder / "1.png").write_bytes(b"corrupt")
    with open_source(f"images:{folder}", config) as source:
        assert [f.index for f in source] == [0, 2]
        assert source.frames_skipped == 1


def test_images_undistort_when_config_has_distortion(tmp_path: Path, recorded: ModuleType) -> None:
    folder = _folder(tmp_path, recorded, ["a.png"])
    distorted = [*CAMERA, "camera.distortion=radtan", "camera.dist_coeffs=[-0.3, 0.1, 0.0, 0.0]"]
    with open_source(f"images:{folder}", load_config("fast", distorted)) as source:
        frame = next(iter(source))
    assert frame.camera.distortion == "none" and frame.camera.fx == 100.0
    raw = load_config("fast", [*distorted, "source.undistort=false"])
    with open_source(f"images:{folder}", raw) as source:
        raw_frame = next(iter(source))
    assert raw_frame.camera.distortion == "radtan"
    np.testing.assert_array_equal(raw_frame.image, cv2.imread(str(folder / "a.png"))[:, :, ::-1])
    assert np.mean(np.abs(raw_frame.image.astype(int) - frame.image.astype(int))) > 2.0


# ----------------------------------------------------------------------------- video


def test_video_frames_and_container_stamps(tmp_path: Path, recorded: ModuleType) -> None:
    path = tmp_path / "clip.avi"
    written = recorded.make_video(path, count=6, fps=10.0)
    with open_source(f"video:{path}", load_config("fast", list(CAMERA))) as source:
        assert isinstance(source, VideoSource)
        assert source.frame_count_hint == 6
        frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert [f.stamp_ns for f in frames] == [100_000_000 * i for i in range(6)]
    for frame, bgr in zip(frames, written, strict=True):
        assert frame.image.shape == (48, 64, 3)
        assert abs(float(frame.image.mean()) - float(bgr.mean())) < 3.0  # MJPG is lossy
    overrides = [*CAMERA, "source.start_frame=1", "source.stride=2", "source.max_frames=2"]
    with open_source(f"video:{path}", load_config("fast", overrides)) as source:
        picked = list(source)
        again = list(source)  # a second pass starts over
    assert [f.index for f in picked] == [1, 3] == [f.index for f in again]
    assert [f.stamp_ns for f in picked] == [100_000_000, 300_000_000]


def test_video_errors(tmp_path: Path, recorded: ModuleType) -> None:
    config = load_config("fast", list(CAMERA))
    with pytest.raises(SourceError, match="video file not found"):
        open_source(f"video:{tmp_path / 'none.mp4'}", config)
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"this is not a video")
    with pytest.raises(SourceError, match=r"bogus\.mp4: (OpenCV cannot open|no frame can be)"):
        open_source(f"video:{bogus}", config)
    path = tmp_path / "clip.avi"
    recorded.make_video(path, count=2)
    with pytest.raises(SourceError, match=r"camera\.fx"):
        open_source(f"video:{path}")
