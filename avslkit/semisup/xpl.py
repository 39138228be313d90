"""Cross Pseudo-Labeling building blocks (XPL, ICASSP 2024; equations per DESIGN.md §4).

- Curriculum data selection (Sec. 2.1, Eq. 1–3): per-sample Pearson correlation r of the two
  models' maps over the spatial positions; keep the ``fraction`` most correlated samples, the
  fraction ramping up over epochs (``ramp_fraction``), and reject r below a ``floor``.
- Sharpening (Eq. 4): Ŷ = sigmoid((P − 0.5)/T), P the [0, 1] map.
- PL-EMA (Eq. 5): a per-sample memory bank Y ← α·Y + (1 − α)·Ŷ, α = 0.7 (``PseudoLabelBank``).
- Cross-refine (Eq. 6): ``xpl_cross_targets`` chains the three for one batch; model A is trained
  on B's bank labels and B on A's (pixel-wise CE = ``avslkit.losses.supervised`` ``pixel_bce``
  with the soft targets, restricted to ``keep`` via its ``mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from avslkit.errors import AvslError
from avslkit.semisup.maps import to_unit_maps

__all__ = [
    "BANK_DTYPES",
    "PseudoLabelBank",
    "RAMP_SCHEDULES",
    "XPLTargets",
    "pearson_correlation",
    "ramp_fraction",
    "select_by_correlation",
    "sharpen",
    "xpl_cross_targets",
]


def pearson_correlation(x: torch.Tensor, y: torch.Tensor, constant_value: float = 0.0) -> torch.Tensor:
    """Per-sample Pearson r between two B×... maps over their spatial positions (XPL Eq. 1–3).

    r_i = Σ_p (x_p − x̄)(y_p − ȳ) / sqrt(Σ_p (x_p − x̄)² · Σ_p (y_p − ȳ)²), computed in float64.
    If either map of a sample is constant the correlation is undefined (0/0); it is then
    `constant_value` (default 0: "no evidence of agreement", rejected by any floor > 0).
    r is invariant to a per-sample affine rescaling of either map, so it does not matter whether
    the maps are in model units or min-max/sigmoid normalised (sigmoid is monotone but not affine:
    pass the maps the selection should compare; XPL compares the prediction maps P).
    """
    if x.shape != y.shape:
        raise AvslError(f"correlated maps must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    xc = x.flatten(1).double()
    yc = y.flatten(1).double()
    xc = xc - xc.mean(1, keepdim=True)
    yc = yc - yc.mean(1, keepdim=True)
    sxx, syy = (xc * xc).sum(1), (yc * yc).sum(1)
    denom = torch.sqrt(sxx * syy)
    r = (xc * yc).sum(1) / torch.where(denom > 0, denom, torch.ones_like(denom))
    r = torch.where(denom > 0, r.clamp(-1.0, 1.0), torch.full_like(r, float(constant_value)))
    return r.to(x.dtype if x.is_floating_point() else torch.float32)


RAMP_SCHEDULES: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "cosine": lambda t: 0.5 * (1.0 - math.cos(math.pi * t)),
    # The mean-teacher "sigmoid" ramp-up exp(−5(1 − t)²) (Laine & Aila 2017), rescaled to reach 0 at t = 0.
    "exp": lambda t: (math.exp(-5.0 * (1.0 - t) ** 2) - math.exp(-5.0)) / (1.0 - math.exp(-5.0)),
}


def ramp_fraction(
    epoch: float, start_fraction: float, end_fraction: float, ramp_epochs: float, schedule: str = "linear"
) -> float:
    """Kept fraction at `epoch` (0-based, may be fractional): start + (end − start)·s(min(epoch/ramp_epochs, 1)).

    ``linear`` (default, as DESIGN.md): s(t) = t, so epoch 0 keeps `start_fraction` and every epoch
    ≥ `ramp_epochs` keeps `end_fraction`. ``ramp_epochs`` ≤ 0 means no ramp (end fraction at once).
    """
    try:
        shape = RAMP_SCHEDULES[schedule]
    except KeyError:
        raise AvslError(f"unknown ramp schedule {schedule!r}; use one of {', '.join(RAMP_SCHEDULES)}") from None
    for name, value in (("start_fraction", start_fraction), ("end_fraction", end_fraction)):
        if not 0.0 <= value <= 1.0:
            raise AvslError(f"{name} must be in [0, 1], got {value}")
    if ramp_epochs <= 0:
        return float(end_fraction)
    t = min(max(epoch / ramp_epochs, 0.0), 1.0)
    return float(start_fraction + (end_fraction - start_fraction) * shape(t))


def select_by_correlation(r: torch.Tensor, fraction: float, floor: float | None = None) -> torch.Tensor:
    """Bool mask keeping the ceil(fraction·N) most correlated of the N samples in `r`, minus any r < floor.

    Ties are broken by position (stable sort); NaN correlations count in N but are never kept. `r` can be one
    batch or the whole unlabelled set (the ranking is over whatever population is passed).
    """
    if not 0.0 <= fraction <= 1.0:
        raise AvslError(f"selection fraction must be in [0, 1], got {fraction}")
    r = r.flatten()
    n_keep = min(r.numel(), math.ceil(fraction * r.numel() - 1e-9))
    keep = torch.zeros(r.numel(), dtype=torch.bool, device=r.device)
    valid = ~torch.isnan(r)
    scores = torch.where(valid, r.double(), torch.full_like(r, -math.inf, dtype=torch.float64))
    order = torch.sort(scores, descending=True, stable=True).indices[:n_keep]
    keep[order] = True
    keep &= valid
    if floor is not None:
        keep &= r >= floor
    return keep


def sharpen(unit_maps: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Ŷ = sigmoid((P − 0.5)/T) (XPL Eq. 4) of [0, 1] maps P. T = 0.1 by default (the paper's
    value was lost in extraction; 0.1 maps P = 0.6 → 0.73 and P = 1 → 0.993); T → ∞ flattens to 0.5."""
    if temperature <= 0:
        raise AvslError(f"sharpening temperature must be > 0, got {temperature}")
    return torch.sigmoid((unit_maps - 0.5) / temperature)


def _quantise_u8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def _dequantise_u8(q: torch.Tensor) -> torch.Tensor:
    return q.float() / 255.0


# name → (storage dtype, encode float32 → storage, decode storage → float32)
BANK_DTYPES: dict[str, tuple[torch.dtype, Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "float32": (torch.float32, lambda x: x.float(), lambda s: s.float()),
    "float16": (torch.float16, lambda x: x.half(), lambda s: s.float()),
    "uint8": (torch.uint8, _quantise_u8, _dequantise_u8),
}
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.uint8: "uint8"}


class PseudoLabelBank:
    """PL-EMA memory bank (XPL Eq. 5): one soft pseudo-label map per unlabelled sample.

    ``update(indices, new_labels)`` sets, for each index, Y ← α·Y + (1 − α)·Ŷ and returns the
    stored (decoded, float32) labels, i.e. exactly what a later update will blend with. The *first*
    visit of a sample initialises Y = Ŷ (blending with an all-zero start would bias early labels
    towards background; a ``seen`` flag per sample records the visits).

    Storage (``dtype``): float16 by default, 2 bytes/value (144k × 7×7 maps: 13.6 MiB). Its
    rounding error in [0, 1] is ≤ 2⁻¹² ≈ 2.4e-4 per store; an update smaller than half a float16
    step is lost, so Y stops ≲ 2⁻¹¹/(2(1 − α)) ≈ 8e-4 short of a constant target (measured: 6e-4;
    7e-4 max error vs a float64 bank after 20 updates). uint8 (k/255, 1 byte, 6.9 MiB) stalls
    once (1 − α)·|Ŷ − Y| < 0.5/255, i.e. up to 0.0065 from the target at α = 0.7 (measured: 6e-3
    max error) — an order of magnitude worse for a 2× saving on a bank that is small anyway, hence
    float16. float32 is exact. See benchmarks/RESULTS.md. Labels are expected in [0, 1].

    The bank lives on `device` (CPU by default; indices/labels are moved there). With DDP every rank
    must see the same updates: all-gather (indices, labels) across ranks before calling ``update``.
    Duplicate indices in one call (DistributedSampler pads with repeats) update the sample once,
    with the first occurrence's label; every occurrence gets the stored value back.
    """

    def __init__(
        self,
        n_samples: int,
        map_size: int | Sequence[int],
        alpha: float = 0.7,
        dtype: str | torch.dtype = torch.float16,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise AvslError(f"PL-EMA alpha must be in [0, 1], got {alpha}")
        name = _DTYPE_NAMES.get(dtype) if isinstance(dtype, torch.dtype) else str(dtype)
        if name not in BANK_DTYPES:
            raise AvslError(f"unknown pseudo-label bank dtype {dtype!r}; use one of {', '.join(BANK_DTYPES)}")
        self.dtype_name = name
        self._storage_dtype, self._encode, self._decode = BANK_DTYPES[name]
        self.map_size = (int(map_size), int(map_size)) if isinstance(map_size, int) else tuple(int(s) for s in map_size)
        self.alpha = float(alpha)
        self.device = torch.device(device)
        self.labels = torch.zeros((int(n_samples), *self.map_size), dtype=self._storage_dtype, device=self.device)
        self.seen = torch.zeros(int(n_samples), dtype=torch.bool, device=self.device)

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def nbytes(self) -> int:
        return self.labels.numel() * self.labels.element_size() + self.seen.numel()

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Stored labels (float32) of `indices` (zeros for never-visited samples; see ``seen``)."""
        return self._decode(self.labels[torch.as_tensor(indices, device=self.device).long()])

    @torch.no_grad()
    def update(self, indices: torch.Tensor, new_labels: torch.Tensor) -> torch.Tensor:
        """Blend `new_labels` (B×h×w, in [0, 1]) into the bank at `indices`; return the stored labels on the labels' device."""
        idx = torch.as_tensor(indices, device=self.device).long().flatten()
        if new_labels.shape[1:] != self.labels.shape[1:] or new_labels.shape[0] != idx.numel():
            raise AvslError(
                f"pseudo-label bank update: expected {idx.numel()}×{self.map_size[0]}×{self.map_size[1]} labels, "
                f"got {tuple(new_labels.shape)} (the bank stores maps at the model's map size)"
            )
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise AvslError(f"pseudo-label bank update: index out of range [0, {len(self)})")
        new = new_labels.detach().to(self.device, torch.float32)
        uniq, inverse = torch.unique(idx, return_inverse=True)
        if uniq.numel() != idx.numel():  # keep each index's first occurrence (deterministic)
            positions = torch.arange(idx.numel(), device=idx.device)
            first = torch.full_like(uniq, idx.numel()).scatter_reduce(0, inverse, positions, reduce="amin")
            idx_u, new_u = uniq, new[first]
        else:
            idx_u, new_u = idx, new
        old = self._decode(self.labels[idx_u])
        seen = self.seen[idx_u].view(-1, *([1] * (new.ndim - 1)))
        blended = torch.where(seen, self.alpha * old + (1.0 - self.alpha) * new_u, new_u)
        self.labels[idx_u] = self._encode(blended)
        self.seen[idx_u] = True
        return self._decode(self.labels[idx]).to(new_labels.device)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume (stored values, visit flags, α, storage dtype)."""
        return {
            "labels": self.labels.cpu().clone(),
            "seen": self.seen.cpu().clone(),
            "alpha": self.alpha,
            "dtype": self.dtype_name,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        labels, seen = state["labels"], state["seen"]
        if tuple(labels.shape) != tuple(self.labels.shape) or state.get("dtype") != self.dtype_name:
            raise AvslError(
                f"checkpoint pseudo-label bank is {tuple(labels.shape)} {state.get('dtype')}, this run's is "
                f"{tuple(self.labels.shape)} {self.dtype_name}; resume with the same unlabelled set, map size and bank dtype"
            )
        self.labels.copy_(labels.to(self.device))
        self.seen.copy_(seen.to(self.device))
        self.alpha = float(state["alpha"])


@dataclass
class XPLTargets:
    """One XPL step's cross pseudo-labels (all B-first, on the maps' device).

    ``keep`` bool B (curriculum selection); ``target_for_a`` = B's PL-EMA labels (A learns from B),
    ``target_for_b`` = A's (cross-refine, XPL Eq. 6); ``r`` the per-sample Pearson correlations.
    """

    keep: torch.Tensor
    target_for_a: torch.Tensor
    target_for_b: torch.Tensor
    r: torch.Tensor

    def log_dict(self, prefix: str = "xpl_") -> dict[str, float]:
        return {f"{prefix}kept": float(self.keep.float().mean()) if self.keep.numel() else 0.0,
                f"{prefix}corr": float(self.r.float().mean()) if self.r.numel() else math.nan}


@torch.no_grad()
def xpl_cross_targets(
    maps_a: torch.Tensor,
    maps_b: torch.Tensor,
    indices: torch.Tensor,
    bank_a: PseudoLabelBank,
    bank_b: PseudoLabelBank,
    fraction: float,
    floor: float | None = None,
    temperature: float = 0.1,
    map_norm: str = "sigmoid",
) -> XPLTargets:
    """Selection (Eq. 1–3), sharpening (Eq. 4) and PL-EMA (Eq. 5) for one batch of unlabelled samples.

    `maps_a`/`maps_b`: the two models' B×h×w maps (model units, no gradient needed) of the samples
    whose dataset `indices` are given. Every visited sample's bank entry is updated, selected or not
    (the memory tracks the model's predictions; selection only decides what is trained on).
    """
    r = pearson_correlation(to_unit_maps(maps_a, map_norm), to_unit_maps(maps_b, map_norm))
    keep = select_by_correlation(r, fraction, floor)
    labels_a = bank_a.update(indices, sharpen(to_unit_maps(maps_a, map_norm), temperature))
    labels_b = bank_b.update(indices, sharpen(to_unit_maps(maps_b, map_norm), temperature))
    return XPLTargets(keep=keep, target_for_a=labels_b, target_for_b=labels_a, r=r)
