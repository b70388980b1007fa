"""The pipeline benchmark and its command line (timings are printed, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slamfront.bench.pipeline import (
    REFERENCE_OVERRIDES,
    STAGES,
    BenchInput,
    PipelineBenchmark,
    RunSample,
    StageFigures,
    VariantResult,
    bench_pipeline,
    parse_input,
    run_once,
    summarise_samples,
)
from slamfront.cli import main
from slamfront.config import load_config
from slamfront.errors import ConfigError

SMALL = ("sim.width_px=160", "sim.height_px=120")


def _sample(
    fps: float, rows: list[tuple[float, ...]], peak: float = 100.0, frame_ms: float = 50.0
) -> RunSample:
    return RunSample(
        frames=len(rows) + 2,
        frames_lost=1,
        fps=fps,
        fps_run=fps / 2,
        wall_s=1.0,
        cpu_s=0.5,
        peak_rss_mb=peak,
        sensor="rgbd",
        width_px=640,
        height_px=480,
        stage_ms=tuple(rows),
        frame_ms=(frame_ms,) * len(rows),
    )


def test_parse_input_names_and_specs() -> None:
    rgbd = parse_input("sim-rgbd", 40)
    assert rgbd.spec == "sim:loop" and "sim.sensor=rgbd" in rgbd.overrides
    assert {"sim.width_px=640", "sim.height_px=480", "sim.frames=40"} <= set(rgbd.overrides)
    assert parse_input("sim-stereo", 40).label == "sim:loop stereo"
    euroc = parse_input("euroc:/data/V1_01_easy_clip", 40)
    assert euroc.label == "euroc:V1_01_easy_clip" and euroc.overrides == ("source.max_frames=40",)
    assert "sim.frames=7" in parse_input("sim:figure8", 7).overrides
    with pytest.raises(ConfigError, match="sim-rgbd"):
        parse_input("rgbd", 40)
    with pytest.raises(ConfigError, match="frames"):
        parse_input("sim-rgbd", 0)


def test_summary_pools_frames_of_all_runs() -> None:
    rows_a = [(float(i), 2.0 * i, 3.0, 4.0, 0.0, 0.1) for i in range(1, 11)]
    rows_b = [(float(i), 2.0 * i, 3.0, 4.0, 0.0, 0.1) for i in range(11, 21)]
    stages, figures = summarise_samples(
        [
            _sample(10.0, rows_a, 100.0, frame_ms=40.0),
            _sample(20.0, rows_b, 300.0, frame_ms=90.0),
            _sample(12.0, rows_a, frame_ms=40.0),
        ]
    )
    pooled = np.array([r[0] for r in rows_a + rows_b + rows_a])
    assert stages["read"].median_ms == pytest.approx(np.median(pooled))
    assert stages["read"].p90_ms == pytest.approx(np.percentile(pooled, 90))
    assert stages["read"].max_ms == 20.0 and stages["extract"].max_ms == 40.0
    assert stages["extract"].median_ms == pytest.approx(2 * np.median(pooled))
    assert stages["pose"].median_ms == 4.0 and set(stages) == {*STAGES, "frame"}
    # the frame time pools every run's intervals: 20 of 40 ms, 10 of 90 ms
    assert stages["frame"].median_ms == 40.0 and stages["frame"].p90_ms == 90.0
    assert stages["frame"].max_ms == 90.0
    assert figures["fps_median"] == 12.0 and figures["fps_min"] == 10.0
    assert figures["fps_max"] == 20.0 and figures["fps_run_median"] == 6.0
    assert figures["peak_rss_mb"] == 300.0 and figures["frames_lost"] == 3
    assert figures["cpu_ms_per_frame"] == pytest.approx(1e3 * 0.5 / 12)
    with pytest.raises(ValueError):
        summarise_samples([])


def _variant(variant: str, match_ms: float) -> VariantResult:
    stages = {s: StageFigures(5.0, 6.0, 9.0) for s in STAGES} | {
        "match": StageFigures(match_ms, 0.0, 0.0)
    }
    return VariantResult(
        "sim:loop", "sim:loop", variant, "rgbd", 640, 480, "onnxruntime", "onnxruntime",
        1, 10, 20.0, 19.0, 21.0, 18.0, 50.0, 500.0, 400.0, 0, stages, {},
    )  # fmt: skip


def test_summary_line_never_prints_nan_when_a_stage_did_not_run() -> None:
    """The preset's motion model tracks the median frame without the matcher: its match
    median is 0 ms, and the ratio line says so instead of 'nanx'."""
    result = PipelineBenchmark(
        "fast",
        (_variant("preset", 0.0), _variant("reference", 30.0)),
        1, 0, 5, 10, (), {}, (0.0, 0.0),
    )  # fmt: skip
    line = result.lines()[-1]
    assert "nan" not in line
    assert "extraction 1.00x faster" in line and "matcher did not run" in line


def test_one_run_is_a_real_pipeline_run() -> None:
    from slamfront.frontend.extractors import build_extractor
    from slamfront.frontend.matchers import build_matcher

    config = load_config("classic", [*SMALL, "sim.frames=12", "sim.sensor=stereo"])
    extractor = build_extractor(config.extractor)
    matcher = build_matcher(config.matcher, config.extractor.model)
    sample = run_once(config, "sim:loop", extractor, matcher, warmup_frames=3)
    assert sample.frames == 12 and len(sample.stage_ms) == len(sample.frame_ms) == 9
    assert all(t > 0 for t in sample.frame_ms)
    assert (sample.sensor, sample.width_px, sample.height_px) == ("stereo", 160, 120)
    assert sample.frames_lost == 0
    read, extract, match = (np.array([row[i] for row in sample.stage_ms]) for i in range(3))
    assert (read > 0).all() and (extract > 0).all() and (match > 0).all()
    assert sample.fps > 0 and sample.fps_run > 0 and sample.cpu_s > 0
    assert sample.peak_rss_mb > 50
    # frames read into memory first: the same run, without the renderer on the reader thread
    preloaded = run_once(config, "sim:loop", extractor, matcher, warmup_frames=3, preload=True)
    assert preloaded.frames == 12 and preloaded.frames_lost == 0
    read_preloaded = np.array([row[0] for row in preloaded.stage_ms])
    assert np.median(read_preloaded) < 0.5 * np.median(read)
    with pytest.raises(ConfigError, match="warmup_frames"):
        run_once(config, "sim:loop", extractor, matcher, warmup_frames=12)


@pytest.mark.slow
def test_bench_runs_preset_and_reference_and_reports_a_broken_input(
    shared_weights: Path, tmp_path: Path
) -> None:
    inputs = [
        BenchInput("tiny rgbd", "sim:loop", (*SMALL, "sim.frames=8")),
        BenchInput("missing", f"euroc:{tmp_path / 'nowhere'}", ("source.max_frames=8",)),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        result = bench_pipeline(
            "fast",
            inputs,
            frames=8,
            runs=1,
            warmup_runs=1,
            warmup_frames=2,
            overrides=("extractor.max_keypoints=128",),
        )
    assert [(r.input, r.variant) for r in result.results] == [
        ("tiny rgbd", "preset"),
        ("tiny rgbd", "reference"),
    ]
    preset, reference = result.results
    assert (reference.extractor_runtime, reference.matcher_runtime) == ("torch", "torch")
    assert preset.extractor_runtime != "torch" or preset.matcher_runtime != "torch"
    assert reference.config["matcher"]["depth_confidence"] == -1
    assert preset.config["matcher"]["depth_confidence"] == 0.8
    assert preset.config["extractor"]["max_keypoints"] == 128
    assert preset.frames_per_run == 8 and preset.runs == 1 and preset.width_px == 160
    assert preset.stages["extract"].median_ms > 0 and preset.peak_rss_mb > 100
    assert [r["input"] for r in result.ratios()] == ["tiny rgbd"]
    assert any(s.startswith("missing / preset") and "nowhere" in s for s in result.skipped)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["git_commit"] and data["reference_overrides"] == list(REFERENCE_OVERRIDES)
    assert isinstance(data["uncommitted"], list)
    # the preset's motion model leaves the matcher idle on most frames; the reference matches
    assert data["results"][0]["stages"]["pose"]["median_ms"] > 0
    assert data["results"][1]["stages"]["match"]["median_ms"] > 0
    assert data["machine"]["versions"]["numpy"]
    assert any("preset/reference fps" in line for line in result.lines())


def test_bench_pipeline_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "pipeline", "--config", "classic", "--inputs", "sim-rgbd", "--frames", "6"]
    extra = ["--runs", "1", "--warmup-runs", "0", "--warmup-frames", "1", "--json", str(out)]
    assert main([*args, *extra, *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "sim:loop rgbd" in printed and "rgbd 160x120" in printed
    assert "no network" in printed  # no reference for ORB, and it says so
    data = json.loads(out.read_text())
    assert data["preset"] == "classic" and data["results"][0]["frames_per_run"] == 6
    assert data["results"][0]["config"]["sim"]["width_px"] == 160
    assert data["preload"] is False
    assert main([*args, *extra, "--preload", *SMALL]) == 0
    assert "frames read into memory before each run" in capsys.readouterr().out
    assert json.loads(out.read_text())["preload"] is True
    assert main([*args, "--warmup-frames", "6"]) == 2


def test_bench_sinks_target_passes_its_arguments_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from slamfront.bench import sinks

    seen: list[list[str]] = []
    monkeypatch.setattr(sinks, "main", lambda argv: seen.append(list(argv)) or 0)
    assert main(["bench", "sinks", "--frames", "12", "--jpeg-quality", "70", "sim.seed=3"]) == 0
    assert seen == [
        [
            *("--config", "classic", "--frames", "12", "--runs", "5"),
            *("--width", "640", "--height", "480", "--mode", "save"),
            *("--jpeg-quality", "70", "sim.seed=3"),
        ]
    ]
