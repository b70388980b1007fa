"""The run's sensing mode follows tracker.mode, not only what the frames carry."""

from __future__ import annotations

from pathlib import Path

import pytest

import slamfront as sf
from slamfront.errors import MapFileError
from slamfront.pipeline import Pipeline


def test_depth_frames_forced_to_mono_run_as_monocular(tmp_path: Path) -> None:
    """Frames with depth tracked with tracker.mode=mono: the run says its scale is arbitrary
    and starts no back end (a pose graph of arbitrary-scale keyframes is not a map)."""
    config = sf.load_config(
        "classic",
        ["sim.width_px=160", "sim.height_px=120", "sim.frames=30", "tracker.mode=mono"],
    )
    pipeline = Pipeline(config)
    with sf.open_source("sim:loop", config) as source:
        for frame in source:
            assert frame.depth_m is not None
            pipeline.step(frame)
    pipeline.close()
    assert "monocular: trajectory scale is arbitrary" in pipeline.stats().notes
    with pytest.raises(MapFileError, match="monocular"):
        pipeline.save_map(tmp_path / "map.slam")
