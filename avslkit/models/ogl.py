"""Object-guided localisation (OGL): a frozen ImageNet ResNet-18 as a class-agnostic objectness prior.

OGL map = mean over channels of |layer4 features| (7×7 for a 224×224 input). Fusion rules with an
audio-visual map (both at the same resolution, e.g. after upsampling to 224×224):

* ``slavc``: absolute bounds, AV' = (cos + 1)/2 = (S·τ + 1)/2 for S = cos/τ, OGL' = OGL/2.5,
  F = α·AV' + (1 − α)·OGL', α = 0.9 (SLAVC's released test script).
* ``ezvsl``: per-sample min-max of both, F = minmax(α·AV + (1 − α)·OGL), α = 0.4 (EZ-VSL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

OGL_UPPER_BOUND = 2.5  # SLAVC's obj_max: OGL' = OGL / 2.5


class OGL(nn.Module):
    """Frozen ResNet-18 trunk → mean |layer4| map (N, h, w)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.trunk = nn.Sequential(
            backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool,
            backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4,
        )
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "OGL":  # always frozen (BatchNorm in eval mode)
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images).abs().mean(dim=1)


def build_ogl(weights: str | Path | None = "none") -> OGL:
    """OGL on a torchvision ResNet-18 with `weights` = none | imagenet | path to a state dict."""
    from avslkit.models.weights import torchvision_resnet18

    return OGL(torchvision_resnet18(weights))


def _minmax(x: np.ndarray | torch.Tensor):
    n = x.shape[0]
    flat = x.reshape(n, -1)
    lo = flat.min(1, keepdims=True) if isinstance(x, np.ndarray) else flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdims=True) if isinstance(x, np.ndarray) else flat.max(1, keepdim=True).values
    rng = hi - lo
    rng = rng + (rng == 0) * 1.0
    return ((flat - lo) / rng).reshape(x.shape)


def fuse_slavc(av_scores: np.ndarray | torch.Tensor, ogl: np.ndarray | torch.Tensor, alpha: float = 0.9,
               tau: float = 0.03) -> np.ndarray | torch.Tensor:
    """SLAVC fusion with absolute bounds; `av_scores` are cos/τ similarities (range [−1/τ, 1/τ])."""
    av01 = (av_scores + 1.0 / tau) / (2.0 / tau)
    return alpha * av01 + (1 - alpha) * (ogl / OGL_UPPER_BOUND)


def fuse_ezvsl(av_scores: np.ndarray | torch.Tensor, ogl: np.ndarray | torch.Tensor, alpha: float = 0.4,
               tau: float = 0.03) -> np.ndarray | torch.Tensor:
    """EZ-VSL fusion: min-max both maps per sample, mix, min-max again (`tau` unused)."""
    return _minmax(alpha * _minmax(av_scores) + (1 - alpha) * _minmax(ogl))


@dataclass(frozen=True)
class FusionRule:
    name: str
    fn: Callable
    default_alpha: float


FUSIONS: dict[str, FusionRule] = {
    "slavc": FusionRule("slavc", fuse_slavc, 0.9),
    "ezvsl": FusionRule("ezvsl", fuse_ezvsl, 0.4),
}


def fuse(av_scores: np.ndarray | torch.Tensor, ogl: np.ndarray | torch.Tensor, rule: str = "slavc",
         alpha: float | None = None, tau: float = 0.03) -> np.ndarray | torch.Tensor:
    """Fuse an audio-visual map with an OGL map by the named rule (α defaults per rule)."""
    r = FUSIONS[rule]
    return r.fn(av_scores, ogl, r.default_alpha if alpha is None else alpha, tau)
