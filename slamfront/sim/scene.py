"""Scenes of the synthetic rig: textured rectangles (room walls, floor, ceiling, boxes).

World frame: metres, z up, gravity along -z; the floor is z = 0. A scene is a tuple of
one-sided planar rectangles (:class:`Face`), each mapped to a texture of a
:class:`~slamfront.sim.textures.TextureAtlas`.

Scenes by name (``build_scene``):

- ``room``: an 8 m x 6 m x 2.8 m room (x in [-4, 4], y in [-3, 3]) with eight
  furniture-sized boxes near the walls; the middle (|x| < 2.2, |y| < 1.6) is free for the
  camera.
- ``repeated``: a 16 m x 5 m corridor (x in [-8, 8], y in [-2.5, 2.5]) with five identical
  boxes (same size, orientation and textures) along the +y wall at x = -6, -3, 0, 3, 6.
  Walls, floor and ceiling are split into 2 m panels, each with its own texture, so the
  places themselves differ while the boxes look the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slamfront.sim.textures import TextureAtlas, build_atlas, make_texture

SCENE_NAMES = ("room", "repeated")

ROOM_TEXEL_M = 0.005
CEILING_TEXEL_M = 0.008
BOX_TEXEL_M = 0.004
PAD_TEXELS = 24
MIP_LEVELS = 4
_LIGHT_DIR = np.array([0.35, -0.25, 0.9]) / np.linalg.norm([0.35, -0.25, 0.9])


@dataclass(frozen=True, eq=False)
class Face:
    """A one-sided textured rectangle.

    Its points are ``origin_m + a * axis_u + b * axis_v`` for a in [0, size_m[0]] and b in
    [0, size_m[1]] (world frame, metres). ``axis_u`` and ``axis_v`` are orthonormal; the face
    is visible from the side of ``normal = axis_u x axis_v``. Texture coordinates are
    (a, b) / ``texel_m`` texels.
    """

    origin_m: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    size_m: tuple[float, float]
    texture: int
    texel_m: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.axis_u, self.axis_v)

    @property
    def corners_m(self) -> np.ndarray:
        """(4, 3) world corners in order (0,0), (u,0), (u,v), (0,v)."""
        du = self.axis_u * self.size_m[0]
        dv = self.axis_v * self.size_m[1]
        o = self.origin_m
        return np.stack([o, o + du, o + du + dv, o + dv])


@dataclass(frozen=True)
class Box:
    """A furniture-sized box standing on the floor. size_m: (x, y, z) before the yaw."""

    center_xy_m: tuple[float, float]
    size_m: tuple[float, float, float]
    yaw_deg: float = 0.0


@dataclass(frozen=True, eq=False)
class Scene:
    """Faces plus their textures. bounds_m: (2, 3) min and max corner of the enclosure."""

    name: str
    seed: int
    faces: tuple[Face, ...]
    atlas: TextureAtlas
    bounds_m: np.ndarray
    boxes: tuple[Box, ...]


def build_scene(name: str, seed: int) -> Scene:
    """The scene ``name`` (see module doc) with textures drawn from ``seed``."""
    if name == "room":
        return _room(seed)
    if name == "repeated":
        return _repeated(seed)
    raise ValueError(f"unknown scene {name!r}; known: {', '.join(SCENE_NAMES)}")


# --------------------------------------------------------------------------- builders

_ROOM_BOXES = (
    Box((2.9, 1.9), (1.2, 0.8, 0.75), 10.0),
    Box((-3.3, -0.9), (0.6, 1.6, 1.8), 0.0),
    Box((1.2, -2.4), (1.0, 0.6, 1.0), -5.0),
    Box((-1.4, 2.3), (1.4, 0.7, 0.9), -15.0),
    Box((3.1, -1.6), (0.5, 0.5, 0.5), 30.0),
    Box((0.4, 2.7), (1.5, 0.4, 2.0), 0.0),
    Box((-2.9, 1.7), (0.7, 0.7, 1.2), 20.0),
    Box((-1.0, -2.5), (0.8, 0.5, 0.4), 0.0),
)

_REPEATED_BOX = Box((0.0, 1.7), (1.4, 0.7, 1.2), 0.0)
_REPEATED_X = (-6.0, -3.0, 0.0, 3.0, 6.0)


class _Builder:
    """Collects faces and generates one texture per distinct key."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.faces: list[Face] = []
        self.textures: list[np.ndarray] = []
        self._keys: dict[str, int] = {}

    def texture(self, key: str, size_m: tuple[float, float], texel_m: float, gain: float) -> int:
        if key in self._keys:
            return self._keys[key]
        width = math.ceil(size_m[0] / texel_m) + 2 * PAD_TEXELS
        height = math.ceil(size_m[1] / texel_m) + 2 * PAD_TEXELS
        # One generator per texture, keyed by seed and a stable hash of the key.
        key_code = [ord(c) for c in key]
        rng = np.random.default_rng([self.seed, len(self.textures), *key_code])
        self.textures.append(make_texture(rng, height, width, texel_m, gain=gain))
        self._keys[key] = len(self.textures) - 1
        return self._keys[key]

    def face(
        self,
        center: np.ndarray,
        normal: np.ndarray,
        axis_v: np.ndarray,
        size_m: tuple[float, float],
        key: str,
        texel_m: float,
    ) -> None:
        axis_v = axis_v / np.linalg.norm(axis_v)
        normal = normal / np.linalg.norm(normal)
        axis_u = np.cross(axis_v, normal)
        origin = center - 0.5 * size_m[0] * axis_u - 0.5 * size_m[1] * axis_v
        gain = 0.78 + 0.22 * float(normal @ _LIGHT_DIR)
        tex = self.texture(key, size_m, texel_m, gain)
        for vector in (origin, axis_u, axis_v):
            vector.setflags(write=False)
        self.faces.append(Face(origin, axis_u, axis_v, size_m, tex, texel_m))

    def enclosure(self, lo: np.ndarray, hi: np.ndarray, panel_m: float) -> None:
        """Inward-facing walls, floor and ceiling of the box [lo, hi], split into panels."""
        ez = np.array([0.0, 0.0, 1.0])
        size = hi - lo
        for axis in (0, 1):
            other = 1 - axis
            n_panels = max(1, round(size[other] / panel_m))
            width = size[other] / n_panels
            for side, coord in ((1.0, lo[axis]), (-1.0, hi[axis])):
                normal = np.zeros(3)
                normal[axis] = side
                for k in range(n_panels):
                    center = np.zeros(3)
                    center[axis] = coord
                    center[other] = lo[other] + (k + 0.5) * width
                    center[2] = 0.5 * (lo[2] + hi[2])
                    self.face(
                        center,
                        normal,
                        -ez,
                        (width, float(size[2])),
                        f"wall{axis}{side:+.0f}:{k}",
                        ROOM_TEXEL_M,
                    )
        n_x = max(1, round(size[0] / panel_m))
        step = size[0] / n_x
        for side, z in ((1.0, lo[2]), (-1.0, hi[2])):
            for k in range(n_x):
                center = np.array([lo[0] + (k + 0.5) * step, 0.5 * (lo[1] + hi[1]), z])
                self.face(
                    center,
                    side * ez,
                    np.array([0.0, side, 0.0]),
                    (step, float(size[1])),
                    f"{'floor' if side > 0 else 'ceiling'}:{k}",
                    ROOM_TEXEL_M if side > 0 else CEILING_TEXEL_M,
                )

    def box(self, box: Box, key: str) -> None:
        """Four sides and the top of ``box``; the bottom rests on the floor and is never seen."""
        yaw = math.radians(box.yaw_deg)
        ex = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        ey = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
        ez = np.array([0.0, 0.0, 1.0])
        sx, sy, sz = box.size_m
        center = np.array([box.center_xy_m[0], box.center_xy_m[1], 0.5 * sz])
        sides = (
            (ex, sx / 2, (sy, sz), "+x"),
            (-ex, sx / 2, (sy, sz), "-x"),
            (ey, sy / 2, (sx, sz), "+y"),
            (-ey, sy / 2, (sx, sz), "-y"),
        )
        for normal, offset, size_m, tag in sides:
            self.face(center + normal * offset, normal, -ez, size_m, f"{key}{tag}", BOX_TEXEL_M)
        self.face(center + ez * (sz / 2), ez, ey, (sx, sy), f"{key}top", BOX_TEXEL_M)

    def finish(self, name: str, bounds: np.ndarray, boxes: tuple[Box, ...]) -> Scene:
        atlas = build_atlas(self.textures, PAD_TEXELS, MIP_LEVELS)
        bounds.setflags(write=False)
        return Scene(name, self.seed, tuple(self.faces), atlas, bounds, boxes)


def _room(seed: int) -> Scene:
    builder = _Builder(seed)
    lo, hi = np.array([-4.0, -3.0, 0.0]), np.array([4.0, 3.0, 2.8])
    builder.enclosure(lo, hi, panel_m=4.0)
    for i, box in enumerate(_ROOM_BOXES):
        builder.box(box, f"box{i}")
    return builder.finish("room", np.stack([lo, hi]), _ROOM_BOXES)


def _repeated(seed: int) -> Scene:
    builder = _Builder(seed)
    lo, hi = np.array([-8.0, -2.5, 0.0]), np.array([8.0, 2.5, 2.8])
    builder.enclosure(lo, hi, panel_m=2.0)
    boxes = tuple(
        Box((x, _REPEATED_BOX.center_xy_m[1]), _REPEATED_BOX.size_m, _REPEATED_BOX.yaw_deg)
        for x in _REPEATED_X
    )
    for box in boxes:
        builder.box(box, "twin")  # the same texture key: identical-looking boxes
    return builder.finish("repeated", np.stack([lo, hi]), boxes)
