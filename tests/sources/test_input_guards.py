"""Hostile recorded inputs: index files pointing outside the dataset, stamps out of range,
a start frame past the end, images too large to track. Each is a SourceError naming the
file (and line) or the config key, never another exception."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from slamfront import cli
from slamfront.config import load_config
from slamfront.errors import ConfigError, SourceError
from slamfront.io.trajectory import parse_stamp_s, read_trajectory
from slamfront.sources import open_source
from slamfront.sources.calibration import read_calibration


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name", ["/etc/hostname", "../outside.png", "rgb/../../outside.png"])
def test_tum_index_naming_a_file_outside_the_dataset_is_refused(
    tmp_path: Path, recorded: ModuleType, name: str
) -> None:
    folder = recorded.make_tum(tmp_path)["folder"]
    cv2.imwrite(str(tmp_path / "outside.png"), recorded.textured(480, 640, 9))
    _replace_line(folder / "rgb.txt", 4, f"1311868169.100000 {name}")
    with pytest.raises(SourceError, match=r"rgb.txt:4: names .*outside the dataset folder"):
        open_source(f"tum:{folder}", load_config("fast"))


def test_euroc_index_naming_a_file_outside_the_dataset_is_refused(
    tmp_path: Path, recorded: ModuleType
) -> None:
    info = recorded.make_euroc(tmp_path, stereo=False, imu=False)
    csv = info["mav0"] / "cam0" / "data.csv"
    stamp = info["stamps"][1]
    _replace_line(csv, 3, f"{stamp},../../../../outside.png")
    with pytest.raises(SourceError, match=r"data.csv:3: names .*outside the dataset folder"):
        open_source(f"euroc:{info['root']}", load_config("fast"))


@pytest.mark.parametrize(
    ("stamp", "needle"),
    [("1e30", "out of range"), ("1311868169100000000", "nanoseconds"), ("-1e300", "out of range")],
)
def test_tum_stamps_out_of_range_are_a_source_error(
    tmp_path: Path, recorded: ModuleType, stamp: str, needle: str
) -> None:
    folder = recorded.make_tum(tmp_path)["folder"]
    path = folder / "rgb.txt"
    name = path.read_text().splitlines()[3].split()[1]
    _replace_line(path, 4, f"{stamp} {name}")
    with pytest.raises(SourceError, match=rf"rgb.txt:4: cannot parse timestamp: .*{needle}"):
        open_source(f"tum:{folder}", load_config("fast"))


def test_stamp_parser_bounds() -> None:
    assert parse_stamp_s("9223372036.854775807") == 2**63 - 1
    for text in ("9223372036.854775808", "1e30", "1" * 200, "1e999999999"):
        with pytest.raises(ValueError, match=r"out of range|not a time"):
            parse_stamp_s(text)


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("1e30 0 0 0 0 0 0 1", "t.tum"),
        ("1311868169100000000 0 0 0 0 0 0 1", "t.tum"),
        ("99999999999999999999999,0,0,0,1,0,0,0", "t.csv"),
    ],
)
def test_trajectory_stamps_out_of_range_are_a_source_error(
    tmp_path: Path, line: str, name: str
) -> None:
    path = tmp_path / name
    path.write_text(line + "\n")
    with pytest.raises(SourceError, match=rf"{name}:1: "):
        read_trajectory(path)


def test_start_frame_past_the_end_is_refused(tmp_path: Path, recorded: ModuleType) -> None:
    folder = recorded.make_tum(tmp_path)["folder"]
    config = load_config("fast", ["source.start_frame=4"])
    with pytest.raises(SourceError, match=r"source.start_frame=4 is past the end: .* 4 frames"):
        open_source(f"tum:{folder}", config)
    assert len(open_source(f"tum:{folder}", load_config("fast", ["source.start_frame=3"]))) == 1


def test_start_frame_past_the_end_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "sim:still", "sim.frames=5", "source.start_frame=5", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "source.start_frame=5 is past the end" in capsys.readouterr().err


def test_images_larger_than_the_limit_are_refused_when_the_source_opens(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((64, 4100), np.uint8))
    overrides = ["camera.fx=500", "camera.fy=500", "camera.cx=2000", "camera.cy=32"]
    with pytest.raises(SourceError, match=r"0.png: images are 4100x64, larger than source.max"):
        open_source(f"images:{folder}", load_config("fast", overrides))
    config = load_config("fast", [*overrides, "source.max_image_side_px=0"])
    assert len(open_source(f"images:{folder}", config)) == 1


def test_an_opencv_matrix_tag_on_a_scalar_is_a_source_error(
    tmp_path: Path, recorded: ModuleType
) -> None:
    info = recorded.make_euroc(tmp_path, stereo=False, imu=False)
    (info["mav0"] / "cam0" / "sensor.yaml").write_text("T_BS: !!opencv-matrix 3\n")
    with pytest.raises(SourceError, match=r"sensor.yaml: invalid YAML: .*opencv-matrix"):
        open_source(f"euroc:{info['root']}", load_config("fast"))


def test_an_opencv_matrix_tag_on_a_scalar_in_a_calibration_file(tmp_path: Path) -> None:
    path = tmp_path / "camera.yaml"
    path.write_text("%YAML:1.0\nCamera1.fx: !!opencv-matrix 3\n")
    with pytest.raises(SourceError, match=r"camera.yaml: invalid YAML: .*opencv-matrix"):
        read_calibration(path)


def test_a_source_whose_every_frame_is_unreadable_says_so(
    tmp_path: Path, recorded: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """8-bit depth images: every frame skipped; the error blamed source.start_frame."""
    folder = recorded.make_tum(tmp_path)["folder"]
    for depth in (folder / "depth").iterdir():
        cv2.imwrite(str(depth), np.full((480, 640), 40, np.uint8))
    argv = ["run", f"tum:{folder}", "--config", "classic", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "the source gave no frame: all 4 were skipped as unreadable" in err
    assert "start_frame" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("spec", ["sim:loop", "realsense-file:walk.db3"])
def test_a_ground_truth_a_source_would_ignore_is_refused(tmp_path: Path, spec: str) -> None:
    """source.groundtruth on the simulator (or a RealSense) used to be ignored silently: the
    run was scored against the simulator's own trajectory, not the file given."""
    truth = tmp_path / "truth.tum"
    truth.write_text("1.0 0 0 0 0 0 0 1\n")
    config = load_config("fast", [f"source.groundtruth={truth}"])
    with pytest.raises(ConfigError, match=rf"source.groundtruth={truth}: .*leave it unset"):
        open_source(spec, config)
