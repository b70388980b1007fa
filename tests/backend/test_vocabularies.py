"""The packaged vocabularies recognise real places they were not trained on.

Training (tools/train_vocabulary.py) used ../shared/data/textures and synthetic frames only;
here HPatches v_churchill, EuRoC V1_01 and TUM fr2/desk views must each find another view of
their own place first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slamfront.backend.place_recognition import vlad
from slamfront.backend.vocabulary import load_vocabulary, packaged_vocabularies

PLACES = {
    "hpatches": [
        "hpatches/v_churchill/1.ppm",
        "hpatches/v_churchill/2.ppm",
        "hpatches/v_churchill/3.ppm",
    ],
    "euroc": [f"euroc/V1_01_easy_clip/mav0/cam0/data/{i}" for i in (0, 45, 90)],
    "tum": [f"tum/rgbd_dataset_freiburg2_desk_clip/rgb/{i}" for i in (0, 9, 18)],
}


def _images(shared: Path, max_width_px: int) -> tuple[list[str], list[np.ndarray]]:
    import cv2

    labels, images = [], []
    for place, entries in PLACES.items():
        for entry in entries:
            path = shared / "data" / entry
            if not path.suffix:  # the n-th file of a folder
                files = sorted(path.parent.iterdir())
                path = files[int(path.name)]
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            assert image is not None, path
            if image.shape[1] > max_width_px:
                scale = max_width_px / image.shape[1]
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            labels.append(place)
            images.append(image)
    return labels, images


def test_every_extractor_model_but_superpoint_has_a_vocabulary() -> None:
    assert {"xfeat", "disk", "orb"} <= set(packaged_vocabularies())
    for name in ("xfeat", "disk", "orb"):
        vocabulary = load_vocabulary(name)
        assert vocabulary.name == name
        assert vocabulary.global_dim == 1024
        assert vocabulary.vlad_mean is not None


@pytest.mark.parametrize(
    "preset, name, max_width_px",
    [
        ("classic", "orb", 640),
        ("fast", "xfeat", 640),
        # DISK is slow on a CPU: smaller images keep this test to seconds.
        pytest.param("accurate", "disk", 320, marks=pytest.mark.slow),
    ],
)
def test_packaged_vocabulary_recognises_unseen_real_places(
    shared: Path,
    shared_weights: Path,
    preset: str,
    name: str,
    max_width_px: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import slamfront as sf

    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    labels, images = _images(shared, max_width_px)
    extractor = sf.load_extractor(preset, runtime="torch")
    vocabulary = load_vocabulary(name)
    vectors = np.stack([vlad(vocabulary, extractor(image).descriptors) for image in images])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    label = np.array(labels)
    assert np.all(label[similarity.argmax(axis=1)] == label)
    same = label[:, None] == label[None, :]
    np.fill_diagonal(same, False)
    other = label[:, None] != label[None, :]
    # Views of one place are clearly closer than views of different places.
    assert similarity[same].mean() > similarity[other].mean() + 0.2
