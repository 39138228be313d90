"""Supervised localisation loss H(G, P) (DMT Eq. 3/4/11; XPL Eq. 6/7), on score maps in model units.

DMT defines H only as "cross-entropy across the two-dimensional spatial axes"; XPL says "pixel-wise
cross-entropy". Both readings are options (registry ``SUPERVISED_LOSSES``):

- ``pixel_bce`` (default): the map is per-pixel logits z (EZ-VSL units ⟨v(p), a⟩/τ), P = sigmoid(z);
  H = mean over pixels of −[G log P + (1 − G) log(1 − P)]. Handles soft targets (XPL's sharpened
  PL-EMA labels), several boxes and empty maps. Teachers of such a model threshold
  sigmoid(map) (``map_norm="sigmoid"``).
- ``spatial_ce``: softmax over the h·w positions of z; target q = G/ΣG (a distribution over space);
  H = −Σ_p q_p log softmax(z)_p. Shift-invariant in z, so pair it with ``map_norm="minmax"``. A
  sample with an all-zero target has no defined q: it is left out of the mean (its loss is 0).

Ground truth comes on the 224×224 grid, model maps are h×w (7×7). ``resize``:
- ``"area"`` (default): downsample G to h×w by area averaging (each cell gets the fraction of its
  pixels inside the box — a soft target, exact for 224 = 32·7); cheap and keeps the loss on the
  model's own grid.
- ``"upsample"``: upsample the logits to G's size (bicubic, align_corners=True, the evaluation's
  upsampling) and compare at full resolution.
A target already of the map's size is used as it is. Per-sample ``mask`` (bool B) restricts the
mean to the selected samples (e.g. DMT's kept ones); with none selected the loss is a zero that
still depends on the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from avslkit.errors import AvslError

__all__ = ["RESIZE_MODES", "SUPERVISED_LOSSES", "SupervisedLoss", "match_target", "pixel_bce", "spatial_ce", "supervised_loss"]


def _area_target(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return logits, F.interpolate(target[:, None].float(), size=tuple(logits.shape[-2:]), mode="area")[:, 0]


def _upsample_logits(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    up = F.interpolate(logits[:, None], size=tuple(target.shape[-2:]), mode="bicubic", align_corners=True)[:, 0]
    return up, target.float()


RESIZE_MODES: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "area": _area_target,
    "upsample": _upsample_logits,
}


def match_target(logits: torch.Tensor, target: torch.Tensor, resize: str = "area") -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, target) on one grid: B×h×w logits and a B×H×W target in [0, 1]."""
    if logits.ndim != 3 or target.ndim != 3 or logits.shape[0] != target.shape[0]:
        raise AvslError(
            f"supervised loss needs B×h×w maps and B×H×W targets, got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if logits.shape[-2:] == target.shape[-2:]:
        return logits, target.to(logits.dtype)
    try:
        return RESIZE_MODES[resize](logits, target)
    except KeyError:
        raise AvslError(f"unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}") from None


def pixel_bce(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean over pixels of BCE(sigmoid(z), G) (same-size inputs); (losses B, valid B)."""
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return per_pixel.flatten(1).mean(1), torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)


def spatial_ce(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample −Σ_p (G_p/ΣG) log softmax_p(z); (losses B, valid B = ΣG > 0)."""
    t = target.float().flatten(1)
    mass = t.sum(1)
    valid = mass > 0
    q = t / torch.where(valid, mass, torch.ones_like(mass))[:, None]
    losses = -(q * F.log_softmax(logits.float().flatten(1), dim=1)).sum(1)
    return torch.where(valid, losses, torch.zeros_like(losses)), valid


@dataclass(frozen=True)
class SupervisedLoss:
    """A registered H: ``fn(logits, target) -> (per-sample loss, valid)`` on same-size maps, and the
    ``map_norm`` under which its trained maps read as [0, 1] maps (for DMT/XPL pseudo-labels)."""

    fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    map_norm: str


SUPERVISED_LOSSES: dict[str, SupervisedLoss] = {
    "pixel_bce": SupervisedLoss(pixel_bce, map_norm="sigmoid"),
    "spatial_ce": SupervisedLoss(spatial_ce, map_norm="minmax"),
}


def supervised_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    kind: str = "pixel_bce",
    resize: str = "area",
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """H(G, P) of B×h×w score maps (model units) against B×H×W targets in [0, 1].

    ``reduction="mean"``: mean over the samples that are selected by `mask` and valid for the loss
    (0 if none); ``"none"``: the B per-sample losses (0 where invalid or masked out).
    """
    try:
        spec = SUPERVISED_LOSSES[kind]
    except KeyError:
        raise AvslError(f"unknown supervised loss {kind!r}; use one of {', '.join(SUPERVISED_LOSSES)}") from None
    z, g = match_target(logits, target, resize)
    losses, valid = spec.fn(z, g)
    if mask is not None:
        valid = valid & mask.to(valid.device).bool().flatten()
    losses = torch.where(valid, losses, torch.zeros_like(losses))
    if reduction == "none":
        return losses
    if reduction != "mean":
        raise AvslError(f"unknown reduction {reduction!r}; use 'mean' or 'none'")
    return losses.sum() / valid.sum().clamp_min(1)
