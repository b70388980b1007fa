"""Trajectory files: exact stamps, round trips, atomic and incremental writers, bad lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slamfront.errors import SourceError
from slamfront.geometry import make_pose, so3_exp
from slamfront.io.trajectory import (
    TumTrajectoryWriter,
    detect_trajectory_format,
    format_stamp_s,
    parse_stamp_s,
    read_euroc_trajectory,
    read_kitti_trajectory,
    read_trajectory,
    read_tum_trajectory,
    write_euroc_trajectory,
    write_kitti_trajectory,
    write_trajectory,
    write_tum_trajectory,
)
from slamfront.types import Trajectory


def _trajectory(count: int = 5) -> Trajectory:
    stamps = 1311868169_163498000 + np.arange(count, dtype=np.int64) * 33_333_333
    poses = np.array(
        [
            make_pose(so3_exp(np.array([0.3 * i, -0.2, 0.1 * i])), np.array([i, -2.0 * i, 0.5]))
            for i in range(count)
        ]
    )
    return Trajectory(stamps, poses)


@pytest.mark.parametrize(
    ("text", "stamp_ns"),
    [
        ("1311868169.163498", 1311868169_163498000),
        ("1403715273.262142976", 1403715273_262142976),
        ("1.403715529112143517e+09", 1403715529_112143517),
        ("0.000000e+00", 0),
        ("1.037359e-01", 103_735_900),
        ("42", 42_000_000_000),
        ("-0.25", -250_000_000),
        ("1.0000000015", 1_000_000_002),  # beyond nanoseconds: rounded half to even
    ],
)
def test_parse_stamp_is_exact(text: str, stamp_ns: int) -> None:
    assert parse_stamp_s(text) == stamp_ns


def test_format_stamp_round_trips() -> None:
    for stamp in (0, 1, 1311868169_163498000, -250_000_000, 999_999_999):
        assert parse_stamp_s(format_stamp_s(stamp)) == stamp
    assert format_stamp_s(1311868169_163498000) == "1311868169.163498000"
    with pytest.raises(ValueError):
        parse_stamp_s("12:30")


@pytest.mark.parametrize("fmt", ["tum", "euroc", "kitti"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    traj = _trajectory()
    path = tmp_path / {"tum": "t.txt", "euroc": "t.csv", "kitti": "t.kitti"}[fmt]
    write_trajectory(path, traj)
    assert detect_trajectory_format(path) == fmt
    back = read_trajectory(path)
    np.testing.assert_allclose(back.world_from_body, traj.world_from_body, atol=2e-9)
    if fmt == "kitti":
        np.testing.assert_array_equal(back.stamps_ns, np.arange(5) * 1_000_000_000)
    else:
        np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns)


def test_kitti_times_file(tmp_path: Path) -> None:
    traj = _trajectory(3)
    write_kitti_trajectory(tmp_path / "p.txt", traj)
    (tmp_path / "times.txt").write_text("0.000000e+00\n1.037359e-01\n2.073381e-01\n")
    back = read_kitti_trajectory(tmp_path / "p.txt", tmp_path / "times.txt")
    np.testing.assert_array_equal(back.stamps_ns, [0, 103_735_900, 207_338_100])
    (tmp_path / "times.txt").write_text("0.0\n0.1\n")
    with pytest.raises(SourceError, match=r"times\.txt: 2 times for 3 poses"):
        read_kitti_trajectory(tmp_path / "p.txt", tmp_path / "times.txt")


def test_comments_blank_lines_and_repeated_stamps(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(
        "# ground truth\n\n1.0 0 0 0 0 0 0 1\n# mid comment\n1.0 1 0 0 0 0 0 2\n1.5 2 0 0 0 0 1 0\n"
    )
    traj = read_tum_trajectory(path)
    np.testing.assert_array_equal(traj.stamps_ns, [1_000_000_000, 1_000_000_000, 1_500_000_000])
    np.testing.assert_allclose(traj.world_from_body[1, :3, :3], np.eye(3))  # normalised
    np.testing.assert_allclose(traj.world_from_body[2, :3, :3], np.diag([-1.0, -1.0, 1.0]))


def test_euroc_reader_ignores_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "#timestamp, p_x, p_y, p_z, q_w, q_x, q_y, q_z, v_x\n"
        "1403715524907143168,0.5,2.0,0.97,0.0,0.0,0.0,1.0,0.1\n"
    )
    traj = read_euroc_trajectory(path)
    assert traj.stamps_ns[0] == 1403715524907143168
    np.testing.assert_allclose(traj.world_from_body[0, :3, :3], np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(traj.positions_m[0], [0.5, 2.0, 0.97])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.txt", "1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 1\n", r"a\.txt:2: expected 8 numbers"),
        ("a.txt", "1.0 0 0 0 0 0 0 1\n2.0 0 0 zero 0 0 0 1\n", r"a\.txt:2: cannot parse pose"),
        ("a.txt", "1.0 0 0 0 0 0 0 1\n2.0 0 0 nan 0 0 0 1\n", r"a\.txt:2: pose holds a non-finite"),
        ("a.txt", "2.0 0 0 0 0 0 0 1\n1.0 0 0 0 0 0 0 1\n", r"a\.txt:2: timestamp .* goes back"),
        ("a.txt", "1.0 0 0 0 0 0 0 1\n2.0 0 0 0 0 0 0 0\n", r"a\.txt:2: zero quaternion"),
        ("a.txt", "1.x 0 0 0 0 0 0 1\n", r"a\.txt:1: cannot parse timestamp"),
        ("a.txt", "# only comments\n", r"a\.txt: no poses"),
        ("a.csv", "1,0,0,0,1,0,0\n", r"a\.csv:1: expected at least 8 comma-separated"),
        ("a.csv", "1.5,0,0,0,1,0,0,0\n", r"a\.csv:1: timestamp must be integer nanoseconds"),
        ("k.txt", "1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0\n", r"k\.txt:2: expected 12 numbers"),
        ("k.txt", "2 0 0 0 0 1 0 0 0 0 1 0\n", r"k\.txt:1: the 3x3 block is not a rotation"),
    ],
)
def test_bad_lines_name_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    reader = {"a.txt": read_tum_trajectory, "a.csv": read_euroc_trajectory}.get(
        name, read_kitti_trajectory
    )
    with pytest.raises(SourceError, match=message):
        reader(path)


def test_missing_file_and_undetectable_format(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.txt: TUM trajectory not found"):
        read_tum_trajectory(tmp_path / "nope.txt")
    (tmp_path / "odd.txt").write_text("1 2 3\n")
    with pytest.raises(SourceError, match=r"odd\.txt:1: cannot tell the trajectory format"):
        read_trajectory(tmp_path / "odd.txt")


def test_incremental_writer_keeps_every_pose_before_a_crash(tmp_path: Path) -> None:
    traj = _trajectory(4)
    path = tmp_path / "trajectory.tum"
    writer = TumTrajectoryWriter(path)
    for stamp, pose in zip(traj.stamps_ns[:3], traj.world_from_body[:3], strict=True):
        writer.write(int(stamp), pose)
    # the process "crashes" here: nothing is closed, yet the file already holds three poses
    back = read_tum_trajectory(path)
    assert len(back) == 3 and writer.num_written == 3
    np.testing.assert_array_equal(back.stamps_ns, traj.stamps_ns[:3])
    np.testing.assert_allclose(back.world_from_body, traj.world_from_body[:3], atol=2e-9)
    with pytest.raises(ValueError, match="does not increase"):
        writer.write(int(traj.stamps_ns[1]), traj.world_from_body[1])
    with pytest.raises(ValueError, match="finite 4x4"):
        writer.write(int(traj.stamps_ns[3]), np.full((4, 4), np.nan))
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(int(traj.stamps_ns[3]), traj.world_from_body[3])
    assert len(read_tum_trajectory(path)) == 3
    with TumTrajectoryWriter(path, fsync=True) as again:
        again.write(5, np.eye(4))
    assert len(read_tum_trajectory(path)) == 1  # a new writer starts a new file


def test_whole_file_writers_are_atomic(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    write_tum_trajectory(path, _trajectory(2))
    before = path.read_text()
    broken = Trajectory(np.array([0, 1], np.int64), np.zeros((2, 3, 3)))  # not 4x4
    for writer in (write_tum_trajectory, write_kitti_trajectory, write_euroc_trajectory):
        with pytest.raises(ValueError, match=r"finite \(N, 4, 4\)"):
            writer(path, broken)
        assert path.read_text() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.txt"]  # no temporary left over


def test_a_write_removes_what_a_killed_write_left_beside_the_file(tmp_path: Path) -> None:
    """Temporary files of a process that is gone are removed; a running one's are kept."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    target = tmp_path / "trajectory.tum"
    stale = tmp_path / f".trajectory.tum.{int(gone.stdout)}-1a2b.tmp"
    running = tmp_path / f".trajectory.tum.{os.getpid()}-3c4d.tmp"
    for partial in (stale, running):
        partial.write_text("1.0 0 0")
    poses = np.stack([make_pose(np.eye(3), np.zeros(3))] * 2)
    write_tum_trajectory(target, Trajectory(np.array([1, 2], np.int64), poses))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, running.name])
    assert len(read_tum_trajectory(target)) == 2
