"""LightGlue on real images (HPatches v_churchill) and on easy pairs, with the published weights.

- fast preset, 1024 keypoints: homography corner error, correct matches against mutual nearest
  neighbours on the same keypoints, ONNX Runtime matches equal to torch's;
- early exit and pruning (0.95 / 0.95) on easy pairs (an image against itself with pixel
  noise; consecutive frames of the synthetic rig): layers run, correct matches and the
  estimated homography / relative pose against full depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import slamfront as sf
from slamfront.eval.matching import (
    EarlyExitReport,
    corner_error_px,
    estimate_homography,
    evaluate_consecutive_frames,
    evaluate_self_pairs,
    read_hpatches,
    reprojection_errors_px,
)
from slamfront.frontend.matchers import MutualNearestNeighbour
from slamfront.types import Features, Matches

pytestmark = pytest.mark.slow

FULL = {"depth_confidence": -1, "width_confidence": -1}
ADAPTIVE = {"depth_confidence": 0.95, "width_confidence": 0.95}


@pytest.fixture(scope="module")
def env(shared: Path, shared_weights: Path) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def extractor(env: None) -> sf.frontend.base.Extractor:
    # full-resolution detection, as the published figures were measured
    return sf.load_extractor("fast", runtime="torch", max_keypoints=1024, max_area_px=0)


@pytest.fixture(scope="module")
def churchill(shared: Path, extractor) -> tuple[list[Features], dict[int, np.ndarray], list]:
    (sequence,) = read_hpatches(shared / "data" / "hpatches" / "v_churchill")
    features = [extractor(image) for image in sequence.images]
    return features, sequence.homographies, list(sequence.images)


def correct_at(f0: Features, f1: Features, m: Matches, homography: np.ndarray, px: float) -> int:
    errors = reprojection_errors_px(
        f0.keypoints[m.indices[:, 0]], f1.keypoints[m.indices[:, 1]], homography
    )
    return int((errors <= px).sum())


def test_hpatches_fast_preset_beats_mutual_nearest_neighbour(churchill) -> None:
    features, homographies, _ = churchill
    lightglue = sf.load_matcher("fast", runtime="torch")
    mnn = MutualNearestNeighbour(min_cosine=-1.0, ratio=1.0)  # plain MNN, same keypoints
    ours, theirs, ours_total, theirs_total, corner = [], [], 0, 0, []
    for k in range(2, 7):
        f0, f1, h = features[0], features[k - 1], homographies[k]
        a, b = lightglue(f0, f1), mnn(f0, f1)
        ours.append(correct_at(f0, f1, a, h, 3.0))
        theirs.append(correct_at(f0, f1, b, h, 3.0))
        ours_total += len(a)
        theirs_total += len(b)
        points0, points1 = f0.keypoints[a.indices[:, 0]], f1.keypoints[a.indices[:, 1]]
        estimate, _ = estimate_homography(points0, points1)
        corner.append(corner_error_px(estimate, h, f0.image_size))
    assert np.mean(corner) < 4.0, corner
    assert all(o >= t for o, t in zip(ours, theirs, strict=True)), (ours, theirs)
    assert sum(ours) > sum(theirs)
    assert sum(ours) / ours_total > sum(theirs) / theirs_total
    # Same ballpark as the published weights measured elsewhere (1172 correct, 72 %).
    assert sum(ours) > 1050 and sum(ours) / ours_total > 0.65


def test_hpatches_onnxruntime_equals_torch_with_exit_and_pruning(
    churchill, tmp_path_factory: pytest.TempPathFactory
) -> None:
    features, _, _ = churchill
    onnx_dir = str(tmp_path_factory.mktemp("onnx"))
    # depth = width = 0.95: identical matches on every pair.
    ort = sf.load_matcher("fast", runtime="onnxruntime", onnx_dir=onnx_dir, **ADAPTIVE)
    ref = sf.load_matcher("fast", runtime="torch", **ADAPTIVE)
    for k in range(2, 7):
        a, b = ort(features[0], features[k - 1]), ref(features[0], features[k - 1])
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
        assert a.layers_run == b.layers_run and a.points_kept == b.points_kept
        assert a.layers_run < 6 and a.points_kept[-1] < a.points_kept[0]  # exit and pruning
    # The preset (width 0.99): same layers and pruning; the match sets may differ only by
    # matches whose score sits within float32 rounding of the threshold (different BLAS
    # kernels; on pair 1-6 one match scores 0.1000014 on ONNX Runtime, just under on torch).
    ort = sf.load_matcher("fast", runtime="onnxruntime", onnx_dir=onnx_dir)
    ref = sf.load_matcher("fast", runtime="torch")
    threshold = ref.filter_threshold  # type: ignore[attr-defined]
    for k in range(2, 7):
        a, b = ort(features[0], features[k - 1]), ref(features[0], features[k - 1])
        assert a.layers_run == b.layers_run and a.points_kept == b.points_kept
        sa = {tuple(r): s for r, s in zip(a.indices.tolist(), a.scores, strict=True)}
        sb = {tuple(r): s for r, s in zip(b.indices.tolist(), b.scores, strict=True)}
        for pair in set(sa) ^ set(sb):
            assert abs(sa.get(pair, sb.get(pair, 0.0)) - threshold) < 1e-4, pair
        assert len(set(sa) ^ set(sb)) <= 1


# ----------------------------------------------------------------------------- easy pairs


def assert_early_exit_costs_nothing(report: EarlyExitReport) -> None:
    full_layers, adaptive_layers = report.mean_layers
    full_correct, adaptive_correct = report.total_correct
    full_errors, adaptive_errors = report.mean_errors
    assert full_layers == 6.0
    assert adaptive_layers <= 4.0
    assert adaptive_correct >= 0.95 * full_correct
    for name, a, b in zip(report.error_names, full_errors, adaptive_errors, strict=True):
        assert b <= 1.1 * a, (name, a, b)


def test_early_exit_on_an_image_against_itself_with_noise(churchill, extractor) -> None:
    _, _, images = churchill
    full = sf.load_matcher("fast", runtime="torch", **FULL)
    adaptive = sf.load_matcher("fast", runtime="torch", **ADAPTIVE)
    report = evaluate_self_pairs(images, extractor, full, adaptive, noise_std=3.0, seed=0)
    assert len(report.full) == 6
    assert report.total_correct[0] > 6 * 600  # easy indeed: most keypoints match
    assert report.mean_errors[0][0] < 0.5  # corner error, px
    assert_early_exit_costs_nothing(report)


def test_early_exit_on_consecutive_synthetic_frames(extractor) -> None:
    full = sf.load_matcher("fast", runtime="torch", **FULL)
    adaptive = sf.load_matcher("fast", runtime="torch", **ADAPTIVE)
    sim = sf.load_config("fast").sim
    report = evaluate_consecutive_frames(sim, extractor, full, adaptive)  # ten pairs
    assert len(report.full) == 10
    assert report.total_correct[0] > 3000  # ~460 correct of 1024 keypoints per pair
    assert_early_exit_costs_nothing(report)
