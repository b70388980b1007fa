"""Image alignment refines matched positions on rendered frames with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

import slamfront as sf
from slamfront.frontend.refine import grey, refine_positions, refine_positions_warped
from slamfront.geometry import invert_pose, project, transform_points, unproject, view_warp


@pytest.fixture(scope="module")
def frames() -> tuple[list[sf.Frame], sf.Trajectory]:
    config = sf.load_config("classic", ["sim.frames=21", "sim.image_noise_std=0"])
    with sf.open_source("sim:loop", config) as source:
        frames = list(source)
        truth = source.groundtruth()
    assert truth is not None
    return frames, truth


def frame_pair(
    frames: tuple[list[sf.Frame], sf.Trajectory], later: int
) -> tuple[sf.Frame, sf.Frame, np.ndarray]:
    images, truth = frames
    cam1_from_cam0 = invert_pose(truth.world_from_body[later]) @ truth.world_from_body[0]
    return images[0], images[later], cam1_from_cam0


@pytest.fixture(scope="module")
def pair(frames: tuple[list[sf.Frame], sf.Trajectory]) -> tuple[sf.Frame, sf.Frame, np.ndarray]:
    return frame_pair(frames, 5)


def corners_seen_in_both(
    f0: sf.Frame, cam1_from_cam0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corners of ``f0`` with depth, their 3-D points (frame 0) and true pixels in frame 1."""
    import cv2

    corners = cv2.goodFeaturesToTrack(grey(f0.image), 300, 0.01, 8).reshape(-1, 2)
    depth = f0.depth_m[np.rint(corners[:, 1]).astype(int), np.rint(corners[:, 0]).astype(int)]
    points = unproject(f0.camera.K, corners[depth > 0], depth[depth > 0])
    truth = project(f0.camera.K, transform_points(cam1_from_cam0, points))
    inside = np.all((truth > 10) & (truth < [630, 470]), axis=1)
    return corners[depth > 0][inside], points[inside], truth[inside]


def test_alignment_recovers_true_positions_from_perturbed_starts(
    pair: tuple[sf.Frame, sf.Frame, np.ndarray],
) -> None:
    f0, f1, cam1_from_cam0 = pair
    corners, _, truth = corners_seen_in_both(f0, cam1_from_cam0)
    rng = np.random.default_rng(0)
    start = truth + rng.uniform(-1.5, 1.5, size=truth.shape)  # a detector's error
    refined, ok = refine_positions(grey(f0.image), grey(f1.image), corners, start, max_shift_px=4.0)
    assert ok.mean() > 0.9
    err = np.linalg.norm(refined[ok] - truth[ok], axis=1)
    before = np.linalg.norm(start - truth, axis=1)
    assert np.median(err) < 0.1  # from ~1 px to a tenth of a pixel
    assert np.median(before) > 0.8
    # failures keep the start, and a far start is refused
    _, far_ok = refine_positions(
        grey(f0.image), grey(f1.image), corners, truth + 30.0, max_shift_px=4.0
    )
    assert far_ok.mean() < 0.1


def test_windows_warped_by_the_view_change_align_without_its_bias(
    frames: tuple[list[sf.Frame], sf.Trajectory],
) -> None:
    """20 frames on, surfaces look about 12 % larger: a window aligned as it is lands a
    quarter of a pixel off (median), one warped by the true view change a twentieth."""
    f0, f1, cam1_from_cam0 = frame_pair(frames, 20)
    corners, points, truth = corners_seen_in_both(f0, cam1_from_cam0)
    start = truth + np.random.default_rng(1).uniform(-1.0, 1.0, size=truth.shape)
    warp = view_warp(f0.camera.K, np.eye(4), cam1_from_cam0, points)
    assert 1.05 < np.median(np.sqrt(np.linalg.det(warp))) < 1.2
    g0, g1 = grey(f0.image), grey(f1.image)
    results = {
        "plain": refine_positions(g0, g1, corners, start, max_shift_px=4.0, max_round_trip_px=0.3),
        "warped": refine_positions_warped(
            [g1, g0],
            np.ones(len(corners), np.int64),
            corners,
            g1,
            start,
            warp=warp,
            max_shift_px=4.0,
            max_round_trip_px=0.3,
        ),
    }
    errors = {}
    for name, (refined, ok) in results.items():
        assert ok.mean() > 0.85, name
        errors[name] = float(np.median(np.linalg.norm(refined[ok] - truth[ok], axis=1)))
    assert errors["warped"] < 0.08
    assert errors["plain"] > 2.5 * errors["warped"]


def test_stereo_row_limit_and_empty_input(pair: tuple[sf.Frame, sf.Frame, np.ndarray]) -> None:
    f0, _, _ = pair
    g = grey(f0.image)
    out, ok = refine_positions(g, g, np.zeros((0, 2)), np.zeros((0, 2)), max_shift_px=2.0)
    assert out.shape == (0, 2) and ok.shape == (0,)
    pts = np.array([[320.0, 240.0], [100.0, 100.0]])
    below = pts + np.array([0.0, 1.0])
    same, ok = refine_positions(g, g, pts, below, max_shift_px=4.0, max_row_shift_px=0.5)
    assert not ok.any()  # the true position is a whole row away: refused under a 0.5 px limit
    np.testing.assert_allclose(same, below)


@pytest.mark.parametrize(("gain", "offset"), [(1.3, -25.0), (0.75, 10.0), (1.15, 0.0)])
def test_alignment_follows_an_exposure_change(
    pair: tuple[sf.Frame, sf.Frame, np.ndarray], gain: float, offset: float
) -> None:
    """Auto exposure changes the brightness between a keyframe and a later frame (a Kinect's
    does on fr1/rpy): each keyframe's windows are mapped to the frame's brightness before they
    are aligned, and windows of an unchanged image are left alone. Lucas-Kanade on the windows
    as they are loses points or lands off by a large part of a pixel."""
    f0, f1, cam1_from_cam0 = pair
    corners, points, truth = corners_seen_in_both(f0, cam1_from_cam0)
    start = truth + np.random.default_rng(2).uniform(-1.0, 1.0, size=truth.shape)
    warp = view_warp(f0.camera.K, np.eye(4), cam1_from_cam0, points)
    g0, g1 = grey(f0.image), grey(f1.image)
    exposed = np.clip(np.rint(gain * g1.astype(np.float64) + offset), 0, 255).astype(np.uint8)
    index = np.zeros(len(corners), np.int64)
    refined, ok = refine_positions_warped(
        [g0], index, corners, exposed, start, warp=warp, max_shift_px=4.0, max_round_trip_px=0.3
    )
    assert ok.mean() > 0.95
    assert np.median(np.linalg.norm(refined[ok] - truth[ok], axis=1)) < 0.05
    # the same alignment without an exposure change: the mapping leaves the windows alone
    same, same_ok = refine_positions_warped(
        [g0], index, corners, g1, start, warp=warp, max_shift_px=4.0, max_round_trip_px=0.3
    )
    assert (
        same_ok.mean() > 0.95
        and np.median(np.linalg.norm(same[same_ok] - truth[same_ok], axis=1)) < 0.05
    )
    # and plain Lucas-Kanade, which has no such mapping, loses points or precision
    biased, biased_ok = refine_positions(
        g0, exposed, corners, start, max_shift_px=4.0, max_round_trip_px=0.3
    )
    biased_error = np.median(np.linalg.norm(biased[biased_ok] - truth[biased_ok], axis=1))
    assert biased_ok.mean() < 0.95 or biased_error > 0.1
