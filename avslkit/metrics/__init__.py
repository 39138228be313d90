"""Vectorised localisation and detection metrics of the published AVSL protocol (numpy, no loops).

`maps`: upsampling, per-sample min-max, binarisation rules, confidence; `localization`: cIoU,
LocAcc, AUC, size buckets, MSE; `detection`: precision/recall, AP, max-F1 of the extended protocol;
`samples`: everything per sample in one call; `reference`: straightforward per-sample implementation used for parity checks and benchmarks;
`registry`: the one list of per-sample statistics and metrics (built-ins in `builtin`) that metrics.json, the
per-sample CSV, the tables, the training Validator and the docs table are generated from.
"""

from avslkit.metrics.detection import average_precision, f1_scores, max_f1, precision_recall
from avslkit.metrics.localization import (
    AUC_THRESHOLDS,
    SIZE_BUCKETS,
    ciou,
    gt_area,
    locacc,
    mse,
    size_bucket,
    success_auc,
    success_rates,
)
from avslkit.metrics.maps import BINARIZERS, binarize, confidence, minmax_normalize, parse_binarize, upsample_maps
from avslkit.metrics.registry import register_metric, register_sample_statistic

__all__ = [
    "AUC_THRESHOLDS", "BINARIZERS", "SIZE_BUCKETS", "SampleStats", "average_precision", "binarize", "ciou",
    "confidence", "f1_scores", "gt_area", "locacc", "max_f1", "minmax_normalize", "mse", "parse_binarize",
    "precision_recall", "register_metric", "register_sample_statistic", "sample_stats", "size_bucket", "success_auc", "success_rates", "upsample_maps",
]


def __getattr__(name: str):
    """`SampleStats` / `sample_stats` load `metrics.samples` (and numba) on first use, not on import."""
    if name in ("SampleStats", "sample_stats"):
        from avslkit.metrics import samples

        return getattr(samples, name)
    raise AttributeError(f"module 'avslkit.metrics' has no attribute {name!r}")
