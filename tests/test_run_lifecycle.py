"""``slamfront run`` never destroys an earlier run, refuses what it cannot write before the
first frame, and fails loudly (issues 21 and 24). Short synthetic runs on the ``classic``
preset (no network weights), through the CLI's ``main`` in this process."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import slamfront as sf
from slamfront.backend.map_store import load_map
from slamfront.cli import EXIT_NOTHING_TRACKED, _RunSignals, main
from slamfront.io.trajectory import read_tum_trajectory
from slamfront.pipeline import run_to_directory
from tests.fakes import IgnoringSink

SIM = ["sim.width_px=320", "sim.height_px=240", "--config", "classic", "--quiet"]


def run(out: Path, *args: str, frames: int = 6) -> int:
    return main(["run", "sim:loop", f"sim.frames={frames}", *SIM, "--out", str(out), *args])


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "run"
    assert run(out, frames=6) == 0
    return out


def test_a_non_empty_out_is_refused_and_left_as_it_was(
    first_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(first_run)
    assert run(first_run, frames=4) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert digest(first_run) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--load-map", "missing.map"], "map file not found"),
        (["extractor.model=xfeat", "extractor.weights=missing.pt"], "missing.pt"),
        (["tracker.mode=stereo"], "no right image stream"),
    ],
)
def test_a_second_run_that_fails_to_start_leaves_the_first_intact(
    first_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    """The issue's reproduction: a second run into the same folder that fails on its map,
    its weights or its mode, even with --overwrite, changes nothing there (it used to cut
    the first run's trajectory.tum to its header)."""
    monkeypatch.chdir(first_run.parent)
    before = digest(first_run)
    assert run(first_run, "--overwrite", *args, frames=4) == 2
    assert message in capsys.readouterr().err
    assert digest(first_run) == before


def test_overwrite_replaces_the_folder_whole(tmp_path: Path) -> None:
    """No file of the earlier run stays beside the new run's (e.g. a groundtruth.tum that
    ``eval`` would score against)."""
    out = tmp_path / "run"
    assert run(out, frames=8) == 0
    (out / "stale.txt").write_text("from an earlier run\n")
    assert run(out, "--overwrite", frames=5) == 0
    assert not (out / "stale.txt").exists()
    assert len(read_tum_trajectory(out / "trajectory.tum")) == 5
    assert json.loads((out / "stats.json").read_text())["frames_read"] == 5
    assert not [p.name for p in tmp_path.iterdir() if p.name != "run"]  # no leftovers


def test_overwrite_through_a_symbolic_link_replaces_the_folder_it_names(tmp_path: Path) -> None:
    """The link itself used to be swapped for a new folder: the earlier run stayed where the
    link had pointed, and the link was left behind under a hidden name."""
    real, link = tmp_path / "real", tmp_path / "link"
    assert run(real, frames=8) == 0
    link.symlink_to(real)
    assert run(link, "--overwrite", frames=5) == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads((real / "stats.json").read_text())["frames_read"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_overwrite_never_replaces_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out DATASET --overwrite` used to replace the dataset folder the run was reading
    (its frames then 'not found'), or any folder of the user's files, whole."""
    data = tmp_path / "recording"
    (data / "rgb").mkdir(parents=True)
    (data / "rgb.txt").write_text("# my recording\n")
    before = digest(tmp_path)
    assert run(data, "--overwrite") == 2
    assert "replaces an earlier run's folder only" in capsys.readouterr().err
    assert digest(tmp_path) == before and (data / "rgb").is_dir()


def test_overwrite_never_deletes_an_input_of_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run(out, "--save-map", str(tmp_path / "room.map"), frames=8) == 0
    (tmp_path / "room.map").rename(out / "room.map")  # the map kept inside the run's folder
    before = digest(out)
    assert run(out, "--overwrite", "--load-map", str(out / "room.map")) == 2
    err = capsys.readouterr().err
    assert f"would delete {out / 'room.map'}, an input of this run" in err
    assert digest(out) == before


def test_a_map_saved_into_the_new_run_folder_is_not_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(out, "--save-map", str(out / "room.map"), frames=8) == 0
    assert len(load_map(out / "room.map").keyframes) >= 1


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", "exists and is not a folder"),
        ("file/below", "is a file, not a folder"),
        ("/proc/slamfront-out", "cannot write in /proc"),
    ],
)
def test_an_output_folder_it_cannot_use_is_an_error_up_front(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a folder\n")
    assert run(Path(where)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    ("target", "message"),
    [("/proc/slamfront.map", "cannot write in /proc"), ("nowhere/m.map", "does not exist")],
)
def test_a_map_target_it_cannot_write_is_an_error_before_the_first_frame(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    message: str,
) -> None:
    """It used to fail with a PermissionError traceback after the whole run, losing the map."""
    monkeypatch.chdir(tmp_path)
    assert run(tmp_path / "run", "--save-map", target) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rerun", "save:nowhere/r.rrd"], "--rerun save:nowhere/r.rrd: folder nowhere does not"),
        (["--rerun", "save:/proc/r.rrd"], "cannot write in /proc"),
        (["--rerun", "save:kept.rrd"], "--rerun save:kept.rrd: the file exists"),
        (["--rerun", "save:."], "is a folder"),
        (["--save-map", "kept.rrd"], "--save-map kept.rrd: the file exists"),
    ],
)
def test_files_written_beside_the_run_folder_are_checked_before_anything_is_touched(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    """A recording outside the run folder used to be created where it could (a folder made
    for it, an existing file replaced) or fail with a traceback once the folder was claimed;
    a map replaced any file. Now: refused up front, and an existing file that is not a map
    is replaced only with --overwrite."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept.rrd").write_text("mine\n")
    assert run(tmp_path / "run", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.rrd"]
    assert (tmp_path / "kept.rrd").read_text() == "mine\n"


def test_a_saved_map_replaces_the_map_it_finds(tmp_path: Path) -> None:
    target = tmp_path / "room.map"
    assert run(tmp_path / "a", "--save-map", str(target)) == 0
    first = len(load_map(target).keyframes)
    # a longer second run, so its map holds more keyframes than the one it replaces
    assert run(tmp_path / "b", "--save-map", str(target), frames=20) == 0
    assert len(load_map(target).keyframes) > first >= 1


class _RemoveFolder(IgnoringSink):
    """A sink that removes a folder at the first frame (a disk unmounted during a run)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_result(self, frame: sf.Frame, result: sf.TrackResult) -> None:
        if self.folder.exists():
            self.folder.rmdir()


def test_a_map_that_cannot_be_saved_at_the_end_goes_into_the_run_folder(tmp_path: Path) -> None:
    target = tmp_path / "maps" / "room.map"
    target.parent.mkdir()
    config = sf.load_config("classic", ["sim.frames=12", "sim.width_px=320", "sim.height_px=240"])
    with sf.open_source("sim:loop", config) as source:
        stats = run_to_directory(
            source,
            config,
            tmp_path / "run",
            save_map=target,
            extra_sinks=[_RemoveFolder(target.parent)],
        )
    fallback = tmp_path / "run" / "room.map"
    assert stats.map_saved_to == str(fallback)
    assert len(load_map(fallback).keyframes) >= 1
    saved = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert saved["map_saved_to"] == str(fallback)
    assert any(str(target) in note for note in saved["notes"])


def test_a_mode_the_source_cannot_serve_is_an_error_naming_the_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rgbd on a source without depth used to track 0 frames and exit 0."""
    assert run(tmp_path / "a", "sim.sensor=mono", "tracker.mode=rgbd") == 2
    assert "no depth stream" in capsys.readouterr().err
    assert run(tmp_path / "b", "tracker.mode=stereo") == 2
    assert "no right image stream" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_auto_says_which_mode_it_chose_and_stats_record_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["run", "sim:loop", "sim.frames=4", "sim.sensor=stereo", *SIM[:-1], "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "mode: stereo (auto: the source gives a rectified stereo pair)" in captured.err
    assert json.loads((out / "stats.json").read_text())["mode"] == "stereo"
    outputs = next(line for line in captured.out.splitlines() if line.startswith("outputs:"))
    for name in ("config.yaml", "groundtruth.tum", "stats.json", "trajectory_raw.tum"):
        assert name in outputs


def test_a_run_that_tracks_nothing_exits_non_zero_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Black frames without depth: the depth check warns after its first frames, the run
    writes its outputs and exits with its own status."""
    out = tmp_path / "run"
    blank = ["sim.blank_start=0", "sim.blank_count=12"]
    assert run(out, *blank, frames=12) == EXIT_NOTHING_TRACKED
    captured = capsys.readouterr()
    assert "tracked no frame" in captured.err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames_tracked"] == 0 and stats["frames_read"] == 12
    assert any("usable depth" in note for note in stats["notes"])


def test_eight_bit_depth_is_noticed(tmp_path: Path) -> None:
    """Depth read from 8-bit images (every value under 256 / 5000 m) is called out."""
    config = sf.load_config("classic", ["sim.frames=11", "sim.width_px=320", "sim.height_px=240"])
    with sf.open_source("sim:loop", config) as source:
        frames = list(source)
    # an 8-bit PNG holds 0-255, scaled by the TUM factor 5000: at most 5 cm
    shallow = [
        dataclasses.replace(f, depth_m=(np.round(f.depth_m * 50) / 5000).astype(np.float32))
        for f in frames
    ]
    stats = run_to_directory(shallow, config, tmp_path)
    assert any("8-bit" in note for note in stats.notes)


def test_a_stop_event_ends_the_run_with_every_output(tmp_path: Path) -> None:
    """What a first signal does in the CLI: the run ends after the frame being tracked
    and finishes as if the source had ended (optimised trajectory, stats)."""
    stop = threading.Event()

    class StopAtFive(_RemoveFolder):
        def on_result(self, frame: sf.Frame, result: sf.TrackResult) -> None:
            if frame.index == 5:
                stop.set()

    config = sf.load_config("classic", ["sim.frames=40", "sim.width_px=320", "sim.height_px=240"])
    with sf.open_source("sim:loop", config) as source:
        stats = run_to_directory(
            source, config, tmp_path, stop=stop, extra_sinks=[StopAtFive(tmp_path / "x")]
        )
    assert stats.stopped_early and 6 <= stats.frames_read < 12
    assert len(read_tum_trajectory(tmp_path / "trajectory.tum")) == stats.frames_tracked
    assert json.loads((tmp_path / "stats.json").read_text())["stopped_early"] is True


def test_overwrite_never_replaces_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine\n")
    assert run(Path("."), "--overwrite") == 2
    assert "current folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_signals_count_themselves_not_the_stop_event() -> None:
    """The pipeline sets ``stop`` itself when its frames end: a first signal during the end
    of a complete run must not count as a second (it used to drop the back end's poses)."""
    before = signal.getsignal(signal.SIGTERM)  # not always the default: ray installs its own
    with _RunSignals() as signals:
        with signals.claiming():
            pass
        signals.stop.set()  # as the pipeline does when the source ends
        signal.raise_signal(signal.SIGTERM)
        assert not signals.hurry.is_set() and signals.signum == signal.SIGTERM
        signal.raise_signal(signal.SIGINT)
        assert signals.hurry.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_rgbd_profile_on_a_tum_folder_without_depth_is_refused(
    tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21's reproduction: it tracked 0 of 20 frames, exited 0 and stats.json said
    "monocular" while config.yaml said rgbd."""
    clip = shared / "data" / "tum" / "rgbd_dataset_freiburg2_desk_clip"
    if not clip.is_dir():
        pytest.skip(f"{clip} not found")
    profile = Path(__file__).resolve().parent.parent / "launch" / "replay_tum_rgbd.yaml"
    out = tmp_path / "run"
    assert main(["run", "--profile", str(profile), f"tum:{clip}", "--out", str(out)]) == 2
    assert "no depth stream" in capsys.readouterr().err
    assert not out.exists()


def test_a_signal_while_the_folder_is_claimed_waits_for_the_claim() -> None:
    with _RunSignals() as signals:
        with signals.claiming():
            signal.raise_signal(signal.SIGTERM)  # no exception in the middle of the swap
            assert not signals.stop.is_set()
        assert signals.stop.is_set() and signals.signum == signal.SIGTERM


def test_a_signal_at_start_up_is_not_lost_when_library_code_swallows_it() -> None:
    """Start-up code may catch the KeyboardInterrupt a signal raises; the claim of the
    output folder then still refuses to go on."""
    with _RunSignals() as signals:
        with contextlib.suppress(KeyboardInterrupt):  # as a broad except in a loader would
            signal.raise_signal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt), signals.claiming():
            pytest.fail("the folder must not be claimed")
