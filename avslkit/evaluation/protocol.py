"""From per-sample statistics to the published summary numbers (LocAcc, AUC, AP, max-F1, ...).

Subsets follow SLAVC's `EvaluatorFull.finalize_stats`: "all" (positives and negatives), "visible"
(positives only) and the four size buckets (positives whose ground-truth area falls in the bucket).
Which metrics each section holds, and how each is computed, comes from `avslkit.metrics.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from avslkit.metrics.detection import NEGATIVE_TYPES, negative_type_positive_sample  # noqa: F401 (re-exported)
from avslkit.metrics.localization import SIZE_BUCKETS, size_bucket
from avslkit.metrics.registry import Metric, Subset, metrics

if TYPE_CHECKING:  # only a type here: the numba kernel behind it loads where maps are scored
    from avslkit.metrics.samples import SampleStats

POSITIVE = "positive"


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def _block(section_metrics: Sequence[Metric], subset: Subset, iou: float) -> dict[str, Any]:
    return {m.key: _nan_to_none(m.aggregate(subset, iou)) for m in section_metrics}


def summary_options(max_f1_rule: str = "published") -> dict[str, Any]:
    """The eval options that switch metrics on (`Metric.enabled`)."""
    return {"max_f1": max_f1_rule}


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
    options = summary_options(max_f1_rule)
    section: Mapping[str, list[Metric]] = {name: metrics(name, options) for name in
                                           ("all", "at_iou", "visible", "by_size", "by_negative_type")}
    everything = Subset(stats, pos)
    pstats = everything.positives
    main_iou = iou_thresholds[0]
    out: dict[str, Any] = {"n_positive": int(pos.sum()), "n_negative": int((~pos).sum())}
    out.update(_block(section["all"], everything, main_iou))
    for iou in iou_thresholds[1:]:
        out[f"at_iou_{iou}"] = _block(section["at_iou"], everything, iou)
    visible = Subset(pstats, pos[pos])
    out["visible"] = {f"@{iou}": _block(section["visible"], visible, iou) for iou in iou_thresholds}

    buckets = size_bucket(pstats.area)
    by_size: dict[str, Any] = {}
    for name in SIZE_BUCKETS:
        sel = buckets == name
        entry: dict[str, Any] = {"n": int(sel.sum())}
        if sel.any():
            entry.update(_block(section["by_size"], Subset(pstats.take(sel), np.ones(int(sel.sum()), bool)), main_iou))
        else:  # an empty bucket lists its metrics as null, those switched on by an option left out (as always)
            entry.update({m.key: None for m in section["by_size"] if m.enabled is None})
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
        entry.update(_block(section["by_negative_type"], Subset(stats.take(index), pos[index]), main_iou))
        by_type[t] = entry
    out["by_negative_type"] = by_type
    return out
