"""SLAVC (Mo & Morgado, NeurIPS 2022) as in the official ``SLAVC`` model (DESIGN.md §4).

Two projection heads per modality (``img_proj1/2`` 1×1 convs, ``aud_proj1/2``), dropout on the visual
backbone map before the projections (p = 0.9; audio dropout 0 by default), momentum (EMA) copies of
both encoders and all heads. Loss: :func:`avslkit.losses.slavc_loss`. Inference map: mean over the
two heads of ⟨V_k(p), A_k⟩/τ, from the momentum features by default.

Momentum protocol: the task calls :meth:`SLAVC.momentum_update` once per step *before* computing the
targets (i.e. before ``forward``; the official code updates inside ``forward`` after the online
features, which is the same since the online parameters do not change in between), or passes
``forward(..., update_momentum=True)``. EMA: θ̂ ← m·θ̂ + (1 − m)·θ over parameters (the code's
formula; the paper's footnote misprints it); momentum BatchNorm statistics follow from the
momentum nets' own forward passes, as in the official code. Momentum parameters have
``requires_grad=False`` and are computed under ``no_grad``.

Options the paper leaves open, with the official code's behaviour as default:
- ``momentum_dropout`` (True): the target branch goes through the same dropout layers in training
  (the official code reuses ``img_dropout``/``aud_dropout`` for it).
- ``use_momentum_eval`` (True): maps from momentum features (the paper's Eq. 7 / "--use_mom_eval").
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avslkit.errors import AvslError
from avslkit.losses.ezvsl import pair_similarity
from avslkit.losses.slavc import slavc_loss
from avslkit.models.ezvsl import build_encoders, check_init
from avslkit.models.heads import build_audio_head, reference_init_, visual_projection
from avslkit.models.registry import register_model

Pair = tuple[torch.Tensor, torch.Tensor]
VISUAL_PARTS = ("visual", "img_proj1", "img_proj2")
AUDIO_PARTS = ("audio", "aud_proj1", "aud_proj2")
BRANCHES = ("online", "momentum")


@register_model("method.slavc")
class SLAVC(nn.Module):
    """SLAVC model.

    Options (defaults = paper/official code): encoders as :class:`~avslkit.models.ezvsl.EZVSL`;
    `dim` 512; `tau` 0.03; `dropout_img` 0.9; `dropout_aud` 0.0; `momentum` 0.999 (images; audio uses
    `momentum_aud`, default the same); `momentum_dropout` True; `use_momentum_eval` True.
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
        dropout_img: float = 0.9,
        dropout_aud: float = 0.0,
        momentum: float = 0.999,
        momentum_aud: float | None = None,
        momentum_dropout: bool = True,
        use_momentum_eval: bool = True,
        init: str = "reference",
    ) -> None:
        super().__init__()
        check_init(init)
        for name, m in (("momentum", momentum), ("momentum_aud", momentum if momentum_aud is None else momentum_aud)):
            if not 0.0 <= m <= 1.0:
                raise AvslError(f"SLAVC {name} must be in [0, 1], got {m}")
        self.tau, self.dim = tau, dim
        self.m_img = momentum
        self.m_aud = momentum if momentum_aud is None else momentum_aud
        self.momentum_dropout, self.use_momentum_eval = momentum_dropout, use_momentum_eval

        self.visual, self.audio = build_encoders(visual, audio, visual_weights, audio_weights, visual_cfg, audio_cfg)
        self.img_dropout = nn.Dropout(p=dropout_img)
        self.img_proj1 = visual_projection(self.visual.out_channels, dim)
        self.img_proj2 = visual_projection(self.visual.out_channels, dim)
        self.aud_dropout = nn.Dropout(p=dropout_aud)
        self.aud_proj1 = build_audio_head(audio_head, self.audio.out_dim, dim)
        self.aud_proj2 = build_audio_head(audio_head, self.audio.out_dim, dim)
        if init == "reference":
            fresh = [] if getattr(self.audio, "pretrained", False) else [self.audio]
            reference_init_([*fresh, self.img_proj1, self.img_proj2, self.aud_proj1, self.aud_proj2])
        for part in VISUAL_PARTS + AUDIO_PARTS:
            twin = copy.deepcopy(getattr(self, part))
            twin.requires_grad_(False)
            self.add_module(f"momentum_{part}", twin)

    @property
    def map_bounds(self) -> tuple[float, float]:
        """Range of the maps (cosine/τ): (−1/τ, 1/τ)."""
        return -1.0 / self.tau, 1.0 / self.tau

    def online_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser trains (everything but the momentum copies)."""
        return [p for name, p in self.named_parameters() if not name.startswith("momentum_")]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ̂ ← m·θ̂ + (1 − m)·θ for every momentum parameter (m_img for visual parts, m_aud for audio)."""
        for parts, m in ((VISUAL_PARTS, self.m_img), (AUDIO_PARTS, self.m_aud)):
            for part in parts:
                online = list(getattr(self, part).parameters())
                target = list(getattr(self, f"momentum_{part}").parameters())
                for p_m, p in zip(target, online, strict=True):
                    p_m.mul_(m).add_(p.detach(), alpha=1.0 - m)

    def _modules_of(self, branch: str) -> tuple[str, bool]:
        if branch not in BRANCHES:
            raise AvslError(f"branch must be one of {BRANCHES}, got {branch!r}")
        return ("" if branch == "online" else "momentum_"), branch == "momentum"

    def encode_image(self, image: torch.Tensor, branch: str = "online") -> Pair:
        """B×3×H×W → (V1, V2), each L2-normalised B×dim×h×w; momentum branch without gradients."""
        prefix, no_grad = self._modules_of(branch)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not no_grad):
            x = getattr(self, prefix + "visual")(image)
            if branch == "online" or self.momentum_dropout:
                x = self.img_dropout(x)
            v1 = F.normalize(getattr(self, prefix + "img_proj1")(x), dim=1)
            v2 = F.normalize(getattr(self, prefix + "img_proj2")(x), dim=1)
        return v1, v2

    def encode_audio(self, audio: torch.Tensor, branch: str = "online") -> Pair:
        """Audio input → (A1, A2), each L2-normalised B×dim; momentum branch without gradients."""
        prefix, no_grad = self._modules_of(branch)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not no_grad):
            x = getattr(self, prefix + "audio")(audio)
            if branch == "online" or self.momentum_dropout:
                x = self.aud_dropout(x)
            a1 = F.normalize(getattr(self, prefix + "aud_proj1")(x), dim=1)
            a2 = F.normalize(getattr(self, prefix + "aud_proj2")(x), dim=1)
        return a1, a2

    def pair_map(self, v: Pair, a: Pair) -> torch.Tensor:
        """Mean over the two heads of ⟨V_k,i(p), A_k,i⟩/τ: B×h×w."""
        return (pair_similarity(v[0], a[0], self.tau) + pair_similarity(v[1], a[1], self.tau)) / 2

    def loss(self, v: Pair, a: Pair, v_m: Pair, a_m: Pair) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, ℓ(v, â)) from online (v, a) and momentum (v_m, a_m) features."""
        return slavc_loss(v[0], v[1], a[0], a[1], v_m[0], v_m[1], a_m[0], a_m[1], self.tau)

    @property
    def eval_branch(self) -> str:
        return "momentum" if self.use_momentum_eval else "online"

    def localize(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Inference map for each (image_i, audio_i): B×h×w (momentum features by default)."""
        branch = self.eval_branch
        return self.pair_map(self.encode_image(image, branch), self.encode_audio(audio, branch))

    def forward(self, image: torch.Tensor, audio: torch.Tensor, update_momentum: bool = False) -> dict[str, Any]:
        if update_momentum:
            self.momentum_update()
        v, a = self.encode_image(image), self.encode_audio(audio)
        v_m, a_m = self.encode_image(image, "momentum"), self.encode_audio(audio, "momentum")
        loss, logits = self.loss(v, a, v_m, a_m)
        with torch.no_grad():
            amap = self.pair_map(v_m, a_m) if self.use_momentum_eval else self.pair_map(v, a)
        return {"loss": loss, "logits": logits, "map": amap, "v": v, "a": a, "v_m": v_m, "a_m": a_m}
