"""Which samples to draw: best / worst / random / per size bucket / most confident negatives.

Selections read the per-sample rows of an evaluation (`<out>.samples.csv`); each is a registered
function `(rows, k, seed) -> rows`, so a new selection is one entry in `SELECTIONS`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from avslkit.errors import AvslError
from avslkit.metrics.localization import SIZE_BUCKETS


@dataclass(frozen=True)
class SampleRow:
    """One row of `<out>.samples.csv` (cIoU, area, MSE are NaN for negatives)."""

    name: str
    video: str
    audio: str
    kind: str
    ciou: float
    confidence: float
    gt_area: float
    size_bucket: str
    mse: float

    @property
    def is_positive(self) -> bool:
        return self.kind == "positive"


def _num(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def read_samples_csv(path: str | Path) -> list[SampleRow]:
    """Rows of an evaluation's per-sample CSV."""
    p = Path(path)
    if not p.is_file():
        raise AvslError(f"per-sample results not found: {p} (run 'avslkit eval' first; it writes <out>.samples.csv)")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"name", "video", "audio", "type", "ciou", "confidence"}
        if not need <= set(reader.fieldnames or ()):
            raise AvslError(f"{p}: not an 'avslkit eval' per-sample CSV (needs columns {', '.join(sorted(need))})")
        return [SampleRow(r["name"], r["video"], r["audio"], r["type"], _num(r["ciou"]), _num(r["confidence"]),
                          _num(r.get("gt_area", "")), r.get("size_bucket", "") or "", _num(r.get("mse", "")))
                for r in reader]


Selector = Callable[[Sequence[SampleRow], int, int], list[SampleRow]]


def _positives(rows: Sequence[SampleRow]) -> list[SampleRow]:
    return [r for r in rows if r.is_positive]


def select_best(rows: Sequence[SampleRow], k: int, seed: int = 0) -> list[SampleRow]:
    """Positives with the highest cIoU (ties: higher confidence first)."""
    return sorted(_positives(rows), key=lambda r: (-r.ciou, -r.confidence, r.name))[:k]


def select_worst(rows: Sequence[SampleRow], k: int, seed: int = 0) -> list[SampleRow]:
    """Positives with the lowest cIoU (ties: higher confidence first: confidently wrong)."""
    return sorted(_positives(rows), key=lambda r: (r.ciou, -r.confidence, r.name))[:k]


def select_random(rows: Sequence[SampleRow], k: int, seed: int = 0) -> list[SampleRow]:
    """k samples drawn without replacement (numpy default_rng(seed)), in file order."""
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(rows), size=min(k, len(rows)), replace=False)) if rows else []
    return [rows[i] for i in index]


def select_per_size(rows: Sequence[SampleRow], k: int, seed: int = 0) -> list[SampleRow]:
    """Up to k random positives from each ground-truth size bucket (small, medium, large, huge)."""
    out: list[SampleRow] = []
    for bucket in SIZE_BUCKETS:
        out += select_random([r for r in _positives(rows) if r.size_bucket == bucket], k, seed)
    return out


def select_confident_negatives(rows: Sequence[SampleRow], k: int, seed: int = 0) -> list[SampleRow]:
    """Negatives with the highest confidence: the model's worst false alarms."""
    return sorted([r for r in rows if not r.is_positive], key=lambda r: (-r.confidence, r.name))[:k]


SELECTIONS: dict[str, Selector] = {
    "best": select_best,
    "worst": select_worst,
    "random": select_random,
    "per-size": select_per_size,
    "negatives": select_confident_negatives,
}


def select(rows: Sequence[SampleRow], name: str, k: int, seed: int = 0) -> list[SampleRow]:
    """Apply the named selection."""
    try:
        fn = SELECTIONS[name]
    except KeyError:
        raise AvslError(f"unknown selection '{name}' (choose {', '.join(SELECTIONS)})") from None
    return fn(rows, k, seed)
