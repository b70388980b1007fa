"""HPatches matching metrics: exact unit cases, then the issue's accuracy bars on real images."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import slamfront as sf
from slamfront.errors import InputError, SourceError
from slamfront.eval.matching import (
    HPatchesSequence,
    MatchingReport,
    corner_error_px,
    evaluate_hpatches,
    evaluate_pair,
    mutual_nearest_neighbours,
    read_hpatches,
)
from slamfront.types import Features, Matches

H_TRUE = np.array([[1.1, 0.05, 12.0], [-0.03, 0.95, -7.0], [1e-4, -5e-5, 1.0]])


def _features(points: np.ndarray, descriptors: np.ndarray) -> Features:
    return Features(
        keypoints=points.astype(np.float32),
        scores=np.ones(len(points), np.float32),
        descriptors=descriptors,
        image_size=(640, 480),
    )


def _project(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    mapped = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def _synthetic_pair(n: int = 200, seed: int = 0) -> tuple[Features, Features, np.ndarray]:
    """Points in image 0, their exact images under H_TRUE (shuffled), matching descriptors."""
    rng = np.random.default_rng(seed)
    points0 = rng.uniform([20, 20], [620, 460], size=(n, 2))
    descriptors = rng.normal(size=(n, 32)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    order = rng.permutation(n)
    points1 = _project(points0, H_TRUE)[order]
    return _features(points0, descriptors), _features(points1, descriptors[order]), order


def test_mnn_recovers_a_permutation() -> None:
    f0, f1, order = _synthetic_pair()
    matches = mutual_nearest_neighbours(f0, f1)
    assert len(matches) == 200
    # Row i of image 0 was moved to position where order == i.
    expected = np.argsort(order)
    np.testing.assert_array_equal(matches.indices[:, 1], expected[matches.indices[:, 0]])
    np.testing.assert_allclose(matches.scores, 1.0, atol=1e-5)


def test_mnn_cosine_floor_and_binary_descriptors() -> None:
    # Descriptor i of image 1 has cosine 0.4 with descriptor i of image 0 and 0 with the rest.
    eye = np.eye(20, 40, dtype=np.float32)
    tilted = (0.4 * eye + np.sqrt(0.84) * np.eye(20, 40, k=20)).astype(np.float32)
    f0, f1 = _features(np.zeros((20, 2)), eye), _features(np.zeros((20, 2)), tilted)
    assert len(mutual_nearest_neighbours(f0, f1, min_cosine=0.5)) == 0
    kept = mutual_nearest_neighbours(f0, f1, min_cosine=0.3)
    np.testing.assert_array_equal(kept.indices, np.stack([np.arange(20)] * 2, axis=1))
    np.testing.assert_allclose(kept.scores, 0.4, atol=1e-6)
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 256, size=(30, 32), dtype=np.uint8)
    flipped = bits.copy()
    flipped[:, 0] ^= 1  # one bit of 256 differs
    matches = mutual_nearest_neighbours(
        _features(np.zeros((30, 2)), bits), _features(np.zeros((30, 2)), flipped)
    )
    np.testing.assert_array_equal(matches.indices, np.stack([np.arange(30)] * 2, axis=1))
    np.testing.assert_allclose(matches.scores, 1.0 - 1.0 / 256.0)


def test_mnn_edge_cases() -> None:
    f0, f1, _ = _synthetic_pair(10)
    empty = f0.subset(np.zeros(10, bool))
    assert len(mutual_nearest_neighbours(empty, f1)) == 0
    other = Features(f1.keypoints, f1.scores, f1.descriptors[:, :16].copy(), f1.image_size)
    with pytest.raises(InputError, match="descriptors differ"):
        mutual_nearest_neighbours(f0, other)


def test_perfect_matches_give_perfect_metrics() -> None:
    f0, f1, _ = _synthetic_pair()
    result = evaluate_pair(f0, f1, mutual_nearest_neighbours(f0, f1), H_TRUE)
    assert result.mma == (1.0, 1.0, 1.0)
    assert result.corner_error_px < 1e-3
    assert result.homography_correct == (True, True, True)
    assert result.num_inliers == 200


def test_mma_counts_the_share_within_each_threshold() -> None:
    f0, f1, order = _synthetic_pair(100)
    inverse = np.argsort(order)
    # Move the matched points of image 1 by exactly 0.5, 2, 4 and 10 px (25 each).
    shifts = np.repeat([0.5, 2.0, 4.0, 10.0], 25)
    moved = f1.keypoints.copy()
    moved[inverse, 0] += shifts
    f1 = Features(moved, f1.scores, f1.descriptors, f1.image_size)
    matches = Matches(np.stack([np.arange(100), inverse], axis=1), np.ones(100, np.float32))
    result = evaluate_pair(f0, f1, matches, H_TRUE)
    assert result.mma == pytest.approx((0.25, 0.5, 0.75))


def test_too_few_matches_is_a_failed_homography() -> None:
    f0, f1, order = _synthetic_pair(3)
    matches = Matches(np.stack([np.arange(3), np.argsort(order)], axis=1), np.ones(3, np.float32))
    result = evaluate_pair(f0, f1, matches, H_TRUE)
    assert math.isinf(result.corner_error_px)
    assert result.homography_correct == (False, False, False)
    assert result.mma == (1.0, 1.0, 1.0)


def test_corner_error_of_a_shifted_homography() -> None:
    shifted = np.array([[1.0, 0, 2.0], [0, 1.0, 0], [0, 0, 1.0]]) @ H_TRUE
    assert corner_error_px(shifted, H_TRUE, (640, 480)) == pytest.approx(2.0)
    assert math.isinf(corner_error_px(None, H_TRUE, (640, 480)))


def test_report_aggregates_over_pairs() -> None:
    f0, f1, _ = _synthetic_pair()
    good = evaluate_pair(f0, f1, mutual_nearest_neighbours(f0, f1), H_TRUE, pair="1-2")
    bad = evaluate_pair(f0, f1, Matches.empty(), H_TRUE, pair="1-3")
    report = MatchingReport((good, bad))
    assert report.mma == (0.5, 0.5, 0.5)
    assert report.homography_accuracy == (0.5, 0.5, 0.5)
    lines = report.lines()
    assert len(lines) == 4 and lines[-1].startswith("overall")
    assert report.to_dict()["pairs"][1]["num_matches"] == 0


def test_read_hpatches_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        read_hpatches(tmp_path / "absent")
    with pytest.raises(SourceError, match="no HPatches sequence"):
        read_hpatches(tmp_path)
    seq = tmp_path / "v_fake"
    seq.mkdir()
    for i in range(1, 7):
        cv2.imwrite(str(seq / f"{i}.ppm"), np.zeros((40, 40, 3), np.uint8))
    for k in range(2, 6):
        np.savetxt(seq / f"H_1_{k}", np.eye(3))
    with pytest.raises(SourceError, match="H_1_6"):
        read_hpatches(tmp_path)
    (seq / "H_1_6").write_text("1 0 0\n0 1\n")
    with pytest.raises(SourceError, match="H_1_6"):
        read_hpatches(seq)


# ----------------------------------------------------------------------------- real images


@pytest.fixture(scope="module")
def churchill(shared: Path) -> HPatchesSequence:
    return read_hpatches(shared / "data" / "hpatches" / "v_churchill")[0]


def _half_resolution(sequence: HPatchesSequence) -> HPatchesSequence:
    """The sequence at half size; homographies conjugated by the pixel-centre scaling."""
    scale = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1.0]])
    images = tuple(
        cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        for image in sequence.images
    )
    homographies = {k: scale @ h @ np.linalg.inv(scale) for k, h in sequence.homographies.items()}
    return HPatchesSequence(sequence.name, images, homographies)


def _extractor(preset: str, weights: Path) -> sf.frontend.base.Extractor:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(weights))
        return sf.load_extractor(preset, runtime="torch")


@pytest.mark.slow
def test_fast_preset_on_churchill(churchill: HPatchesSequence, shared_weights: Path) -> None:
    """Issue 3: MNN + RANSAC homography on pairs 1-2..1-6: corner error < 5 px, MMA@3 >= 0.40."""
    report = evaluate_hpatches([churchill], _extractor("fast", shared_weights))
    assert [p.pair for p in report.pairs] == ["1-2", "1-3", "1-4", "1-5", "1-6"]
    assert report.mean_corner_error_px < 5.0
    assert report.mma[1] >= 0.40
    assert report.mma[0] < report.mma[1] < report.mma[2]


@pytest.mark.slow
def test_accurate_preset_at_least_as_good(
    churchill: HPatchesSequence, shared_weights: Path
) -> None:
    """DISK against the same bars and against the fast preset on the same images.

    Run at half resolution: DISK's full-resolution U-Net costs seconds per 1024x768 image on
    a CPU, and the comparison is between presets on identical input.
    """
    half = _half_resolution(churchill)
    accurate = evaluate_hpatches([half], _extractor("accurate", shared_weights))
    fast = evaluate_hpatches([half], _extractor("fast", shared_weights))
    assert accurate.mean_corner_error_px < 5.0
    assert accurate.mma[1] >= 0.40
    assert accurate.mma[1] >= fast.mma[1]
    assert accurate.mean_corner_error_px <= fast.mean_corner_error_px


def test_a_matcher_plugs_in(churchill: HPatchesSequence, shared_weights: Path) -> None:
    """Any (Features, Features) -> Matches callable is evaluated the same way."""
    calls: list[int] = []

    def strict(f0: Features, f1: Features) -> Matches:
        calls.append(1)
        matches = mutual_nearest_neighbours(f0, f1)
        keep = matches.scores >= 0.9  # at most 25 of 256 bits differ
        return Matches(matches.indices[keep], matches.scores[keep])

    extractor = _extractor("classic", shared_weights)
    loose = evaluate_hpatches([churchill], extractor)
    tight = evaluate_hpatches([churchill], extractor, strict)
    assert len(calls) == 5
    assert 0 < tight.mean_matches < loose.mean_matches
    assert tight.mma[1] > loose.mma[1]
