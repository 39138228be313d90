"""Localisation metrics on binary predictions and ground-truth maps (vectorised over samples)."""

from __future__ import annotations

import numpy as np

# Ground-truth area buckets (pixels of the 224×224 map), as SLAVC's EvaluatorFull: [lo, hi).
SIZE_BUCKETS: dict[str, tuple[float, float]] = {
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 144**2),
    "huge": (144**2, float("inf")),
}
AUC_THRESHOLDS = np.linspace(0.0, 1.0, 21)  # identical to [0.05·i for i in range(21)]


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def ciou(pred_bin: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """cIoU = Σ(B·G) / (ΣG + Σ B·[G = 0]) per sample (float64).

    0/0 (empty ground truth and empty prediction) is defined as 0: the reference yields nan, which
    fails every `cIoU ≥ t` test except that ours counts at t = 0 in the AUC curve.
    """
    b = _flat(pred_bin).astype(bool)
    g = _flat(gt).astype(np.float64)
    inter = np.where(b, g, 0.0).sum(axis=1)
    denom = g.sum(axis=1) + (b & (g == 0)).sum(axis=1)
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, inter / safe, 0.0)


def gt_area(gt: np.ndarray) -> np.ndarray:
    """Ground-truth area = sum of the map (consensus maps count half pixels as 0.5)."""
    return _flat(gt).astype(np.float64).sum(axis=1)


def size_bucket(area: np.ndarray) -> np.ndarray:
    """Bucket name per sample (object array)."""
    area = np.asarray(area, dtype=np.float64)
    out = np.full(area.shape, "", dtype=object)
    for name, (lo, hi) in SIZE_BUCKETS.items():
        out[(area >= lo) & (area < hi)] = name
    return out


def mse(maps_01: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """DMT's MSE: mean over pixels of (P − G)², P the [0, 1] min-max map (float64)."""
    d = _flat(maps_01).astype(np.float64) - _flat(gt).astype(np.float64)
    return (d * d).mean(axis=1)


def success_rates(cious: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS) -> np.ndarray:
    """r(t) = mean 1[cIoU ≥ t] for each t."""
    c = np.asarray(cious, dtype=np.float64)
    if c.size == 0:
        return np.full(len(thresholds), np.nan)
    return (c[None, :] >= np.asarray(thresholds)[:, None]).sum(axis=1) / c.size


def trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area (same formula as sklearn.metrics.auc / np.trapz for increasing x)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def success_auc(cious: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS) -> float:
    """Area under the success-rate curve on t = 0, 0.05, …, 1."""
    return trapezoid(thresholds, success_rates(cious, thresholds))


def locacc(cious: np.ndarray, iou_threshold: float = 0.5) -> float:
    """Fraction of samples with cIoU ≥ threshold (the papers' 'cIoU' / 'AP50' column)."""
    c = np.asarray(cious, dtype=np.float64)
    return float(np.mean(c >= iou_threshold)) if c.size else float("nan")
