"""Score maps → [0, 1] maps, binary predictions and detection confidences (vectorised over samples).

Every function takes a stack of maps (N, H, W) and treats each sample on its own; nothing is ever
normalised across a batch.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from avslkit.errors import AvslError

if TYPE_CHECKING:  # torch is imported only to upsample (maps already at the evaluation size never need it)
    import torch

EVAL_SIZE = 224
CONFIDENCE_TOP_FRACTION = 0.25


#: Upsampling of model maps to the ground-truth grid (torch interpolate, align_corners=True):
#: bicubic as SLAVC's test.py, bilinear as EZ-VSL's test.py.
UPSAMPLE_MODES = ("bicubic", "bilinear")


def upsample_maps(maps: np.ndarray | torch.Tensor, size: int = EVAL_SIZE, mode: str = "bicubic") -> np.ndarray:
    """Upsampling to size×size with align_corners=True, `mode` bicubic (default) or bilinear.

    Maps already at size×size are returned unchanged (as float32), without importing torch; numpy
    maps upsampled bicubically use the compiled copy of torch's CPU kernel (`metrics._upsample`,
    bit-identical, ~7× faster, no torch import).
    """
    if mode not in UPSAMPLE_MODES:
        raise AvslError(f"unknown upsampling '{mode}' (choose {', '.join(UPSAMPLE_MODES)})")
    torch_module = sys.modules.get("torch")  # a tensor exists only if torch is loaded
    if torch_module is not None and isinstance(maps, torch_module.Tensor):
        t = maps.detach().float().cpu()
    else:
        arr = np.asarray(maps, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[-2:] == (size, size):
            return arr
        if arr.ndim == 3 and mode == "bicubic":
            from avslkit.metrics._upsample import bicubic_upsample

            return bicubic_upsample(arr, size, size)
        import torch

        t = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise AvslError(f"score maps must be (N, H, W); got shape {tuple(t.shape)}")
    if tuple(t.shape[-2:]) != (size, size):
        import torch.nn.functional as F

        t = F.interpolate(t[:, None], size=(size, size), mode=mode, align_corners=True)[:, 0]
    return t.numpy()


def _raw(maps: np.ndarray, tau: float) -> np.ndarray:
    return maps


def _tau_bounds(maps: np.ndarray, tau: float) -> np.ndarray:
    lo, hi = -1.0 / tau, 1.0 / tau  # python floats, float32 arithmetic: SLAVC test.py's min_max_norm
    return (maps - lo) / (hi - lo)


#: Map scalings applied after upsampling, before confidence and binarisation: "raw" keeps the model's
#: cos/τ scores; "tau_bounds" maps [−1/τ, 1/τ] onto [0, 1] as SLAVC's test.py (so confidences and
#: absolute:T thresholds see the bounded map).
MAP_SCALES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"raw": _raw, "tau_bounds": _tau_bounds}


def scale_maps(maps: np.ndarray, rule: str = "raw", tau: float = 0.03) -> np.ndarray:
    """Apply the map scaling `rule` (MAP_SCALES) to float32 maps, in float32."""
    if rule not in MAP_SCALES:
        raise AvslError(f"unknown map_scale '{rule}' (choose {', '.join(MAP_SCALES)})")
    return MAP_SCALES[rule](np.asarray(maps, dtype=np.float32), float(tau))


def minmax_normalize(maps: np.ndarray) -> np.ndarray:
    """Per-sample (x − min) / (max − min). A constant map (0/0) becomes an all-zero map.

    The reference `normalize_img` leaves a constant map unnormalised instead; for the `relative`
    and `lvs` rules both choices give the same binary map (all pixels for relative, none for lvs
    unless the constant is exactly 1), for `fixed:T` ours predicts nothing (T > 0).
    """
    x = np.asarray(maps)
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(axis=1, keepdims=True)
    rng = flat.max(axis=1, keepdims=True) - lo
    constant = rng == 0
    rng = np.where(constant, np.ones_like(rng), rng)
    return ((flat - lo) / rng).reshape(x.shape)


def _flat(p: np.ndarray) -> np.ndarray:
    return p.reshape(p.shape[0], -1)


def upper_median(p: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """thr = sorted(p)[int(fraction·n)] per sample (via partition: the same element, O(n))."""
    flat = _flat(p)
    k = int(fraction * flat.shape[1])
    return np.partition(flat, k, axis=1)[:, k]


def _relative(p: np.ndarray, arg: float | None) -> np.ndarray:
    thr = upper_median(p, 0.5 if arg is None else arg)
    return p >= thr.reshape(-1, *([1] * (p.ndim - 1)))


def _fixed(p: np.ndarray, arg: float | None) -> np.ndarray:
    return p >= (0.5 if arg is None else arg)


def _lvs(p: np.ndarray, arg: float | None) -> np.ndarray:
    # LVS test code: pred[pred > thr] = 1; pred[pred < 1] = 0 → pixels equal to 1 survive too.
    thr = upper_median(p, 0.5 if arg is None else arg)
    return (p > thr.reshape(-1, *([1] * (p.ndim - 1)))) | (p >= 1)


@dataclass(frozen=True)
class Binarizer:
    """A named rule from a map to a binary prediction; `on_raw` rules see the absolute map.

    `median`: the threshold is sorted(P)[int(fraction·N)] (else the value T); `strict`: predict
    P > thr or P = 1 (LVS) instead of P ≥ thr. The vectorised metrics (`metrics.samples`) apply a rule
    from these fields; `fn` must agree with them (`binarize`, visualisation).
    """

    name: str
    fn: Callable[[np.ndarray, float | None], np.ndarray]
    description: str
    on_raw: bool = False
    median: bool = False
    strict: bool = False


BINARIZERS: dict[str, Binarizer] = {
    "relative": Binarizer("relative", _relative,
                          "per-sample min-max map, thr = sorted(map)[int(0.5·N)], predict map >= thr (SLAVC/EZ-VSL)",
                          median=True),
    "fixed": Binarizer("fixed", _fixed, "per-sample min-max map, predict map >= T (LVS/SSPL style, T default 0.5)"),
    "lvs": Binarizer("lvs", _lvs, "per-sample min-max map, predict map > sorted(map)[int(0.5·N)] or map == 1 (LVS)",
                     median=True, strict=True),
    "absolute": Binarizer("absolute", _fixed,
                          "absolute map (no min-max), predict map >= T, T default 0.5: SLAVC's test.py without "
                          "--relative_prediction on its [0, 1]-bounded fused maps", on_raw=True),
}


def parse_binarize(spec: str) -> tuple[Binarizer, float | None]:
    """'relative' | 'fixed:0.5' | 'lvs' | 'absolute:0.5' (':value' = threshold, or median fraction)."""
    name, _, arg = str(spec).partition(":")
    if name not in BINARIZERS:
        raise AvslError(f"unknown --binarize '{spec}' (choose {', '.join(BINARIZERS)}; e.g. fixed:0.5)")
    value: float | None = None
    if arg:
        try:
            value = float(arg)
        except ValueError:
            raise AvslError(f"--binarize {spec}: '{arg}' is not a number") from None
    return BINARIZERS[name], value


def binarize(maps: np.ndarray, spec: str = "relative") -> np.ndarray:
    """Binary predictions (bool, same shape). Pass per-sample min-max maps, or absolute maps for on_raw rules."""
    rule, value = parse_binarize(spec)
    return rule.fn(np.asarray(maps), value)


def confidence(maps_abs: np.ndarray, top_fraction: float = CONFIDENCE_TOP_FRACTION) -> np.ndarray:
    """Mean of the top `top_fraction` values of each *absolute* map, in float64.

    k = ceil(n·fraction) values, as `np.sort(x)[-n//4:]` in the reference; the top values are sorted
    ascending before averaging so the result is bit-identical to the reference's sort-then-mean.
    """
    flat = _flat(np.asarray(maps_abs)).astype(np.float64)
    n = flat.shape[1]
    k = max(1, math.ceil(n * top_fraction))
    top = np.partition(flat, n - k, axis=1)[:, n - k:]
    top.sort(axis=1)
    return top.mean(axis=1)
