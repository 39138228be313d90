"""Does every method learn? The whole comparison on one synthetic benchmark under one step budget.

One command builds (or reuses) the data, trains every method for every seed under the same number
of optimiser steps, evaluates each final checkpoint on the extended test set with two binarisation
protocols, and prints one table (mean and min–max over seeds) plus the learning curves:

    python benchmarks/bench_learning.py --preset cpu-small --seeds 0 1 2 --methods all

What it does, in order (every step is skipped when its output exists, so the command resumes):
1. Data: `avslkit synth --preset P` (your own objects with --objects DIR: cut-outs + recorded sounds),
   then the training clips are split once (--data-seed) into a training store and a validation
   store (--val clips), and the test clips become the test store with its extended set (one negative
   per positive). Test clips are never used for any choice: curves and fixes use the validation store.
2. Labels: one labelled id file (--labeled clips of the training store) shared by every
   semi-supervised method and seed; the engine holds out --val-labeled further annotated clips
   (`data.split_seed` = --data-seed, the same for every run) for the methods' per-epoch
   pseudo-label quality logs (their labels are never trained on: they are the unlabelled clips whose
   ground truth we can look at). EZ-VSL and SLAVC use no labels and train on every training clip.
3. Budget: --steps optimiser steps for every method at the preset's batch (`--max-steps`), with a
   labelled warm-up inside the budget for hard-pl, DMT and XPL (the papers' 6 of 26 epochs, rounded to
   whole passes over the labelled set) and XPL's curriculum ramp over half of its stage-2 steps.
   Every run validates on the validation store about --curve-points times (AUC, for the curves).
4. Evaluation of RUN/last.pt (the end of the budget, for every method) on the extended test set:
   `relative` (upper-median threshold, the published default) and `fixed:0.5` (min-max map ≥ 0.5),
   from the same saved maps.
5. Report: markdown tables (mean [min–max] over seeds of LocAcc, AUC, AP, max-F1; training wall and
   CPU minutes), the learning targets checked, SLAVC's loss against chance, DMT/XPL diagnostics, and
   figures (--figures DIR: validation AUC against step, DMT's kept fraction and teachers' IoU).

Several runners may share one --work directory (e.g. one per core, with different --methods): each
run is locked while it trains, so a runner skips what another is doing. Split the work across
sessions with --time-limit MINUTES (no new run starts after it; an interrupted
run resumes from its last.pt, checkpointed every --checkpoint-steps steps). --report-only prints the
table from what is done. Logs of every command: WORK/logs/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AVSLKIT = [sys.executable, "-m", "avslkit", "--quiet"]
METHODS = ("ezvsl", "slavc", "supervised", "naive-ssl", "hard-pl", "dmt", "xpl")
SEMI_SUPERVISED = {"supervised", "naive-ssl", "hard-pl", "dmt", "xpl"}
WITH_WARMUP = {"hard-pl", "dmt", "xpl"}
USES_UNLABELED_EPOCH = {"naive-ssl", "hard-pl", "dmt", "xpl"}
PROTOCOLS = {"relative": "relative", "fixed0.5": "fixed:0.5"}
METRICS = (("locacc", "LocAcc"), ("auc", "AUC"), ("ap", "AP"), ("max_f1", "max-F1"))
# per-step log keys shown as curves (means over windows of steps) and per-epoch held-out quality keys
STEP_CURVES = {
    "dmt": [("pl_kept", "kept"), ("pl_iou", "IoU(teacher A, B)")],
    "xpl": [("xpl_kept", "kept"), ("xpl_corr", "Pearson r(A, B)")],
    "hard-pl": [("pl_kept", "kept")],
}
EPOCH_QUALITY = [("task_val_pl_iou", "PL IoU w/ GT"), ("task_val_pl_kept", "held-out kept"), ("task_val_loc_acc", "held-out LocAcc")]

LOG_DIR: Path | None = None


def avslkit(args: list[str], env: dict[str, str] | None = None, log_name: str | None = None) -> float:
    """Run an avslkit command (output appended to WORK/logs/NAME.log); returns its CPU seconds."""
    assert LOG_DIR is not None
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{log_name or args[0]}.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(path, "a") as fh:
        fh.write("$ avslkit " + " ".join(args) + "\n")
        fh.flush()
        res = subprocess.run(AVSLKIT + args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        print(path.read_text()[-3000:])
        raise SystemExit(f"avslkit {args[0]} failed (exit {res.returncode}); full output in {path}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a truncated last line after a crash
    return out


def read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def train_config(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The resolved training config of `method` under the preset (batch size, image size...)."""
    from avslkit.config import load_config, preset_layer

    return load_config(["train", f"methods/{method}"], preset=preset_layer(args.preset, "train", method), overrides=args.set or [])


# -- data -------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Synthesise, split and preprocess the benchmark (each step skipped when its output exists)."""
    from avslkit.data.annotations import read_annotations

    toy = work / "toy"
    n_train = args.labeled + args.val_labeled + args.unlabeled + args.val
    total = n_train + args.test
    t0 = time.time()
    if not (toy / "annotations.json").is_file():
        cmd = ["synth", str(toy), "--preset", args.preset, "--clips", str(total), "--seed", str(args.data_seed),
               "--workers", str(args.workers_data), "--test-fraction", repr(args.test / total)]
        if args.objects:
            cmd += ["--objects", str(args.objects)]
        avslkit(cmd)
    split = work / "split"
    if not (split / "val_store.txt").is_file():
        import numpy as np

        annotated = set(read_annotations(toy / "annotations.json", "auto"))
        train_ids = read_ids(toy / "train.txt")
        candidates = [i for i in train_ids if Path(i).stem in annotated or i in annotated]
        order = np.random.default_rng(args.data_seed + 1).permutation(len(candidates))
        val_ids = sorted(candidates[k] for k in order[: args.val])
        chosen = set(val_ids)
        split.mkdir(parents=True, exist_ok=True)
        (split / "train_store.txt").write_text("".join(f"{i}\n" for i in train_ids if i not in chosen))
        (split / "val_store.txt").write_text("".join(f"{i}\n" for i in val_ids))
    frame_size = args.frame_size or int(train_config(args, "ezvsl")["image_size"]) + 16
    common = ["--root", str(toy / "videos"), "--timestamps", str(toy / "timestamps.csv"), "--labels", str(toy / "annotations.json"),
              "--workers", str(args.workers_data), "--frame-size", str(frame_size)]
    for name, ids in (("train", split / "train_store.txt"), ("val", split / "val_store.txt"), ("test", toy / "test_videos.txt")):
        done = work / f"{name}.h5.done"
        if done.is_file():
            continue
        (work / f"{name}.h5").unlink(missing_ok=True)
        avslkit(["preprocess", str(ids), "--out", str(work / f"{name}.h5"), *common])
        if name == "test":
            avslkit(["extend-testset", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
                     "--real-negatives", str(toy / "offscreen.txt")])
        done.touch()
    return {"toy": toy, "data_seconds": time.time() - t0}


def oracle_maps(work: Path, toy: Path) -> Path:
    """The test positives' own ground-truth maps (plus tiny noise to break ties) as score maps: the
    ceiling a perfect localiser reaches under each protocol (LocAcc/AUC only; it has no negatives)."""
    import numpy as np

    from avslkit.data.annotations import gt_map, read_annotations, read_id_list

    path = work / "eval" / "oracle" / "maps.npz"
    if path.is_file():
        return path
    ann = read_annotations(toy / "annotations.json", "auto")
    ids = [i for i in read_id_list(toy / "test.csv") if i in ann]
    rng = np.random.default_rng(0)
    maps = np.stack([gt_map(ann[i], 224, "auto").astype(np.float32) + 0.01 * rng.random((224, 224), dtype=np.float32) for i in ids])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array(ids), maps=maps)
    return path


def write_labeled_split(args: argparse.Namespace, work: Path, toy: Path) -> dict[str, Any]:
    """Draw the labelled ids once (annotated training-store clips, seeded) into split/labeled.txt."""
    import numpy as np

    from avslkit.data.annotations import read_annotations
    from avslkit.data.store import Store

    with Store(work / "train.h5") as store:
        store_ids = list(store.ids)
    annotated = set(read_annotations(toy / "annotations.json", "auto"))
    candidates = sorted(cid for cid in store_ids if cid in annotated)
    need = args.labeled + args.val_labeled
    if len(candidates) < need:
        raise SystemExit(f"the training store has {len(candidates)} annotated clips, fewer than --labeled + --val-labeled = {need}; "
                         "raise --unlabeled or lower them")
    path = work / "split" / "labeled.txt"
    order = [candidates[k] for k in np.random.default_rng(args.data_seed).permutation(len(candidates))]
    labeled = sorted(order[: args.labeled])
    if path.is_file():
        if read_ids(path) != labeled:
            raise SystemExit(f"{path} differs from the split these options draw; use another --work or the original options")
    else:
        path.write_text("".join(f"{cid}\n" for cid in labeled))
    return {"path": path, "store_clips": len(store_ids), "annotated": len(candidates), "labeled": labeled}


# -- budget -----------------------------------------------------------------------------------------
def budget(method: str, args: argparse.Namespace, n_store: int, batch: int) -> dict[str, Any]:
    """Epochs, warm-up, ramp and validation period that give `method` exactly --steps optimiser steps."""
    n_unl = n_store - args.labeled - args.val_labeled
    labeled_len = args.labeled if args.labeled >= batch else args.labeled * -(-batch // args.labeled)  # tiled below one batch
    per_labeled_pass = max(1, labeled_len // batch)
    if method == "supervised":
        per_epoch = labeled_len // batch
    elif method in USES_UNLABELED_EPOCH:
        per_epoch = n_unl // batch
    else:  # ezvsl, slavc: the whole store
        per_epoch = n_store // batch
    if per_epoch < 1:
        raise SystemExit(f"{method}: an epoch has no full batch of {batch}; lower the batch size")
    every = max(1, round(args.steps / max(1, args.curve_points) / per_epoch))
    out: dict[str, Any] = {"steps": args.steps, "steps_per_epoch": per_epoch, "epochs": math.ceil(args.steps / per_epoch),
                           "warmup_steps": 0, "validate_every_epochs": every,
                           "overrides": [f"validation.every_epochs={every}", f"checkpoint.every_steps={args.checkpoint_steps}"]}
    if method in WITH_WARMUP:
        warm_epochs = round(args.warmup_fraction * args.steps / per_labeled_pass)
        warm_epochs = max(1, warm_epochs) if args.warmup_fraction > 0 else 0
        warm_steps = warm_epochs * per_labeled_pass
        if warm_steps >= args.steps:
            raise SystemExit(f"{method}: the warm-up ({warm_epochs} pass(es) over the labelled set = {warm_steps} steps) fills the "
                             f"budget of {args.steps} steps; raise --steps, or --warmup-fraction 0 for a smoke test")
        out["warmup_steps"] = warm_steps
        out["overrides"] += ["ssl.warmup_unit=labeled", f"ssl.warmup_epochs={warm_epochs}"]
        if method == "xpl":
            ramp = args.xpl_ramp_fraction * (args.steps - warm_steps) / per_epoch
            out["overrides"].append(f"ssl.ramp_epochs={ramp:.6g}")
    return out


# -- one run ----------------------------------------------------------------------------------------
def train_and_eval(method: str, seed: int, args: argparse.Namespace, work: Path, toy: Path, split: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one method/seed and evaluate it under both protocols; cached in eval/NAME/row.json."""
    name = f"{method}_s{seed}"
    run_dir, eval_dir = work / "runs" / name, work / "eval" / name
    row_path = eval_dir / "row.json"
    if row_path.is_file():
        print(f"[skip] {name}: done ({row_path})", flush=True)
        return json.loads(row_path.read_text())
    lock = claim(work / "runs" / f"{name}.lock")
    if lock is None:
        print(f"[busy] {name}: another runner holds it; skipped", flush=True)
        return None
    batch = int(train_config(args, method)["batch_size"])
    plan = budget(method, args, split["store_clips"], batch)
    annotations = str(toy / "annotations.json")
    timing_path = run_dir / "bench_seconds.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {"seconds": 0.0, "cpu_seconds": 0.0}
    if not (eval_dir / "train.done").is_file():
        cmd = ["train", method, "--data", str(work / "train.h5"), "--out", str(run_dir), "--device", "cpu", "--seed", str(seed),
               "--epochs", str(plan["epochs"]), "--max-steps", str(args.steps), "--workers", str(args.workers),
               "--val", str(work / "val.h5"), "--val-annotations", annotations]
        if method in SEMI_SUPERVISED:
            cmd += ["--annotations", annotations, "--labeled", str(split["path"]), "--val-labeled", str(args.val_labeled),
                    "--set", f"data.split_seed={args.data_seed}"]
        overrides = plan["overrides"] + list(args.set or [])
        overrides += [item.partition(":")[2] for item in args.method_set or [] if item.partition(":")[0] == method]
        for override in overrides:
            cmd += ["--set", override]
        if (run_dir / "last.pt").is_file():
            cmd.append("--resume")
        else:
            cmd[2:2] = ["--preset", args.preset]
        print(f"[train] {name}: {plan['steps']} steps = {plan['epochs']} epoch(s) of {plan['steps_per_epoch']} steps, "
              f"warm-up {plan['warmup_steps']} steps{' (resuming)' if '--resume' in cmd else ''}", flush=True)
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
        t0 = time.time()
        cpu = avslkit(cmd, env, log_name=f"train_{name}")
        timing = {"seconds": timing["seconds"] + time.time() - t0, "cpu_seconds": timing["cpu_seconds"] + cpu}
        timing_path.write_text(json.dumps(timing))
        eval_dir.mkdir(parents=True, exist_ok=True)
        (eval_dir / "train.done").touch()
    common = ["--test", str(work / "test.h5"), "--annotations", annotations, "--test-list", str(toy / "test.csv"), "--extended"]
    metrics = {}
    relative = eval_dir / "relative" / "metrics.json"
    if not relative.is_file():
        avslkit(["eval", str(run_dir / "last.pt"), *common, "--save-maps", "--out", str(relative)], log_name=f"eval_{name}")
    for label, rule in PROTOCOLS.items():
        out = eval_dir / label / "metrics.json"
        if not out.is_file():
            avslkit(["eval", "--maps", str(relative.with_suffix(".maps.npz")), *common, "--binarize", rule, "--out", str(out)],
                    log_name=f"eval_{name}")
        metrics[label] = json.loads(out.read_text())
    log = read_jsonl(run_dir / "log.jsonl")
    row = {
        "method": method, "seed": seed, "metrics": metrics, "train_seconds": timing["seconds"], "cpu_seconds": timing["cpu_seconds"],
        "steps": max((r["step"] for r in log if r.get("type") == "step"), default=None), "plan": plan, "batch_size": batch,
        "val_curve": [(r["global_step"], r.get("auc")) for r in log if r.get("type") == "val"],
        "loss_windows": loss_windows(log, args.curve_window),
        "step_curves": step_curves(method, log, args.curve_window),
        "epoch_quality": [{"global_step": r.get("global_step"), **{lab: r.get(k) for k, lab in EPOCH_QUALITY}}
                          for r in log if r.get("type") == "epoch" and any(r.get(k) is not None for k, _ in EPOCH_QUALITY)],
    }
    row_path.write_text(json.dumps(row, indent=1))
    return row


def claim(path: Path):
    """An exclusive lock on `path` (kept open until the process ends), or None when another runner
    holds it: several runners can share one work directory, each taking the runs no one else has."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    _HELD_LOCKS.append(fh)
    return fh


_HELD_LOCKS: list[Any] = []


def _windows(records: list[dict[str, Any]], keys: list[tuple[str, str]], window: int) -> list[dict[str, Any]]:
    """Means of `keys` over consecutive windows of `window` step records (one record per step, last wins)."""
    by_step = {r["step"]: r for r in records}
    ordered = [by_step[k] for k in sorted(by_step)]
    rows = []
    for start in range(0, len(ordered), max(1, window)):
        chunk = ordered[start:start + window]
        row: dict[str, Any] = {"first": chunk[0]["step"], "last": chunk[-1]["step"]}
        for key, label in keys:
            vals = [r[key] for r in chunk if r.get(key) is not None]
            row[label] = statistics.fmean(vals) if vals else None
        rows.append(row)
    return rows


def loss_windows(log: list[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    return _windows([r for r in log if r.get("type") == "step"], [("loss", "loss")], window)


def step_curves(method: str, log: list[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    keys = STEP_CURVES.get(method, [])
    if not keys:
        return []
    return _windows([r for r in log if r.get("type") == "step" and r.get(keys[0][0]) is not None], keys, window)


# -- report -----------------------------------------------------------------------------------------
def summary_cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} [{min(values):.1f}–{max(values):.1f}]"


def print_report(rows: list[dict[str, Any]], baselines: dict[str, dict[str, dict]], args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    print(f"\n### {args.preset}: {info['store_clips']} training clips ({args.labeled} labelled, {args.val_labeled} held out, "
          f"the rest unlabelled), {args.val} validation clips, {info['n_positive']} test positives + {info['n_negative']} negatives; "
          f"{args.steps} steps per method; seeds {', '.join(map(str, seeds))}\n")
    checks: dict[str, Any] = {}
    for label, rule in PROTOCOLS.items():
        print(f"\n**Protocol `{rule}`** — mean [min–max] over seeds, in %:\n")
        print("| method | seeds | " + " | ".join(h for _, h in METRICS) + " | train wall min | train CPU min |")
        print("|---|---|" + "---|" * (len(METRICS) + 2))
        for b, m in baselines.items():
            oracle = "ground" in b  # positives only: AP and max-F1 mean nothing for it
            cells = ["–" if oracle and k in ("ap", "max_f1") else f"{100 * m[label][k]:.1f}" for k, _ in METRICS]
            print(f"| {b if oracle else b + ' prior'} | – | " + " | ".join(cells) + " | – | – |")
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            cells = [summary_cell([100 * r["metrics"][label][k] for r in mine]) for k, _ in METRICS]
            wall = statistics.fmean(r["train_seconds"] for r in mine) / 60
            cpu = statistics.fmean(r["cpu_seconds"] for r in mine) / 60
            print(f"| {method} | {len(mine)} | " + " | ".join(cells) + f" | {wall:.1f} | {cpu:.1f} |")
    # targets: AUC margins over the center prior, every seed, under each protocol; the ground-truth row
    # says how much headroom a protocol leaves (relative: a perfect map scores cIoU = 2·area for boxes
    # under half the image, so small boxes cap everyone)
    for label, rule in PROTOCOLS.items():
        center = 100 * baselines["center"][label]["auc"]
        ceiling = 100 * baselines["ground-truth (upper bound)"][label]["auc"] if "ground-truth (upper bound)" in baselines else None
        auc = {m: {r["seed"]: 100 * r["metrics"][label]["auc"] for r in rows if r["method"] == m} for m in methods}
        print(f"\n**Targets, protocol `{rule}`** (AUC; center prior {center:.1f}"
              + (f", ground-truth maps {ceiling:.1f}" if ceiling is not None else "") + "):\n")
        for m, need in (("ezvsl", 5.0), ("slavc", 5.0), ("supervised", 10.0)):
            if m in auc:
                margins = {s: round(v - center, 1) for s, v in auc[m].items()}
                ok = all(v >= need for v in margins.values())
                checks[f"{label}:{m}_beats_center_by_{need:g}"] = ok
                print(f"- {m} − center ≥ {need:g}: {'met' if ok else 'MISSED'} (margin by seed {margins})")
        for lo, hi in (("supervised", "dmt"), ("dmt", "xpl"), ("supervised", "xpl")):
            if lo in auc and hi in auc:
                common = sorted(set(auc[lo]) & set(auc[hi]))
                by_seed = {s: round(auc[hi][s] - auc[lo][s], 1) for s in common}
                mean_ok = statistics.fmean(by_seed.values()) >= 0 if by_seed else False
                checks[f"{label}:{lo}<={hi}"] = mean_ok
                print(f"- {lo} ≤ {hi} (mean AUC): {'holds' if mean_ok else 'MISSED'} ({hi} − {lo} by seed {by_seed})")
    for r in rows:
        if r["method"] == "slavc" and r["loss_windows"]:
            chance = 2 * math.log(r["batch_size"])
            first, last = r["loss_windows"][0]["loss"], r["loss_windows"][-1]["loss"]
            print(f"- SLAVC seed {r['seed']}: loss {first:.2f} (first {args.curve_window} steps) → {last:.2f} (last), chance 2·ln {r['batch_size']} = {chance:.2f}")
    for r in rows:
        if r["step_curves"]:
            keys = [k for k in r["step_curves"][0] if k not in ("first", "last")]
            print(f"\n{r['method']} seed {r['seed']}: stage-2 steps in windows of {args.curve_window}\n")
            print("| steps | " + " | ".join(keys) + " |")
            print("|---|" + "---|" * len(keys))
            for w in r["step_curves"]:
                print(f"| {w['first']}–{w['last']} | " + " | ".join("–" if w[k] is None else f"{w[k]:.3f}" for k in keys) + " |")
        if r["epoch_quality"]:
            print(f"\n{r['method']} seed {r['seed']}: held-out labelled clips (never trained on) at epoch ends\n")
            print("| step | " + " | ".join(lab for _, lab in EPOCH_QUALITY) + " |")
            print("|---|" + "---|" * len(EPOCH_QUALITY))
            for q in r["epoch_quality"]:
                print(f"| {q['global_step']} | " + " | ".join("–" if q[lab] is None else f"{q[lab]:.3f}" for _, lab in EPOCH_QUALITY) + " |")
    return checks


def write_figures(rows: list[dict[str, Any]], out_dir: Path, title: str) -> list[Path]:
    """Validation AUC against step per method (mean over seeds), and DMT's kept fraction and teachers' IoU."""
    from avslkit.viz.plots import _pyplot, _save  # the HTML report's figure helpers (Agg backend, save, close)

    plt = _pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method and r["val_curve"]]
        if not mine:
            continue
        steps = sorted({s for r in mine for s, _ in r["val_curve"]})
        means = []
        for s in steps:
            vals = [a for r in mine for st, a in r["val_curve"] if st == s and a is not None]
            means.append(100 * statistics.fmean(vals) if vals else float("nan"))
        ax.plot(steps, means, marker="o", ms=3, label=f"{method} (n={len(mine)})")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("validation AUC (%, relative protocol)")
    ax.set_title(f"{title}: validation AUC (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "learning_val_auc.png"))
    dmt = [r for r in rows if r["method"] == "dmt" and r["step_curves"]]
    if dmt:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for r in dmt:
            mid = [(w["first"] + w["last"]) / 2 for w in r["step_curves"]]
            axes[0].plot(mid, [w["kept"] for w in r["step_curves"]], label=f"seed {r['seed']}")
            axes[1].plot(mid, [w["IoU(teacher A, B)"] for w in r["step_curves"]], label=f"seed {r['seed']}")
        axes[0].set_title("DMT: fraction kept by the filter")
        axes[1].set_title("DMT: IoU of the teachers' masks")
        for a in axes:
            a.set_xlabel("optimiser step")
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
        written.append(_save(fig, out_dir / "learning_dmt_filter.png"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-small", help="training/synth preset (avslkit/configs/presets/) or a preset YAML")
    parser.add_argument("--methods", nargs="+", default=["all"], help=f"'all' or some of {' '.join(METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per method (the budget)")
    parser.add_argument("--labeled", type=int, default=300, help="labelled training clips (semi-supervised methods)")
    parser.add_argument("--val-labeled", type=int, default=100, help="annotated training clips held out for the pseudo-label quality logs")
    parser.add_argument("--unlabeled", type=int, default=2000, help="further training clips (about 20%% have no visible source)")
    parser.add_argument("--val", type=int, default=150, help="clips of the validation store (curves, any choice of settings)")
    parser.add_argument("--test", type=int, default=400, help="test clips (positives + off-screen clips, before extension)")
    parser.add_argument("--objects", type=Path, help="your own objects for synth: DIR/<class>/*.png + *.wav")
    parser.add_argument("--frame-size", type=int, default=0, help="stored frame side (0: the preset's image size + 16)")
    parser.add_argument("--warmup-fraction", type=float, default=6 / 26, help="share of the budget in labelled warm-up (hard-pl, dmt, xpl)")
    parser.add_argument("--xpl-ramp-fraction", type=float, default=0.5, help="XPL curriculum ramp as a share of its stage-2 steps")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the benchmark and of the labelled/held-out/validation draws")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every method (repeatable)")
    parser.add_argument("--method-set", action="append", metavar="METHOD:KEY=VALUE", help="config override for one method")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per training run")
    parser.add_argument("--workers-data", type=int, default=2, help="processes for synth/preprocess")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run (1 resists CPU contention best here)")
    parser.add_argument("--curve-points", type=int, default=8, help="validations per run (curve points)")
    parser.add_argument("--curve-window", type=int, default=50, help="steps per row of the step-window curves")
    parser.add_argument("--checkpoint-steps", type=int, default=100, help="mid-epoch last.pt every N steps (resume granularity)")
    parser.add_argument("--time-limit", type=float, default=0, help="minutes after which no new run starts (0: none)")
    parser.add_argument("--report-only", action="store_true", help="print the report from finished runs; train nothing")
    parser.add_argument("--figures", type=Path, help="write the learning-curve PNGs here")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "_work" / "learning")
    args = parser.parse_args()
    methods = list(METHODS) if args.methods == ["all"] else args.methods
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; use 'all' or some of {' '.join(METHODS)}")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    global LOG_DIR
    LOG_DIR = work / "logs"
    t_start = time.time()

    data = prepare_data(args, work)
    toy = data["toy"]
    split = write_labeled_split(args, work, toy)
    baselines: dict[str, dict[str, dict]] = {}
    for name in ("center", "full"):
        baselines[name] = {}
        for label, rule in PROTOCOLS.items():
            out = work / "eval" / f"baseline_{name}" / label / "metrics.json"
            if not out.is_file():
                avslkit(["eval", "--baseline", name, "--test", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
                         "--test-list", str(toy / "test.csv"), "--extended", "--binarize", rule, "--out", str(out)])
            baselines[name][label] = json.loads(out.read_text())

    oracle = oracle_maps(work, toy)
    baselines["ground-truth (upper bound)"] = {}
    for label, rule in PROTOCOLS.items():
        out = work / "eval" / "oracle" / label / "metrics.json"
        if not out.is_file():
            avslkit(["eval", "--maps", str(oracle), "--annotations", str(toy / "annotations.json"), "--test-list", str(toy / "test.csv"),
                     "--binarize", rule, "--out", str(out)])
        baselines["ground-truth (upper bound)"][label] = json.loads(out.read_text())

    rows = []
    for seed in args.seeds:
        for method in methods:
            done = (work / "eval" / f"{method}_s{seed}" / "row.json").is_file()
            if not args.report_only and not done and args.time_limit and time.time() - t_start > 60 * args.time_limit:
                print(f"[time limit] {method}_s{seed} not started; run the same command again to continue", flush=True)
                continue
            if args.report_only and not done:
                continue
            row = train_and_eval(method, seed, args, work, toy, split)
            if row is not None:
                rows.append(row)
    info = {"store_clips": split["store_clips"], "n_positive": baselines["center"]["relative"]["n_positive"],
            "n_negative": baselines["center"]["relative"]["n_negative"]}
    checks = print_report(rows, baselines, args, info) if rows else {}
    if args.figures and rows:
        for path in write_figures(rows, args.figures, args.preset):
            print(f"figure: {path}")
    results = {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "data": info,
               "baselines": baselines, "rows": rows, "checks": checks, "wall_seconds_this_call": time.time() - t_start}
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwall time of this call: {time.time() - t_start:.0f} s; results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
