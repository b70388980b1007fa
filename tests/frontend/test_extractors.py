"""The Extractor contract: image -> Features in the caller's pixels; bad input is an InputError."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import slamfront as sf
from slamfront.errors import InputError, WeightsError
from slamfront.frontend.base import Extractor
from slamfront.frontend.extractors import (
    MODEL_SPECS,
    NetworkInput,
    finish_features,
    network_size,
    prepare_image,
)
from slamfront.frontend.runtime.extractor_base import DetectorOutputs


@pytest.fixture(scope="module")
def churchill(shared: Path) -> np.ndarray:
    bgr = cv2.imread(str(shared / "data" / "hpatches" / "v_churchill" / "1.ppm"))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def fast_torch(shared_weights: Path) -> Extractor:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        return sf.load_extractor("fast", runtime="torch")


def _nearest_px(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest reference point."""
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(reference).query(points)
    return np.asarray(distances)


def _check_features(features: sf.Features, size: tuple[int, int], dim: int, limit: int) -> None:
    n = len(features)
    assert 0 < n <= limit
    assert features.image_size == size
    assert features.keypoints.dtype == np.float32 and features.keypoints.shape == (n, 2)
    assert features.scores.dtype == np.float32 and features.scores.shape == (n,)
    assert features.descriptors.dtype == np.float32 and features.descriptors.shape == (n, dim)
    width, height = size
    assert (features.keypoints >= -0.5).all()
    assert (features.keypoints[:, 0] <= width - 0.5).all()
    assert (features.keypoints[:, 1] <= height - 0.5).all()
    np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)
    assert (np.diff(features.scores) <= 1e-7).all()  # sorted by score


def test_fast_on_a_real_image(fast_torch: Extractor, churchill: np.ndarray) -> None:
    features = fast_torch(churchill)
    _check_features(features, (768, 1024), 64, 2048)  # the preset's max_keypoints
    assert len(features) == 2048  # a textured photo has more than 2048 peaks
    assert float(features.scores.min()) > 0.0
    # Sub-pixel refinement is on: the keypoints are not all on the pixel grid.
    fractional = np.abs(features.keypoints - np.round(features.keypoints)) > 1e-3
    assert fractional.any(axis=1).mean() > 0.5


def test_grey_and_rgb_inputs(fast_torch: Extractor, churchill: np.ndarray) -> None:
    crop = churchill[:384, :512]
    grey = np.round(crop.astype(np.float32).mean(axis=2)).astype(np.uint8)
    from_grey = fast_torch(grey)
    from_grey_3d = fast_torch(grey[:, :, None])
    np.testing.assert_array_equal(from_grey.keypoints, from_grey_3d.keypoints)
    # Replicated grey as RGB averages back to the same grey (up to float rounding, which may
    # swap the order of near-equal scores, so the points are compared as sets).
    from_rgb = fast_torch(np.repeat(grey[:, :, None], 3, axis=2))
    assert len(from_rgb) == len(from_grey)
    assert (_nearest_px(from_rgb.keypoints, from_grey.keypoints) < 1e-3).mean() > 0.99


def test_sizes_that_are_not_multiples_of_32(fast_torch: Extractor, churchill: np.ndarray) -> None:
    crop = np.ascontiguousarray(churchill[:500, 3:755])  # 752 x 500
    features = fast_torch(crop)
    _check_features(features, (752, 500), 64, 2048)
    assert network_size(752, 500, 32) == (736, 480)


def test_keypoints_are_mapped_back_to_caller_pixels() -> None:
    prepared = NetworkInput(
        np.zeros((1, 1, 480, 736), np.float32), (752, 500), (752 / 736, 500 / 480)
    )
    outputs = DetectorOutputs(
        keypoints=np.array([[0.0, 0.0], [735.0, 479.0], [100.25, 10.5]], np.float32),
        scores=np.array([0.9, 0.8, 0.7], np.float32),
        descriptors=np.eye(3, 4, dtype=np.float32),
        valid=np.array([True, True, False]),
    )
    features = finish_features(outputs, prepared)
    assert len(features) == 2
    # A network pixel covers s caller pixels; its centre is the centre of that footprint.
    sx, sy = 752 / 736, 500 / 480
    expected = [[-0.5 + sx / 2, -0.5 + sy / 2], [752 - 0.5 - sx / 2, 500 - 0.5 - sy / 2]]
    np.testing.assert_allclose(features.keypoints, expected, atol=1e-4)
    np.testing.assert_allclose(features.scores, [0.9, 0.8])


def test_network_size_caps_the_area() -> None:
    assert network_size(1280, 720, 32, max_area_px=640 * 480) == (736, 384)
    assert network_size(1241, 376, 32, max_area_px=640 * 480) == (992, 288)
    assert network_size(320, 240, 32, max_area_px=640 * 480) == (320, 224)  # smaller: as is
    assert network_size(1280, 720, 32) == (1280, 704)  # 0: no cap


def test_capped_detection_maps_back_to_full_resolution(
    shared_weights: Path, churchill: np.ndarray
) -> None:
    """The image at twice its size, detected on at most the original's area: the same points,
    in the large image's pixels (a pixel centre x there is 2x + 0.5)."""
    native = np.ascontiguousarray(churchill[:384, :512])
    large = cv2.resize(native, (1024, 768), interpolation=cv2.INTER_CUBIC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        capped = sf.load_extractor("fast", runtime="torch", max_area_px=512 * 384)
        full = sf.load_extractor("fast", runtime="torch")
    small_feats = full(native)
    large_feats = capped(large)
    _check_features(large_feats, (1024, 768), 64, 2048)
    back = (large_feats.keypoints - 0.5) / 2.0
    distance_px = _nearest_px(back, small_feats.keypoints)
    assert (distance_px < 1.0).mean() > 0.85
    assert np.median(distance_px) < 0.15  # a quarter-pixel slip in the mapping fails this


def test_prepare_image_channels_and_scale() -> None:
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[..., 0] = 255
    grey_input = prepare_image(rgb, MODEL_SPECS["xfeat"])
    assert grey_input.tensor.shape == (1, 1, 64, 96)
    np.testing.assert_allclose(grey_input.tensor, 1.0 / 3.0, atol=1e-6)
    sp = prepare_image(rgb, MODEL_SPECS["superpoint"])
    np.testing.assert_allclose(sp.tensor, 0.299, atol=1e-6)
    disk = prepare_image(np.full((48, 64), 51, np.uint8), MODEL_SPECS["disk"])
    assert disk.tensor.shape == (1, 3, 48, 64)
    np.testing.assert_allclose(disk.tensor, 0.2, atol=1e-6)
    assert disk.scale_xy == (1.0, 1.0)


def test_max_keypoints_and_threshold(shared_weights: Path, churchill: np.ndarray) -> None:
    churchill = np.ascontiguousarray(churchill[:512, :512])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        few = sf.load_extractor("fast", runtime="torch", max_keypoints=100)(churchill)
        strict = sf.load_extractor("fast", runtime="torch", detection_threshold=0.6)(churchill)
    assert len(few) == 100
    assert 0 < len(strict) < 1024
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        unlimited = sf.load_extractor("fast", runtime="torch", max_keypoints=100_000)(churchill)
    # The threshold applies to the keypoint heatmap: every strict point is an unlimited one.
    assert len(unlimited) > 1500
    assert _nearest_px(strict.keypoints, unlimited.keypoints).max() < 1e-3


def test_flat_and_tiny_images_give_few_or_no_keypoints(shared_weights: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        # 2048 slots on a 32x32 image (1024 pixels): the graph pads top-k with invalid slots.
        extractor = sf.load_extractor("fast", runtime="torch", max_keypoints=2048)
    flat = extractor(np.full((32, 32), 128, np.uint8))
    assert len(flat) == 0
    assert flat.keypoints.shape == (0, 2) and flat.descriptors.shape == (0, 64)


BAD_IMAGES = {
    "float": (np.zeros((64, 64), np.float32), "dtype float32"),
    "nan": (np.full((64, 64), np.nan, np.float32), "NaN"),
    "uint16": (np.zeros((64, 64), np.uint16), "uint8"),
    "rgba": (np.zeros((64, 64, 4), np.uint8), "4"),
    "two-channel": (np.zeros((64, 64, 2), np.uint8), "channels"),
    "1-D": (np.zeros((64,), np.uint8), "shape"),
    "4-D": (np.zeros((1, 64, 64, 3), np.uint8), "shape"),
    "empty": (np.zeros((0, 0), np.uint8), "at least"),
    "too small": (np.zeros((16, 200), np.uint8), "200x16"),
    "list": ([[0, 1], [2, 3]], "numpy array"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_input_is_an_input_error(fast_torch: Extractor, case: str) -> None:
    image, fragment = BAD_IMAGES[case]
    with pytest.raises(InputError, match=fragment):
        fast_torch(image)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["float", "rgba", "empty"])
def test_orb_rejects_bad_input_too(case: str) -> None:
    image, fragment = BAD_IMAGES[case]
    with pytest.raises(InputError, match=fragment):
        sf.load_extractor("classic")(image)


def test_classic_orb(churchill: np.ndarray) -> None:
    extractor = sf.load_extractor("classic")
    features = extractor(churchill)
    assert len(features) == 2000
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape == (2000, 32)
    assert features.keypoints.dtype == np.float32
    assert (np.diff(features.scores) <= 0).all()
    empty = extractor(np.zeros((64, 64), np.uint8))
    assert len(empty) == 0 and empty.descriptors.shape == (0, 32)


def test_superpoint_needs_user_weights() -> None:
    with pytest.raises(WeightsError, match=r"extractor\.weights"):
        sf.load_extractor("superpoint", runtime="torch")
