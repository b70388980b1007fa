"""Synthetic keyframes for the back-end tests: landmarks with random descriptors seen by a
pinhole camera, exact ground truth, and a mutual-nearest-neighbour matcher (tests.fakes)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from slamfront.geometry import invert_pose, make_pose, so3_exp
from slamfront.types import CameraModel, Features, Keyframe, Matches
from tests.fakes import mutual_nn_matches

CAMERA = CameraModel(640, 480, 400.0, 400.0, 319.5, 239.5)
DESC_DIM = 64


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """world_from_cam of a camera at ``position`` looking at ``target`` (y down = world -y)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, -1.0, 0.0]))
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    return make_pose(np.stack([right, down, forward], axis=1), position)


@dataclass
class Scene:
    """Landmarks (L, 3) world metres with one (L, 64) unit descriptor each."""

    points_world_m: np.ndarray
    descriptors: np.ndarray

    @staticmethod
    def room(rng: np.random.Generator, count: int = 3000, half_m: float = 5.0) -> Scene:
        """Points on the four walls of a square room, 3 m high."""
        wall = rng.integers(0, 4, count)
        along = rng.uniform(-half_m, half_m, count)
        height = rng.uniform(-1.5, 1.5, count)
        points = np.zeros((count, 3))
        points[:, 1] = height
        for w, (axis, sign) in enumerate([(0, 1), (0, -1), (2, 1), (2, -1)]):
            sel = wall == w
            points[sel, axis] = sign * half_m
            points[sel, 2 - axis] = along[sel]
        return Scene(points, unit_rows(rng.normal(size=(count, DESC_DIM))))

    def with_points(self, points_world_m: np.ndarray, descriptors: np.ndarray) -> Scene:
        return Scene(
            np.concatenate([self.points_world_m, points_world_m]),
            np.concatenate([self.descriptors, descriptors]),
        )

    def keyframe(
        self,
        keyframe_id: int,
        world_from_cam: np.ndarray,
        rng: np.random.Generator,
        estimate: np.ndarray | None = None,
        max_features: int = 800,
        clutter: int = 80,
        descriptor_noise: float = 0.05,
    ) -> Keyframe:
        """What a camera at ``world_from_cam`` (truth) sees; ``estimate`` is the pose the
        keyframe carries (default: the truth)."""
        points_cam = self.points_world_m @ invert_pose(world_from_cam)[:3, :3].T
        points_cam += invert_pose(world_from_cam)[:3, 3]
        z = points_cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = CAMERA.K[:2, :2] @ (points_cam[:, :2] / z[:, None]).T
        pixels = pixels.T + CAMERA.K[:2, 2]
        visible = (
            (z > 0.3)
            & (pixels[:, 0] >= 0)
            & (pixels[:, 0] < CAMERA.width_px)
            & (pixels[:, 1] >= 0)
            & (pixels[:, 1] < CAMERA.height_px)
        )
        seen = np.flatnonzero(visible)
        if seen.size > max_features - clutter:
            seen = rng.choice(seen, max_features - clutter, replace=False)
        n = seen.size
        keypoints = pixels[seen] + rng.normal(0, 0.3, (n, 2))
        descriptors = unit_rows(
            self.descriptors[seen] + rng.normal(0, descriptor_noise, (n, DESC_DIM))
        )
        points = points_cam[seen] + rng.normal(0, 0.005, (n, 3))
        points[rng.uniform(size=n) < 0.2] = np.nan
        keypoints = np.concatenate([keypoints, rng.uniform([0, 0], [640, 480], (clutter, 2))])
        descriptors = np.concatenate([descriptors, unit_rows(rng.normal(size=(clutter, DESC_DIM)))])
        points = np.concatenate([points, rng.uniform([-2, -2, 1], [2, 2, 6], (clutter, 3))])
        return Keyframe(
            keyframe_id=keyframe_id,
            frame_index=keyframe_id * 5,
            stamp_ns=keyframe_id * 166_666_666,
            world_from_cam=world_from_cam if estimate is None else estimate,
            camera=CAMERA,
            features=Features(
                keypoints=keypoints.astype(np.float32),
                scores=np.ones(len(keypoints), np.float32),
                descriptors=descriptors,
                image_size=CAMERA.size_px,
            ),
            points_cam_m=points,
        )


def mnn_matcher(f0: Features, f1: Features) -> Matches:
    """Mutual nearest neighbours with cosine > 0.7."""
    return mutual_nn_matches(f0, f1, 0.7)


def circle_poses(count: int, laps: int, radius_m: float = 2.5) -> list[np.ndarray]:
    """Cameras going round the room centre looking outwards; later laps are offset a little
    (radius +10 cm per lap, 3 cm higher, 2 degrees of yaw) so a revisit is not a copy."""
    poses = []
    for lap in range(laps):
        for i in range(count):
            a = 2 * np.pi * i / count
            r = radius_m + 0.1 * lap
            position = np.array([r * np.cos(a), -0.03 * lap, r * np.sin(a)])
            target = position + np.array([np.cos(a + 0.6), 0.0, np.sin(a + 0.6)])
            yaw = make_pose(so3_exp(np.array([0.0, np.deg2rad(2.0 * lap), 0.0])), np.zeros(3))
            poses.append(look_at(position, target) @ yaw)
    return poses


def drifted(
    poses: list[np.ndarray], yaw_deg_per_step: float, metres_per_step: float
) -> list[np.ndarray]:
    """Tracker-like estimates: each step's relative motion picks up a constant error."""
    error = make_pose(
        so3_exp(np.array([0.0, np.deg2rad(yaw_deg_per_step), 0.0])),
        np.array([metres_per_step, 0.0, 0.0]),
    )
    out = [poses[0]]
    for a, b in itertools.pairwise(poses):
        out.append(out[-1] @ invert_pose(a) @ b @ error)
    return out
