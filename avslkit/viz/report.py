"""`avslkit viz`: overlays, comparison grids, figures and a static `index.html` for evaluated runs.

Input: one or more evaluations (metrics.json, its directory, or a run directory holding one) and/or
a training run directory (its `log.jsonl`). The first evaluation chooses the samples (selections
from `avslkit.viz.select`); further evaluations are drawn on the same samples, side by side.
`components=True` adds, for checkpoint evaluations, a grid of the AV, OGL and fused maps.
Everything lands in one output directory with relative links, so the report opens from disk.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np

from avslkit.errors import AvslError
from avslkit.utils.console import log
from avslkit.viz.overlay import DEFAULT_CMAP, DEFAULT_HEAT_ALPHA, grid, render_sample, save_png
from avslkit.viz.runs import EvalRun, find_metrics, load_eval
from avslkit.viz.select import SELECTIONS, SampleRow, select

DEFAULT_SELECTIONS = ("best", "worst", "random", "per-size", "negatives")


@dataclass
class VizOptions:
    """What `build_report` draws (every field is a CLI option of `avslkit viz`)."""

    selections: Sequence[str] = DEFAULT_SELECTIONS
    k: int = 6  # samples per selection (per bucket for per-size)
    seed: int = 0
    size: int = 224
    heat_alpha: float = DEFAULT_HEAT_ALPHA
    cmap: str = DEFAULT_CMAP  # any matplotlib colormap name
    binarize: str | None = None  # default: the evaluation's own rule
    components: bool = False  # AV / OGL / fused grid for checkpoint evaluations
    ogl_weights: str | None = None
    fusion: str | None = None  # None: the run's own rule (avslkit.inference.fusion_rule)
    alpha: float | None = None
    device: str = "cpu"
    test: str | None = None  # override the recorded test store
    annotations: str | None = None  # override the recorded annotations
    run_dirs: Sequence[str] = field(default_factory=tuple)  # extra training runs for curves


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "sample"


def _link(target: Path, out_dir: Path) -> str:
    return quote(Path(os.path.relpath(target, out_dir)).as_posix())


def find_run_log(path: str | Path, run: EvalRun | None) -> Path | None:
    """`log.jsonl` of a training run: in the given directory, or the evaluated checkpoint's run."""
    candidates = [Path(path)] if Path(path).is_dir() else []
    if run is not None:
        candidates.append(run.metrics_path.parent)
        ckpt = run.resolve("checkpoint")
        if ckpt is not None:
            candidates.append(ckpt if ckpt.is_dir() else ckpt.parent)
    return next((c / "log.jsonl" for c in candidates if (c / "log.jsonl").is_file()), None)


class _Drawer:
    """Overlays of chosen samples for several runs (maps fetched per run, once per selection)."""

    def __init__(self, runs: Sequence[EvalRun], labels: Sequence[str], opts: VizOptions):
        self.runs, self.labels, self.opts = runs, labels, opts

    def tiles(self, rows: Sequence[SampleRow]) -> list[list[np.ndarray]]:
        """tiles[i][j]: sample i drawn with run j's map (a grey tile where run j lacks the sample)."""
        main = self.runs[0]
        frames = main.frames([r.video for r in rows])
        out = [[] for _ in rows]
        for run, label in zip(self.runs, self.labels):
            present = [(i, run.row(r.name)) for i, r in enumerate(rows)]
            have = [(i, rr) for i, rr in present if rr is not None]
            maps = run.maps([rr for _, rr in have], self.opts.device, self.opts.ogl_weights) if have else []
            by_index = {i: (rr, m) for (i, rr), m in zip(have, maps)}
            spec = self.opts.binarize or run.config.get("binarize") or "relative"
            for i, r in enumerate(rows):
                if i not in by_index:
                    out[i].append(np.full((self.opts.size, self.opts.size, 3), 128, np.uint8))
                    continue
                rr, m = by_index[i]
                title = label if len(self.runs) > 1 else r.name if r.is_positive else f"neg:{r.kind} {r.video}|{r.audio}"
                out[i].append(render_sample(
                    frames[i], m, boxes=main.boxes(r.video) if r.is_positive else None, binarize=spec,
                    ciou=rr.ciou if rr.is_positive else None, confidence=rr.confidence, title=title[:40],
                    size=self.opts.size, heat_alpha=self.opts.heat_alpha, cmap=self.opts.cmap))
        return out

    def components(self, rows: Sequence[SampleRow]) -> list[list[np.ndarray]] | None:
        """Per sample: AV, OGL and fused overlays (checkpoint evaluations only)."""
        from avslkit.data.store import Store
        from avslkit.viz.localize import MAP_KINDS, Localizer, load_ogl, overlays

        main = self.runs[0]
        if not main.config.get("checkpoint"):
            log.warning("components grid skipped: %s did not evaluate a checkpoint", main.metrics_path)
            return None
        task = main.task(self.opts.device)
        localizer = Localizer(task, load_ogl(self.opts.ogl_weights, self.opts.device), self.opts.fusion,
                              self.opts.alpha, self.opts.size)
        frames = main.frames([r.video for r in rows])
        with Store(main.resolve("test")) as s:  # the clips as stored: the maps eval scored
            jpegs = [s.frame_bytes(s.index_of(r.video)) for r in rows]
            audio = [s.audio_int16(s.index_of(r.audio)) for r in rows]
        sets = localizer.maps(jpegs, audio)
        self.fusion_rule = localizer.rule
        return [[overlays(f, ms, self.opts.size)[k] for k in MAP_KINDS] for f, ms in zip(frames, sets)]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{100 * v:.2f}" if abs(v) <= 1.0 else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _iou_thresholds(metrics: dict[str, Any]) -> list[float]:
    """The evaluation's IoU thresholds (recorded in its protocol; else 0.5 and its `at_iou_θ` blocks)."""
    recorded = (metrics.get("protocol") or {}).get("iou_thresholds")
    if recorded:
        return [float(t) for t in recorded]
    return [0.5] + [float(k[len("at_iou_"):]) for k in metrics if k.startswith("at_iou_")]


def metrics_tables(runs: Sequence[EvalRun]) -> str:
    """HTML tables: main metrics per run, per size bucket and per negative type (percent), their columns
    the registered metrics each evaluation reports (`metrics.registry`)."""
    from avslkit.metrics.registry import present

    def value(m: Any, v: Any) -> Any:
        return v if v is None or m.percent else f"{v:.4f}"  # raw values (MSE) as text, percent otherwise

    all_metrics = [r.metrics for r in runs]
    main_iou = _iou_thresholds(all_metrics[0])[0] if runs else 0.5
    top = present("all", all_metrics)
    further = list(dict.fromkeys(t for m in all_metrics for t in _iou_thresholds(m)[1:]))
    at = {t: present("at_iou", [m.get(f"at_iou_{t}", {}) for m in all_metrics]) for t in further}
    header = ["run", "positives", "negatives", *(m.header(main_iou) + ("" if m.percent else " (raw)") for m in top)]
    header += [f"{m.label}@{t}" for t in further for m in at[t]]
    main_rows = []
    for r in runs:
        row = [r.label, r.metrics.get("n_positive"), r.metrics.get("n_negative")]
        row += [value(m, r.metrics.get(m.key)) for m in top]
        row += [value(m, r.metrics.get(f"at_iou_{t}", {}).get(m.key)) for t in further for m in at[t]]
        main_rows.append(row)
    parts = ["<h2>Metrics (%)</h2>", _table(header, main_rows)]
    size_entries = [e for r in runs for e in r.metrics.get("by_size", {}).values()]
    if size_entries:
        cols = present("by_size", size_entries)
        size_rows = [[r.label, b, e.get("n"), *(value(m, e.get(m.key)) for m in cols)]
                     for r in runs for b, e in r.metrics.get("by_size", {}).items()]
        parts += ["<h3>By ground-truth size</h3>", _table(["run", "bucket", "n", *(m.label for m in cols)], size_rows)]
    neg_entries = [e for r in runs for e in r.metrics.get("by_negative_type", {}).values()]
    if neg_entries:
        cols = present("by_negative_type", neg_entries)
        neg_rows = [[r.label, t, e.get("n"), e.get("n_positive"), *(value(m, e.get(m.key)) for m in cols)]
                    for r in runs for t, e in r.metrics.get("by_negative_type", {}).items()]
        parts += ["<h3>By negative type</h3>",
                  _table(["run", "negatives", "n", "positives", *(m.label for m in cols)], neg_rows)]
    protocol = runs[0].metrics.get("protocol") if runs else None
    if protocol:
        parts += ["<details><summary>Protocol</summary>",
                  _table(["key", "value"], [[k, str(v)] for k, v in protocol.items()]), "</details>"]
    return "\n".join(parts)


_CSS = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
        "img{max-width:100%;border:1px solid #ddd;margin:4px}.figs img{width:420px}")


def build_report(inputs: Sequence[str | Path], out_dir: str | Path, opts: VizOptions | None = None) -> Path:
    """Draw everything for `inputs` into `out_dir` and write `out_dir/index.html`; returns its path."""
    from avslkit.viz.plots import evaluation_figures, training_curves

    opts = opts or VizOptions()
    if not inputs:
        raise AvslError("pass at least one evaluation (metrics.json or its directory) or run directory")
    import matplotlib

    if opts.cmap not in matplotlib.colormaps:
        raise AvslError(f"unknown colormap '{opts.cmap}' (any matplotlib name, e.g. jet, viridis, inferno)")
    for name in opts.selections:
        if name not in SELECTIONS:
            raise AvslError(f"unknown selection '{name}' (choose {', '.join(SELECTIONS)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[EvalRun] = []
    for p in inputs:
        if find_metrics(p) is not None:
            run = load_eval(p)
            for key, value in (("test", opts.test), ("annotations", opts.annotations)):
                if value:
                    run.config[key] = value
            runs.append(run)
    logs = [(Path(p), find_run_log(p, runs[k] if k < len(runs) else None)) for k, p in enumerate(inputs)]
    logs += [(Path(d), Path(d) / "log.jsonl") for d in opts.run_dirs]
    logs = [(p, lg) for p, lg in logs if lg is not None and lg.is_file()]
    if not runs and not logs:
        raise AvslError(f"{inputs[0]}: nothing to show (no metrics.json + .samples.csv, no log.jsonl)")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):  # e.g. several runs/<name>/metrics.json with equal names
        labels = [f"{k}:{lab}" for k, lab in enumerate(labels)]

    sections: list[str] = []
    if runs:
        sections.append(metrics_tables(runs))
        figs = evaluation_figures({lab: r for lab, r in zip(labels, runs)}, out / "figures")
        sections.append("<h2>Figures</h2><div class='figs'>" + "".join(
            f"<a href='{_link(p, out)}'><img src='{_link(p, out)}' alt='{html.escape(n)}'></a>" for n, p in figs.items()) + "</div>")
        sections.append(_samples_section(runs, labels, out, opts))
    for k, (p, lg) in enumerate(logs):
        figs = training_curves(lg, out / "training" / (_safe(p.name) if len(logs) > 1 else ""))
        if figs:
            sections.append(f"<h2>Training: {html.escape(str(p))}</h2><div class='figs'>" + "".join(
                f"<a href='{_link(f, out)}'><img src='{_link(f, out)}' alt='{html.escape(n)}'></a>" for n, f in figs.items()) + "</div>")
    title = "avslkit report: " + ", ".join(labels or [str(p) for p, _ in logs])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"</head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _samples_section(runs: Sequence[EvalRun], labels: Sequence[str], out: Path, opts: VizOptions) -> str:
    drawer = _Drawer(runs, labels, opts)
    parts = ["<h2>Samples</h2><p>Heatmap: per-sample min-max of the score map (JET, red = high). Green: ground-truth boxes. "
             "White: the evaluated binary prediction. Corner: cIoU and confidence.</p>"]
    for name in opts.selections:
        rows = select(runs[0].rows, name, opts.k, opts.seed)
        if not rows:
            continue
        tiles = drawer.tiles(rows)
        files = []
        for row, row_tiles in zip(rows, tiles):
            for lab, tile in zip(labels, row_tiles):
                suffix = f"__{_safe(lab)}" if len(runs) > 1 else ""
                files.append(save_png(tile, out / "samples" / name / f"{_safe(row.name)}{suffix}.png"))
        if len(runs) > 1:
            sheet = grid(tiles, col_titles=labels)
        else:
            per_row = 4
            flat = [t[0] for t in tiles]
            sheet = grid([flat[i:i + per_row] for i in range(0, len(flat), per_row)])
        sheet_path = save_png(sheet, out / "grids" / f"{name}.png")
        parts.append(f"<h3>{html.escape(name)} ({len(rows)})</h3><a href='{_link(sheet_path, out)}'>"
                     f"<img src='{_link(sheet_path, out)}' alt='{html.escape(name)}'></a>")
        parts.append("<p>" + " ".join(f"<a href='{_link(f, out)}'>{html.escape(f.stem)}</a>" for f in files) + "</p>")
        if opts.components:
            comp = drawer.components(rows)
            if comp is not None:
                comp_path = save_png(grid(comp, col_titles=["AV", "OGL", f"fused ({getattr(drawer, 'fusion_rule', opts.fusion)})"]),
                                     out / "grids" / f"{name}_components.png")
                parts.append(f"<p>AV / OGL / fused:</p><a href='{_link(comp_path, out)}'><img src='{_link(comp_path, out)}' "
                             f"alt='{html.escape(name)} components'></a>")
    return "\n".join(parts)
