"""The one list of metrics: each per-sample statistic and each aggregate is registered here once.

Everything that reports a metric is generated from this registry: `SampleStats` (its arrays),
`evaluation.protocol.summarize` (metrics.json), the per-sample CSV, the table `avslkit eval` prints,
the training Validator's record, the metrics tables of `avslkit viz` and the metrics table of
docs/evaluation.md (`python -m avslkit.metrics.registry docs/evaluation.md` rewrites it; a test checks it).

* A **per-sample statistic** is one number per evaluated sample (cIoU, confidence, ...): a function
  (absolute maps at the ground-truth resolution, ground-truth maps) → (N,) array, or one of the
  statistics the fused kernel of `metrics.samples` computes.
* A **metric** aggregates per-sample statistics over a `Subset` of samples at an IoU threshold into one
  number (NaN when undefined: written as null). It is reported in the sections it names (`SECTIONS`).

The built-in statistics and metrics of the published protocol are in `metrics/builtin.py`, loaded on
first use; registration order is the order of the keys in metrics.json and of the columns.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # only a type here: the numba kernel behind it loads where maps are scored
    from avslkit.metrics.samples import SampleStats

#: Where a metric can be reported in metrics.json, and what that section holds (the docs table lists these).
SECTIONS: dict[str, str] = {
    "all": "top level: every sample at the first IoU threshold (`locacc_iou`)",
    "at_iou": "`at_iou_θ`: every sample at each further IoU threshold of `iou_thresholds`",
    "visible": "`visible` → `@θ`: positives only, at every IoU threshold",
    "by_size": "`by_size` → bucket: positives by ground-truth area on the 224 map "
               "(small < 32², medium < 96², large < 144², huge), first IoU threshold",
    "by_negative_type": "`by_negative_type` → type: each negative type (real: video == audio; hard: same class; "
                        "easy: other class) with an equal number of positives (seeded, `negative_type_seed`), "
                        "as SLAVC Table 5",
}

#: A per-sample statistic's function: (maps (N, H, W) float32 absolute scores, ground truth (N, H, W)) → (N,).
SampleFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: A metric's aggregate: (subset of samples, IoU threshold) → one number (NaN when undefined).
Aggregate = Callable[["Subset", float], float]


@dataclass(frozen=True)
class SampleStatistic:
    """One number per sample: a `SampleStats` array (unless `derive`d) and a column of `<out>.samples.csv`."""

    name: str  # attribute of SampleStats
    column: str  # column of the per-sample CSV
    description: str
    compute: SampleFunction | None = None  # None: computed by the fused kernel (`metrics.samples`) or derived
    derive: Callable[["SampleStats"], np.ndarray] | None = None  # CSV-only column computed from other statistics
    positives_only: bool = True  # blank in the CSV for negative pairs (no ground truth)

    @property
    def stored(self) -> bool:
        """Whether `SampleStats` holds it (derived columns are computed when written)."""
        return self.derive is None

    def csv_values(self, stats: "SampleStats") -> list[str]:
        """The CSV cells of every sample (exact `repr` of float values)."""
        if self.derive is not None:
            return [str(v) for v in self.derive(stats)]
        return [repr(float(v)) for v in getattr(stats, self.name)]


@dataclass(frozen=True)
class Metric:
    """One aggregate number of metrics.json and its place in every table."""

    key: str  # key in metrics.json
    label: str  # column header in the printed and HTML tables
    description: str  # definition, for docs/evaluation.md
    aggregate: Aggregate
    sections: tuple[str, ...] = ("all",)
    label_iou: bool = False  # the header names the IoU threshold ("AP@0.5")
    percent: bool = True  # tables show 100·value; False: the raw value (MSE)
    enabled: Callable[[Mapping[str, Any]], bool] | None = None  # only under an option (e.g. max_f1: full)
    validation_key: str | None = None  # reported by the training Validator under this name (None: not)

    def active(self, options: Mapping[str, Any]) -> bool:
        return self.enabled is None or bool(self.enabled(options))

    def header(self, iou: float | None = None) -> str:
        return f"{self.label}@{iou}" if iou is not None and self.label_iou else self.label


class Subset:
    """The samples one metric value is computed on: their statistics and which of them are positives."""

    def __init__(self, stats: "SampleStats", positive: np.ndarray):
        self.stats = stats
        self.positive = np.asarray(positive, dtype=bool)

    @cached_property
    def positives(self) -> "SampleStats":
        """The statistics of the positives only (localisation metrics use these)."""
        return self.stats if self.positive.all() else self.stats.take(self.positive)

    @property
    def n_positive(self) -> int:
        return int(self.positive.sum())


def positive_mean(values: np.ndarray) -> float:
    """Mean of a statistic over the positives (`subset.positives.NAME`); NaN without positives."""
    return float(np.mean(values)) if np.asarray(values).size else float("nan")


_STATISTICS: dict[str, SampleStatistic] = {}
_METRICS: dict[str, Metric] = {}
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import avslkit.metrics.builtin  # noqa: F401, PLC0415  (registers the published metrics)


def register_sample_statistic(name: str, *, column: str | None = None, description: str,
                              positives_only: bool = True, derive: Callable[["SampleStats"], np.ndarray] | None = None,
                              kernel: bool = False) -> Callable[[SampleFunction | None], SampleFunction | None]:
    """Decorator registering `fn(maps, gt) -> (N,)` as a per-sample statistic (also callable with None
    for `kernel=True` statistics of `metrics.samples` and `derive`d CSV columns)."""

    def wrap(fn: SampleFunction | None) -> SampleFunction | None:
        _load_builtins()
        if name in _STATISTICS:
            raise ValueError(f"per-sample statistic '{name}' is already registered")
        if fn is None and not kernel and derive is None:
            raise ValueError(f"per-sample statistic '{name}' needs a function (maps, gt) -> (N,)")
        _STATISTICS[name] = SampleStatistic(name, column or name, description, None if kernel else fn, derive,
                                            positives_only)
        return fn

    return wrap


def register_metric(key: str, *, label: str, description: str, sections: Sequence[str] = ("all",),
                    label_iou: bool = False, percent: bool = True,
                    enabled: Callable[[Mapping[str, Any]], bool] | None = None,
                    validation_key: str | None = None) -> Callable[[Aggregate], Aggregate]:
    """Decorator registering `fn(subset, iou) -> float` as the metric `key` of metrics.json."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"metric '{key}': unknown section(s) {unknown} (choose from {', '.join(SECTIONS)})")

    def wrap(fn: Aggregate) -> Aggregate:
        _load_builtins()
        if key in _METRICS:
            raise ValueError(f"metric '{key}' is already registered")
        _METRICS[key] = Metric(key, label, description, fn, tuple(sections), label_iou, percent, enabled, validation_key)
        return fn

    return wrap


def unregister(name: str) -> None:
    """Remove a metric and/or per-sample statistic named `name` (tests register toy metrics and clean up)."""
    _METRICS.pop(name, None)
    _STATISTICS.pop(name, None)


def sample_statistics() -> list[SampleStatistic]:
    """Every per-sample statistic, in CSV column order."""
    _load_builtins()
    return list(_STATISTICS.values())


def stored_statistics() -> list[SampleStatistic]:
    """The statistics `SampleStats` holds, in its positional order."""
    return [s for s in sample_statistics() if s.stored]


def metrics(section: str | None = None, options: Mapping[str, Any] | None = None) -> list[Metric]:
    """Registered metrics in order; only those reported in `section` / active under `options` when given."""
    _load_builtins()
    return [m for m in _METRICS.values()
            if (section is None or section in m.sections) and (options is None or m.active(options))]


def present(section: str, entries: Iterable[Mapping[str, Any]]) -> list[Metric]:
    """The metrics of `section` that appear in any of `entries` (blocks of metrics.json), in order."""
    entries = list(entries)
    return [m for m in metrics(section) if any(m.key in e for e in entries)]


# -- docs -----------------------------------------------------------------------------------------------
DOCS_BEGIN = "<!-- metrics-table: generated by `python -m avslkit.metrics.registry docs/evaluation.md` -->"
DOCS_END = "<!-- /metrics-table -->"


def markdown_table() -> str:
    """The metrics table of docs/evaluation.md: per-sample statistics, metrics, and the sections."""

    def where(m: Metric) -> str:
        return ", ".join(f"`{s}`" for s in m.sections) + ("" if m.enabled is None else " (only under its option)")

    lines = ["| per-sample column | definition | negative pairs |", "|---|---|---|"]
    lines += [f"| `{s.column}` | {s.description} | {'blank' if s.positives_only else 'given'} |"
              for s in sample_statistics()]
    lines += ["", "| key | definition | reported in | training validation |", "|---|---|---|---|"]
    lines += [f"| `{m.key}` | {m.description} | {where(m)} | {f'`{m.validation_key}`' if m.validation_key else '—'} |"
              for m in metrics()]
    lines += ["", "| section | samples |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in SECTIONS.items()]
    return "\n".join(lines)


def docs_with_table(text: str) -> str:
    """`text` (docs/evaluation.md) with the part between the table markers replaced by `markdown_table()`."""
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the metrics table markers are missing: {DOCS_BEGIN} … {DOCS_END}")
    return text[: begin + len(DOCS_BEGIN)] + "\n\n" + markdown_table() + "\n\n" + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m avslkit.metrics.registry [DOC.md]`: print the table, or rewrite it inside DOC.md."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(markdown_table())
        return 0
    path = Path(args[0])
    path.write_text(docs_with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{path}: metrics table regenerated")
    return 0


if __name__ == "__main__":  # run as a script: use the imported module, where the built-ins register
    from avslkit.metrics.registry import main as _main

    raise SystemExit(_main())
