"""Procedural surface textures and the mip-mapped atlas the renderer samples.

Textures are generated in code from a seeded generator, never read from files. Each surface
gets its own palette, shape mix and density, so places look different: colour washes and
blobs at several scales, random rectangles (axis-aligned and rotated), discs, rings,
triangles, thick line junctions and small checkerboards, plus fine grain. Every texture is
band-limited by a small Gaussian blur so bilinear sampling is a faithful interpolant and
sub-pixel positions in rendered images are well defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHAPE_KINDS = ("rect", "disc", "ring", "checker", "triangle", "lines")
_SHIFT = 4  # cv2 drawing: 4 fractional bits for sub-texel vertex positions
_ONE = 1 << _SHIFT


def make_texture(
    rng: np.random.Generator,
    height_px: int,
    width_px: int,
    texel_m: float,
    *,
    density_per_m2: float = 70.0,
    gain: float = 1.0,
    scale: float = 1.0,
) -> np.ndarray:
    """A ``height_px`` x ``width_px`` x 3 uint8 RGB texture whose texels are ``texel_m`` wide.

    Shape sizes are physical (2.5 cm to 35 cm, times ``scale``), so the look of a surface
    does not depend on its texel size. ``gain`` scales the brightness (a baked, per-surface
    shading term); ``scale`` enlarges shapes and colour washes (building-sized surfaces).
    """
    import cv2

    if height_px <= 0 or width_px <= 0:
        raise ValueError(f"texture size must be positive, got {width_px}x{height_px}")
    h, w = height_px, width_px
    base = rng.uniform(70.0, 185.0, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base.astype(np.float32)
    img += _smooth_noise(rng, h, w, max(2.0, 0.7 * scale / texel_m), 3) * 26.0
    img += _smooth_noise(rng, h, w, max(2.0, 0.09 * scale / texel_m), 1) * 20.0
    canvas = np.clip(img, 0.0, 255.0).astype(np.uint8)

    area_m2 = h * w * texel_m * texel_m
    weights = rng.dirichlet(np.full(len(SHAPE_KINDS), 1.2))
    count = int(rng.poisson(area_m2 * density_per_m2 * rng.uniform(0.7, 1.3)))
    params = _ShapeParams.draw(
        rng, count, weights, w, h, size_min=0.025 * scale / texel_m, size_max=0.35 * scale / texel_m
    )
    for i in range(count):
        _draw_shape(canvas, params, i)

    out = canvas.astype(np.float32)
    out += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(5.0)
    if gain != 1.0:
        out *= np.float32(gain)
    blurred = cv2.GaussianBlur(out, (0, 0), 0.7)
    return np.clip(blurred + 0.5, 0.0, 255.0).astype(np.uint8)


def _smooth_noise(
    rng: np.random.Generator, h: int, w: int, cell_px: float, channels: int
) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over ``cell_px`` texels, shape (h, w, channels)."""
    import cv2

    gh = max(2, math.ceil(h / cell_px) + 2)
    gw = max(2, math.ceil(w / cell_px) + 2)
    grid = rng.standard_normal((gh, gw, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3) colours that are clearly dark or bright (luminance contrast, not only hue)."""
    dark = rng.random(count) < 0.5
    lum = np.where(dark, rng.uniform(15.0, 95.0, count), rng.uniform(160.0, 245.0, count))
    chroma = rng.normal(0.0, 35.0, (count, 3))
    chroma -= chroma.mean(axis=1, keepdims=True)
    return np.clip(lum[:, None] + chroma, 0.0, 255.0)


@dataclass(frozen=True, eq=False)
class _ShapeParams:
    """Every random number the shapes of one texture need, drawn in bulk (arrays of count)."""

    kind: list[int]
    cx: list[float]
    cy: list[float]
    size: list[float]
    angle: list[float]
    aspect: list[float]
    colour: list[tuple[float, float, float]]
    colour2: list[tuple[float, float, float]]
    cells: list[int]
    extra: np.ndarray  # (count, 6) uniforms in [0, 1) for per-kind details

    @staticmethod
    def draw(
        rng: np.random.Generator,
        count: int,
        weights: np.ndarray,
        width: int,
        height: int,
        *,
        size_min: float,
        size_max: float,
    ) -> _ShapeParams:
        axis_aligned = rng.random(count) < 0.5
        angle = np.where(axis_aligned, 0.0, rng.uniform(0.0, math.pi, count))

        def tuples(a: np.ndarray) -> list[tuple[float, float, float]]:
            return [(float(r[0]), float(r[1]), float(r[2])) for r in a]

        return _ShapeParams(
            kind=rng.choice(len(SHAPE_KINDS), size=count, p=weights).tolist(),
            cx=(rng.uniform(-0.05, 1.05, count) * width).tolist(),
            cy=(rng.uniform(-0.05, 1.05, count) * height).tolist(),
            size=np.exp(rng.uniform(math.log(size_min), math.log(size_max), count)).tolist(),
            angle=angle.tolist(),
            aspect=np.exp(rng.uniform(-1.0, 1.0, count)).tolist(),
            colour=tuples(_colours(rng, count)),
            colour2=tuples(_colours(rng, count)),
            cells=rng.integers(2, 7, count).tolist(),
            extra=rng.random((count, 6)),
        )


def _poly(points: list[tuple[float, float]]) -> np.ndarray:
    return np.array([(round(x * _ONE), round(y * _ONE)) for x, y in points], np.int32)


def _rotated_rect(
    cx: float, cy: float, half_w: float, half_h: float, angle: float
) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    out = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        lx, ly = sx * half_w, sy * half_h
        out.append((cx + c * lx - s * ly, cy + s * lx + c * ly))
    return out


def _draw_shape(canvas: np.ndarray, p: _ShapeParams, i: int) -> None:
    import cv2

    aa = cv2.LINE_AA
    kind = SHAPE_KINDS[p.kind[i]]
    cx, cy, size, angle, colour = p.cx[i], p.cy[i], p.size[i], p.angle[i], p.colour[i]
    extra = p.extra[i]
    center_fx = (round(cx * _ONE), round(cy * _ONE))
    if kind == "rect":
        root = math.sqrt(p.aspect[i])
        poly = _rotated_rect(cx, cy, 0.5 * size * root, 0.5 * size / root, angle)
        cv2.fillConvexPoly(canvas, _poly(poly), colour, aa, _SHIFT)
    elif kind == "disc":
        axes = (round(0.5 * size * _ONE), round(0.5 * size * (0.5 + 0.5 * extra[0]) * _ONE))
        cv2.ellipse(canvas, center_fx, axes, math.degrees(angle), 0, 360, colour, -1, aa, _SHIFT)
    elif kind == "ring":
        radius = 0.5 * size
        cv2.circle(
            canvas, center_fx, round(radius * _ONE), colour, max(2, int(radius / 3)), aa, _SHIFT
        )
    elif kind == "checker":
        cells = p.cells[i]
        cell = size / cells
        c, s = math.cos(angle), math.sin(angle)
        x0 = cx - 0.5 * size * (c - s)
        y0 = cy - 0.5 * size * (s + c)
        cv2.fillConvexPoly(
            canvas, _poly(_rotated_rect(cx, cy, 0.5 * size, 0.5 * size, angle)), colour, aa, _SHIFT
        )
        other = p.colour2[i]
        for a in range(cells):
            for b in range((a + 1) % 2, cells, 2):
                px = x0 + (a * c - b * s) * cell
                py = y0 + (a * s + b * c) * cell
                square = [
                    (px, py),
                    (px + c * cell, py + s * cell),
                    (px + (c - s) * cell, py + (s + c) * cell),
                    (px - s * cell, py + c * cell),
                ]
                cv2.fillConvexPoly(canvas, _poly(square), other, aa, _SHIFT)
    elif kind == "triangle":
        angles = sorted(2 * math.pi * float(e) for e in extra[:3])
        radii = [0.5 * size * (0.6 + 0.4 * float(e)) for e in extra[3:6]]
        tri = [
            (cx + r * math.cos(t), cy + r * math.sin(t)) for r, t in zip(radii, angles, strict=True)
        ]
        cv2.fillConvexPoly(canvas, _poly(tri), colour, aa, _SHIFT)
    else:  # "lines": an L, T or X junction of thick strokes from the centre
        thickness = max(2, int(size * (0.06 + 0.09 * extra[0])))
        for e in extra[1 : 1 + 2 + int(extra[5] * 2)]:
            direction = 2 * math.pi * float(e)
            end = (
                round((cx + 0.5 * size * math.cos(direction)) * _ONE),
                round((cy + 0.5 * size * math.sin(direction)) * _ONE),
            )
            cv2.line(canvas, center_fx, end, colour, thickness, aa, _SHIFT)


# --------------------------------------------------------------------------- atlas


@dataclass(frozen=True, eq=False)
class TextureAtlas:
    """All textures packed in one level-0 image plus its mip levels, for ``cv2.remap``.

    image: (H0, 2 * W0, 4) uint8 RGBX (the 4th channel is padding: 4-channel remaps are
    faster). Columns [0, W0) hold level 0, where texture ``t`` (generated with ``pad_px``
    extra texels of real content on each side) starts at ``origin_px[t]`` (x, y). Level ``l``
    is level 0 reduced ``l`` times by ``cv2.pyrDown`` (Gaussian, zero phase; W0 and H0 are
    multiples of 2**levels) and sits at x = 2 W0 (1 - 2**-l), y = 0. So a level-0 index
    coordinate (x0, y0) is (2 W0 + (x0 - 2 W0) / 2**l, y0 / 2**l) at level ``l``: one affine
    map per level, the same for every texture. Textures are at least ``gap_px`` apart.
    """

    image: np.ndarray
    origin_px: np.ndarray
    sizes_px: tuple[tuple[int, int], ...]
    pad_px: int
    levels: int
    level0_width_px: int


def build_atlas(
    textures: list[np.ndarray], pad_px: int, levels: int, gap_px: int = 8
) -> TextureAtlas:
    """Pack ``textures`` (each already including ``pad_px`` texels of margin) and their mips."""
    import cv2

    if not textures:
        raise ValueError("no textures to pack")
    align = 2**levels
    sizes = [(int(t.shape[1]), int(t.shape[0])) for t in textures]
    total = sum((tw + gap_px) * (th + gap_px) for tw, th in sizes)
    widest = max(tw for tw, _ in sizes) + gap_px
    best: tuple[int, int, np.ndarray] | None = None
    for factor in np.linspace(0.8, 1.6, 17):
        candidate = max(widest, math.ceil(math.sqrt(total) * factor))
        candidate = math.ceil(candidate / align) * align
        origin_c, height_c = _shelf_pack(sizes, candidate, gap_px)
        height_c = math.ceil(height_c / align) * align
        if best is None or candidate * height_c < best[0] * best[1]:
            best = (candidate, height_c, origin_c)
    assert best is not None
    width0, height0, origin = best
    if 2 * width0 >= 32767 or height0 >= 32767:
        raise ValueError(f"texture atlas too large for cv2.remap: {2 * width0}x{height0}")
    image = np.zeros((height0, 2 * width0, 4), np.uint8)
    for i, texture in enumerate(textures):
        ox, oy = int(origin[i, 0]), int(origin[i, 1])
        image[oy : oy + texture.shape[0], ox : ox + texture.shape[1], :3] = texture
    level_image: np.ndarray = image[:, :width0]
    for level in range(1, levels):
        level_image = np.asarray(cv2.pyrDown(level_image))
        x_level = 2 * width0 - 2 * width0 // 2**level
        image[: level_image.shape[0], x_level : x_level + level_image.shape[1]] = level_image
    image.setflags(write=False)  # shared by every renderer of the scene
    origin.setflags(write=False)
    return TextureAtlas(image, origin, tuple(sizes), pad_px, levels, width0)


def _shelf_pack(sizes: list[tuple[int, int]], width: int, gap_px: int) -> tuple[np.ndarray, int]:
    """Origins (N, 2) of blocks (w, h) packed in shelves, tallest first; and the used height."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][1], -sizes[i][0]))
    origin = np.zeros((len(sizes), 2), np.float32)
    x, y, shelf_h = 0, 0, 0
    for i in order:
        tw, th = sizes[i]
        if x + tw > width:
            x, y, shelf_h = 0, y + shelf_h, 0
        origin[i] = (x, y)
        x += tw + gap_px
        shelf_h = max(shelf_h, th + gap_px)
    return origin, y + shelf_h
