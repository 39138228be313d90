"""Extended-protocol detection metrics (SLAVC): precision/recall, AP and max-F1 over confidences.

A sample is positive when it has a visible sounding object (ground truth exists). At confidence
threshold c and cIoU threshold θ:
TP = positives with conf ≥ c and cIoU ≥ θ; FP = negatives with conf ≥ c plus positives with
conf ≥ c and cIoU < θ; FN = positives with conf < c. Precision = 1 when TP + FP = 0, recall = 1
when TP + FN = 0. All counts for all thresholds come from sorted arrays and `searchsorted`, so
the numbers are identical to the reference's per-threshold loops.
"""

from __future__ import annotations

import numpy as np

MAX_F1_RULES = ("published", "full")
NEGATIVE_TYPES = ("real", "easy", "hard", "unknown")  # the extended set's negative kinds, each scored with its own positives


def negative_type_positive_sample(n_positive: int, n: int, seed: int) -> np.ndarray:
    """Indices (into the positives) of the `n` positives paired with a negative type (seeded, sorted)."""
    rng = np.random.default_rng(seed)
    k = min(n, n_positive)
    return np.sort(rng.choice(n_positive, size=k, replace=False))


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def precision_recall(
    is_positive: np.ndarray, cious: np.ndarray, conf: np.ndarray, thresholds: np.ndarray, iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every confidence threshold (vectorised over thresholds)."""
    pos = np.asarray(is_positive, dtype=bool)
    c = np.asarray(conf, dtype=np.float64)
    u = np.asarray(cious, dtype=np.float64)
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    hit = pos & (u >= iou_threshold)
    tp = _count_at_least(np.sort(c[hit]), thr)
    fp = _count_at_least(np.sort(c[~hit]), thr)  # negatives and mislocalised positives
    fn = pos.sum() - _count_at_least(np.sort(c[pos]), thr)
    det = tp + fp
    precision = np.where(det == 0, 1.0, tp / np.where(det == 0, 1, det))
    rel = tp + fn
    recall = np.where(rel == 0, 1.0, tp / np.where(rel == 0, 1, rel))
    return precision, recall


def ap_thresholds(conf: np.ndarray) -> np.ndarray:
    """Sorted confidences without the largest, walked downwards with stride max(1, N // 200)."""
    c = np.sort(np.asarray(conf, dtype=np.float64))
    stride = max(1, c.size // 200)
    return c[:-1][::-stride]


def average_precision(is_positive: np.ndarray, cious: np.ndarray, conf: np.ndarray, iou_threshold: float = 0.5) -> float:
    """AP = Σ_m p̃_m (r_{m+1} − r_m), p̃_m = max_{m' ≥ m} p_{m'}; no recall points are prepended.

    Summed left to right (as Python's sum in the reference), so it is bit-identical.
    """
    if np.asarray(conf).size == 0:
        return float("nan")
    thr = ap_thresholds(conf)
    if thr.size < 2:
        return 0.0
    p, r = precision_recall(is_positive, cious, conf, thr, iou_threshold)
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    terms = envelope[:-1] * (r[1:] - r[:-1])
    return float(np.cumsum(terms)[-1])


def f1_scores(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """2rp / (r + p), 0 when r + p = 0."""
    s = recall + precision
    return np.where(s > 0, 2 * recall * precision / np.where(s > 0, s, 1.0), 0.0)


def f1_thresholds(conf: np.ndarray, rule: str = "published") -> np.ndarray:
    """published: sorted(conf)[::max(1, N // 10)] (SLAVC); full: every distinct confidence."""
    c = np.sort(np.asarray(conf, dtype=np.float64))
    if rule == "published":
        return c[:: max(1, c.size // 10)]
    if rule == "full":
        return np.unique(c)
    raise ValueError(f"unknown max-F1 rule '{rule}' (choose {', '.join(MAX_F1_RULES)})")


def max_f1(is_positive: np.ndarray, cious: np.ndarray, conf: np.ndarray, iou_threshold: float = 0.5,
           rule: str = "published") -> float:
    """Maximum F1 over the confidence thresholds of `rule`."""
    if np.asarray(conf).size == 0:
        return float("nan")
    p, r = precision_recall(is_positive, cious, conf, f1_thresholds(conf, rule), iou_threshold)
    return float(f1_scores(p, r).max())
