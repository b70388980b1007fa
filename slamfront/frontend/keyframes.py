"""Keyframe policy: a pure function of what the tracker measured for the current frame."""

from __future__ import annotations

import numpy as np

from slamfront.config import KeyframeConfig
from slamfront.geometry import invert_pose, rotation_angle_deg


def need_keyframe(
    config: KeyframeConfig,
    reference_world_from_cam: np.ndarray,
    world_from_cam: np.ndarray,
    *,
    tracked_reference_landmarks: int,
    reference_landmarks: int,
    frames_since_keyframe: int,
    reference_depth_m: float,
) -> bool:
    """Insert a keyframe when the reference keyframe's landmarks tracked now fall below
    ``min_tracked_ratio`` of ``reference_landmarks`` (how many are trackable at best), or the
    camera moved farther than ``max_translation_ratio`` of the reference's median landmark
    depth ``reference_depth_m`` or turned too far from it (and not sooner than the minimum
    gap)."""
    if frames_since_keyframe < config.min_frames_between:
        return False
    motion = invert_pose(reference_world_from_cam) @ world_from_cam
    moved_m = float(np.linalg.norm(motion[:3, 3]))
    if (
        np.isfinite(reference_depth_m)
        and moved_m > config.max_translation_ratio * reference_depth_m
    ):
        return True
    if rotation_angle_deg(motion[:3, :3]) > config.max_rotation_deg:
        return True
    if reference_landmarks == 0:
        return True
    return tracked_reference_landmarks < config.min_tracked_ratio * reference_landmarks


def median_depth_m(points_cam_m: np.ndarray) -> float:
    """Median depth of a keyframe's landmarks (NaN rows: none); inf without any."""
    z = points_cam_m[:, 2] if points_cam_m.size else np.zeros(0)
    z = z[np.isfinite(z) & (z > 0)]
    return float(np.median(z)) if z.size else float("inf")
