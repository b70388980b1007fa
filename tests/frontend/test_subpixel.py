"""Sub-pixel refinement makes keypoints more precise on warps with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import slamfront as sf
from slamfront.eval.matching import mutual_nearest_neighbours, reprojection_errors_px
from slamfront.frontend.base import Extractor


def _warps(count: int, width: int, height: int) -> list[np.ndarray]:
    """Small random rotations, zooms, perspective and sub-pixel shifts about the centre."""
    rng = np.random.default_rng(7)
    centre = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1.0]])
    warps = []
    for _ in range(count):
        angle = np.deg2rad(rng.uniform(-5, 5))
        zoom = rng.uniform(0.95, 1.08)
        local = np.array(
            [
                [zoom * np.cos(angle), -zoom * np.sin(angle), 0],
                [zoom * np.sin(angle), zoom * np.cos(angle), 0],
                [rng.uniform(-2e-5, 2e-5), rng.uniform(-2e-5, 2e-5), 1],
            ]
        )
        back = np.linalg.inv(centre)
        back[:2, 2] += rng.uniform(-3, 3, size=2)
        warps.append(back @ local @ centre)
    return warps


def _errors(extractor: Extractor, images: list[np.ndarray], warps: list[np.ndarray]) -> np.ndarray:
    """Reprojection errors of mutual-nearest-neighbour matches that are within 3 px."""
    errors = []
    for image, warp in zip(images, warps, strict=True):
        height, width = image.shape
        warped = cv2.warpPerspective(image, warp, (width, height), flags=cv2.INTER_CUBIC)
        f0, f1 = extractor(image), extractor(warped)
        matches = mutual_nearest_neighbours(f0, f1)
        e = reprojection_errors_px(
            f0.keypoints[matches.indices[:, 0]], f1.keypoints[matches.indices[:, 1]], warp
        )
        errors.append(e[e < 3.0])
    return np.concatenate(errors)


@pytest.mark.slow
def test_subpixel_refinement_improves_localisation(shared: Path, shared_weights: Path) -> None:
    folder = shared / "data" / "textures" / "tum_fr3_office_frames" / "rgb"
    paths = sorted(folder.glob("*.png"))[::4][:5]
    assert len(paths) == 5
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    warps = _warps(len(images), images[0].shape[1], images[0].shape[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
        refined = sf.load_extractor("fast", runtime="torch", subpixel=True)
        whole = sf.load_extractor("fast", runtime="torch", subpixel=False)
    with_refinement = _errors(refined, images, warps)
    without = _errors(whole, images, warps)
    assert len(with_refinement) > 1000 and len(without) > 1000
    # Measured: median 0.78 px refined vs 0.90 px on whole pixels (these frames and warps).
    assert np.median(with_refinement) < 0.93 * np.median(without)
    assert np.mean(with_refinement < 0.5) > np.mean(without < 0.5) + 0.03
