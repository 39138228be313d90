"""Semi-supervised methods against their baselines on the synthetic benchmark, under one step budget.

Generates one toy benchmark (`avslkit synth`) with --labeled + --val-labeled + --unlabeled training
clips and --test test clips, preprocesses the training and test stores, extends the test set with
negatives, then trains supervised, naive-ssl, hard-pl, slavc, dmt and xpl (random initialisation: no
ImageNet weights offline) on the same training store and evaluates each run's final checkpoint
(RUN/last.pt: the end of the budget, for every method; the semi-supervised runs also write a best.pt
chosen on their held-out labelled clips, SLAVC cannot, so it is not used) on the extended test set
with the exact protocol. Prints a markdown table (LocAcc / AUC / AP / max-F1, training seconds, steps) with the
center/full baselines, the mean over --seeds, and the per-epoch curves of DMT (Fig. 5: kept fraction,
teachers' IoU, pseudo-label IoU with ground truth on the held-out labelled clips), XPL and hard-pl.

Same data for every method:
- one labelled id file (`split/labeled.txt`: --labeled clips drawn with --data-seed from the
  annotated training clips of the store) passed to every semi-supervised run with `--labeled FILE`;
  the --val-labeled held-out clips are drawn by the engine with `data.split_seed=--data-seed`, so they
  are the same for every method and seed too (checked after each run against its labeled.txt/val.txt).
  Held-out clips are never trained on by the semi-supervised methods; they feed the per-epoch quality
  logs (`task_val_*`) and the engine's best.pt (not used here). SLAVC uses no labels and trains on
  every clip of the store.
- unlabelled = the rest of the store (including the annotated clips that were not drawn).

Equal budget: --steps optimiser steps for every method, at one --batch-size (the engine gives every
stream the global batch: a semi-supervised step sees --batch-size labelled *and* --batch-size
unlabelled clips; supervised and SLAVC see --batch-size clips). Implemented as `--max-steps STEPS`
with `--epochs` = ceil(STEPS / steps per epoch), the epoch being one pass over the method's first
stream (unlabelled set for naive-ssl/hard-pl/dmt/xpl, labelled set for supervised, the whole store
for SLAVC). Warm-up (hard-pl, dmt, xpl) is counted inside the budget: `ssl.warmup_unit=labeled` with
`ssl.warmup_epochs` = round(--warmup-fraction × STEPS / steps per labelled pass) (at least 1), i.e. the
first W = warmup_epochs × (labelled clips // batch) steps are the labelled-only warm-up (the paper's
6 of 26 epochs is the default fraction); the W actually used is printed. XPL's curriculum ramp
(`ssl.ramp_epochs`, 10 of 20 stage-2 epochs in the paper) is scaled to --xpl-ramp-fraction (0.5) of
the stage-2 epochs of the budget. Everything else is each method's default config (DMT EMA 0.999,
δ 0.6, τ 0.7; XPL T 0.1, α 0.7...); change it with --set KEY=VALUE (every method) or
--method-set METHOD:KEY=VALUE. The per-epoch curves need epoch records: a run that stops mid-epoch
gets a last row averaged over the step records of its unfinished epoch (no held-out quality there).

Command output (eval tables, warnings) goes to WORK/logs/*.log. Resumable: a run whose eval metrics.json exists is skipped; an interrupted training run continues
from its last.pt (`--resume`); the data steps are skipped when their outputs exist. Everything
(configuration, split, metrics, curves, seconds) is written to WORK/results.json.

Usage: python benchmarks/bench_ssl.py [--labeled 300] [--unlabeled 2000] [--val-labeled 100] [--test 400]
       [--size 112] [--steps 600] [--batch-size 32] [--seeds 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AVSLKIT = [sys.executable, "-m", "avslkit", "--quiet"]
METHODS = ("supervised", "naive-ssl", "hard-pl", "slavc", "dmt", "xpl")
SEMI_SUPERVISED = {"supervised", "naive-ssl", "hard-pl", "dmt", "xpl"}
WITH_WARMUP = {"hard-pl", "dmt", "xpl"}
USES_UNLABELED_EPOCH = {"naive-ssl", "hard-pl", "dmt", "xpl"}
# per-epoch log keys (epoch records of log.jsonl) shown as curves, and their step-record names
CURVES = {
    "dmt": [("task_pl_kept_mean", "pl_kept", "kept"), ("task_pl_iou_mean", "pl_iou", "IoU(A,B)"),
            ("task_val_pl_iou", None, "PL IoU w/ GT"), ("task_val_pl_kept", None, "val kept"),
            ("task_val_loc_acc", None, "val LocAcc")],
    "xpl": [("task_fraction", None, "fraction"), ("task_xpl_kept_mean", "xpl_kept", "kept"),
            ("task_xpl_corr_mean", "xpl_corr", "corr"), ("task_val_pl_iou", None, "PL IoU w/ GT"),
            ("task_val_pl_kept", None, "val kept"), ("task_val_loc_acc", None, "val LocAcc")],
    "hard-pl": [("task_pl_kept_mean", "pl_kept", "kept"), ("task_val_pl_iou", None, "PL IoU w/ GT"),
                ("task_val_pl_kept", None, "val kept"), ("task_val_loc_acc", None, "val LocAcc")],
}


LOG_DIR: Path | None = None  # set in main(): the commands' stdout (eval tables...) goes to WORK/logs/


def avslkit(args: list[str], env: dict[str, str] | None = None, log_name: str | None = None) -> None:
    """Run an avslkit command; its stdout is appended to WORK/logs/<log_name or command>.log."""
    if LOG_DIR is None:
        subprocess.run(AVSLKIT + args, check=True, env=env)
        return
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{log_name or args[0]}.log"
    with open(path, "a") as fh:
        fh.write("$ avslkit " + " ".join(args) + "\n")
        fh.flush()
        res = subprocess.run(AVSLKIT + args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if res.returncode != 0:
        print(path.read_text()[-3000:])
        raise SystemExit(f"avslkit {args[0]} failed (exit {res.returncode}); full output in {path}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a truncated last line after a crash
    return out


# -- data -------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Synthesise and preprocess the benchmark (each step skipped when its output exists)."""
    toy = work / "toy"
    n_train = args.labeled + args.val_labeled + args.unlabeled
    total = n_train + args.test
    t0 = time.time()
    if not (toy / "annotations.json").is_file():
        avslkit(["synth", str(toy), "--clips", str(total), "--classes", "8", "--size", str(args.size), "--duration", "4",
                 "--fps", "10", "--size-range", "0.25", "0.6", "--seed", str(args.data_seed), "--workers", str(args.workers_data),
                 "--test-fraction", repr(args.test / total)])
    common = ["--root", str(toy / "videos"), "--timestamps", str(toy / "timestamps.csv"), "--labels", str(toy / "annotations.json"),
              "--workers", str(args.workers_data), "--frame-size", str(args.size + 16)]
    if not (work / "train.h5.done").is_file():
        (work / "train.h5").unlink(missing_ok=True)
        avslkit(["preprocess", str(toy / "train.txt"), "--out", str(work / "train.h5"), *common])
        (work / "train.h5.done").touch()
    if not (work / "test.h5.done").is_file():
        (work / "test.h5").unlink(missing_ok=True)
        avslkit(["preprocess", str(toy / "test_videos.txt"), "--out", str(work / "test.h5"), *common])
        avslkit(["extend-testset", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
                 "--real-negatives", str(toy / "offscreen.txt")])
        (work / "test.h5.done").touch()
    return {"toy": toy, "data_seconds": time.time() - t0}


def write_labeled_split(args: argparse.Namespace, work: Path, toy: Path) -> dict[str, Any]:
    """Draw the labelled ids once (annotated store clips, seeded) and write split/labeled.txt."""
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
        saved = [l.strip() for l in path.read_text().splitlines() if l.strip()]
        if saved != labeled:
            raise SystemExit(f"{path} differs from the split these options draw; use another --work or the original options")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{cid}\n" for cid in labeled))
    return {"path": path, "store_clips": len(store_ids), "annotated": len(candidates), "labeled": labeled}


# -- budget -----------------------------------------------------------------------------------------
def budget(method: str, args: argparse.Namespace, n_store: int) -> dict[str, Any]:
    """Epochs, warm-up and ramp settings that give `method` exactly --steps optimiser steps."""
    b = args.batch_size
    n_unl = n_store - args.labeled - args.val_labeled
    labeled_len = args.labeled if args.labeled >= b else args.labeled * -(-b // args.labeled)  # tiled below one batch
    per_labeled_pass = max(1, labeled_len // b)
    if method == "supervised":
        per_epoch = labeled_len // b
    elif method in USES_UNLABELED_EPOCH:
        per_epoch = n_unl // b
    else:  # slavc: the whole store
        per_epoch = n_store // b
    if per_epoch < 1:
        raise SystemExit(f"{method}: an epoch has no full batch of {b}; lower --batch-size")
    out: dict[str, Any] = {"steps": args.steps, "steps_per_epoch": per_epoch, "epochs": math.ceil(args.steps / per_epoch),
                           "warmup_steps": 0, "overrides": []}
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
            out["xpl_ramp_epochs"] = ramp
            out["overrides"].append(f"ssl.ramp_epochs={ramp:.6g}")
    return out


# -- one run ----------------------------------------------------------------------------------------
def train_and_eval(method: str, seed: int, args: argparse.Namespace, work: Path, toy: Path, split: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one method/seed and evaluate it; returns its row (cached in row.json)."""
    name = f"{method}_s{seed}"
    run_dir, eval_out = work / "runs" / name, work / "eval" / name / "metrics.json"
    row_path = work / "eval" / name / "row.json"
    if eval_out.is_file() and row_path.is_file():
        print(f"[skip] {name}: {eval_out} exists")
        row = json.loads(row_path.read_text())
        if (run_dir / "log.jsonl").is_file():  # recomputed: cheap, and older rows lack it
            row["step_windows"] = step_windows(method, read_jsonl(run_dir / "log.jsonl"), args.curve_window)
        return row
    plan = budget(method, args, split["store_clips"])
    cmd = ["train", method, "--data", str(work / "train.h5"), "--out", str(run_dir), "--epochs", str(plan["epochs"]),
           "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--image-size", str(args.size),
           "--workers", str(args.workers), "--device", "cpu", "--seed", str(seed), "--set", "model.visual_weights=none"]
    if method in SEMI_SUPERVISED:
        cmd += ["--annotations", str(toy / "annotations.json"), "--labeled", str(split["path"]),
                "--val-labeled", str(args.val_labeled), "--set", f"data.split_seed={args.data_seed}"]
    for override in plan["overrides"] + list(args.set or []):
        cmd += ["--set", override]
    for item in args.method_set or []:
        target, _, override = item.partition(":")
        if target == method:
            cmd += ["--set", override]
    if (run_dir / "last.pt").is_file():
        cmd.append("--resume")
    timing_path = run_dir / "bench_seconds.json"
    previous = json.loads(timing_path.read_text())["seconds"] if timing_path.is_file() else 0.0
    print(f"[train] {name}: {plan['steps']} steps = {plan['epochs']} epoch(s) of {plan['steps_per_epoch']} steps, "
          f"warm-up {plan['warmup_steps']} steps{' (resuming)' if '--resume' in cmd else ''}", flush=True)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    t0 = time.time()
    avslkit(cmd, env, log_name=f"train_{name}")
    seconds = previous + time.time() - t0
    timing_path.write_text(json.dumps({"seconds": seconds}))
    avslkit(["eval", str(run_dir / "last.pt"), "--test", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
             "--test-list", str(toy / "test.csv"), "--extended", "--out", str(eval_out)], env, log_name=f"eval_{name}")
    log = read_jsonl(run_dir / "log.jsonl")
    ends = [r for r in log if r.get("type") == "event" and r.get("event") == "end"]
    row = {
        "method": method, "seed": seed, "metrics": json.loads(eval_out.read_text()), "train_seconds": seconds,
        "steps": ends[-1]["global_step"] if ends else None, "plan": plan,
        "warmup_steps_logged": warmup_steps_logged(method, log),
        "curves": curves(method, log),
        "step_windows": step_windows(method, log, args.curve_window),
        "split_check": split_check(method, run_dir, split, work),
    }
    best = run_dir / "checkpoints.json"
    row["best_checkpoint_not_evaluated"] = json.loads(best.read_text()).get("best") if best.is_file() else None
    row_path.write_text(json.dumps(row, indent=1))
    for name_ in (("best.pt",) if args.keep == "last" else ("best.pt", "last.pt") if args.keep == "none" else ()):
        (run_dir / name_).unlink(missing_ok=True)  # DMT/XPL checkpoints are ~1.6 GB each at 112 px
    return row


def warmup_steps_logged(method: str, log: list[dict[str, Any]]) -> int | None:
    """Steps whose record has no stage-2 term (hard-pl: loss_pl; dmt: pl_kept; xpl: xpl_kept), deduplicated."""
    marker = {"hard-pl": "loss_pl", "dmt": "pl_kept", "xpl": "xpl_kept"}.get(method)
    if marker is None:
        return None
    steps = {r["step"]: marker in r for r in log if r.get("type") == "step"}
    return sum(1 for stage2 in steps.values() if not stage2)


def curves(method: str, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch rows of the method's curve keys (last record per epoch), plus an unfinished-epoch row from the steps."""
    keys = CURVES.get(method)
    if not keys:
        return []
    epochs: dict[int, dict[str, Any]] = {}
    for r in log:
        if r.get("type") == "epoch":
            epochs[int(r["epoch"])] = r
    rows = []
    for e in sorted(epochs):
        r = epochs[e]
        rows.append({"epoch": e, "global_step": r.get("global_step"), "stage": "stage 2" if r.get("task_stage_unbiased") else "warm-up",
                     **{label: r.get(key) for key, _, label in keys}})
    done = max((r.get("global_step", 0) for r in epochs.values()), default=0)
    tail: dict[int, dict[str, Any]] = {}
    for r in log:
        if r.get("type") == "step" and r["step"] > done:
            tail[r["step"]] = r
    if tail:
        row: dict[str, Any] = {"epoch": f"{max(epochs) + 1 if epochs else 0} (unfinished)", "global_step": max(tail), "stage": "steps"}
        for key, step_key, label in keys:
            vals = [r[step_key] for r in tail.values() if step_key and r.get(step_key) is not None]
            row[label] = statistics.fmean(vals) if vals else None
        rows.append(row)
    return rows


def step_windows(method: str, log: list[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    """Means of the per-step curve terms (kept fraction, teachers' IoU / correlation) over windows of
    `window` stage-2 steps: the within-epoch shape of Fig. 5 when a budget holds few epochs."""
    keys = [(step_key, label) for _, step_key, label in CURVES.get(method, []) if step_key]
    if not keys or window < 1:
        return []
    steps = {r["step"]: r for r in log if r.get("type") == "step" and r.get(keys[0][0]) is not None}
    ordered = [steps[k] for k in sorted(steps)]
    rows = []
    for start in range(0, len(ordered), window):
        chunk = ordered[start:start + window]
        row: dict[str, Any] = {"steps": f"{chunk[0]['step']}–{chunk[-1]['step']}"}
        for step_key, label in keys:
            vals = [r[step_key] for r in chunk if r.get(step_key) is not None]
            row[label] = statistics.fmean(vals) if vals else None
        rows.append(row)
    return rows


def split_check(method: str, run_dir: Path, split: dict[str, Any], work: Path) -> str:
    """'same' when the run's labeled.txt is the shared file and its val.txt the first run's, else what differs."""
    if method not in SEMI_SUPERVISED:
        return "n/a (no labels)"
    read = lambda p: [l.strip() for l in p.read_text().splitlines() if l.strip()] if p.is_file() else None  # noqa: E731
    labeled, val = read(run_dir / "labeled.txt"), read(run_dir / "val.txt")
    if labeled is None or sorted(labeled) != split["labeled"]:
        return "DIFFERENT labelled ids"
    ref = work / "split" / "val.txt"
    if not ref.is_file():
        ref.write_text("".join(f"{cid}\n" for cid in val or []))
        return "same"
    return "same" if read(ref) == val else "DIFFERENT validation ids"


# -- report -----------------------------------------------------------------------------------------
def fmt(v: Any, pct: bool = True, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def print_report(rows: list[dict[str, Any]], baselines: dict[str, dict], args: argparse.Namespace, info: dict[str, Any]) -> None:
    print(f"\n### Synthetic benchmark: {info['store_clips']} training clips ({args.labeled} labelled, {args.val_labeled} held out, "
          f"{info['store_clips'] - args.labeled - args.val_labeled} unlabelled), {info['n_positive']} test positives + "
          f"{info['n_negative']} negatives (extended), {args.size} px, batch {args.batch_size}, {args.steps} steps per method, "
          f"random init, data seed {args.data_seed}\n")
    print("| method | seed | LocAcc | AUC | AP | max-F1 | train s | steps | warm-up steps | split |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in baselines.items():
        print(f"| baseline {name} | – | {fmt(m['locacc'])} | {fmt(m['auc'])} | {fmt(m['ap'])} | {fmt(m['max_f1'])} | – | – | – | – |")
    for r in rows:
        m = r["metrics"]
        warm = r["warmup_steps_logged"] if r["warmup_steps_logged"] is not None else r["plan"]["warmup_steps"]
        print(f"| {r['method']} | {r['seed']} | {fmt(m['locacc'])} | {fmt(m['auc'])} | {fmt(m['ap'])} | {fmt(m['max_f1'])} | "
              f"{r['train_seconds']:.0f} | {r['steps']} | {warm} | {r['split_check']} |")
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) > 1:
        print(f"\nMean ± sd over seeds {', '.join(map(str, seeds))}:\n")
        print("| method | n | LocAcc | AUC | AP | max-F1 | train s |")
        print("|---|---|---|---|---|---|---|")
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method]
            cells = []
            for key in ("locacc", "auc", "ap", "max_f1"):
                vals = [100 * r["metrics"][key] for r in mine]
                cells.append(f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}")
            print(f"| {method} | {len(mine)} | {' | '.join(cells)} | {statistics.fmean(r['train_seconds'] for r in mine):.0f} |")
    for r in rows:
        if not r["curves"]:
            continue
        labels = [label for _, _, label in CURVES[r["method"]]]
        print(f"\n{r['method']} seed {r['seed']}: per-epoch curves (kept/IoU/corr: means over the epoch's stage-2 steps; "
              f"'val' and 'PL IoU w/ GT': the {args.val_labeled} held-out labelled clips at the epoch's end"
              + ("; stage = stage at the epoch's end; DMT's teachers are the initial networks until the warm-up ends" if r["method"] == "dmt" else "")
              + ")\n")
        print("| epoch | step | stage | " + " | ".join(labels) + " |")
        print("|---|---|---|" + "---|" * len(labels))
        for c in r["curves"]:
            cells = [fmt(c.get(label), pct=False, digits=3) for label in labels]
            print(f"| {c['epoch']} | {c['global_step']} | {c['stage']} | " + " | ".join(cells) + " |")
        windows = r.get("step_windows") or []
        if windows:
            wl = [k for k in windows[0] if k != "steps"]
            print(f"\n{r['method']} seed {r['seed']}: stage-2 steps in windows of {args.curve_window} (means of the per-step terms)\n")
            print("| steps | " + " | ".join(wl) + " |")
            print("|---|" + "---|" * len(wl))
            for w in windows:
                print(f"| {w['steps']} | " + " | ".join(fmt(w.get(k), pct=False, digits=3) for k in wl) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labeled", type=int, default=300, help="labelled training clips")
    parser.add_argument("--unlabeled", type=int, default=2000, help="unlabelled training clips (about 20%% of them have no visible source)")
    parser.add_argument("--val-labeled", type=int, default=100, help="annotated training clips held out for the per-epoch quality logs")
    parser.add_argument("--test", type=int, default=400, help="test clips (positives + off-screen negatives, before extension)")
    parser.add_argument("--size", type=int, default=112, help="frame size of the benchmark and training crop")
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per method (the budget)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup-fraction", type=float, default=6 / 26, help="share of the budget in warm-up (hard-pl, dmt, xpl); rounded to whole passes over the labelled set, at least one unless 0")
    parser.add_argument("--xpl-ramp-fraction", type=float, default=0.5, help="XPL curriculum ramp as a share of its stage-2 epochs")
    parser.add_argument("--seeds", default="0", help="comma list of training seeds")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the benchmark and of the labelled/held-out draw")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every method (repeatable)")
    parser.add_argument("--method-set", action="append", metavar="METHOD:KEY=VALUE", help="config override for one method")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per training run")
    parser.add_argument("--workers-data", type=int, default=2, help="processes for synth/preprocess")
    parser.add_argument("--threads", type=int, default=0, help="OMP/MKL threads of the training runs (0 = torch default)")
    parser.add_argument("--keep", choices=("all", "last", "none"), default="last",
                        help="checkpoints kept after a run is evaluated (best.pt is never evaluated here)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/avslkit_bench_ssl"))
    parser.add_argument("--curve-window", type=int, default=20, help="stage-2 steps per row of the step-window curves (0: none)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; use some of {','.join(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    global LOG_DIR
    LOG_DIR = work / "logs"
    t_start = time.time()

    data = prepare_data(args, work)
    toy = data["toy"]
    split = write_labeled_split(args, work, toy)
    baselines = {}
    for name in ("center", "full"):
        out = work / "eval" / f"baseline_{name}" / "metrics.json"
        if not out.is_file():
            avslkit(["eval", "--baseline", name, "--test", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
                     "--test-list", str(toy / "test.csv"), "--extended", "--out", str(out)])
        baselines[name] = json.loads(out.read_text())

    rows = []
    for seed in seeds:
        for method in methods:
            rows.append(train_and_eval(method, seed, args, work, toy, split))
            (work / "results.json").write_text(json.dumps({"partial": True, "rows": rows}, indent=1))

    info = {"store_clips": split["store_clips"], "annotated_in_store": split["annotated"],
            "n_positive": baselines["center"]["n_positive"], "n_negative": baselines["center"]["n_negative"]}
    results = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": {**info, "labeled_file": str(split["path"]), "data_seconds_this_call": data["data_seconds"]},
        "baselines": baselines, "rows": rows, "wall_seconds_this_call": time.time() - t_start,
    }
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print_report(rows, baselines, args, info)
    print(f"\nwall time of this call: {time.time() - t_start:.0f} s (data steps {data['data_seconds']:.0f} s); results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
