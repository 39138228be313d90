"""Straightforward per-sample numpy implementation of the evaluation protocol, as a researcher writes it.

Modelled on the SLAVC / EZ-VSL test code: for each sample, min-max normalise the map, threshold at
`np.sort(pred.flatten())[int(N / 2)]`, binarise into a float64 map, cIoU from sums; confidence =
`np.sort(map.flatten())[-N // 4:]` averaged (in float64, the avslkit convention); MSE against the
ground truth. Detection metrics loop over confidence thresholds one at a time (SLAVC `utils.py`).
Nothing is made slow on purpose; it is the baseline that `benchmarks/bench_eval.py` times the
vectorised metrics against, and the tests check that both give identical numbers.
"""

from __future__ import annotations

import math

import numpy as np


def normalize_img(value: np.ndarray) -> np.ndarray:
    vmin, vmax = value.min(), value.max()
    if vmax - vmin == 0:
        return np.zeros_like(value)  # avslkit convention for a constant map (see metrics.maps)
    return (value - vmin) / (vmax - vmin)


def sample_stats(score_map: np.ndarray, gt: np.ndarray, binarize: str = "relative", fixed_thr: float = 0.5) -> dict:
    """cIoU, confidence, GT area and MSE of one 224×224 absolute score map (float32, as models output)."""
    n = score_map.size
    pred = normalize_img(score_map)
    if binarize == "relative":
        thr = np.sort(pred.flatten())[int(n * 0.5)]
        infer = np.zeros(pred.shape)
        infer[pred >= thr] = 1
    elif binarize == "lvs":
        thr = np.sort(pred.flatten())[int(n * 0.5)]
        tmp = pred.copy()
        tmp[tmp > thr] = 1
        tmp[tmp < 1] = 0
        infer = tmp
    elif binarize == "absolute":
        infer = np.zeros(pred.shape)
        infer[score_map >= fixed_thr] = 1
    else:
        infer = np.zeros(pred.shape)
        infer[pred >= fixed_thr] = 1
    g = gt.astype(np.float64)
    num = np.sum(infer * g)
    den = np.sum(g) + np.sum(infer * (g == 0))
    ciou = num / den if den > 0 else 0.0
    k = math.ceil(n / 4)
    conf = np.sort(score_map.flatten())[-k:].astype(np.float64).mean()  # sorted in the map's dtype, as SLAVC
    mse = np.mean((pred.astype(np.float64) - g) ** 2)  # DMT: mean over pixels of (P − G)²
    return {"ciou": float(ciou), "conf": float(conf), "area": float(g.sum()), "mse": float(mse)}


def calc_precision_recall(positive, ciou_list, confidence_list, confidence_thr, ciou_thr=0.5):
    true_pos, false_pos, false_neg = 0, 0, 0
    for is_pos, ciou, confidence in zip(positive, ciou_list, confidence_list):
        if not is_pos:
            if confidence >= confidence_thr:
                false_pos += 1
        else:
            if confidence >= confidence_thr:
                if ciou >= ciou_thr:
                    true_pos += 1
                else:
                    false_pos += 1
            else:
                false_neg += 1
    precision = 1.0 if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
    recall = 1.0 if true_pos + false_neg == 0 else true_pos / (true_pos + false_neg)
    return precision, recall


def calc_ap(positive, ciou_list, confidence_list, iou_thr=0.5) -> float:
    precision, recall, skip_thr = [], [], max(1, len(ciou_list) // 200)
    for thr in np.sort(np.array(confidence_list))[:-1][::-skip_thr]:
        p, r = calc_precision_recall(positive, ciou_list, confidence_list, thr, iou_thr)
        precision.append(p)
        recall.append(r)
    precision_max = [np.max(precision[i:]) for i in range(len(precision))]
    return float(sum([precision_max[i] * (recall[i + 1] - recall[i]) for i in range(len(precision_max) - 1)]))


def calc_max_f1(positive, ciou_list, confidence_list, iou_thr=0.5, rule="published") -> float:
    if rule == "published":
        conf_thr = list(sorted(confidence_list))[:: max(1, len(confidence_list) // 10)]
    else:
        conf_thr = sorted(set(confidence_list))
    pr = [calc_precision_recall(positive, ciou_list, confidence_list, thr, iou_thr) for thr in conf_thr]
    return float(max(2 * r * p / (r + p) if r + p > 0 else 0.0 for p, r in pr))


def calc_auc(cious) -> float:
    rates = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
    thr = [0.05 * i for i in range(21)]
    return float(np.trapezoid(rates, thr))


def summarize_reference(cious, confs, areas, mses, kinds, iou_thresholds=(0.5, 0.75), max_f1_rule="published",
                        seed=0) -> dict:
    """The metrics.json body computed with the per-sample loops above (same layout as evaluation.protocol)."""
    from avslkit.metrics.detection import NEGATIVE_TYPES, negative_type_positive_sample

    sizes = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 144**2), "huge": (144**2, float("inf"))}
    positive = [k == "positive" for k in kinds]
    pos_idx = [i for i, p in enumerate(positive) if p]
    pc = [cious[i] for i in pos_idx]

    def det(idx, iou):
        pos = [positive[i] for i in idx]
        cc = [cious[i] for i in idx]
        cf = [confs[i] for i in idx]
        out = {"ap": calc_ap(pos, cc, cf, iou), "max_f1": calc_max_f1(pos, cc, cf, iou)}
        if max_f1_rule == "full":
            out["max_f1_full"] = calc_max_f1(pos, cc, cf, iou, "full")
        return out

    everything = list(range(len(kinds)))
    main = iou_thresholds[0]
    out = {"n_positive": len(pos_idx), "n_negative": len(kinds) - len(pos_idx),
           "locacc": float(np.mean(np.array(pc) >= main)), "mean_ciou": float(np.mean(pc)), "auc": calc_auc(pc)}
    out.update(det(everything, main))
    out["mse"] = float(np.mean([mses[i] for i in pos_idx]))
    for iou in iou_thresholds[1:]:
        out[f"at_iou_{iou}"] = {"locacc": float(np.mean(np.array(pc) >= iou)), **det(everything, iou)}
    out["visible"] = {f"@{iou}": det(pos_idx, iou) for iou in iou_thresholds}
    by_size = {}
    for name, (lo, hi) in sizes.items():
        idx = [i for i in pos_idx if lo <= areas[i] < hi]
        entry = {"n": len(idx), "locacc": None, "auc": None, "ap": None, "max_f1": None}
        if idx:
            c = [cious[i] for i in idx]
            entry["locacc"] = float(np.mean(np.array(c) >= main))
            entry["auc"] = calc_auc(c)
            entry.update(det(idx, main))
        by_size[name] = entry
    out["by_size"] = by_size
    by_type = {}
    for t in NEGATIVE_TYPES:
        neg = [i for i, k in enumerate(kinds) if k == t]
        if not neg:
            continue
        chosen = [pos_idx[j] for j in negative_type_positive_sample(len(pos_idx), len(neg), seed)]
        by_type[t] = {"n": len(neg), "n_positive": len(chosen), **det(chosen + neg, main)}
    out["by_negative_type"] = by_type
    return out
