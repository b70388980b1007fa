"""Trajectory files: TUM, KITTI and EuRoC readers and writers.

Formats (one pose per line, ``#`` starts a comment line):

- **TUM**: ``t tx ty tz qx qy qz qw``; ``t`` in seconds (any decimal or exponent notation,
  parsed exactly to integer nanoseconds), quaternion in x, y, z, w order.
- **KITTI**: 12 numbers, the row-major top 3x4 block of ``world_from_cam``; no stamps. Readers
  take stamps from a times file (one time in seconds per line, KITTI ``times.txt``) when given,
  otherwise from the line index: pose ``i`` gets ``i`` seconds.
- **EuRoC**: csv ``t_ns, px, py, pz, qw, qx, qy, qz[, ...]`` (``state_groundtruth_estimate0``
  layout; extra columns such as velocities and biases are ignored), stamps in nanoseconds.

:func:`convert_tum_file` writes a run's TUM file again in the other two formats.

Readers return a :class:`~slamfront.types.Trajectory` and raise
:class:`~slamfront.errors.SourceError` naming ``file:line`` on a malformed line or on stamps
that go back in time (repeated stamps are accepted: real ground-truth files have them).
Whole-trajectory writers write atomically (a temporary file renamed
over the target); :class:`TumTrajectoryWriter` appends one pose at a time and flushes it, so a
crash keeps every pose already written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import numpy as np

from slamfront.errors import SourceError
from slamfront.geometry import rotation_to_quat_xyzw
from slamfront.io.atomic import open_temp
from slamfront.types import Trajectory

TrajectoryFormat = Literal["tum", "kitti", "euroc"]

_SIMPLE_DECIMAL = re.compile(r"[+-]?\d+(\.\d*)?")
_NS_PER_S = 1_000_000_000
_INT64_LIMIT = 1 << 63


# ----------------------------------------------------------------------------- stamps


def parse_stamp_s(text: str) -> int:
    """Integer nanoseconds of a time in seconds written as text, without float rounding.

    Accepts ``1311868169.163498``, ``1.403715529112143517e+09``, ``0``; digits beyond the
    nanosecond are rounded half-even. Raises ValueError on anything else, and on times an
    int64 of nanoseconds cannot hold (beyond about 292 years from 1970, e.g. nanoseconds
    written where seconds belong).
    """
    text = text.strip()
    if _SIMPLE_DECIMAL.fullmatch(text) and len(text) <= 40:
        whole, _, frac = text.lstrip("+-").partition(".")
        if len(frac) <= 9:
            sign = -1 if text.startswith("-") else 1
            return _seconds_in_range(
                sign * (int(whole) * _NS_PER_S + int((frac + "000000000")[:9])), text
            )
    if len(text) > 80:
        raise ValueError(f"not a time in seconds: {text[:40]!r}...")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a time in seconds: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite time: {text!r}")
    if value.adjusted() >= 10:  # |t| >= 1e10 s: beyond int64 nanoseconds
        _seconds_in_range(_INT64_LIMIT, text)
    return _seconds_in_range(int((value * _NS_PER_S).to_integral_value()), text)


def _seconds_in_range(stamp_ns: int, text: str) -> int:
    if -_INT64_LIMIT <= stamp_ns < _INT64_LIMIT:
        return stamp_ns
    hint = ""
    if 10**26 <= abs(stamp_ns) < 10**29 and "." not in text and "e" not in text.lower():
        hint = "; it looks like nanoseconds: this file's times are seconds"
    raise ValueError(f"time {text[:40]!r} s is out of range (|t| < 9.2e9 s){hint}")


def check_stamp_ns(stamp_ns: int, text: str) -> int:
    """``stamp_ns`` when an int64 holds it; ValueError otherwise (``text``: as written)."""
    if -_INT64_LIMIT <= stamp_ns < _INT64_LIMIT:
        return stamp_ns
    raise ValueError(f"time {text[:40]!r} is out of range (an int64 of nanoseconds)")


def format_stamp_s(stamp_ns: int) -> str:
    """Seconds with nine decimals, exact: 1311868169163498000 -> '1311868169.163498000'."""
    sign = "-" if stamp_ns < 0 else ""
    whole, frac = divmod(abs(int(stamp_ns)), _NS_PER_S)
    return f"{sign}{whole}.{frac:09d}"


# ----------------------------------------------------------------------------- quaternions


def _rotations_from_quat_xyzw(quat_xyzw: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations of (N, 4) quaternions (x, y, z, w); each is normalised first."""
    q = quat_xyzw / np.linalg.norm(quat_xyzw, axis=1, keepdims=True)
    x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    rot = np.empty((q.shape[0], 3, 3))
    rot[:, 0, 0] = 1 - 2 * (y * y + z * z)
    rot[:, 0, 1] = 2 * (x * y - z * w)
    rot[:, 0, 2] = 2 * (x * z + y * w)
    rot[:, 1, 0] = 2 * (x * y + z * w)
    rot[:, 1, 1] = 1 - 2 * (x * x + z * z)
    rot[:, 1, 2] = 2 * (y * z - x * w)
    rot[:, 2, 0] = 2 * (x * z - y * w)
    rot[:, 2, 1] = 2 * (y * z + x * w)
    rot[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return rot


def _quat_xyzw_from_rotations(rotations: np.ndarray) -> np.ndarray:
    return np.array([rotation_to_quat_xyzw(r) for r in rotations]).reshape(-1, 4)


def _poses(translations: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    poses = np.zeros((translations.shape[0], 4, 4))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = translations
    poses[:, 3, 3] = 1.0
    return poses


# ----------------------------------------------------------------------------- reading


def read_data_lines(path: str | os.PathLike[str], what: str = "file") -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-empty line not starting with '#'."""
    target = Path(path)
    if not target.is_file():
        raise SourceError(f"{target}: {what} not found")
    try:
        text = target.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{target}: cannot read {what}: {exc}") from exc
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def _floats(path: Path, number: int, fields: list[str], what: str) -> list[float]:
    try:
        values = [float(f) for f in fields]
    except ValueError as exc:
        raise SourceError(f"{path}:{number}: cannot parse {what}: {exc}") from exc
    if not all(np.isfinite(values)):
        raise SourceError(f"{path}:{number}: {what} holds a non-finite number")
    return values


def check_stamps_increase(
    path: str | os.PathLike[str], numbers: list[int], stamps_ns: np.ndarray, strict: bool = True
) -> None:
    """SourceError naming ``path:line`` where a stamp goes back (or repeats, when ``strict``)."""
    if stamps_ns.size < 2:
        return
    steps = np.diff(stamps_ns)
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    if bad.size:
        i = int(bad[0]) + 1
        verb = "does not increase" if strict else "goes back in time"
        raise SourceError(
            f"{path}:{numbers[i]}: timestamp {format_stamp_s(int(stamps_ns[i]))} s {verb} "
            f"(previous line {numbers[i - 1]}: "
            f"{format_stamp_s(int(stamps_ns[i - 1]))} s)"
        )


def _check_quats(path: Path, numbers: list[int], quats: np.ndarray) -> None:
    norms = np.linalg.norm(quats, axis=1)
    bad = np.flatnonzero(norms < 1e-6)
    if bad.size:
        raise SourceError(f"{path}:{numbers[int(bad[0])]}: zero quaternion")


def read_tum_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Poses of a TUM file ``t tx ty tz qx qy qz qw``."""
    target = Path(path)
    lines = read_data_lines(target, "TUM trajectory")
    numbers: list[int] = []
    stamps: list[int] = []
    values: list[list[float]] = []
    for number, line in lines:
        fields = line.replace(",", " ").split()
        if len(fields) != 8:
            raise SourceError(
                f"{target}:{number}: expected 8 numbers 't tx ty tz qx qy qz qw', got {len(fields)}"
            )
        try:
            stamps.append(parse_stamp_s(fields[0]))
        except ValueError as exc:
            raise SourceError(f"{target}:{number}: cannot parse timestamp: {exc}") from exc
        values.append(_floats(target, number, fields[1:], "pose"))
        numbers.append(number)
    return _build(target, numbers, stamps, values, quat_order="xyzw")


def read_euroc_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Poses of a EuRoC csv ``t_ns, px, py, pz, qw, qx, qy, qz[, ...]``."""
    target = Path(path)
    lines = read_data_lines(target, "EuRoC trajectory")
    numbers: list[int] = []
    stamps: list[int] = []
    values: list[list[float]] = []
    for number, line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 8:
            raise SourceError(
                f"{target}:{number}: expected at least 8 comma-separated values "
                f"'t_ns, px, py, pz, qw, qx, qy, qz', got {len(fields)}"
            )
        try:
            stamps.append(check_stamp_ns(int(fields[0]), fields[0]))
        except ValueError as exc:
            raise SourceError(
                f"{target}:{number}: timestamp must be integer nanoseconds: {exc}"
            ) from exc
        values.append(_floats(target, number, fields[1:8], "pose"))
        numbers.append(number)
    return _build(target, numbers, stamps, values, quat_order="wxyz")


def _build(
    path: Path,
    numbers: list[int],
    stamps: list[int],
    values: list[list[float]],
    quat_order: Literal["xyzw", "wxyz"],
) -> Trajectory:
    if not values:
        raise SourceError(f"{path}: no poses in trajectory file")
    stamps_ns = np.array(stamps, dtype=np.int64)
    # real ground-truth files repeat stamps (4-decimal TUM stamps at 100+ Hz): allowed
    check_stamps_increase(path, numbers, stamps_ns, strict=False)
    data = np.array(values, dtype=np.float64)
    quats = data[:, 3:7] if quat_order == "xyzw" else data[:, [4, 5, 6, 3]]
    _check_quats(path, numbers, quats)
    return Trajectory(stamps_ns, _poses(data[:, :3], _rotations_from_quat_xyzw(quats)))


def read_kitti_times(path: str | os.PathLike[str]) -> np.ndarray:
    """(N,) int64 stamps in nanoseconds of a KITTI times file (one time in seconds a line)."""
    target = Path(path)
    numbers: list[int] = []
    stamps: list[int] = []
    for number, line in read_data_lines(target, "times file"):
        fields = line.split()
        if len(fields) != 1:
            raise SourceError(f"{target}:{number}: expected one time in seconds per line")
        try:
            stamps.append(parse_stamp_s(fields[0]))
        except ValueError as exc:
            raise SourceError(f"{target}:{number}: cannot parse time: {exc}") from exc
        numbers.append(number)
    out = np.array(stamps, dtype=np.int64)
    check_stamps_increase(target, numbers, out)
    return out


def read_kitti_trajectory(
    path: str | os.PathLike[str],
    times_path: str | os.PathLike[str] | None = None,
) -> Trajectory:
    """Poses of a KITTI file (12 numbers a line); stamps from ``times_path`` or the index (s)."""
    target = Path(path)
    rows: list[list[float]] = []
    numbers: list[int] = []
    for number, line in read_data_lines(target, "KITTI trajectory"):
        fields = line.split()
        if len(fields) != 12:
            raise SourceError(
                f"{target}:{number}: expected 12 numbers (3x4 pose, row-major), got {len(fields)}"
            )
        rows.append(_floats(target, number, fields, "pose"))
        numbers.append(number)
    if not rows:
        raise SourceError(f"{target}: no poses in trajectory file")
    poses = np.zeros((len(rows), 4, 4))
    poses[:, :3, :] = np.array(rows).reshape(-1, 3, 4)
    poses[:, 3, 3] = 1.0
    dets = np.linalg.det(poses[:, :3, :3])
    bad = np.flatnonzero(np.abs(dets - 1.0) > 1e-2)
    if bad.size:
        raise SourceError(
            f"{target}:{numbers[int(bad[0])]}: the 3x3 block is not a rotation "
            f"(determinant {dets[int(bad[0])]:.4f})"
        )
    if times_path is not None:
        stamps_ns = read_kitti_times(times_path)
        if stamps_ns.size != len(rows):
            raise SourceError(
                f"{times_path}: {stamps_ns.size} times for {len(rows)} poses in {target}"
            )
    else:
        stamps_ns = np.arange(len(rows), dtype=np.int64) * _NS_PER_S
    return Trajectory(stamps_ns, poses)


def detect_trajectory_format(path: str | os.PathLike[str]) -> TrajectoryFormat:
    """'euroc' for .csv files or comma-separated lines, else 'kitti' (12 fields) or 'tum' (8)."""
    target = Path(path)
    lines = read_data_lines(target, "trajectory")
    if not lines:
        raise SourceError(f"{target}: no poses in trajectory file")
    number, first = lines[0]
    if target.suffix.lower() == ".csv" or first.count(",") >= 7:
        return "euroc"
    count = len(first.split())
    if count == 12:
        return "kitti"
    if count == 8:
        return "tum"
    raise SourceError(
        f"{target}:{number}: cannot tell the trajectory format from {count} fields "
        "(TUM has 8, KITTI 12, EuRoC csv at least 8 comma-separated)"
    )


def read_trajectory(
    path: str | os.PathLike[str],
    fmt: TrajectoryFormat | Literal["auto"] = "auto",
    times_path: str | os.PathLike[str] | None = None,
) -> Trajectory:
    """Read a trajectory file; ``fmt='auto'`` detects it (see :func:`detect_trajectory_format`).

    ``times_path`` gives KITTI poses their stamps (ignored by the other formats).
    """
    kind = detect_trajectory_format(path) if fmt == "auto" else fmt
    if kind == "tum":
        return read_tum_trajectory(path)
    if kind == "euroc":
        return read_euroc_trajectory(path)
    if kind == "kitti":
        return read_kitti_trajectory(path, times_path)
    raise SourceError(f"{path}: unknown trajectory format {fmt!r} (tum, kitti, euroc, auto)")


# ----------------------------------------------------------------------------- writing


def _tum_line(stamp_ns: int, pose: np.ndarray, quat_xyzw: np.ndarray) -> str:
    t = pose[:3, 3]
    q = quat_xyzw
    return (
        f"{format_stamp_s(stamp_ns)} {t[0]:.9f} {t[1]:.9f} {t[2]:.9f} "
        f"{q[0]:.9f} {q[1]:.9f} {q[2]:.9f} {q[3]:.9f}\n"
    )


def _check_pose(pose: np.ndarray) -> np.ndarray:
    arr = np.asarray(pose, dtype=np.float64)
    if arr.shape != (4, 4) or not np.all(np.isfinite(arr)):
        raise ValueError(f"a pose must be a finite 4x4 matrix, got shape {arr.shape}")
    return arr


def _checked_poses(trajectory: Trajectory) -> np.ndarray:
    poses = np.asarray(trajectory.world_from_body, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or not np.all(np.isfinite(poses)):
        raise ValueError(f"poses must be finite (N, 4, 4) matrices, got shape {poses.shape}")
    if len(trajectory.stamps_ns) != poses.shape[0]:
        raise ValueError(f"{len(trajectory.stamps_ns)} stamps for {poses.shape[0]} poses")
    return poses


def _write_atomic(path: str | os.PathLike[str], text: str) -> None:
    target = Path(path)
    fd, tmp = open_temp(target)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()


_TUM_HEADER = "# timestamp tx ty tz qx qy qz qw\n"


def write_tum_trajectory(path: str | os.PathLike[str], trajectory: Trajectory) -> None:
    """Write ``t tx ty tz qx qy qz qw`` lines (stamps with nanosecond digits), atomically."""
    poses = _checked_poses(trajectory)
    quats = _quat_xyzw_from_rotations(poses[:, :3, :3])
    lines = [_TUM_HEADER]
    lines += [
        _tum_line(int(s), p, q) for s, p, q in zip(trajectory.stamps_ns, poses, quats, strict=True)
    ]
    _write_atomic(path, "".join(lines))


def write_kitti_trajectory(path: str | os.PathLike[str], trajectory: Trajectory) -> None:
    """Write 12 numbers (row-major 3x4) per pose, no stamps, atomically."""
    lines = [
        " ".join(f"{v:.9e}" for v in pose[:3, :].reshape(-1)) + "\n"
        for pose in _checked_poses(trajectory)
    ]
    _write_atomic(path, "".join(lines))


def write_euroc_trajectory(path: str | os.PathLike[str], trajectory: Trajectory) -> None:
    """Write EuRoC csv ``t_ns,px,py,pz,qw,qx,qy,qz`` lines, atomically."""
    poses = _checked_poses(trajectory)
    quats = _quat_xyzw_from_rotations(poses[:, :3, :3])
    lines = ["#timestamp [ns],p_x [m],p_y [m],p_z [m],q_w [],q_x [],q_y [],q_z []\n"]
    for stamp, pose, q in zip(trajectory.stamps_ns, poses, quats, strict=True):
        t = pose[:3, 3]
        lines.append(
            f"{int(stamp)},{t[0]:.9f},{t[1]:.9f},{t[2]:.9f},"
            f"{q[3]:.9f},{q[0]:.9f},{q[1]:.9f},{q[2]:.9f}\n"
        )
    _write_atomic(path, "".join(lines))


def write_trajectory(
    path: str | os.PathLike[str],
    trajectory: Trajectory,
    fmt: TrajectoryFormat | Literal["auto"] = "auto",
) -> None:
    """Write in ``fmt``; 'auto' picks by suffix: .csv EuRoC, .kitti KITTI, anything else TUM."""
    kind = fmt
    if kind == "auto":
        suffix = Path(path).suffix.lower()
        kind = "euroc" if suffix == ".csv" else "kitti" if suffix == ".kitti" else "tum"
    if kind == "tum":
        write_tum_trajectory(path, trajectory)
    elif kind == "kitti":
        write_kitti_trajectory(path, trajectory)
    elif kind == "euroc":
        write_euroc_trajectory(path, trajectory)
    else:
        raise ValueError(f"unknown trajectory format {fmt!r} (tum, kitti, euroc, auto)")


def write_kitti_times(path: str | os.PathLike[str], stamps_ns: np.ndarray) -> None:
    """Write a KITTI times file (one time in seconds a line, nanosecond digits), atomically."""
    _write_atomic(path, "".join(f"{format_stamp_s(int(s))}\n" for s in stamps_ns))


def convert_tum_file(
    path: str | os.PathLike[str], formats: Iterable[TrajectoryFormat]
) -> list[Path]:
    """Write the TUM trajectory ``path`` again beside it in each of ``formats``: KITTI as
    ``<stem>.kitti`` with its stamps in ``<stem>_times.txt`` (KITTI poses carry none), EuRoC
    as ``<stem>.csv``; 'tum' is the file itself. Returns the files written."""
    source = Path(path)
    trajectory = read_tum_trajectory(source)
    written: list[Path] = []
    for kind in dict.fromkeys(formats):
        if kind == "kitti":
            target = source.with_suffix(".kitti")
            write_kitti_trajectory(target, trajectory)
            times = source.with_name(f"{source.stem}_times.txt")
            write_kitti_times(times, trajectory.stamps_ns)
            written += [target, times]
        elif kind == "euroc":
            target = source.with_suffix(".csv")
            write_euroc_trajectory(target, trajectory)
            written.append(target)
        elif kind != "tum":
            raise ValueError(f"unknown trajectory format {kind!r} (tum, kitti, euroc)")
    return written


class TumTrajectoryWriter:
    """Appends one TUM line per pose and flushes it at once.

    A crash keeps every pose written before it (``fsync=True`` also survives a power cut, at
    the cost of a disk sync per pose). Stamps must increase. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._last_stamp_ns: int | None = None
        self.num_written = 0
        self._handle: IO[str] | None = self.path.open("w")
        self._handle.write(_TUM_HEADER)
        self._handle.flush()

    def write(self, stamp_ns: int, world_from_cam: np.ndarray) -> None:
        """Append one pose (4x4 ``world_from_cam``) stamped ``stamp_ns``."""
        if self._handle is None:
            raise ValueError(f"{self.path}: writer is closed")
        pose = _check_pose(world_from_cam)
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            raise ValueError(
                f"{self.path}: stamp {stamp_ns} ns does not increase "
                f"(previous {self._last_stamp_ns} ns)"
            )
        quat = _quat_xyzw_from_rotations(pose[None, :3, :3])[0]
        self._handle.write(_tum_line(int(stamp_ns), pose, quat))
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())
        self._last_stamp_ns = int(stamp_ns)
        self.num_written += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TumTrajectoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
