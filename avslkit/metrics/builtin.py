"""The published protocol's per-sample statistics and metrics (SLAVC / EZ-VSL / DMT), registered in
the order of their metrics.json keys and CSV columns. A new metric is added here (see the "Adding a
metric" recipe in docs/architecture.md); `metrics.registry` loads this module on first use.
"""

from __future__ import annotations

from avslkit.metrics.detection import average_precision, max_f1
from avslkit.metrics.localization import locacc, size_bucket, success_auc
from avslkit.metrics.registry import Subset, positive_mean, register_metric, register_sample_statistic

# -- per-sample statistics (CSV columns after name, video, audio, type) ----------------------------------
# ciou, confidence, area and mse come from one fused pass over each map (`metrics.samples`).
register_sample_statistic(
    "ciou", kernel=True,
    description="cIoU = Σ(B·G) / (ΣG + Σ B·[G = 0]) of the binary prediction B (`binarize`) and the ground truth G; "
                "0/0 is 0")(None)
register_sample_statistic(
    "confidence", kernel=True, positives_only=False,
    description="mean of the top 25% of the absolute map after upsampling and scaling (`confidence_dtype`)")(None)
register_sample_statistic(
    "area", column="gt_area", kernel=True,
    description="ground-truth area: sum of the 224×224 ground-truth map (consensus maps count a half pixel as 0.5)")(None)
register_sample_statistic(
    "size_bucket", derive=lambda stats: size_bucket(stats.area),
    description="bucket of `gt_area`: small < 32², medium < 96², large < 144², huge")(None)
register_sample_statistic(
    "mse", kernel=True, description="mean over pixels of (P − G)², P the per-sample min-max map")(None)


# -- metrics (metrics.json keys) --------------------------------------------------------------------------
@register_metric("locacc", label="LocAcc", sections=("all", "at_iou", "by_size"), validation_key="loc_acc",
                 description="fraction of positives with cIoU ≥ θ — the number the papers' tables call \"CIoU\"")
def _locacc(subset: Subset, iou: float) -> float:
    return locacc(subset.positives.ciou, iou)


@register_metric("mean_ciou", label="mean cIoU", validation_key="ciou_mean", description="mean cIoU over positives")
def _mean_ciou(subset: Subset, iou: float) -> float:
    return positive_mean(subset.positives.ciou)


@register_metric("auc", label="AUC", sections=("all", "by_size"), validation_key="auc",
                 description="area under the success curve r(t) = mean 1[cIoU ≥ t] of the positives on "
                             "t = 0, 0.05, …, 1 (trapezoid)")
def _auc(subset: Subset, iou: float) -> float:
    c = subset.positives.ciou
    return success_auc(c) if c.size else float("nan")


_DETECTION = ("all", "at_iou", "visible", "by_size", "by_negative_type")
_EXTENDED = ("extended protocol over the subset's samples (positives only when there are no negatives) by "
             "`confidence`; FP counts negatives **and** positives with cIoU < θ above the threshold; ")


@register_metric("ap", label="AP", sections=_DETECTION, label_iou=True,
                 description=_EXTENDED + "AP over the thresholds sorted(conf)[:-1][::-max(1, N//200)] with the "
                                         "precision envelope")
def _ap(subset: Subset, iou: float) -> float:
    return average_precision(subset.positive, subset.stats.ciou, subset.stats.confidence, iou)


@register_metric("max_f1", label="max-F1", sections=_DETECTION, label_iou=True,
                 description=_EXTENDED + "maximum F1 over sorted(conf)[::max(1, N//10)] (published)")
def _max_f1(subset: Subset, iou: float) -> float:
    return max_f1(subset.positive, subset.stats.ciou, subset.stats.confidence, iou, "published")


@register_metric("max_f1_full", label="max-F1 full", sections=_DETECTION, label_iou=True,
                 enabled=lambda options: options.get("max_f1") == "full",
                 description="as `max_f1`, over every distinct confidence (`max_f1: full`)")
def _max_f1_full(subset: Subset, iou: float) -> float:
    return max_f1(subset.positive, subset.stats.ciou, subset.stats.confidence, iou, "full")


@register_metric("mse", label="MSE", percent=False, description="DMT's MSE: mean of `mse` over positives")
def _mse(subset: Subset, iou: float) -> float:
    return positive_mean(subset.positives.mse)


__all__: list[str] = []  # everything here is reached through `metrics.registry`
