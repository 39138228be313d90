"""Figures of an evaluation and of a training run (matplotlib, Agg backend: no display needed).

Evaluation figures are recomputed from the per-sample rows with the same metric functions the
evaluation uses (so the success-curve AUC equals metrics.json's `auc`). Training figures read the
run log `log.jsonl`: loss terms per step, validation metrics per epoch, and the semi-supervised
pseudo-label statistics (DMT `pl_kept` / `pl_iou`, XPL `xpl_kept` / `xpl_corr`) when present.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avslkit.viz.select import SampleRow

#: IoU thresholds of the AP-against-IoU curve.
AP_IOU_THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)
#: Log keys plotted as semi-supervised statistics (substring match).
PSEUDO_LABEL_KEYS = ("kept", "pl_", "xpl_", "pseudo")
_SKIP_KEYS = {"type", "time", "epoch", "epochs_completed", "global_step", "step", "steps", "n", "seconds"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _arrays(rows: Sequence[SampleRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.array([r.is_positive for r in rows], dtype=bool)
    ciou = np.array([r.ciou if r.is_positive else 0.0 for r in rows], dtype=np.float64)
    conf = np.array([r.confidence for r in rows], dtype=np.float64)
    return pos, ciou, conf


def success_curve(runs: dict[str, Sequence[SampleRow]], path: str | Path) -> Path:
    """Success rate r(t) = mean 1[cIoU ≥ t] against t, one line per run, AUC in the legend."""
    from avslkit.metrics.localization import AUC_THRESHOLDS, success_auc, success_rates

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, rows in runs.items():
        pos, ciou, _ = _arrays(rows)
        if pos.any():
            ax.plot(AUC_THRESHOLDS, success_rates(ciou[pos]), marker=".", label=f"{name} (AUC {100 * success_auc(ciou[pos]):.1f})")
    ax.set(xlabel="cIoU threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1.02), title="Success curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def f1_vs_confidence(runs: dict[str, Sequence[SampleRow]], path: str | Path, iou_threshold: float = 0.5) -> Path:
    """F1 (extended protocol detection) against the confidence threshold, every distinct confidence."""
    from avslkit.metrics.detection import f1_scores, precision_recall

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, rows in runs.items():
        pos, ciou, conf = _arrays(rows)
        if not pos.any():
            continue
        thr = np.unique(conf)
        p, r = precision_recall(pos, ciou, conf, thr, iou_threshold)
        f1 = f1_scores(p, r)
        ax.plot(thr, f1, label=f"{name} (max {100 * np.nanmax(f1):.1f})")
    ax.set(xlabel="confidence threshold", ylabel=f"F1 @ IoU {iou_threshold}", ylim=(0, 1.02), title="F1 vs confidence")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def ap_vs_iou(runs: dict[str, Sequence[SampleRow]], path: str | Path,
              thresholds: np.ndarray = AP_IOU_THRESHOLDS) -> Path:
    """Average precision (published rule) against the IoU threshold."""
    from avslkit.metrics.detection import average_precision

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, rows in runs.items():
        pos, ciou, conf = _arrays(rows)
        if pos.any():
            ax.plot(thresholds, [average_precision(pos, ciou, conf, float(t)) for t in thresholds], marker=".", label=name)
    ax.set(xlabel="IoU threshold", ylabel="AP", xlim=(0, 1), ylim=(0, 1.02), title="AP vs IoU threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def size_bars(runs: dict[str, dict[str, Any]], path: str | Path, metric: str = "locacc") -> Path:
    """Per ground-truth size bucket bars of `metric` (from metrics.json `by_size`), runs side by side."""
    from avslkit.metrics.localization import SIZE_BUCKETS

    plt = _pyplot()
    buckets = list(SIZE_BUCKETS)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    width = 0.8 / max(1, len(runs))
    for k, (name, metrics) in enumerate(runs.items()):
        by_size = metrics.get("by_size", {})
        values = [by_size.get(b, {}).get(metric) for b in buckets]
        x = np.arange(len(buckets)) + k * width
        ax.bar(x, [0.0 if v is None else 100 * v for v in values], width, label=name)
        for xi, b, v in zip(x, buckets, values):
            ax.text(xi, 1 if v is None else 100 * v + 1, f"n={by_size.get(b, {}).get('n', 0)}", ha="center", fontsize=6)
    ax.set_xticks(np.arange(len(buckets)) + width * (len(runs) - 1) / 2, buckets)
    ax.set(ylabel=f"{metric} (%)", ylim=(0, 105), title=f"{metric} by ground-truth size")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _numeric_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in _SKIP_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.setdefault(k)
    return list(keys)


def _series(records: Sequence[dict[str, Any]], key: str, x_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(records):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r.get(x_key, i))
            ys.append(v)
    return xs, ys


def _line_figure(records: Sequence[dict[str, Any]], keys: Sequence[str], x_key: str, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key in keys:
        xs, ys = _series(records, key, x_key)
        if xs:
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=key)
    ax.set(xlabel=x_key, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def training_curves(log_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Figures from a run log: `train_loss.png` (step loss terms), `val_metrics.png` (per epoch),
    `pseudo_labels.png` (kept fraction and pseudo-label quality, when logged). Absent data → no figure."""
    from avslkit.engine.logging import read_log

    records = read_log(log_path)
    out_dir = Path(out_dir)
    figures: dict[str, Path] = {}
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    vals = [r for r in records if r.get("type") == "val"]

    def pseudo(k: str) -> bool:
        return any(p in k for p in PSEUDO_LABEL_KEYS)

    loss_keys = [k for k in _numeric_keys(steps) if k.startswith("loss") and not pseudo(k)]
    if loss_keys:
        figures["train_loss"] = _line_figure(steps, loss_keys, "global_step", "Training loss terms", out_dir / "train_loss.png")
    val_keys = [k for k in _numeric_keys(vals) if not k.endswith("_s") and not pseudo(k)]
    if val_keys:
        figures["val_metrics"] = _line_figure(vals, val_keys, "epochs_completed", "Validation", out_dir / "val_metrics.png")
    pl_steps = [k for k in _numeric_keys(steps) if pseudo(k)]
    pl_epochs = [k for k in _numeric_keys(epochs) if pseudo(k)]
    if pl_steps:
        figures["pseudo_labels"] = _line_figure(steps, pl_steps, "global_step", "Pseudo-labels (kept fraction, quality)",
                                                out_dir / "pseudo_labels.png")
    elif pl_epochs:
        figures["pseudo_labels"] = _line_figure(epochs, pl_epochs, "epochs_completed", "Pseudo-labels (kept fraction, quality)",
                                                out_dir / "pseudo_labels.png")
    return figures


def evaluation_figures(runs: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """All evaluation figures for one or more `EvalRun`s (name → run), compared on shared axes."""
    out_dir = Path(out_dir)
    rows = {name: run.rows for name, run in runs.items()}
    figures = {
        "success": success_curve(rows, out_dir / "success_curve.png"),
        "size": size_bars({n: r.metrics for n, r in runs.items()}, out_dir / "locacc_by_size.png"),
    }
    if any(not r.is_positive for rs in rows.values() for r in rs):
        figures["f1"] = f1_vs_confidence(rows, out_dir / "f1_vs_confidence.png")
    figures["ap"] = ap_vs_iou(rows, out_dir / "ap_vs_iou.png")
    return figures
