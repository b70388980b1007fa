"""Image alignment refines matched positions on rendered frames with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

import slamfront as sf
from slamfront.frontend.refine import grey, refine_positions
from slamfront.geometry import invert_pose, project, transform_points, unproject


@pytest.fixture(scope="module")
def pair() -> tuple[sf.Frame, sf.Frame, np.ndarray]:
    config = sf.load_config("classic", ["sim.frames=6", "sim.image_noise_std=0"])
    with sf.open_source("sim:loop", config) as source:
        frames = list(source)
        truth = source.groundtruth()
    assert truth is not None
    cam1_from_cam0 = invert_pose(truth.world_from_body[5]) @ truth.world_from_body[0]
    return frames[0], frames[5], cam1_from_cam0


def test_alignment_recovers_true_positions_from_perturbed_starts(
    pair: tuple[sf.Frame, sf.Frame, np.ndarray],
) -> None:
    f0, f1, cam1_from_cam0 = pair
    import cv2

    corners = cv2.goodFeaturesToTrack(grey(f0.image), 300, 0.01, 8).reshape(-1, 2)
    depth = f0.depth_m[np.rint(corners[:, 1]).astype(int), np.rint(corners[:, 0]).astype(int)]
    corners = corners[depth > 0]
    depth = depth[depth > 0]
    truth = project(
        f1.camera.K, transform_points(cam1_from_cam0, unproject(f0.camera.K, corners, depth))
    )
    rng = np.random.default_rng(0)
    start = truth + rng.uniform(-1.5, 1.5, size=truth.shape)  # a detector's error
    refined, ok = refine_positions(grey(f0.image), grey(f1.image), corners, start, 4.0)
    assert ok.mean() > 0.9
    err = np.linalg.norm(refined[ok] - truth[ok], axis=1)
    before = np.linalg.norm(start - truth, axis=1)
    assert np.median(err) < 0.1  # from ~1 px to a tenth of a pixel
    assert np.median(before) > 0.8
    # failures keep the start, and a far start is refused
    _, far_ok = refine_positions(grey(f0.image), grey(f1.image), corners, truth + 30.0, 4.0)
    assert far_ok.mean() < 0.1


def test_stereo_row_limit_and_empty_input(pair: tuple[sf.Frame, sf.Frame, np.ndarray]) -> None:
    f0, _, _ = pair
    g = grey(f0.image)
    out, ok = refine_positions(g, g, np.zeros((0, 2)), np.zeros((0, 2)), 2.0)
    assert out.shape == (0, 2) and ok.shape == (0,)
    pts = np.array([[320.0, 240.0], [100.0, 100.0]])
    below = pts + np.array([0.0, 1.0])
    same, ok = refine_positions(g, g, pts, below, 4.0, max_row_shift_px=0.5)
    assert not ok.any()  # the true position is a whole row away: refused under a 0.5 px limit
    np.testing.assert_allclose(same, below)
