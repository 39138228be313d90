"""The demo's model side: AV and OGL maps once per upload, then cheap re-fusion for any α.

`DemoLocalizer.analyze(frame, audio)` runs the trained task (`task.localization_maps`) and the OGL
objectness prior on one frame, upsamples both to 224×224 (the evaluation's bicubic rule) and
returns an `Analysis`; `fused(analysis, alpha)` mixes them with `avslkit.models.ogl.fuse` (no
network call), so moving the page's α slider costs a few milliseconds. Confidence is the
evaluation's: mean of the top 25% of the absolute fused map (`avslkit.metrics.maps.confidence`).
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
import torch

from avslkit.data.transforms import build_image_transform
from avslkit.errors import AvslError
from avslkit.metrics.maps import EVAL_SIZE, confidence, upsample_maps
from avslkit.models.ogl import FUSIONS, OGL, build_ogl, fuse

OGL_IMAGE_SIZE = 224  # OGL is an ImageNet ResNet-18: 224 input → 7×7 map
DISPLAY_MAX_SIDE = 320  # longer side of the overlays sent to the page
HEATMAP_OPACITY = 0.5  # weight of the heatmap over the frame in the overlays
HEATMAP_COLORMAP = "jet"
# Fusion rule per training method (the rule its paper uses); other methods get DEFAULT_FUSION.
METHOD_FUSION = {"slavc": "slavc", "ezvsl": "ezvsl"}
DEFAULT_FUSION = "slavc"
RANDOM_OGL_NOTICE = ("OGL uses a randomly initialised ResNet-18 (no --ogl-weights given): its map and the fused map "
                     "are for trying the page only; pass --ogl-weights PATH (ImageNet ResNet-18) for meaningful maps")


@dataclass
class Analysis:
    """One upload's maps at 224×224: `av` absolute scores, `ogl` raw OGL (mean |layer4|)."""

    av: np.ndarray
    ogl: np.ndarray


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
    """A trained task plus an OGL prior, ready to analyse single uploads (thread-safe)."""

    def __init__(self, task: Any, ogl: OGL, *, fusion: str | None = None, ogl_random: bool = False,
                 audio_seconds: float = 3.0):
        method = str(getattr(task, "method", "") or task.cfg.get("method", ""))
        self.task = task
        self.device = task.device
        self.ogl = ogl.to(self.device).eval()
        self.fusion = fusion or METHOD_FUSION.get(method, DEFAULT_FUSION)
        if self.fusion not in FUSIONS:
            raise AvslError(f"unknown fusion rule '{self.fusion}'; choose one of {', '.join(sorted(FUSIONS))}")
        self.method = method
        self.default_alpha = FUSIONS[self.fusion].default_alpha
        self.tau = float(task.cfg.get("model", {}).get("tau", 0.03))
        self.image_size = int(task.cfg.get("image_size", 224))
        self.sample_rate = int(task.cfg.get("audio", {}).get("sample_rate") or 16000)
        self.audio_seconds = float(audio_seconds)
        self.ogl_random = ogl_random
        self._av_transform = build_image_transform("test", self.image_size)
        self._ogl_transform = build_image_transform("test", OGL_IMAGE_SIZE)
        self._lock = threading.Lock()  # one forward pass at a time (torch modules are not re-entrant)

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, *, ogl_weights: str | Path | None = None, device: str = "cpu",
                        fusion: str | None = None, audio_seconds: float = 3.0) -> "DemoLocalizer":
        """Load a run (best.pt, else last.pt) or checkpoint file; OGL from `ogl_weights` or random."""
        from avslkit.methods.inference import load_task_for_inference

        task = load_task_for_inference(ckpt, device)
        if ogl_weights:
            ogl = build_ogl(ogl_weights)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # the same random OGL on every start
                ogl = build_ogl("none")
        return cls(task, ogl, fusion=fusion, ogl_random=not ogl_weights, audio_seconds=audio_seconds)

    def info(self) -> dict[str, Any]:
        ckpt = getattr(self.task, "checkpoint_info", {}) or {}
        notices = [RANDOM_OGL_NOTICE] if self.ogl_random else []
        return {
            "method": self.method, "checkpoint": str(ckpt.get("path", "")), "checkpoint_why": ckpt.get("why"),
            "epoch": ckpt.get("epoch"), "fusion": self.fusion, "default_alpha": self.default_alpha, "tau": self.tau,
            "sample_rate": self.sample_rate, "audio_seconds": self.audio_seconds, "ogl_random": self.ogl_random,
            "notices": notices,
        }

    def analyze(self, frame: PIL.Image.Image, audio_int16: np.ndarray) -> Analysis:
        """AV map (the task's absolute scores) and raw OGL map of one frame, both at 224×224."""
        frame = frame.convert("RGB")
        image = self._av_transform(frame).unsqueeze(0)
        ogl_image = self._ogl_transform(frame).unsqueeze(0).to(self.device)
        wave = torch.from_numpy(np.asarray(audio_int16, dtype=np.float32) / 32768.0).unsqueeze(0)
        with self._lock, torch.no_grad():
            av = self.task.localization_maps(image, wave).float().cpu()
            ogl = self.ogl(ogl_image).float().cpu()
        return Analysis(av=upsample_maps(av, EVAL_SIZE)[0], ogl=upsample_maps(ogl, EVAL_SIZE)[0])

    def fused(self, analysis: Analysis, alpha: float) -> np.ndarray:
        """The fused 224×224 map for weight `alpha` on the AV map."""
        return np.asarray(fuse(analysis.av[None], analysis.ogl[None], self.fusion, float(alpha), self.tau)[0], dtype=np.float32)

    @staticmethod
    def confidence(score_map: np.ndarray) -> float:
        return float(confidence(np.asarray(score_map)[None])[0])
