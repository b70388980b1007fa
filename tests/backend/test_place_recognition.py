"""VLAD global descriptors, vocabularies and the top-k place index."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from slamfront.backend.place_recognition import PlaceIndex, vlad
from slamfront.backend.vocabulary import Vocabulary, load_vocabulary, train_vocabulary
from slamfront.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def vocabulary(scenes: ModuleType, training_scene: Any) -> Vocabulary:
    rng = np.random.default_rng(0)
    frames = [
        training_scene.keyframe(i, pose, rng).features.descriptors
        for i, pose in enumerate(scenes.circle_poses(12, 1))
    ]
    return train_vocabulary(frames, "synthetic", num_words=16)


def test_vlad_is_a_unit_vector_independent_of_order(
    scenes: ModuleType, vocabulary: Vocabulary
) -> None:
    desc = scenes.unit_rows(np.random.default_rng(1).normal(size=(300, 64)))
    g = vlad(vocabulary, desc)
    assert g.shape == (16 * 64,) and g.dtype == np.float32
    assert abs(np.linalg.norm(g) - 1.0) < 1e-5
    np.testing.assert_allclose(vlad(vocabulary, desc[::-1]), g, atol=1e-6)
    assert not np.any(vlad(vocabulary, desc[:0]))


def test_same_place_is_more_similar_than_elsewhere(
    scenes: ModuleType, vocabulary: Vocabulary
) -> None:
    """Two laps of a room: each second-lap view is most similar to the first-lap view of the
    same place, and clearly more similar than to views of other walls."""
    scene = scenes.Scene.room(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    poses = scenes.circle_poses(16, 2)
    globals_ = np.stack(
        [
            vlad(vocabulary, scene.keyframe(i, p, rng).features.descriptors)
            for i, p in enumerate(poses)
        ]
    )
    first, second = globals_[:16], globals_[16:]
    sim = second @ first.T
    assert np.all(sim.argmax(axis=1) == np.arange(16))
    same = np.diag(sim)
    opposite = sim[np.arange(16), (np.arange(16) + 8) % 16]
    assert same.min() > 0.2
    assert opposite.max() < 0.15


def test_index_top_k_matches_brute_force(scenes: ModuleType) -> None:
    rng = np.random.default_rng(4)
    vectors = scenes.unit_rows(rng.normal(size=(3000, 128)))
    index = PlaceIndex(128, capacity=16)  # grows many times
    for i, v in enumerate(vectors):
        index.add(1000 + i, v)
    assert len(index) == 3000
    query = vectors[1234] + 0.05 * scenes.unit_rows(rng.normal(size=(1, 128)))[0]
    found = index.query(query, top_k=5)
    expected = np.argsort(-(vectors @ query))[:5]
    assert [m.keyframe_id for m in found] == [1000 + int(i) for i in expected]
    assert found[0].keyframe_id == 2234
    sims = [m.similarity for m in found]
    assert sims == sorted(sims, reverse=True)
    # Recent keyframes are excluded by id.
    limited = index.query(query, top_k=5, max_keyframe_id=2000)
    assert all(m.keyframe_id <= 2000 for m in limited) and len(limited) == 5
    assert index.query(query, top_k=5, max_keyframe_id=999) == ()
    assert len(index.query(query, top_k=10_000)) == 3000


def test_index_refuses_bad_input() -> None:
    index = PlaceIndex(8)
    index.add(0, np.ones(8))
    with pytest.raises(InputError, match="already"):
        index.add(0, np.ones(8))
    with pytest.raises(InputError, match="7 values"):
        index.query(np.ones(7), top_k=1)


def test_vocabulary_training_is_deterministic_and_round_trips(
    tmp_path: Path, scenes: ModuleType, vocabulary: Vocabulary, training_scene: Any
) -> None:
    rng = np.random.default_rng(0)
    frames = [
        training_scene.keyframe(i, pose, rng).features.descriptors
        for i, pose in enumerate(scenes.circle_poses(12, 1))
    ]
    again = train_vocabulary(frames, "synthetic", num_words=16)
    assert again.vocabulary_id == vocabulary.vocabulary_id
    path = tmp_path / "voc.npz"
    vocabulary.save(path)
    loaded = load_vocabulary(path)
    assert loaded.vocabulary_id == vocabulary.vocabulary_id
    np.testing.assert_array_equal(loaded.centroids, vocabulary.centroids)
    assert vocabulary.vlad_mean is not None and loaded.vlad_mean is not None
    np.testing.assert_array_equal(loaded.vlad_mean, vocabulary.vlad_mean)


def test_binary_descriptors_use_a_projected_vocabulary() -> None:
    """ORB-like 32-byte descriptors: bits -> +-1 -> PCA 64 -> 16 words; noisy copies of one
    image's descriptors stay much closer than another image's."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (400, 32), dtype=np.uint8) for _ in range(8)]
    vocabulary = train_vocabulary(images, "orb-test", num_words=16, projection_dim=64)
    assert vocabulary.binary and vocabulary.global_dim == 1024
    flips = np.packbits(rng.uniform(size=(400, 256)) < 0.05, axis=1)
    noisy = images[0] ^ flips
    fresh = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    g0, g1, g2 = (vlad(vocabulary, d) for d in (images[0], noisy, fresh))
    assert float(g0 @ g1) > 0.6
    assert float(g0 @ g2) < 0.2
    with pytest.raises(InputError, match="uint8 binary"):
        vlad(vocabulary, np.zeros((3, 32), np.float32))


def test_unknown_vocabulary_names_the_tool(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train_vocabulary"):
        load_vocabulary("no-such-extractor")
    with pytest.raises(ConfigError, match="not found"):
        load_vocabulary(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, centroids=np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="not a readable vocabulary"):
        load_vocabulary(bad)
