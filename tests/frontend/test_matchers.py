"""Matchers behind the one contract: MNN, Hamming brute force, LightGlue via load_matcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import slamfront as sf
from slamfront.config import MatcherConfig
from slamfront.errors import ConfigError, InputError, WeightsError
from slamfront.frontend.matchers import (
    HammingMatcher,
    LightGlueMatcher,
    MutualNearestNeighbour,
    build_matcher,
    normalized_keypoints,
)
from slamfront.types import Features, Matches


def features(desc: np.ndarray, size: tuple[int, int] = (640, 480), seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    n = desc.shape[0]
    kpts = rng.uniform(0, 1, (n, 2)) * np.array(size)
    return Features(kpts.astype(np.float32), np.ones(n, np.float32), desc, size)


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def weights_env(shared_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    return shared_weights


# ----------------------------------------------------------------------------- MNN


def test_mnn_finds_mutual_pairs_and_applies_cosine_and_ratio() -> None:
    rng = np.random.default_rng(0)
    d0 = unit(rng.normal(size=(50, 32)))
    perm = rng.permutation(50)
    d1 = unit(d0[perm] + rng.normal(0, 0.05, (50, 32)))
    m = MutualNearestNeighbour(min_cosine=0.8, ratio=0.9)(features(d0), features(d1))
    assert isinstance(m, Matches) and m.indices.dtype == np.int64 and m.scores.dtype == np.float32
    assert len(m) == 50
    np.testing.assert_array_equal(perm[m.indices[:, 1]], m.indices[:, 0])
    assert np.all((m.scores >= 0.8) & (m.scores <= 1.0))
    # an ambiguous pair (two near-identical candidates) fails the ratio test, passes without it
    d1_amb = np.concatenate([d1, unit(d1[:1] + 1e-3)])
    strict = MutualNearestNeighbour(0.8, 0.9)(features(d0), features(d1_amb))
    loose = MutualNearestNeighbour(0.8, 1.0)(features(d0), features(d1_amb))
    assert len(strict) == 49 and len(loose) == 50
    # unrelated descriptors stay below the cosine floor
    far = MutualNearestNeighbour(0.8, 1.0)(features(d0), features(unit(rng.normal(size=(50, 32)))))
    assert len(far) == 0


def test_mnn_rejects_binary_and_mismatched_descriptors() -> None:
    d = unit(np.random.default_rng(1).normal(size=(5, 32)))
    with pytest.raises(InputError, match="orb_bf"):
        MutualNearestNeighbour()(features(d), features(np.zeros((5, 32), np.uint8)))
    with pytest.raises(InputError, match="features0 has 32, features1 has 16"):
        MutualNearestNeighbour()(features(d), features(d[:, :16]))


def test_empty_feature_sets_give_empty_matches() -> None:
    d = unit(np.random.default_rng(1).normal(size=(5, 32)))
    empty = features(np.zeros((0, 32), np.float32))
    for matcher in (MutualNearestNeighbour(), MutualNearestNeighbour(ratio=1.0)):
        for pair in ((empty, features(d)), (features(d), empty), (empty, empty)):
            m = matcher(*pair)
            assert m.indices.shape == (0, 2) and m.scores.shape == (0,)
    binary = features(np.zeros((0, 32), np.uint8))
    assert len(HammingMatcher()(binary, features(np.ones((3, 32), np.uint8)))) == 0


# ----------------------------------------------------------------------------- Hamming


def test_hamming_matches_flipped_bits_and_rejects_float() -> None:
    rng = np.random.default_rng(2)
    d0 = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    perm = rng.permutation(200)
    bits = np.unpackbits(d0[perm], axis=1)
    flips = rng.random(bits.shape) < 0.05  # ~13 of 256 bits
    d1 = np.packbits(bits ^ flips, axis=1)
    m = HammingMatcher(ratio=0.8)(features(d0), features(d1))
    assert len(m) >= 195
    np.testing.assert_array_equal(perm[m.indices[:, 1]], m.indices[:, 0])
    expected = 1.0 - flips.sum(1)[np.argsort(perm)][m.indices[:, 0]] / 256.0
    np.testing.assert_allclose(m.scores, expected, atol=1e-6)
    with pytest.raises(InputError, match="binary uint8"):
        HammingMatcher()(features(d0.astype(np.float32)), features(d1))


# ----------------------------------------------------------------------------- build


def test_presets_build_their_matchers() -> None:
    sp = sf.load_matcher("superpoint")
    assert isinstance(sp, MutualNearestNeighbour) and sp.min_cosine == 0.7
    classic = sf.load_matcher("classic")
    assert isinstance(classic, HammingMatcher) and classic.ratio == 0.8
    with pytest.raises(ConfigError, match="orb"):
        build_matcher(MatcherConfig(model="lightglue", runtime="torch"), "orb")


def test_lightglue_without_published_weights_for_the_extractor() -> None:
    with pytest.raises(WeightsError, match="superpoint"):
        build_matcher(MatcherConfig(model="lightglue", runtime="torch"), "superpoint")


def test_load_matcher_fast_torch(weights_env: Path) -> None:
    matcher = sf.load_matcher("fast", runtime="torch", depth_confidence=-1, width_confidence=-1)
    assert isinstance(matcher, LightGlueMatcher)
    assert matcher.runtime == "torch" and matcher.depth_confidence == -1
    rng = np.random.default_rng(0)
    d0 = unit(rng.normal(size=(300, 64)))
    f0 = features(d0)
    f1 = Features(
        f0.keypoints + 0.5, f0.scores, unit(d0 + rng.normal(0, 0.02, d0.shape)), f0.image_size
    )
    m = matcher(f0, f1)
    assert m.layers_run == 6 and m.points_kept == (600,) * 6 and m.time_ms > 0
    assert len(m) > 200 and np.mean(m.indices[:, 0] == m.indices[:, 1]) > 0.98
    # empty sides
    empty = features(np.zeros((0, 64), np.float32))
    for pair in ((empty, f1), (f0, empty)):
        out = matcher(*pair)
        assert out.indices.shape == (0, 2) and out.layers_run == 0
    # descriptors of another extractor / of two different dimensions
    with pytest.raises(InputError, match="take 64-d"):
        matcher(
            features(unit(rng.normal(size=(10, 128)))), features(unit(rng.normal(size=(10, 128))))
        )
    with pytest.raises(InputError, match="differ"):
        matcher(f0, features(unit(rng.normal(size=(10, 128)))))


def test_wrong_weights_file_for_the_preset(weights_env: Path) -> None:
    with pytest.raises(WeightsError, match=r"input_proj\.weight"):
        sf.load_matcher(
            "fast", runtime="torch", weights=str(weights_env / "lightglue/disk_lightglue.pth")
        )


def test_keypoints_are_normalised_by_the_image_size() -> None:
    f = Features(
        np.array([[0, 0], [1000, 500], [500, 250]], np.float32),
        np.ones(3, np.float32),
        np.zeros((3, 4), np.float32),
        (1000, 500),
    )
    np.testing.assert_allclose(normalized_keypoints(f), [[-1, -0.5], [1, 0.5], [0, 0]])


def test_tensorrt_fails_fast_without_tensorrt(weights_env: Path) -> None:
    from slamfront.errors import RuntimeUnavailableError
    from slamfront.frontend.runtime.lightglue_tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is usable here")
    with pytest.raises(RuntimeUnavailableError, match="tensorrt"):
        sf.load_matcher("fast", runtime="tensorrt")
