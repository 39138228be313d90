"""EZ-VSL (Mo & Morgado, ECCV 2022) as in the official ``EZVSL`` model.

Visual backbone → B×512×h×w, ``img_proj`` (1×1 conv 512→dim), audio backbone → B×D, ``aud_proj``
(Linear D→dim, or DMT's two-layer MLP with ``audio_head="mlp"``), both L2-normalised; τ = 0.03;
loss = :func:`avslkit.losses.ezvsl_loss`. Maps are in the official units ⟨v(p), a⟩/τ, bounded by
``map_bounds`` = (−1/τ, 1/τ) (what SLAVC's evaluation uses for absolute normalisation).

Split API, so training, evaluation (maps for any image i × audio j pair, e.g. negatives) and
semi-supervised students (DMT/XPL: maps with gradients, attention pooling) share it:
``encode_image`` → v, ``encode_audio`` → a, ``pair_map(v, a)`` → B×h×w, ``similarity(v, a)`` →
B×B×h×w, ``loss(v, a)`` → (loss, logits), ``localize(image, audio)`` → maps, and ``forward`` →
dict(loss, logits, map, v, a).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avslkit.errors import AvslError
from avslkit.losses.ezvsl import ezvsl_loss, pair_similarity, similarity_maps
from avslkit.models.heads import build_audio_head, reference_init_, visual_projection
from avslkit.models.registry import build_audio_backbone, build_visual_backbone, register_model

INITS = ("reference", "default")


def build_encoders(
    visual: str,
    audio: str,
    visual_weights: str | Path | None,
    audio_weights: str | Path | None,
    visual_cfg: dict[str, Any] | None,
    audio_cfg: dict[str, Any] | None,
) -> tuple[nn.Module, nn.Module]:
    """Visual and audio backbones from the registry (weights passed as the backbones' `weights`)."""
    visual_net = build_visual_backbone(visual, weights=visual_weights, **(visual_cfg or {}))
    audio_net = build_audio_backbone(audio, weights=audio_weights, **(audio_cfg or {}))
    return visual_net, audio_net


def check_init(init: str) -> None:
    if init not in INITS:
        raise AvslError(f"init must be one of {INITS}, got {init!r}")


@register_model("method.ezvsl")
class EZVSL(nn.Module):
    """EZ-VSL model.

    Options (defaults = the paper/official code): `visual` "resnet18" with `visual_weights`
    "imagenet"; `audio` "resnet18_spec" from scratch (`audio_weights` None); `dim` 512; `tau` 0.03;
    `audio_head` "linear" ("mlp" = DMT's g(·)); `init` "reference" re-initialises the projections and
    a from-scratch audio net like the official code ("default": PyTorch's initialisation).
    """

    def __init__(
        self,
        visual: str = "resnet18",
        audio: str = "resnet18_spec",
        visual_weights: str | Path | None = "imagenet",
        audio_weights: str | Path | None = None,
        visual_cfg: dict[str, Any] | None = None,
        audio_cfg: dict[str, Any] | None = None,
        dim: int = 512,
        tau: float = 0.03,
        audio_head: str = "linear",
        init: str = "reference",
    ) -> None:
        super().__init__()
        check_init(init)
        self.tau, self.dim = tau, dim
        self.visual, self.audio = build_encoders(visual, audio, visual_weights, audio_weights, visual_cfg, audio_cfg)
        self.img_proj = visual_projection(self.visual.out_channels, dim)
        self.aud_proj = build_audio_head(audio_head, self.audio.out_dim, dim)
        if init == "reference":
            fresh = [] if getattr(self.audio, "pretrained", False) else [self.audio]
            reference_init_([*fresh, self.img_proj, self.aud_proj])

    @property
    def map_bounds(self) -> tuple[float, float]:
        """Range of the maps (cosine/τ): (−1/τ, 1/τ)."""
        return -1.0 / self.tau, 1.0 / self.tau

    def online_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser trains (all of them; SLAVC excludes its momentum copies)."""
        return list(self.parameters())

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """B×3×H×W → L2-normalised B×dim×h×w."""
        return F.normalize(self.img_proj(self.visual(image)), dim=1)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio input → L2-normalised B×dim."""
        return F.normalize(self.aud_proj(self.audio(audio)), dim=1)

    def pair_map(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """⟨v_i(p), a_i⟩/τ for each row i: B×h×w (pass a permuted `a` for mismatched pairs)."""
        return pair_similarity(v, a, self.tau)

    def similarity(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """All pairs S[i, j, p] = ⟨v_i(p), a_j⟩/τ: B_v×B_a×h×w."""
        return similarity_maps(v, a, self.tau)

    def loss(self, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, B×B MIL logits) of encoded features."""
        return ezvsl_loss(v, a, self.tau)

    def localize(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Inference map for each (image_i, audio_i): B×h×w."""
        return self.pair_map(self.encode_image(image), self.encode_audio(audio))

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        v, a = self.encode_image(image), self.encode_audio(audio)
        loss, logits = self.loss(v, a)
        return {"loss": loss, "logits": logits, "map": self.pair_map(v, a), "v": v, "a": a}
