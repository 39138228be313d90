"""Score maps → [0, 1] maps P, the input of DMT's thresholding (Eq. 6) and XPL's sharpening (Eq. 4).

Both papers write their rules on "P, the [0, 1] map" but the models output maps in their own units
(EZ-VSL/SLAVC: ⟨v(p), a⟩/τ, i.e. cosine/τ). How P is obtained is the option ``map_norm``:

- ``"sigmoid"``: P = sigmoid(map). The map is read as per-pixel logits, which is exactly what the
  ``pixel_bce`` supervised loss trains, so δ = 0.6 is a calibrated probability. Pair it with
  ``pixel_bce`` (see ``avslkit.losses.supervised.SUPERVISED_LOSSES[...].map_norm``).
- ``"minmax"``: per-sample (x − min)/(max − min), as the evaluation protocol reads maps (never
  across a batch). Invariant to τ and to a shift of the logits, so it is the one to use with the
  shift-invariant ``spatial_ce`` loss. Every non-constant map then has a pixel at 1; a constant map
  becomes all zeros (nothing above any δ > 0).
- ``"none"``: the map is already in [0, 1] (e.g. a fused/teacher map the caller normalised).

``size`` optionally resamples the maps first (bicubic, align_corners=True, as the evaluation's
upsampling to 224) so that thresholds and IoUs are taken on the evaluation grid; the default
(None) keeps the model's h×w grid, where the students' supervised loss is computed anyway.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from avslkit.errors import AvslError

__all__ = ["MAP_NORMS", "minmax_per_sample", "resize_maps", "to_unit_maps"]


def minmax_per_sample(maps: torch.Tensor) -> torch.Tensor:
    """(x − min)/(max − min) over the spatial axes of each sample; a constant map → all zeros."""
    flat = maps.flatten(1)
    lo = flat.amin(dim=1, keepdim=True)
    rng = flat.amax(dim=1, keepdim=True) - lo
    out = torch.where(rng > 0, (flat - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)), torch.zeros_like(flat))
    return out.view_as(maps)


MAP_NORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "minmax": minmax_per_sample,
    "none": lambda maps: maps,
}


def resize_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """B×h×w → B×size×size by bicubic interpolation with align_corners=True (the evaluation's rule)."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(maps.shape[-2:]) == hw:
        return maps
    return F.interpolate(maps[:, None].float(), size=hw, mode="bicubic", align_corners=True)[:, 0]


def to_unit_maps(maps: torch.Tensor, map_norm: str = "sigmoid", size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Model maps (B×h×w, model units) → P in [0, 1] (B×h×w, or B×size×size), per sample."""
    if maps.ndim != 3:
        raise AvslError(f"score maps must be B×h×w, got shape {tuple(maps.shape)}")
    try:
        norm = MAP_NORMS[map_norm]
    except KeyError:
        raise AvslError(f"unknown map_norm {map_norm!r}; use one of {', '.join(MAP_NORMS)}") from None
    if size is not None:
        maps = resize_maps(maps, size)
    return norm(maps.float())
