"""From per-sample statistics to the published summary numbers (LocAcc, AUC, AP, max-F1, ...).

Subsets follow SLAVC's `EvaluatorFull.finalize_stats`: "all" (positives and negatives), "visible"
(positives only) and the four size buckets (positives whose ground-truth area falls in the bucket).
LocAcc, mean cIoU, AUC and MSE use positives only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from avslkit.metrics.detection import average_precision, max_f1
from avslkit.metrics.localization import SIZE_BUCKETS, locacc, size_bucket, success_auc

if TYPE_CHECKING:  # only a type here: the numba kernel behind it loads where maps are scored
    from avslkit.metrics.samples import SampleStats

POSITIVE = "positive"
NEGATIVE_TYPES = ("real", "easy", "hard", "unknown")


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def _detection(pos: np.ndarray, stats: SampleStats, iou: float, max_f1_rule: str) -> dict[str, Any]:
    out = {
        "ap": _nan_to_none(average_precision(pos, stats.ciou, stats.confidence, iou)),
        "max_f1": _nan_to_none(max_f1(pos, stats.ciou, stats.confidence, iou, "published")),
    }
    if max_f1_rule == "full":
        out["max_f1_full"] = _nan_to_none(max_f1(pos, stats.ciou, stats.confidence, iou, "full"))
    return out


def negative_type_positive_sample(n_positive: int, n: int, seed: int) -> np.ndarray:
    """Indices (into the positives) of the `n` positives paired with a negative type (seeded, sorted)."""
    rng = np.random.default_rng(seed)
    k = min(n, n_positive)
    return np.sort(rng.choice(n_positive, size=k, replace=False))


def summarize(
    stats: SampleStats,
    kinds: np.ndarray,
    iou_thresholds: tuple[float, ...] = (0.5, 0.75),
    max_f1_rule: str = "published",
    seed: int = 0,
) -> dict[str, Any]:
    """The metrics.json body (without "protocol"). `kinds`: "positive" or a negative type per sample."""
    kinds = np.asarray(kinds, dtype=object)
    pos = kinds == POSITIVE
    pstats = stats.take(pos)
    main_iou = iou_thresholds[0]
    out: dict[str, Any] = {
        "n_positive": int(pos.sum()),
        "n_negative": int((~pos).sum()),
        "locacc": _nan_to_none(locacc(pstats.ciou, main_iou)),
        "mean_ciou": _nan_to_none(float(np.mean(pstats.ciou)) if pos.any() else float("nan")),
        "auc": _nan_to_none(success_auc(pstats.ciou) if pos.any() else float("nan")),
    }
    out.update(_detection(pos, stats, main_iou, max_f1_rule))
    out["mse"] = _nan_to_none(float(np.mean(pstats.mse)) if pos.any() else float("nan"))
    for iou in iou_thresholds[1:]:
        block = {"locacc": _nan_to_none(locacc(pstats.ciou, iou))}
        block.update(_detection(pos, stats, iou, max_f1_rule))
        out[f"at_iou_{iou}"] = block
    out["visible"] = {f"@{iou}": _detection(pos[pos], pstats, iou, max_f1_rule) for iou in iou_thresholds}

    buckets = size_bucket(pstats.area)
    by_size: dict[str, Any] = {}
    for name in SIZE_BUCKETS:
        sel = buckets == name
        sub = pstats.take(sel)
        entry: dict[str, Any] = {"n": int(sel.sum()), "locacc": None, "auc": None, "ap": None, "max_f1": None}
        if sel.any():
            entry["locacc"] = _nan_to_none(locacc(sub.ciou, main_iou))
            entry["auc"] = _nan_to_none(success_auc(sub.ciou))
            entry.update(_detection(np.ones(int(sel.sum()), bool), sub, main_iou, max_f1_rule))
        by_size[name] = entry
    out["by_size"] = by_size

    by_type: dict[str, Any] = {}
    pos_index = np.flatnonzero(pos)
    for t in NEGATIVE_TYPES:
        neg_index = np.flatnonzero(kinds == t)
        if neg_index.size == 0:
            continue
        chosen = pos_index[negative_type_positive_sample(pos_index.size, neg_index.size, seed)]
        index = np.concatenate([chosen, neg_index])
        entry = {"n": int(neg_index.size), "n_positive": int(chosen.size)}
        entry.update(_detection(pos[index], stats.take(index), main_iou, max_f1_rule))
        by_type[t] = entry
    out["by_negative_type"] = by_type
    return out
