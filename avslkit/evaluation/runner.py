"""`avslkit eval`: score maps (a MAPS.npz, a baseline, or a checkpoint) → metrics.json + per-sample CSV.

The per-sample step (upsampling, ground truth, cIoU, confidence, MSE) runs in chunks so memory stays
bounded for 10k+ maps; every aggregate is computed once on the per-sample arrays.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avslkit import __version__
from avslkit.data.annotations import (Annotations, box_problems, describe_box_problems, gt_maps, read_annotations,
                                      read_extended_csv, read_id_list)
from avslkit.errors import AvslError
from avslkit.evaluation.baselines import BASELINES, MapSource, baseline_source
from avslkit.evaluation.items import EvalItem, negative_items, positive_items, read_recorded_extended
from avslkit.evaluation.protocol import summarize
from avslkit.metrics.localization import AUC_THRESHOLDS, SIZE_BUCKETS
from avslkit.metrics.maps import BINARIZERS, EVAL_SIZE, parse_binarize, scale_maps, upsample_maps
from avslkit.metrics.samples import SampleStats, sample_stats
from avslkit.utils.console import log
from avslkit.utils.io import atomic_path, atomic_write_json


# -- inputs -------------------------------------------------------------------------------------------
def store_classes(store: str | Path | None) -> dict[str, str]:
    """id → label from a store's label column (empty labels skipped)."""
    if store is None:
        return {}
    from avslkit.data.store import Store

    with Store(store) as s:
        return {i: l for i, l in zip(s.ids, s.column("label")) if l}


def all_classes(ann: Annotations, store: str | Path | None, classes_csv: str | Path | None) -> dict[str, str]:
    """Clip classes: store labels, overridden by the annotations, overridden by an id,class CSV."""
    from avslkit.data.annotations import read_class_list

    extra = read_class_list(classes_csv) if classes_csv else {}
    return {**store_classes(store), **ann.classes(), **extra}


def resolve_items(ann: Annotations, test_list: str | Path | None, store: str | Path | None,
                  extended: bool, extended_csv: str | Path | None, classes_csv: str | Path | None = None) -> list[EvalItem]:
    """Positives (test list, else the store's annotated clips, else every annotated clip) + negatives."""
    if test_list is not None:
        ids = read_id_list(test_list)
    elif store is not None:
        from avslkit.data.store import Store

        with Store(store) as s:
            ids = [i for i in s.ids if i in ann]
    else:
        ids = list(ann)
    missing = [i for i in ids if i not in ann]
    if missing:
        raise AvslError(f"{ann.path}: {len(missing)} test clip(s) have no annotation (e.g. '{missing[0]}'); "
                        "pass the annotations that match the test list")
    items = positive_items(ids)
    if extended_csv is not None:
        classes = all_classes(ann, store, classes_csv)
        items += negative_items(read_extended_csv(extended_csv), classes)
    elif extended:
        if store is None:
            raise AvslError("--extended without a CSV uses the set recorded with the test store: pass --test STORE.h5 "
                            "(or --extended-csv CSV)")
        pairs, types = read_recorded_extended(store)
        classes = all_classes(ann, store, classes_csv)
        items += negative_items(pairs, classes, types)
    return items


def load_maps_npz(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Names and (N, H, W) absolute score maps of a maps file: .npz (memory-mapped when stored
    uncompressed), .npy + STEM.names.txt, or .h5 (see `evaluation.maps_io`)."""
    from avslkit.evaluation.maps_io import read_maps

    return read_maps(path)


def npz_source(names: Sequence[str], maps: np.ndarray, items: list[EvalItem], skip_missing: bool,
               path: str = "MAPS.npz") -> tuple[MapSource, list[EvalItem]]:
    """Map each item to its row of `maps`; missing names raise (or are dropped with skip_missing)."""
    from avslkit.data.annotations import normalize_clip_id

    index = {n: k for k, n in enumerate(names)}
    for k, n in enumerate(names):
        if "__" not in n:
            key = normalize_clip_id(n)
            if key in index and index[key] != k:
                raise AvslError(f"{path}: map names '{names[index[key]]}' and '{n}' are the same clip ({key}); "
                                "remove the duplicate")
            index[key] = k
    missing = [it for it in items if it.name not in index]
    if missing and not skip_missing:
        raise AvslError(f"{path}: {len(missing)} of {len(items)} evaluated samples have no map (e.g. '{missing[0].name}'); "
                        "negatives are named '<video>__<audio>'; pass --skip-missing to evaluate the available subset")
    if missing:
        log.warning("%d of %d samples have no map in %s and are skipped", len(missing), len(items), path)
        items = [it for it in items if it.name in index]
    rows = np.array([index[it.name] for it in items], dtype=np.int64)
    return (lambda sel: maps[rows[sel]]), items


def items_in_store(items: list[EvalItem], store: str | Path, skip_missing: bool) -> list[EvalItem]:
    """The items whose video and audio clips are both in `store`; others raise (or are dropped with skip_missing)."""
    from avslkit.data.store import Store

    with Store(store) as s:
        ids = set(s.ids)
    missing = [it for it in items if it.video not in ids or it.audio not in ids]
    if missing and not skip_missing:
        raise AvslError(f"{store}: {len(missing)} of {len(items)} evaluated samples use clips that are not in the store "
                        f"(e.g. '{missing[0].name}'); preprocess those videos into it, or pass --skip-missing to "
                        "evaluate the available subset")
    if missing:
        log.warning("%d of %d samples use clips that are not in %s and are skipped", len(missing), len(items), store)
        items = [it for it in items if it.video in ids and it.audio in ids]
    return items


def check_boxes(ann: Annotations, items: Sequence[EvalItem], strict: bool) -> dict[str, list[str]]:
    """Box problems of the evaluated positives: a warning with counts and ids, an error when `strict`."""
    problems = box_problems([ann[it.video] for it in items if it.is_positive])
    if problems:
        detail = describe_box_problems(problems)
        if strict:
            raise AvslError(f"{ann.path}: evaluated clips have unusable boxes: {detail}; fix the annotations "
                            "(or drop --strict to score them with an empty ground truth)")
        log.warning("%s: evaluated clips have unusable boxes, scored as given (empty ground truth, cIoU 0): %s; "
                    "--strict refuses them", ann.path, detail)
    return problems


def maps_from_checkpoint(ckpt: str | Path | Any, store: str | Path, pairs: Sequence[EvalItem], device: str = "cpu",
                         batch_size: int = 32, info: dict[str, Any] | None = None,
                         inference: dict[str, Any] | None = None) -> np.ndarray:
    """Absolute score maps (N, h, w) of a trained model (a run, checkpoint file or loaded task) for
    (video, audio) pairs of a test store, through `avslkit.inference` (imported lazily: torch models load
    only when needed). `inference` is the eval config's `inference` section (null values keep the
    checkpoint's settings). `info`, when given, receives which checkpoint file was used, why, its epoch and step.
    """
    from avslkit.inference import load_task_for_inference, predict_maps  # noqa: PLC0415

    task = load_task_for_inference(ckpt, device, inference=inference) if isinstance(ckpt, (str, Path)) else ckpt
    if info is not None:
        recorded = dict(getattr(task, "checkpoint_info", None) or {})
        info.update({"file": Path(recorded.get("path", ckpt)).name, "path": str(recorded.get("path", ckpt)),
                     "why": recorded.get("why"), "epoch": recorded.get("epoch"), "global_step": recorded.get("global_step")})
    return np.asarray(predict_maps(task, store, pairs, device=device, batch_size=batch_size))


def checkpoint_inference(cfg: dict[str, Any]) -> dict[str, Any]:
    """The eval config's `inference` settings that are set (null keeps the checkpoint's own)."""
    return {k: v for k, v in (cfg.get("inference") or {}).items() if v is not None}


def map_source(cfg: dict[str, Any], items: list[EvalItem], task: Any = None,
               info: dict[str, Any] | None = None) -> tuple[MapSource, list[EvalItem], str]:
    """Where the maps of an evaluation come from — the one place that decides it, for `avslkit eval` and
    for `avslkit viz` recomputing maps of an evaluation: exactly one of `maps` (a maps file), `baseline`
    or `checkpoint` (through `avslkit.inference`; `task`, when given, is that checkpoint already loaded).
    Returns (source, the items it covers, a description for metrics.json)."""
    sources = [k for k in ("maps", "baseline", "checkpoint") if cfg.get(k)]
    if len(sources) != 1:
        raise AvslError("pass exactly one of --maps MAPS.npz, --baseline center|full|ogl or a checkpoint")
    if cfg.get("maps"):
        names, maps = load_maps_npz(cfg["maps"])
        source, items = npz_source(names, maps, items, bool(cfg.get("skip_missing")), str(cfg["maps"]))
        return source, items, f"maps:{cfg['maps']}"
    if cfg.get("baseline"):
        source = baseline_source(cfg["baseline"], items, cfg.get("test"), cfg.get("ogl_weights"), cfg["device"], cfg["batch_size"])
        return source, items, f"baseline:{cfg['baseline']}"
    if cfg.get("test") is None:
        raise AvslError("evaluating a checkpoint needs the test clips: pass --test STORE.h5")
    items = items_in_store(items, cfg["test"], bool(cfg.get("skip_missing")))
    all_maps = maps_from_checkpoint(cfg["checkpoint"] if task is None else task, cfg["test"], items, cfg["device"],
                                    cfg["batch_size"], info, checkpoint_inference(cfg))
    return (lambda sel: all_maps[sel]), items, f"checkpoint:{cfg['checkpoint']}"


# -- per-sample statistics ------------------------------------------------------------------------------
def compute_stats(items: Sequence[EvalItem], source: MapSource, ann: Annotations, binarize: str = "relative",
                  gt_mode: str = "auto", chunk_size: int = 256, size: int = EVAL_SIZE, upsample: str = "bicubic",
                  map_scale: str = "raw", tau: float = 0.03, confidence_dtype: str = "float64") -> SampleStats:
    """Per-sample cIoU / confidence / area / MSE, chunk by chunk (negatives have an all-zero GT).

    Maps are upsampled (`upsample`), then scaled (`map_scale`, `tau`) before confidence and binarisation.
    """
    from avslkit.metrics.samples import CONFIDENCE_DTYPES
    from avslkit.utils.console import track

    parse_binarize(binarize)
    if confidence_dtype not in CONFIDENCE_DTYPES:
        raise AvslError(f"unknown confidence_dtype '{confidence_dtype}' (choose {', '.join(CONFIDENCE_DTYPES)})")
    scale_maps(np.zeros((1, 1, 1), np.float32), map_scale, tau)  # unknown names fail before any work
    parts = []
    starts = range(0, len(items), chunk_size)
    for a in track(starts, "evaluating", total=len(starts)):
        sel = np.arange(a, min(len(items), a + chunk_size))
        maps = scale_maps(upsample_maps(np.asarray(source(sel), dtype=np.float32), size, upsample), map_scale, tau)
        finite = np.isfinite(maps.reshape(len(sel), -1)).all(axis=1)
        if not finite.all():
            bad = items[sel[int(np.argmin(finite))]].name
            raise AvslError(f"the score map of '{bad}' holds NaN or infinite values; fix the model output or drop the sample")
        gt = np.zeros((len(sel), size, size), dtype=np.float32)
        pos = [k for k, i in enumerate(sel) if items[i].is_positive]
        if pos:
            gt[pos] = gt_maps([ann[items[sel[k]].video] for k in pos], size, gt_mode)
        parts.append(sample_stats(maps, gt, binarize, confidence_dtype=confidence_dtype))
    return SampleStats.concat(parts)


# -- outputs --------------------------------------------------------------------------------------------
def write_samples_csv(path: str | Path, items: Sequence[EvalItem], stats: SampleStats) -> None:
    """Per-sample results: name, video, audio, type, then one column per registered per-sample statistic
    (`metrics.registry`: cIoU, confidence, GT area, size bucket, MSE); ground-truth ones blank for negatives."""
    from avslkit.metrics.registry import sample_statistics

    statistics = sample_statistics()
    columns = [s.csv_values(stats) for s in statistics]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "video", "audio", "type", *(s.column for s in statistics)])
    for k, it in enumerate(items):
        w.writerow([it.name, it.video, it.audio, it.kind,
                    *("" if s.positives_only and not it.is_positive else values[k] for s, values in zip(statistics, columns))])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def protocol_record(cfg: dict[str, Any], ann: Annotations, source_desc: str) -> dict[str, Any]:
    """Every convention used, for metrics.json."""
    rule, value = parse_binarize(cfg["binarize"])
    return {
        "avslkit_version": __version__,
        "source": source_desc,
        "annotations": ann.path,
        "annotation_format": ann.format,
        "ground_truth": cfg["gt"] if cfg["gt"] != "auto" else ("union" if ann.format == "vggss" else "consensus"),
        "preset": cfg.get("preset"),
        "preset_auto": bool(cfg.get("preset_auto")),
        "inference": checkpoint_inference(cfg) if cfg.get("checkpoint") else None,
        "gt_size": EVAL_SIZE,
        "upsampling": f"{cfg['upsample']}, align_corners=True (torch.nn.functional.interpolate)",
        "map_scale": cfg["map_scale"] + (f" (S + 1/tau)/(2/tau), tau = {cfg['tau']}" if cfg["map_scale"] == "tau_bounds" else ""),
        "binarize": cfg["binarize"],
        "binarize_rule": rule.description,
        "minmax_constant_map": "all-zero map",
        "ciou": "sum(B*G) / (sum(G) + sum(B*[G==0])); 0/0 -> 0",
        "locacc_iou": cfg["iou_thresholds"][0],
        "auc_thresholds": [round(float(t), 2) for t in AUC_THRESHOLDS],
        "auc_rule": "trapezoid of success rate r(t) = mean 1[cIoU >= t]",
        "confidence": f"mean of the top ceil(25%) values of the absolute map after upsampling and scaling, "
                      f"in {cfg['confidence_dtype']}",
        "detection": "TP: pos, conf>=c, cIoU>=iou; FP: neg conf>=c + pos conf>=c cIoU<iou; FN: pos conf<c; "
                     "precision=1 if nothing detected",
        "ap_rule": "thresholds = sorted(conf)[:-1][::-max(1, N//200)]; envelope; sum p~_m (r_{m+1}-r_m)",
        "max_f1_rule": "published: thresholds sorted(conf)[::max(1, N//10)]"
                       + ("; max_f1_full: every distinct confidence" if cfg["max_f1"] == "full" else ""),
        "iou_thresholds": list(cfg["iou_thresholds"]),
        "size_buckets": {k: [v[0], None if np.isinf(v[1]) else v[1]] for k, v in SIZE_BUCKETS.items()},
        "size_area": "sum of the ground-truth map on the 224 grid",
        "mse": "mean over pixels of (P - G)^2, P the per-sample min-max map; positives only",
        "negative_types": "video == audio: real; same class: hard; else easy (unknown without classes)",
        "by_negative_type_positives": f"n positives drawn without replacement, numpy default_rng({cfg['negative_type_seed']})",
    }


def _print_table(metrics: dict[str, Any], title: str, iou_thresholds: Sequence[float]) -> None:
    """Rows: all samples, size buckets, negative types; columns: the registered metrics reported per size
    bucket; below it, the other top-level metrics and those at further IoU thresholds (`metrics.registry`)."""
    from rich.table import Table

    from avslkit.metrics.registry import present
    from avslkit.utils.console import plain, stderr_console

    def f(v: Any, percent: bool = True) -> str:
        return "—" if v is None else f"{100 * v:.2f}" if percent else str(round(v, 4))

    main = iou_thresholds[0]
    by_size, by_type = metrics["by_size"], metrics["by_negative_type"]
    columns = [m for m in present("by_size", [metrics, *by_size.values()]) if m.key in metrics]
    t = Table(title=plain(title))
    t.add_column("subset", justify="left")
    t.add_column("n", justify="right")
    for m in columns:
        t.add_column(m.header(main), justify="right")
    t.add_row("all", str(metrics["n_positive"] + metrics["n_negative"]), *(f(metrics[m.key], m.percent) for m in columns))
    for name, e in by_size.items():
        t.add_row(name, str(e["n"]), *(f(e.get(m.key), m.percent) for m in columns))
    for name, e in by_type.items():
        t.add_row(plain(f"neg:{name}"), str(e["n"]),
                  *(f(e[m.key], m.percent) if m.key in e else "" for m in columns))
    stderr_console.print(t)
    below = [f"{m.header()} {f(metrics[m.key], m.percent)}" for m in present("all", [metrics]) if m not in columns]
    for iou in iou_thresholds[1:]:
        block = metrics.get(f"at_iou_{iou}", {})
        below += [f"{m.label}@{iou} {f(block[m.key], m.percent)}" for m in present("at_iou", [block])]
    stderr_console.print("  ".join(below))


def save_maps_npz(path: Path, names: Sequence[str], source: MapSource, chunk_size: int = 256,
                  dtype: str = "float32") -> None:
    """Write the absolute maps of `names` (from `source`, at its resolution) to an uncompressed npz, atomically."""
    from avslkit.evaluation.maps_io import save_maps

    save_maps(path, names, source, chunk_size, dtype)


NO_PRESET = "none"  # --preset none: avslkit's defaults even for an official checkpoint


def choose_preset(preset: str | None, checkpoint: str | Path | None) -> tuple[str | None, bool]:
    """(preset to apply, picked automatically?): an explicit --preset wins ("none" = no preset); an
    official EZ-VSL/SLAVC checkpoint gets its repository's test preset, and the choice is logged."""
    if preset is not None:
        return (None if str(preset) == NO_PRESET else str(preset)), False
    if checkpoint is None:
        return None, False
    from avslkit.inference import OFFICIAL_PRESETS, official_checkpoint_method

    method = official_checkpoint_method(checkpoint)
    if method is None:
        return None, False
    name = OFFICIAL_PRESETS[method]
    log.info("%s is an official %s checkpoint: evaluating with --preset %s (the conventions of its repository's "
             "test.py); pass --preset none for avslkit's defaults", checkpoint, {"slavc": "SLAVC", "ezvsl": "EZ-VSL"}[method], name)
    return name, True


def run_evaluation(cfg: dict[str, Any], print_table: bool = True, workspace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolve the inputs of a config (see configs/eval.yaml), evaluate, write outputs, return metrics.

    `workspace` (the avslkit.yaml entries the command used) is recorded in metrics.json as given.
    """
    from avslkit.config import save_config
    from avslkit.config_spec import eval_config

    config = eval_config(cfg)  # typed; one line naming a bad key
    if cfg.get("annotations") is None:
        raise AvslError("pass --annotations (vggss.json or the Flickr annotation directory)")
    if cfg["max_f1"] not in ("published", "full"):
        raise AvslError(f"unknown --max-f1 '{cfg['max_f1']}' (choose published or full)")
    ann = read_annotations(cfg["annotations"], cfg["ann_format"])
    items = resolve_items(ann, cfg.get("test_list"), cfg.get("test"), bool(cfg.get("extended")), cfg.get("extended_csv"),
                          cfg.get("classes"))
    problems = check_boxes(ann, items, bool(cfg.get("strict")))
    checkpoint: dict[str, Any] = {}
    source, items, desc = map_source(cfg, items, info=checkpoint)
    if not items:
        raise AvslError("nothing to evaluate (empty test list)")
    stats = compute_stats(items, source, ann, cfg["binarize"], cfg["gt"], cfg["chunk_size"], upsample=cfg["upsample"],
                          map_scale=cfg["map_scale"], tau=cfg["tau"], confidence_dtype=cfg["confidence_dtype"])
    metrics = summarize(stats, np.array([it.kind for it in items], dtype=object), tuple(cfg["iou_thresholds"]),
                        cfg["max_f1"], cfg["negative_type_seed"])
    metrics["protocol"] = protocol_record(cfg, ann, desc)
    metrics["protocol"]["box_problems"] = problems  # evaluated clips whose boxes are empty/inverted/out of range
    if checkpoint:
        metrics["checkpoint"] = checkpoint  # which file (best.pt/last.pt), why, epoch, step
    if workspace is not None:
        metrics["workspace"] = dict(workspace)
    if cfg.get("out") is None:
        cfg["out"] = "metrics.json"
    out = Path(cfg["out"])
    atomic_write_json(out, metrics)
    write_samples_csv(out.with_suffix(".samples.csv"), items, stats)
    if cfg.get("save_maps"):  # for `avslkit viz`: the maps just scored, without running the model again
        save_maps_npz(out.with_suffix(".maps.npz"), [it.name for it in items], source, cfg["chunk_size"],
                      config.save_maps_dtype)
    save_config(cfg, out.with_suffix(".config.yaml"))
    if print_table:
        _print_table(metrics, desc, cfg["iou_thresholds"])
    return metrics


__all__ = ["BASELINES", "BINARIZERS", "choose_preset", "compute_stats", "load_maps_npz", "map_source", "maps_from_checkpoint", "resolve_items",
           "run_evaluation", "write_samples_csv"]
