"""Dual Mean-Teacher pseudo-labels (Guo et al., NeurIPS 2023, Sec. 4.2): Noise Filtering and IPL.

For the two teachers' maps P^A, P^B of each unlabelled sample (weak augmentation, Eq. 5):
- binary maps M = 1[P ≥ δ] (Eq. 6), δ = 0.6, with P the [0, 1] map of ``map_norm``
  (see ``avslkit.semisup.maps``; default ``"sigmoid"``, the calibrated map of a ``pixel_bce``-trained
  model; use ``"minmax"`` with ``spatial_ce``);
- Noise Filtering (Eq. 7): keep the sample iff IoU(M^A, M^B) ≥ τ, τ = 0.7;
- IPL (Eq. 8): pseudo-label = M^A · M^B.

IoU of two empty maps (both teachers see no foreground) is ``empty_iou``, default 0: such a sample
is rejected, because its IPL is empty, carries no localisation and cannot be a spatial-CE target.
(One empty map and one non-empty map give IoU 0 by the formula.)

Ablations (DMT Tables 5, 15): ``use_filter=False`` keeps every sample (IoU still reported);
``label`` picks the pseudo-label rule from ``PSEUDO_LABEL_RULES``: "intersection" (IPL, default),
"union", "teacher_a", "teacher_b" (no IPL: one teacher's map); a single-teacher ablation passes
``maps_b=None`` (label = M^A, no filter possible, IoU reported as NaN, non-empty maps kept).

``size`` (default None: the model's h×w grid, where the students' loss is computed) can move the
thresholding to the evaluation grid (224): bicubic upsampling of 128 maps costs ≈ 0.9 s on one CPU
thread (benchmarks/RESULTS.md), negligible on a GPU; the labels are then 224×224 and the
supervised loss area-downsamples them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from avslkit.errors import AvslError
from avslkit.semisup.maps import to_unit_maps

__all__ = ["DMTPseudoLabels", "PSEUDO_LABEL_RULES", "binary_iou", "binarize", "dmt_pseudo_labels", "fuse_teacher_maps"]

DELTA = 0.6
TAU = 0.7

PSEUDO_LABEL_RULES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "intersection": lambda ma, mb: ma & mb,
    "union": lambda ma, mb: ma | mb,
    "teacher_a": lambda ma, mb: ma,
    "teacher_b": lambda ma, mb: mb,
}


@dataclass
class DMTPseudoLabels:
    """Output of :func:`dmt_pseudo_labels` (all B-first tensors on the maps' device).

    ``keep`` bool B; ``labels`` float B×h×w in {0, 1} (for every sample; use ``labels[keep]``);
    ``iou`` float B (NaN for a single teacher); ``masks_a``/``masks_b`` the binary maps M.
    """

    keep: torch.Tensor
    labels: torch.Tensor
    iou: torch.Tensor
    masks_a: torch.Tensor
    masks_b: torch.Tensor | None

    @property
    def kept_fraction(self) -> float:
        return float(self.keep.float().mean()) if self.keep.numel() else 0.0

    @property
    def mean_iou(self) -> float:
        """Mean IoU over the batch (NaN if undefined), for logging the teachers' agreement."""
        return float(self.iou.mean()) if self.iou.numel() else math.nan

    def log_dict(self, prefix: str = "pl_") -> dict[str, float]:
        return {f"{prefix}kept": self.kept_fraction, f"{prefix}iou": self.mean_iou}


def binarize(unit_maps: torch.Tensor, delta: float = DELTA) -> torch.Tensor:
    """M = 1[P ≥ δ] (DMT Eq. 6), bool."""
    return unit_maps >= delta


def binary_iou(ma: torch.Tensor, mb: torch.Tensor, empty_iou: float = 0.0) -> torch.Tensor:
    """Per-sample |M^A ∧ M^B| / |M^A ∨ M^B| of bool B×h×w maps; two empty maps → `empty_iou`."""
    inter = (ma & mb).flatten(1).sum(1).float()
    union = (ma | mb).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.full_like(union, float(empty_iou)))


@torch.no_grad()
def dmt_pseudo_labels(
    maps_a: torch.Tensor,
    maps_b: torch.Tensor | None,
    delta: float = DELTA,
    tau: float = TAU,
    map_norm: str = "sigmoid",
    size: int | None = None,
    use_filter: bool = True,
    label: str = "intersection",
    empty_iou: float = 0.0,
) -> DMTPseudoLabels:
    """Noise Filtering (Eq. 7) and IPL (Eq. 8) from two teachers' B×h×w maps in model units."""
    try:
        rule = PSEUDO_LABEL_RULES[label]
    except KeyError:
        raise AvslError(f"unknown DMT pseudo-label rule {label!r}; use one of {', '.join(PSEUDO_LABEL_RULES)}") from None
    ma = binarize(to_unit_maps(maps_a, map_norm, size), delta)
    if maps_b is None:
        labels = ma
        iou = torch.full((ma.shape[0],), math.nan, device=ma.device)
        keep = ma.flatten(1).any(1) if use_filter else torch.ones(ma.shape[0], dtype=torch.bool, device=ma.device)
        return DMTPseudoLabels(keep=keep, labels=labels.float(), iou=iou, masks_a=ma, masks_b=None)
    if maps_b.shape != maps_a.shape:
        raise AvslError(f"the two teachers' maps differ in shape: {tuple(maps_a.shape)} vs {tuple(maps_b.shape)}")
    mb = binarize(to_unit_maps(maps_b, map_norm, size), delta)
    iou = binary_iou(ma, mb, empty_iou)
    keep = iou >= tau if use_filter else torch.ones_like(iou, dtype=torch.bool)
    return DMTPseudoLabels(keep=keep, labels=rule(ma, mb).float(), iou=iou, masks_a=ma, masks_b=mb)


def fuse_teacher_maps(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Inference map P = (P^{t,A} + P^{t,B})/2 (DMT Eq. 15); both maps must be in the same units."""
    return 0.5 * (maps_a + maps_b)
