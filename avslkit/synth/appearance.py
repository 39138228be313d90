"""What objects and backgrounds look like: shapes, surface textures, colours and background patterns.

Everything is vectorised numpy on a normalised sprite grid (u, v in [-1, 1], v pointing down).
Object colours are saturated (HSV saturation 0.85) and backgrounds muted (saturation <= 0.25), so an
object's hue can be told apart from the background in a decoded frame, which the tests rely on.
"""

from __future__ import annotations

import colorsys
from typing import Callable, Dict

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
TextureFn = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]
BackgroundFn = Callable[[np.random.Generator, int, int], np.ndarray]

OBJECT_SATURATION = 0.85
OBJECT_VALUE = 0.95
BACKGROUND_MAX_SATURATION = 0.25
SUPERSAMPLE = 3  # anti-aliasing: shapes are evaluated on a 3x finer grid and averaged


def _regular_polygon(sides: int, rotation: float = -np.pi / 2) -> ShapeFn:
    """A regular polygon inscribed in the unit circle, one vertex at `rotation`."""
    apothem = np.cos(np.pi / sides)

    def shape(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        angle = np.arctan2(v, u) - rotation
        sector = 2 * np.pi / sides
        local = np.mod(angle + sector / 2, sector) - sector / 2
        return np.hypot(u, v) * np.cos(local) <= apothem

    return shape


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    radius = np.hypot(u, v)
    angle = np.arctan2(v, u) + np.pi / 2
    return radius <= 0.55 + 0.45 * np.cos(5 * angle) ** 2


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, -1.2 * v + 0.15
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u**2 + v**2 <= 1) & ((u - 0.5) ** 2 + v**2 > 0.75**2)


# Shape registry: name -> indicator on the normalised grid (should touch the grid's edges).
SHAPES: Dict[str, ShapeFn] = {
    "disc": lambda u, v: u**2 + v**2 <= 1,
    "square": lambda u, v: u**6 + v**6 <= 1,
    "triangle": lambda u, v: (v <= 1) & (np.abs(u) <= (v + 1) / 2),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1,
    "star": _star,
    "hexagon": _regular_polygon(6, 0.0),
    "ring": lambda u, v: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.45**2),
    "cross": lambda u, v: ((np.abs(u) <= 0.36) | (np.abs(v) <= 0.36)) & (np.abs(u) <= 1) & (np.abs(v) <= 1),
    "crescent": _crescent,
    "heart": _heart,
    "capsule": lambda u, v: (np.maximum(np.abs(u) - 0.5, 0) / 0.5) ** 2 + v**2 <= 1,
    "pentagon": _regular_polygon(5),
}


def _smooth_square(x: np.ndarray) -> np.ndarray:
    """A square wave with soft edges in [0, 1] (keeps H.264 from ringing too much)."""
    return 0.5 + 0.5 * np.tanh(3 * np.sin(x))


# Texture registry: (u, v, angle, phase) -> shading factor in [0, 1]. Brightness only, so hue is kept.
TEXTURES: Dict[str, TextureFn] = {
    "solid": lambda u, v, a, p: np.ones_like(u),
    "stripes": lambda u, v, a, p: _smooth_square(4.5 * (u * np.cos(a) + v * np.sin(a)) + p),
    "checker": lambda u, v, a, p: 0.5 + 0.5 * np.tanh(3 * np.sin(3.5 * u + p) * np.sin(3.5 * v + p)),
    "dots": lambda u, v, a, p: 1 - 0.9 * (np.hypot(np.mod(u * 2.2 + p, 1) - 0.5, np.mod(v * 2.2, 1) - 0.5) < 0.25),
    "rings": lambda u, v, a, p: _smooth_square(7 * np.hypot(u, v) + p),
    "gradient": lambda u, v, a, p: 0.5 + 0.25 * (u * np.cos(a) + v * np.sin(a)),
    "waves": lambda u, v, a, p: _smooth_square(4 * u + 1.5 * np.sin(3 * v + p)),
}


def hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV in [0, 1] -> float RGB in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def object_rgb(hue: float) -> np.ndarray:
    """The fully lit colour of an object class with this hue."""
    return hsv_to_rgb(hue, OBJECT_SATURATION, OBJECT_VALUE)


def render_sprite(
    shape: str,
    texture: str,
    hue: float,
    width: int,
    height: int,
    texture_angle: float = 0.0,
    texture_phase: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one object: returns (premultiplied RGB float32 HxWx3 in [0, 1], alpha float32 HxW)."""
    ss = SUPERSAMPLE
    ys = (np.arange(height * ss, dtype=np.float32) + 0.5) / (height * ss) * 2 - 1
    xs = (np.arange(width * ss, dtype=np.float32) + 0.5) / (width * ss) * 2 - 1
    u, v = np.meshgrid(xs, ys)
    inside = SHAPES[shape](u, v).astype(np.float32)
    alpha = inside.reshape(height, ss, width, ss).mean(axis=(1, 3))
    uc, vc = u[ss // 2 :: ss, ss // 2 :: ss], v[ss // 2 :: ss, ss // 2 :: ss]
    shade = TEXTURES[texture](uc, vc, texture_angle, texture_phase)
    # Soft "lighting" from the top-left gives the flat shapes some volume.
    light = 1.0 - 0.12 * (uc + vc) / 2
    brightness = np.clip((0.55 + 0.45 * shade) * light, 0.35, 1.0).astype(np.float32)
    rgb = object_rgb(hue)[None, None, :] * brightness[..., None]
    return (rgb * alpha[..., None]).astype(np.float32), alpha.astype(np.float32)


def alpha_box(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """Tight box (x1, y1, x2, y2), exclusive ends, of the pixels with alpha >= threshold."""
    rows = np.flatnonzero((alpha >= threshold).any(axis=1))
    cols = np.flatnonzero((alpha >= threshold).any(axis=0))
    if rows.size == 0:
        return 0, 0, alpha.shape[1], alpha.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# ----------------------------------------------------------------------------------------------
# Backgrounds: a field in [0, 1] per pattern, mixed between two muted colours, plus static grain.


def _upsample(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a coarse grid to height x width (vectorised)."""
    gh, gw = field.shape
    y = np.linspace(0, gh - 1, height)
    x = np.linspace(0, gw - 1, width)
    y0 = np.clip(np.floor(y).astype(int), 0, gh - 2)
    x0 = np.clip(np.floor(x).astype(int), 0, gw - 2)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    top = field[y0][:, x0] * (1 - fx) + field[y0][:, x0 + 1] * fx
    bottom = field[y0 + 1][:, x0] * (1 - fx) + field[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _normalise(field: np.ndarray) -> np.ndarray:
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo + 1e-8)


def _bg_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    field = np.zeros((height, width))
    for octave, cells in enumerate((3, 6, 12, 24)):
        field += _upsample(rng.random((cells + 1, cells + 1)), height, width) / (2**octave)
    return _normalise(field)


def _bg_gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    return _normalise(np.cos(angle) * xx + np.sin(angle) * yy + 0.15 * _bg_noise(rng, height, width))


def _bg_stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.06, 0.25) * max(height, width)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = (np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period
    return _normalise(0.5 + 0.5 * np.tanh(2 * np.sin(phase)) + 0.2 * _bg_noise(rng, height, width))


def _bg_blobs(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.zeros((height, width), dtype=np.float32)
    for _ in range(int(rng.integers(4, 10))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(0.05, 0.2) * max(height, width)
        field += rng.uniform(0.4, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return _normalise(field + 0.1 * _bg_noise(rng, height, width))


def _bg_tiles(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    tile = int(rng.integers(max(4, max(height, width) // 14), max(5, max(height, width) // 5)))
    yy, xx = np.mgrid[0:height, 0:width]
    coarse = rng.random((height // tile + 2, width // tile + 2))
    return _normalise(coarse[yy // tile, xx // tile] + 0.15 * _bg_noise(rng, height, width))


# Background registry: name -> (rng, height, width) -> field in [0, 1].
BACKGROUNDS: Dict[str, BackgroundFn] = {
    "noise": _bg_noise,
    "gradient": _bg_gradient,
    "stripes": _bg_stripes,
    "blobs": _bg_blobs,
    "tiles": _bg_tiles,
}


def render_background(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted textured background, uint8 HxWx3."""
    field = BACKGROUNDS[kind](rng, height, width).astype(np.float32)
    hue = rng.random()
    dark = hsv_to_rgb(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.0, BACKGROUND_MAX_SATURATION), rng.uniform(0.2, 0.45))
    light = hsv_to_rgb(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.0, BACKGROUND_MAX_SATURATION), rng.uniform(0.55, 0.9))
    image = dark[None, None, :] * (1 - field[..., None]) + light[None, None, :] * field[..., None]
    grain = rng.normal(0.0, 0.015, size=(height, width, 1)).astype(np.float32)
    return (np.clip(image + grain, 0, 1) * 255 + 0.5).astype(np.uint8)
