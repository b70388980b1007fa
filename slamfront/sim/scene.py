"""Scenes of the synthetic rig: textured rectangles (walls, floors, ceilings, façades, boxes).

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
- ``street``: an L-shaped street canyon open to the sky (no ceiling: depth 0 and black
  pixels there). Road 1 runs along +x (centre line y = 0, from x = -12 m) to a left turn
  into road 2 along +y (centre line x = 83 m, up to y = 126 m, closed by a building);
  8 m of asphalt, a 3 m pavement each side, building lines 14 m apart, the outer corner
  closed. Buildings 3.5-7.5 m wide and 8-15 m high, some set back, a few low courtyard
  gaps, each front, exposed side wall and ground piece with its own texture (shapes twice
  the indoor size on façades); eleven parked-car boxes (4.3 x 1.8 x 1.5 m) on the kerbs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from slamfront.sim.textures import TextureAtlas, build_atlas, make_texture

SCENE_NAMES = ("room", "repeated", "street")

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
    if name == "street":
        return _street(seed)
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


@dataclass(frozen=True, slots=True)
class _Look:
    """How a surface's texture is drawn: shape density per m², brightness gain, shape scale."""

    density_per_m2: float = 70.0
    gain: float = 1.0
    scale: float = 1.0


_INDOOR = _Look()


class _Builder:
    """Collects faces and generates one texture per distinct key."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.faces: list[Face] = []
        self.textures: list[np.ndarray] = []
        self._keys: dict[str, int] = {}

    def texture(
        self, key: str, size_m: tuple[float, float], texel_m: float, gain: float, look: _Look
    ) -> int:
        if key in self._keys:
            return self._keys[key]
        width = math.ceil(size_m[0] / texel_m) + 2 * PAD_TEXELS
        height = math.ceil(size_m[1] / texel_m) + 2 * PAD_TEXELS
        # One generator per texture, keyed by seed and a stable hash of the key.
        key_code = [ord(c) for c in key]
        rng = np.random.default_rng([self.seed, len(self.textures), *key_code])
        texture = make_texture(
            rng,
            height,
            width,
            texel_m,
            density_per_m2=look.density_per_m2,
            gain=gain * look.gain,
            scale=look.scale,
        )
        self.textures.append(texture)
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
        look: _Look = _INDOOR,
    ) -> None:
        axis_v = axis_v / np.linalg.norm(axis_v)
        normal = normal / np.linalg.norm(normal)
        axis_u = np.cross(axis_v, normal)
        origin = center - 0.5 * size_m[0] * axis_u - 0.5 * size_m[1] * axis_v
        gain = 0.78 + 0.22 * float(normal @ _LIGHT_DIR)
        tex = self.texture(key, size_m, texel_m, gain, look)
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

    def box(self, box: Box, key: str, texel_m: float = BOX_TEXEL_M) -> None:
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
            self.face(center + normal * offset, normal, -ez, size_m, f"{key}{tag}", texel_m)
        self.face(center + ez * (sz / 2), ez, ey, (sx, sy), f"{key}top", texel_m)

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


# --------------------------------------------------------------------------- street

STREET_CROSS_X_M = 83.0
"""x of the centre line of the second road (along +y) of the ``street`` scene."""
STREET_ROAD_HALF_M = 4.0
"""Half width of the asphalt of both roads (two 4 m lanes)."""
STREET_FACADE_HALF_M = 7.0
"""Distance from a road's centre line to the building line (a 3 m pavement each side)."""
STREET_START_X_M = -12.0
STREET_END_Y_M = 126.0
"""Far end of the second road, closed by a building."""
STREET_TEXEL_M = 0.03
STREET_SIDE_TEXEL_M = 0.05
STREET_GROUND_TEXEL_M = 0.04
CAR_TEXEL_M = 0.02
_BLOCK_DEPTH_M = 6.0  # how far each building reaches behind the building line
_FACADE = _Look(density_per_m2=18.0, scale=2.0)
_ASPHALT = _Look(density_per_m2=25.0, gain=0.7, scale=0.8)
_PAVEMENT = _Look(density_per_m2=20.0, gain=0.9, scale=1.3)
_CAR_SIZE_M = (4.3, 1.8, 1.5)
# parked cars: (along-road position m, side +1 left / -1 right, yaw jitter deg) per road
_CARS_ROAD1 = ((12.0, -1, 2.0), (20.0, 1, -3.0), (31.0, -1, 0.0), (44.0, -1, -2.0),
               (52.0, 1, 3.0), (64.0, 1, 0.0))  # fmt: skip
_CARS_ROAD2 = ((28.0, 1, -2.0), (40.0, -1, 1.5), (57.0, 1, 0.0), (75.0, -1, -3.0),
               (92.0, 1, 2.0))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Building:
    """One building of a street side: along-road span, setback behind the line, height."""

    start_m: float
    width_m: float
    setback_m: float
    height_m: float


def _street_buildings(rng: np.random.Generator, length_m: float) -> list[_Building]:
    """Buildings filling ``length_m`` of building line: 3.5-7.5 m wide, 8-15 m high, some set
    back, a few deep low gaps (courtyards closed by a wall); flush at both ends (corners)."""
    out: list[_Building] = []
    start = 0.0
    while start < length_m - 1e-9:
        width = float(rng.uniform(3.5, 7.5))
        if length_m - (start + width) < 3.5:
            width = length_m - start
        kind = rng.random()
        if kind < 0.12:
            setback, height = float(rng.uniform(4.0, 5.5)), float(rng.uniform(3.0, 5.0))
            width = min(width, 4.5)
        elif kind < 0.45:
            setback, height = float(rng.uniform(0.4, 2.0)), float(rng.uniform(8.0, 15.0))
        else:
            setback, height = 0.0, float(rng.uniform(8.0, 15.0))
        out.append(_Building(start, width, setback, height))
        start += width
    first, last = out[0], out[-1]
    out[0] = _Building(first.start_m, first.width_m, 0.0, max(first.height_m, 8.0))
    out[-1] = _Building(last.start_m, last.width_m, 0.0, max(last.height_m, 8.0))
    return out


def _street_side(
    builder: _Builder,
    rng: np.random.Generator,
    key: str,
    start_xy_m: tuple[float, float],
    along: np.ndarray,
    inward: np.ndarray,
    length_m: float,
) -> None:
    """One side of a road: buildings along ``along`` from ``start_xy_m`` on the building
    line, their fronts facing ``inward`` (towards the road), with the side walls that steps in
    the setback or the skyline expose, and the ground in front of set-back buildings."""
    ez = np.array([0.0, 0.0, 1.0])
    origin = np.array([start_xy_m[0], start_xy_m[1], 0.0])
    buildings = _street_buildings(rng, length_m)
    for k, b in enumerate(buildings):
        mid = origin + along * (b.start_m + 0.5 * b.width_m) - inward * b.setback_m
        size = (b.width_m, b.height_m)
        builder.face(
            mid + ez * (0.5 * b.height_m), inward, -ez, size, f"{key}{k}", STREET_TEXEL_M, _FACADE
        )
        if b.setback_m > 0.0:
            ground = mid + inward * (0.5 * b.setback_m)
            builder.face(
                ground,
                ez,
                inward,
                (b.width_m, b.setback_m),
                f"{key}{k}g",
                STREET_GROUND_TEXEL_M,
                _PAVEMENT,
            )
    for k, (a, b) in enumerate(itertools.pairwise(buildings)):
        at = origin + along * b.start_m
        # the nearer building's side wall between the two building lines, facing the other
        near, far = (a, b) if a.setback_m < b.setback_m else (b, a)
        facing = along if near is a else -along
        depth = far.setback_m - near.setback_m
        if depth > 0.0:
            center = at - inward * (near.setback_m + 0.5 * depth) + ez * (0.5 * near.height_m)
            builder.face(
                center,
                facing,
                -ez,
                (depth, near.height_m),
                f"{key}{k}s",
                STREET_SIDE_TEXEL_M,
                _FACADE,
            )
        # the taller building's side wall above the lower roof, back to the block's depth
        low, high = (a, b) if a.height_m < b.height_m else (b, a)
        rise = high.height_m - low.height_m
        front = max(a.setback_m, b.setback_m)
        if rise > 0.0 and front < _BLOCK_DEPTH_M:
            span = _BLOCK_DEPTH_M - front
            center = at - inward * (front + 0.5 * span) + ez * (low.height_m + 0.5 * rise)
            facing = along if high is a else -along
            builder.face(
                center, facing, -ez, (span, rise), f"{key}{k}u", STREET_SIDE_TEXEL_M, _FACADE
            )


def _street_ground(
    builder: _Builder,
    key: str,
    lo_xy: tuple[float, float],
    hi_xy: tuple[float, float],
    look: _Look,
) -> None:
    """The rectangle [lo, hi] of ground, in pieces at most 10 m long, each its own texture."""
    ez = np.array([0.0, 0.0, 1.0])
    lo, hi = np.array(lo_xy), np.array(hi_xy)
    long_axis = 0 if hi[0] - lo[0] >= hi[1] - lo[1] else 1
    length = hi[long_axis] - lo[long_axis]
    n_pieces = max(1, math.ceil(length / 10.0))
    step = length / n_pieces
    for k in range(n_pieces):
        a, b = lo.copy(), hi.copy()
        a[long_axis] = lo[long_axis] + k * step
        b[long_axis] = a[long_axis] + step
        center = np.array([0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1]), 0.0])
        # axis_v along +y, axis_u = axis_v x normal = +x
        size = (float(b[0] - a[0]), float(b[1] - a[1]))
        builder.face(
            center, ez, np.array([0.0, 1.0, 0.0]), size, f"{key}{k}", STREET_GROUND_TEXEL_M, look
        )


def _street_cars() -> tuple[Box, ...]:
    kerb = STREET_ROAD_HALF_M + 0.5 * _CAR_SIZE_M[1] + 0.1  # on the pavement's edge
    cars = [Box((x, side * kerb), _CAR_SIZE_M, jitter) for x, side, jitter in _CARS_ROAD1]
    cars += [
        Box((STREET_CROSS_X_M - side * kerb, y), _CAR_SIZE_M, 90.0 + jitter)
        for y, side, jitter in _CARS_ROAD2
    ]
    return tuple(cars)


def _street(seed: int) -> Scene:
    builder = _Builder(seed)
    layout_rng = np.random.default_rng(0x57EE7)  # the same streets for every seed
    ex, ey = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    cx, road, line = STREET_CROSS_X_M, STREET_ROAD_HALF_M, STREET_FACADE_HALF_M
    x0, y1 = STREET_START_X_M, STREET_END_Y_M
    # road 1 along +x (right side is -y), road 2 along +y from the corner (right side is +x)
    _street_side(builder, layout_rng, "r1R", (x0, -line), ex, ey, cx + line - x0)
    _street_side(builder, layout_rng, "r1L", (x0, line), ex, -ey, cx - line - x0)
    _street_side(builder, layout_rng, "r2R", (cx + line, -line), ey, -ex, y1 + line)
    _street_side(builder, layout_rng, "r2L", (cx - line, line), ey, ex, y1 - line)
    # the building closing the far end of road 2
    end = np.array([cx, y1, 6.0])
    builder.face(
        end, -ey, np.array([0.0, 0.0, -1.0]), (2 * line, 12.0), "end", STREET_TEXEL_M, _FACADE
    )
    _street_ground(builder, "a1:", (x0, -road), (cx + road, road), _ASPHALT)
    _street_ground(builder, "a2:", (cx - road, road), (cx + road, y1), _ASPHALT)
    _street_ground(builder, "p1R:", (x0, -line), (cx + line, -road), _PAVEMENT)
    _street_ground(builder, "p1L:", (x0, road), (cx - road, line), _PAVEMENT)
    _street_ground(builder, "p2R:", (cx + road, -road), (cx + line, y1), _PAVEMENT)
    _street_ground(builder, "p2L:", (cx - line, line), (cx - road, y1), _PAVEMENT)
    cars = _street_cars()
    for i, car in enumerate(cars):
        builder.box(car, f"car{i}", CAR_TEXEL_M)
    bounds = np.array([[x0, -line - _BLOCK_DEPTH_M, 0.0], [cx + line + _BLOCK_DEPTH_M, y1, 15.0]])
    return builder.finish("street", bounds, cars)
