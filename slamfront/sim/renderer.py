"""Exact ray-cast rendering of a :class:`~slamfront.sim.scene.Scene` through a pinhole camera.

Per face, the map from pixel to texture coordinates is a homography ``H``: with ``p`` the
pixel (x, y, 1), ``H p = (u', v', w)`` gives texture coordinates ``u'/w, v'/w`` and
``w = 1/z`` the inverse depth of the face along that pixel. The renderer evaluates these
three affine functions over the face's projected bounding box only (row + column vectors
broadcast, no per-pixel matrix product), keeps the nearest face per pixel in an
inverse-depth buffer, and samples the texture atlas once per mip level with ``cv2.remap``.

Sampling is trilinear: the mip level of a pixel is half the log2 of the area a pixel
covers on the texture, ``|det H| z^3`` texels², so distant and grazing surfaces are
filtered instead of aliased. Pixel centres are integer coordinates (OpenCV convention);
depth is the exact z of the surface point seen through the pixel centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slamfront.geometry import project
from slamfront.sim.scene import Scene
from slamfront.types import CameraModel

_NEAR_M = 0.02
_EDGE_TEXELS = 0.02


@dataclass(frozen=True, eq=False)
class RenderedView:
    """One rendered view.

    image: (H, W, 3) uint8 RGB (or (H, W, 4) RGBX when asked for); depth_m: (H, W) float32
    metres, 0 where no surface was hit; face_index: (H, W) int16 index into ``scene.faces``
    (-1 = none).
    """

    image: np.ndarray
    depth_m: np.ndarray
    face_index: np.ndarray


class Renderer:
    """Renders ``scene`` through ``camera`` (undistorted pinhole). Call with world_from_cam."""

    def __init__(self, scene: Scene, camera: CameraModel, lod_bias: float = 0.0) -> None:
        if camera.is_distorted:
            raise ValueError("the renderer draws undistorted pinhole images only")
        self.scene = scene
        self.camera = camera
        self.lod_bias = float(lod_bias)
        self._k = camera.K
        self._xs = np.arange(camera.width_px, dtype=np.float64)
        self._ys = np.arange(camera.height_px, dtype=np.float64)
        faces = scene.faces
        atlas = scene.atlas
        self._corners = np.stack([f.corners_m for f in faces])  # (F, 4, 3)
        self._normals = np.stack([f.normal for f in faces])
        self._origins = np.stack([f.origin_m for f in faces])
        # Texture coordinate u (texels, texel i centred at i + 0.5) is level-0 atlas index
        # coordinate u + shift; the bounds test runs on the shifted values.
        # A margin of _EDGE_TEXELS closes float32 cracks where faces meet (coplanar neighbours
        # and box edges); the inverse-depth test decides between the overlapping faces.
        shift = atlas.origin_px[[f.texture for f in faces]] + (atlas.pad_px - 0.5)
        extent = np.array([(f.size_m[0] / f.texel_m, f.size_m[1] / f.texel_m) for f in faces])
        self._atlas_shift = shift.astype(np.float64)
        self._atlas_lo = self._atlas_shift - _EDGE_TEXELS
        self._atlas_hi = self._atlas_shift + extent + _EDGE_TEXELS
        texel = np.array([f.texel_m for f in faces])[:, None]
        self._axis_u_scaled = np.stack([f.axis_u for f in faces]) * texel
        self._axis_v_scaled = np.stack([f.axis_v for f in faces]) * texel

    def __call__(self, world_from_cam: np.ndarray, rgbx: bool = False) -> RenderedView:
        """The view from ``world_from_cam``; ``rgbx`` keeps a 4th (padding) channel, which
        makes later remaps of the image (motion blur) faster."""
        import cv2

        cam = self.camera
        h, w = cam.height_px, cam.width_px
        n = len(self.scene.faces)
        inv_z = np.zeros((h, w), np.float32)
        x_num = np.zeros((h, w), np.float32)
        y_num = np.zeros((h, w), np.float32)
        face_id = np.full((h, w), n, np.int16)
        level_base = np.zeros(n + 1, np.float32)
        for f, (x0, x1, y0, y1), hom, log2_det in self._visible(world_from_cam):
            level_base[f] = 0.5 * log2_det
            lo_x, lo_y = self._atlas_lo[f]
            hi_x, hi_y = self._atlas_hi[f]
            xs = self._xs[x0:x1]
            ys = self._ys[y0:y1, None]
            rows = [
                (hom[r, 0] * xs).astype(np.float32)
                + (hom[r, 1] * ys + hom[r, 2]).astype(np.float32)
                for r in range(3)
            ]
            xn, yn, wf = rows
            zbuf = inv_z[y0:y1, x0:x1]
            mask = wf > zbuf
            mask &= xn >= wf * np.float32(lo_x)
            mask &= xn <= wf * np.float32(hi_x)
            mask &= yn >= wf * np.float32(lo_y)
            mask &= yn <= wf * np.float32(hi_y)
            mask8 = mask.view(np.uint8)
            cv2.copyTo(wf, mask8, zbuf)
            cv2.copyTo(xn, mask8, x_num[y0:y1, x0:x1])
            cv2.copyTo(yn, mask8, y_num[y0:y1, x0:x1])
            np.putmask(face_id[y0:y1, x0:x1], mask, f)

        missed = face_id == n
        any_missed = bool(missed.any())
        depth = np.zeros((h, w), np.float32)
        np.divide(1.0, inv_z, out=depth, where=~missed if any_missed else True)
        atlas_x = x_num * depth
        atlas_y = y_num * depth
        # Mip level: 0.5 log2(|det H| z^3) = base - 1.5 log2(1/z).
        with np.errstate(divide="ignore"):
            level = np.take(level_base, face_id) - np.float32(1.5) * np.log2(inv_z)
        if self.lod_bias:
            level += np.float32(self.lod_bias)
        levels = self.scene.atlas.levels
        np.clip(level, 0.0, levels - 1, out=level)
        level0 = np.floor(level)
        weight1 = level - level0
        scale0 = np.ldexp(np.float32(1.0), -level0.astype(np.int32)).astype(np.float32)
        right = np.float32(2 * self.scene.atlas.level0_width_px)
        atlas_x -= right
        sampled = []
        for scale in (scale0, scale0 * np.float32(0.5)):
            map_x = scale * atlas_x + right
            map_y = scale * atlas_y
            sampled.append(cv2.remap(self.scene.atlas.image, map_x, map_y, cv2.INTER_LINEAR))
        blended = cv2.blendLinear(sampled[0], sampled[1], 1.0 - weight1, weight1)
        image = blended if rgbx else cv2.cvtColor(blended, cv2.COLOR_RGBA2RGB)
        face_index = face_id
        if any_missed:
            image[missed] = 0
            face_index = np.where(missed, -1, face_id).astype(np.int16)
        return RenderedView(image, depth, face_index)

    def _visible(
        self, world_from_cam: np.ndarray
    ) -> list[tuple[int, tuple[int, int, int, int], np.ndarray, float]]:
        """Faces that may be seen: (index, pixel box, homography, log2 |det H|).

        The homography maps a pixel (x, y, 1) to (x_atlas w, y_atlas w, w) with x_atlas,
        y_atlas level-0 atlas index coordinates of the face's texture and w = 1/z.
        """
        rot = world_from_cam[:3, :3]
        center = world_from_cam[:3, 3]
        cam_rot = rot.T
        cam_t = -cam_rot @ center
        facing = np.einsum("fi,fi->f", self._normals, center[None, :] - self._origins) > 1e-9
        index = np.flatnonzero(facing)
        if index.size == 0:
            return []
        # G = K [R axis_u s | R axis_v s | R origin + t] maps (u, v, 1) texels to z * pixel.
        g = np.empty((index.size, 3, 3))
        g[:, :, 0] = self._axis_u_scaled[index] @ cam_rot.T
        g[:, :, 1] = self._axis_v_scaled[index] @ cam_rot.T
        g[:, :, 2] = self._origins[index] @ cam_rot.T + cam_t
        g = self._k @ g
        det_g = np.linalg.det(g)
        usable = np.abs(det_g) > 1e-12  # not seen exactly edge-on
        index, g, det_g = index[usable], g[usable], det_g[usable]
        hom = np.linalg.inv(g)
        # Shift texture texels to atlas coordinates: rows of [[1, 0, a], [0, 1, b], [0, 0, 1]] H.
        shift = self._atlas_shift[index]
        hom[:, 0] += shift[:, 0, None] * hom[:, 2]
        hom[:, 1] += shift[:, 1, None] * hom[:, 2]
        log2_det = -np.log2(np.abs(det_g))
        corners = self._corners[index] @ cam_rot.T + cam_t  # (F, 4, 3)
        out = []
        for k, f in enumerate(index):
            box = self._bbox(corners[k])
            if box is not None:
                out.append((int(f), box, hom[k], float(log2_det[k])))
        return out

    def _bbox(self, corners_cam: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, x1, y0, y1), end-exclusive, covering the face; None if not seen."""
        poly = _clip_near(corners_cam, _NEAR_M)
        if poly.shape[0] == 0:
            return None
        px, py = project(self._k, poly).T
        x0 = max(0, int(np.floor(px.min())))
        x1 = min(self.camera.width_px, int(np.ceil(px.max())) + 1)
        y0 = max(0, int(np.floor(py.min())))
        y1 = min(self.camera.height_px, int(np.ceil(py.max())) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1


def _clip_near(points: np.ndarray, near: float) -> np.ndarray:
    """The polygon ``points`` (N, 3, camera frame) clipped to z >= near (Sutherland-Hodgman)."""
    inside = points[:, 2] >= near
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    out = []
    count = points.shape[0]
    for i in range(count):
        a, b = points[i], points[(i + 1) % count]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)
