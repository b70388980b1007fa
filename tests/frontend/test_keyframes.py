"""Keyframe policy and the motion gate: pure functions of what a frame measured."""

from __future__ import annotations

import numpy as np
import pytest

from slamfront.config import KeyframeConfig
from slamfront.frontend.keyframes import median_depth_m, need_keyframe
from slamfront.frontend.motion_model import MotionModel, image_jump_px
from slamfront.geometry import make_pose, so3_exp
from slamfront.types import CameraModel


@pytest.mark.parametrize(
    ("tracked", "moved_m", "depth_m", "turned_deg", "frames", "expected"),
    [
        (90, 0.0, 2.5, 0.0, 5, False),
        (50, 0.0, 2.5, 0.0, 5, True),  # below 60 % of 100 landmarks
        (90, 0.3, 2.5, 0.0, 5, True),  # 0.3 m past 10 % of a room's 2.5 m
        (90, 0.3, 15.0, 0.0, 5, False),  # the same step is small on a road 15 m deep
        (90, 1.6, 15.0, 0.0, 5, True),
        (90, 0.0, 2.5, 20.0, 5, True),
        (10, 0.5, 2.5, 0.0, 0, False),  # never right after a keyframe
        (90, 5.0, float("inf"), 0.0, 5, False),  # no depth known: translation says nothing
    ],
)
def test_keyframe_policy(
    tracked: int, moved_m: float, depth_m: float, turned_deg: float, frames: int, expected: bool
) -> None:
    config = KeyframeConfig(min_tracked_ratio=0.6, max_translation_ratio=0.1, max_rotation_deg=15)
    current = make_pose(so3_exp([0, np.radians(turned_deg), 0]), [moved_m, 0, 0])
    needed = need_keyframe(
        config,
        np.eye(4),
        current,
        tracked_reference_landmarks=tracked,
        reference_landmarks=100,
        frames_since_keyframe=frames,
        reference_depth_m=depth_m,
    )
    assert needed is expected


def test_median_depth_ignores_points_without_depth() -> None:
    points = np.array([[0, 0, 1.0], [np.nan] * 3, [0, 0, 3.0], [0, 0, 2.0]])
    assert median_depth_m(points) == 2.0
    assert median_depth_m(np.full((3, 3), np.nan)) == float("inf")


CAMERA = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0)


def test_image_jump_is_the_landmarks_shift_between_prediction_and_estimate() -> None:
    points = np.array([[x, y, 4.0] for x in (-1, 0, 1) for y in (-1, 0, 1)], float)
    # 0.2 m sideways at 4 m depth: every landmark moves 500 * 0.2 / 4 = 25 px
    moved = make_pose(np.eye(3), [0.2, 0, 0])
    assert image_jump_px(np.eye(4), moved, points, CAMERA) == pytest.approx(25.0)
    # the same step 40 m away is a tenth of that: the gate is in the image, not in metres
    assert image_jump_px(np.eye(4), moved, points * 10, CAMERA) == pytest.approx(2.5)
    # a 5 degree turn moves the centre point by f * tan(5 deg)
    turned = make_pose(so3_exp([0, np.radians(5), 0]), [0, 0, 0])
    jump = image_jump_px(np.eye(4), turned, points[4:5], CAMERA)
    assert jump == pytest.approx(500 * np.tan(np.radians(5)), rel=1e-6)


def test_motion_model_predicts_constant_velocity_and_stops() -> None:
    model = MotionModel()
    assert model.predict(0) is None
    model.update(0, np.eye(4))
    assert not model.has_velocity
    np.testing.assert_allclose(model.predict(10**8), np.eye(4))
    step = make_pose(so3_exp([0, 0.1, 0]), [0.1, 0, 0])
    model.update(10**8, step)
    np.testing.assert_allclose(model.predict(2 * 10**8), step @ step, atol=1e-12)
    model.stop()
    assert not model.has_velocity and model.last_stamp_ns == 10**8
    model.reset()
    assert model.predict(3 * 10**8) is None
