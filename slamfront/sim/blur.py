"""Motion blur from the exact per-pixel image motion during the exposure.

Each pixel's surface point (from the rendered depth) is moved to where the camera is at the
end of the exposure; the displacement ``d`` of a pixel between mid and end exposure is
exact for rotation, translation and parallax. The blurred image is the mean of the sharp
image sampled at ``p + s d`` for ``n = 2**k`` values of ``s`` evenly spread over [-1, 1]
(midpoints of n equal parts, at most about 1 px apart): a per-pixel box kernel along the
local image motion, centred on the frame's pose so features keep their ground-truth
positions. The n taps cost k + 1 remaps: each stage averages the previous result with
itself shifted along ``d`` (which assumes ``d`` varies slowly across a streak). It
approximates the motion as linear during the exposure and ignores what the exposure would
reveal behind occlusion edges.
"""

from __future__ import annotations

import math

import numpy as np

from slamfront.geometry import project, unproject
from slamfront.types import CameraModel


def blur_displacement(
    depth_m: np.ndarray, camera: CameraModel, end_from_mid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) float32 pixel displacement of every pixel from mid to end of the exposure.

    ``end_from_mid`` is the camera pose at the end of the exposure relative to mid-exposure
    (cam_end_from_cam_mid, 4x4). Pixels without depth (0) are treated as infinitely far.
    """
    h, w = depth_m.shape
    k = camera.K
    # each column's and each row's ray at depth 1: a pinhole's ray x depends on the column
    # only, its y on the row only
    ray_x = unproject(k, np.stack([np.arange(w), np.zeros(w)], axis=1), np.ones(w))[:, 0]
    ray_y = unproject(k, np.stack([np.zeros(h), np.arange(h)], axis=1), np.ones(h))[:, 1]
    rot, trans = end_from_mid[:3, :3], end_from_mid[:3, 3]
    inv_z = np.zeros((h, w), np.float32)
    np.divide(1.0, depth_m, out=inv_z, where=depth_m > 0)
    # The end-frame point is z (R ray + t / z): projection drops the common factor z.
    ends = np.empty((h, w, 3), np.float32)
    for row in range(3):
        r = rot[row]
        ends[..., row] = (
            (r[0] * ray_x)[None, :].astype(np.float32)
            + (r[1] * ray_y + r[2])[:, None].astype(np.float32)
            + np.float32(trans[row]) * inv_z
        )
    end_px = project(k, ends.reshape(-1, 3)).reshape(h, w, 2)
    dx = (end_px[..., 0] - np.arange(w)[None, :]).astype(np.float32)
    dy = (end_px[..., 1] - np.arange(h)[:, None]).astype(np.float32)
    return dx, dy


def motion_blur(
    image: np.ndarray, dx: np.ndarray, dy: np.ndarray, max_stages: int = 4
) -> np.ndarray:
    """``image`` (uint8, HxW or HxWxC) blurred along +-(dx, dy) around each pixel."""
    import cv2

    h, w = dx.shape
    longest = float(np.sqrt((dx * dx + dy * dy).max())) if dx.size else 0.0
    if 2.0 * longest < 0.5:
        return image
    stages = min(max_stages, max(1, math.ceil(math.log2(2.0 * longest))))
    taps = 2**stages
    grid_x = np.arange(w, dtype=np.float32)[None, :]
    grid_y = np.arange(h, dtype=np.float32)[:, None]

    def shifted(src: np.ndarray, s: float) -> np.ndarray:
        map_x = grid_x + np.float32(s) * dx
        map_y = grid_y + np.float32(s) * dy
        out: np.ndarray = cv2.remap(
            src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        return out

    # Taps at s = -1 + (2i + 1) / taps: start at the first, then double the set k times.
    first = -1.0 + 1.0 / taps
    step = 2.0 / taps
    result = cv2.addWeighted(
        shifted(image, first), 0.5, shifted(image, first + step * taps / 2), 0.5, 0.0
    )
    for stage in range(2, stages + 1):
        offset = step * taps / 2**stage
        result = cv2.addWeighted(result, 0.5, shifted(result, offset), 0.5, 0.0)
    return result
