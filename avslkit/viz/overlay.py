"""Heatmap overlays: a score map drawn over its image, with boxes, the prediction contour and a caption.

Everything here works on RGB uint8 arrays (H×W×3). Colours come from matplotlib colormaps, which
return RGB; nothing goes through OpenCV's BGR order, so "hot" (the map's peak) is red in the saved
PNG. Maps are upsampled with the evaluation's rule (bicubic, align_corners=True) and min-max
normalised per image before colouring, so an overlay shows where a map is high relative to itself;
the caption carries the absolute numbers (cIoU, confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avslkit.metrics.maps import EVAL_SIZE, minmax_normalize, parse_binarize, upsample_maps

#: Default colormap (JET, as the published figures).
DEFAULT_CMAP = "jet"
#: Default weight of the heatmap in the blend (0 = image only, 1 = heatmap only).
DEFAULT_HEAT_ALPHA = 0.5
BOX_COLOUR = (0, 255, 0)
CONTOUR_COLOUR = (255, 255, 255)
TEXT_COLOUR = (255, 255, 255)
TEXT_BACKGROUND = (0, 0, 0)


def colorize(map01: np.ndarray, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """A [0, 1] map (H×W) → RGB uint8 (H×W×3) through a matplotlib colormap (RGB order)."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.clip(np.asarray(map01, dtype=np.float64), 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def resize_image(image: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """RGB uint8 image → size×size (bicubic, aspect not kept: the evaluation's view)."""
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def map_on_grid(score_map: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """One absolute score map (h×w) upsampled to size×size with the evaluation's rule."""
    return upsample_maps(np.asarray(score_map, dtype=np.float32)[None], size)[0]


def normalize01(score_map: np.ndarray) -> np.ndarray:
    """Per-map min-max to [0, 1] (a constant map becomes zeros), as the evaluation does."""
    return minmax_normalize(np.asarray(score_map, dtype=np.float32)[None])[0]


def prediction_mask(score_map: np.ndarray, binarize: str = "relative", size: int = EVAL_SIZE) -> np.ndarray:
    """The evaluated binary prediction (bool size×size) of an absolute map under a --binarize spec."""
    rule, value = parse_binarize(binarize)
    grid = map_on_grid(score_map, size)
    return np.asarray(rule.fn((grid if rule.on_raw else normalize01(grid))[None], value))[0].astype(bool)


def heatmap_overlay(image: np.ndarray, score_map: np.ndarray, size: int = EVAL_SIZE,
                    heat_alpha: float = DEFAULT_HEAT_ALPHA, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Blend the colourised, min-max normalised map over the image resized to size×size (RGB uint8)."""
    base = resize_image(image, size).astype(np.float32)
    heat = colorize(normalize01(map_on_grid(score_map, size)), cmap).astype(np.float32)
    return np.clip((1.0 - heat_alpha) * base + heat_alpha * heat + 0.5, 0, 255).astype(np.uint8)


def mask_contour(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a binary mask (inside pixels with a 4-neighbour outside or on the border)."""
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~interior


@dataclass
class Annotated:
    """What `annotate` draws on top of an overlay (all optional)."""

    boxes: np.ndarray | None = None  # K×4 normalised x1, y1, x2, y2
    gt_map: np.ndarray | None = None  # size×size map drawn as a contour when there are no boxes
    prediction: np.ndarray | None = None  # bool size×size: contour drawn
    caption: str = ""


def annotate(overlay: np.ndarray, extra: Annotated) -> np.ndarray:
    """Draw ground-truth boxes (green), the prediction contour (white) and a caption (top-left)."""
    from PIL import Image, ImageDraw

    img = np.array(overlay, dtype=np.uint8, copy=True)
    h, w = img.shape[:2]
    if extra.prediction is not None:
        edge = mask_contour(resize_mask(extra.prediction, (h, w)))
        img[edge] = CONTOUR_COLOUR
    if extra.gt_map is not None and (extra.boxes is None or len(extra.boxes) == 0):
        edge = mask_contour(resize_mask(np.asarray(extra.gt_map) > 0, (h, w)))
        img[edge] = BOX_COLOUR
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for x1, y1, x2, y2 in np.clip(np.asarray(extra.boxes if extra.boxes is not None else np.zeros((0, 4))), 0, 1):
        draw.rectangle([x1 * (w - 1), y1 * (h - 1), x2 * (w - 1), y2 * (h - 1)], outline=BOX_COLOUR, width=2)
    if extra.caption:
        left, top, right, bottom = draw.multiline_textbbox((2, 2), extra.caption)
        draw.rectangle([0, 0, right + 2, bottom + 2], fill=TEXT_BACKGROUND)
        draw.multiline_text((2, 2), extra.caption, fill=TEXT_COLOUR)
    return np.asarray(pil)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to (H, W)."""
    m = np.asarray(mask, dtype=bool)
    if m.shape == tuple(shape):
        return m
    rows = (np.arange(shape[0]) * m.shape[0] // shape[0]).clip(0, m.shape[0] - 1)
    cols = (np.arange(shape[1]) * m.shape[1] // shape[1]).clip(0, m.shape[1] - 1)
    return m[rows][:, cols]


def caption_for(ciou: float | None = None, confidence: float | None = None, title: str = "") -> str:
    """Corner text: an optional title line, then cIoU and confidence when known."""
    parts = []
    if ciou is not None and np.isfinite(ciou):
        parts.append(f"cIoU {ciou:.2f}")
    if confidence is not None and np.isfinite(confidence):
        parts.append(f"conf {confidence:.3g}")
    lines = [title] if title else []
    if parts:
        lines.append("  ".join(parts))
    return "\n".join(lines)


def render_sample(image: np.ndarray, score_map: np.ndarray, *, boxes: np.ndarray | None = None,
                  gt_map: np.ndarray | None = None, binarize: str | None = "relative", ciou: float | None = None,
                  confidence: float | None = None, title: str = "", size: int = EVAL_SIZE,
                  heat_alpha: float = DEFAULT_HEAT_ALPHA, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """The full overlay of one sample: heatmap, GT boxes, binary prediction contour, caption."""
    on_grid = map_on_grid(score_map, size)  # upsample once; both steps below take a size×size map as is
    over = heatmap_overlay(image, on_grid, size, heat_alpha, cmap)
    pred = prediction_mask(on_grid, binarize, size) if binarize else None
    return annotate(over, Annotated(boxes, gt_map, pred, caption_for(ciou, confidence, title)))


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 array as PNG (parents created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path


def grid(tiles: Sequence[Sequence[np.ndarray]], pad: int = 2, background: int = 255,
         col_titles: Sequence[str] | None = None, title_height: int = 14) -> np.ndarray:
    """Rows of equally sized RGB tiles → one image, with optional column titles on top."""
    from PIL import Image, ImageDraw

    rows = [list(r) for r in tiles if len(r)]
    if not rows:
        raise ValueError("grid needs at least one tile")
    th, tw = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    top = title_height if col_titles else 0
    out = np.full((top + len(rows) * (th + pad) + pad, ncols * (tw + pad) + pad, 3), background, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = top + pad + i * (th + pad), pad + j * (tw + pad)
            out[y:y + th, x:x + tw] = resize_image(tile, th) if tile.shape[:2] != (th, tw) else tile
    if col_titles:
        pil = Image.fromarray(out)
        draw = ImageDraw.Draw(pil)
        for j, name in enumerate(col_titles):
            draw.text((pad + j * (tw + pad) + 2, 1), str(name), fill=(0, 0, 0))
        out = np.asarray(pil)
    return out
