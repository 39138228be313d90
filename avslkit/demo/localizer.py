"""The demo's model side: AV and OGL maps once per upload, then cheap re-fusion for any α.

`DemoLocalizer.analyze(frame, audio)` runs `avslkit.inference.Localizer` (the one inference path:
the run's fusion rule and τ, the evaluation's 224×224 grid, the frame as preprocessing stores it) and
returns an `Analysis`; `fused(analysis, alpha)` re-fuses it without a network call, so moving the
page's α slider costs a few milliseconds. Confidence is the evaluation's: mean of the top 25% of the
absolute map (`avslkit.metrics.maps.confidence`).
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from avslkit.config_spec import train_config
from avslkit.errors import AvslError
from avslkit.inference import DEFAULT_FUSION, METHOD_FUSION, Localizer, MapSet, load_ogl
from avslkit.metrics.maps import confidence

__all__ = ["DEFAULT_FUSION", "METHOD_FUSION", "Analysis", "DemoLocalizer"]

DISPLAY_MAX_SIDE = 320  # longer side of the overlays sent to the page
HEATMAP_OPACITY = 0.5  # weight of the heatmap over the frame in the overlays
HEATMAP_COLORMAP = "jet"
RANDOM_OGL_NOTICE = ("OGL uses a randomly initialised ResNet-18 (no --ogl-weights given): its map and the fused map "
                     "are for trying the page only; pass --ogl-weights PATH (ImageNet ResNet-18) for meaningful maps")

#: One upload's maps at 224×224 (`avslkit.inference.MapSet`: av, ogl, fused at the default α, confidences).
Analysis = MapSet


def display_frame(frame: PIL.Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> PIL.Image.Image:
    """The frame at page size (aspect kept, longer side at most `max_side`)."""
    scale = min(1.0, max_side / max(frame.width, frame.height))
    size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
    return frame.resize(size, PIL.Image.Resampling.BICUBIC) if size != frame.size else frame.copy()


def heatmap_overlay(frame: PIL.Image.Image, score_map: np.ndarray, opacity: float = HEATMAP_OPACITY,
                    colormap: str = HEATMAP_COLORMAP) -> PIL.Image.Image:
    """`score_map` min-max normalised (display only), resized to the frame (aspect kept, unlike the
    square evaluation view of `avslkit.viz`), coloured (RGB) and blended over the frame."""
    from avslkit.viz.overlay import colorize, normalize01

    m01 = normalize01(score_map)
    resized = np.asarray(PIL.Image.fromarray(np.asarray(m01, dtype=np.float32)).resize(frame.size, PIL.Image.Resampling.BILINEAR))
    heat = colorize(resized, colormap).astype(np.float32)
    base = np.asarray(frame.convert("RGB"), dtype=np.float32)
    return PIL.Image.fromarray(np.clip((1.0 - opacity) * base + opacity * heat + 0.5, 0, 255).astype(np.uint8))


def png_data_url(image: PIL.Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class DemoLocalizer:
    """A `Localizer` (trained task + OGL prior) ready to analyse single uploads (thread-safe)."""

    def __init__(self, localizer: Localizer, *, ogl_random: bool = False, audio_seconds: float = 3.0):
        self.localizer = localizer
        self.task = localizer.task
        self.method = str(getattr(self.task, "method", "") or train_config(self.task.cfg).method or "")
        self.fusion = localizer.rule
        self.default_alpha = localizer.alpha
        self.tau = localizer.tau
        self.sample_rate = localizer.sample_rate
        self.audio_seconds = float(audio_seconds)
        self.ogl_random = ogl_random
        self._lock = threading.Lock()  # one forward pass at a time (torch modules are not re-entrant)

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, *, ogl_weights: str | Path | None = None, device: str = "cpu",
                        fusion: str | None = None, audio_seconds: float = 3.0) -> "DemoLocalizer":
        """Load a run (best.pt, else last.pt) or checkpoint file; OGL from `ogl_weights` or random (seed 0)."""
        from avslkit.models.ogl import FUSIONS

        if fusion is not None and fusion not in FUSIONS:
            raise AvslError(f"unknown fusion rule '{fusion}'; choose one of {', '.join(sorted(FUSIONS))}")
        return cls(Localizer.from_checkpoint(ckpt, device, ogl_weights=ogl_weights, rule=fusion),
                   ogl_random=not ogl_weights, audio_seconds=audio_seconds)

    def info(self) -> dict[str, Any]:
        ckpt = getattr(self.task, "checkpoint_info", {}) or {}
        notices = [RANDOM_OGL_NOTICE] if self.ogl_random else []
        return {
            "method": self.method, "checkpoint": str(ckpt.get("path", "")), "checkpoint_why": ckpt.get("why"),
            "epoch": ckpt.get("epoch"), "fusion": self.fusion, "default_alpha": self.default_alpha, "tau": self.tau,
            "sample_rate": self.sample_rate, "audio_seconds": self.audio_seconds, "ogl_random": self.ogl_random,
            "notices": notices,
        }

    def analyze(self, frame: PIL.Image.Image | bytes, audio_int16: np.ndarray) -> Analysis:
        """AV and OGL maps of one frame (stored JPEG bytes, or an image encoded as preprocessing would)."""
        if isinstance(frame, PIL.Image.Image):
            frame = frame.convert("RGB")
        with self._lock:
            return self.localizer.maps([frame], [np.asarray(audio_int16, dtype=np.int16)])[0]

    def fused(self, analysis: Analysis, alpha: float) -> np.ndarray:
        """The fused 224×224 map for weight `alpha` on the AV map."""
        return self.localizer.refuse(analysis, float(alpha))

    @staticmethod
    def confidence(score_map: np.ndarray) -> float:
        return float(confidence(np.asarray(score_map)[None])[0])
