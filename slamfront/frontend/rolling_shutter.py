"""Rolling-shutter correction: a frame moved to the image a global shutter would have taken
at its stamp.

A rolling shutter exposes its rows one after the other (``CameraModel.readout_s`` from the
first to the last, the stamp at the middle row). While the camera turns at omega, a static
point's image moves at the rotational flow, which depends on the pixel only (not on depth);
each pixel is moved back by its row's time offset times that flow. Keypoints, the grey image
for sub-pixel alignment and the depth image (and a stereo pair's right image) all move the
same way, so everything after works in one global-shutter image. The flow of a translation
needs depth and is left out: a hand's turn dominates it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from slamfront.frontend.records import FrameInput
from slamfront.types import CameraModel

_GRID_PX = 16
"""Spacing of the coarse grid the image maps are computed on (the maps are smooth)."""
_MAP_ITERATIONS = 3
"""Fixed-point steps inverting the keypoint map for the image maps (each one multiplies the
error by the map's slope, far below 1)."""


def to_global_shutter(inp: FrameInput, omega_cam_rad_s: np.ndarray) -> FrameInput:
    """``inp`` as a global shutter would have seen it at its stamp, the camera turning at
    ``omega_cam_rad_s`` (3,) rad/s in the camera frame: keypoints moved, the grey, depth and
    right images remapped (depth nearest, so no depth is invented), its cameras' readout 0.
    The colour image stays as captured (nothing after reads it). ``inp`` itself when the
    camera has a global shutter or does not turn."""
    frame = inp.frame
    camera = frame.camera
    omega = np.asarray(omega_cam_rad_s, dtype=np.float64)
    if camera.readout_s <= 0.0 or not np.any(omega):
        return inp
    import cv2

    keypoints = inp.features.keypoints.astype(np.float64)
    keypoints -= _shift_px(camera, omega, keypoints[:, 0], keypoints[:, 1])
    features = replace(inp.features, keypoints=keypoints.astype(np.float32))
    map_x, map_y = _source_maps(camera, omega)
    grey = inp.grey
    if grey is not None:
        grey = cv2.remap(grey, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    depth_m = frame.depth_m
    if depth_m is not None:
        depth_m = cv2.remap(
            depth_m, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
        )
    right, stereo = frame.image_right, frame.stereo
    if right is not None and stereo is not None:
        if stereo.right.readout_s > 0.0:
            # a rectified pair shares its orientation, hence the rate
            right_x, right_y = _source_maps(stereo.right, omega)
            right = cv2.remap(
                right, right_x, right_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        stereo = replace(
            stereo,
            left=replace(stereo.left, readout_s=0.0),
            right=replace(stereo.right, readout_s=0.0),
        )
    frame = replace(
        frame,
        camera=replace(camera, readout_s=0.0),
        depth_m=depth_m,
        image_right=right,
        stereo=stereo,
    )
    return replace(inp, frame=frame, features=features, grey=grey)


def _shift_px(camera: CameraModel, omega: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 2) image motion of static points seen at pixels (u, v) from the stamp to their
    row's exposure: the row's time offset times the rotational flow there."""
    x = (u - camera.cx) / camera.fx
    y = (v - camera.cy) / camera.fy
    middle = (camera.height_px - 1) / 2.0
    offset_s = (v - middle) * (camera.readout_s / max(camera.height_px - 1, 1))
    wx, wy, wz = omega
    du = offset_s * camera.fx * (x * y * wx - (1.0 + x * x) * wy + y * wz)
    dv = offset_s * camera.fy * ((1.0 + y * y) * wx - x * y * wy - x * wz)
    return np.stack([du, dv], axis=-1)


def _source_maps(camera: CameraModel, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 cv2.remap maps x, y: for each global-shutter pixel q, the captured
    pixel p it comes from (p minus its shift is q). Solved on a coarse grid, interpolated."""
    import cv2

    width, height = camera.size_px
    cols, rows = math.ceil(width / _GRID_PX) + 2, math.ceil(height / _GRID_PX) + 2
    # grid nodes where cv2.resize places its source samples, one cell beyond every border
    # so that the cropped image is interpolated everywhere, never clamped
    u = (np.arange(cols) - 0.5) * _GRID_PX - 0.5
    v = (np.arange(rows) - 0.5) * _GRID_PX - 0.5
    q = np.stack(np.meshgrid(u, v), axis=-1)
    p = q.copy()
    for _ in range(_MAP_ITERATIONS):
        p = q + _shift_px(camera, omega, p[..., 0], p[..., 1])
    full = cv2.resize(
        p.astype(np.float32), (cols * _GRID_PX, rows * _GRID_PX), interpolation=cv2.INTER_LINEAR
    )
    crop = full[_GRID_PX : _GRID_PX + height, _GRID_PX : _GRID_PX + width]
    return np.ascontiguousarray(crop[..., 0]), np.ascontiguousarray(crop[..., 1])
