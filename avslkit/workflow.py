"""What the commands' short forms do with the workspace: fill missing paths, choose outputs, record results.

`avslkit preprocess videos/`, `avslkit train dmt --labeled 4k`, `avslkit eval --extended` and
`avslkit viz` run as typed because each takes the paths it was not given from `avslkit.yaml`
(avslkit.workspace) and records what it wrote. The CLI modules call these functions; explicit
flags always win (a value that is not None is never replaced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping

from avslkit.errors import AvslError
from avslkit.workspace import Workspace, settings

__all__ = [
    "eval_defaults", "fill_train_config", "preprocess_workspace", "record_eval", "record_extended",
    "record_run", "run_default", "say", "train_out", "viz_defaults",
]


def say(message: str) -> None:
    """One line of what a short form found or chose (stderr; hidden under --quiet)."""
    from avslkit.utils.console import is_quiet, stderr_console

    if not is_quiet():
        stderr_console.print(message, highlight=False, soft_wrap=True)


# -- preprocess --------------------------------------------------------------------------------------
def preprocess_workspace(inputs: Path, cfg: Mapping[str, Any], *, workers: int, timestamps: Path | None,
                         labels: Path | None, root: Path | None, layout: str, progress: bool,
                         on_report: Callable[[Any], None] = lambda report: None, ws: Workspace | None = None) -> list[Any]:
    """`avslkit preprocess INPUTS` without --out: find the split files, write data/train.h5 + data/test.h5
    (or data/<folder>.h5), and record the stores and split files in avslkit.yaml; returns the reports.

    Each store is recorded (with the split files) as soon as it is complete, so a failure in the second
    keeps the first.
    """
    from avslkit.data.preprocess import preprocess
    from avslkit.data.splits import plan_stores

    ws = ws or Workspace.find()
    ws.data()  # a damaged workspace file stops the command before any work
    conv = settings()
    plan = plan_stores(inputs, ws.root / conv.store_dir, conv.split_files, extra_folders=[ws.root],
                       extensions=tuple(cfg["extensions"]))
    role_names = {"train": "train split", "test": "test split", "test_list": "test positives", "annotations": "annotations",
                  "timestamps": "timestamps", "real_negatives": "real negatives"}
    if plan.found:
        say("found " + ", ".join(f"{ws.display(p)} ({role_names.get(r, r)})" for r, p in plan.found.items()))
    else:
        say(f"no split files in {ws.display(inputs)} (looked for {', '.join(n for v in conv.split_files.values() for n in v)})")
    timestamps = timestamps or plan.found.get("timestamps")
    ann = plan.found.get("annotations")
    labels = labels or (ann if ann is not None and ann.is_file() and ann.suffix == ".json" else None)
    entries: dict[str, Any] = {k: plan.found[k] for k in ("annotations", "test_list", "real_negatives") if k in plan.found}
    entries.update({k: v for k, v in (("timestamps", timestamps), ("labels", labels)) if v is not None})
    reports = []
    for job in plan.jobs:
        n = len(job.inputs)
        note = f"; {len(job.missing)} listed clip(s) have no video (e.g. '{job.missing[0]}')" if job.missing else ""
        say(f"{job.role} store {ws.display(job.out)}: {n} clips from {job.source}{note}")
        report = preprocess(job.inputs, Path(ws.display(job.out)), cfg=cfg, workers=workers, timestamps=timestamps, labels=labels,
                            root=root, layout=layout, progress=progress)
        ws.record({**entries, f"stores.{job.role}": job.out})  # each store as soon as it is complete
        reports.append(report)
        on_report(report)
    if plan.n_unused:
        say(f"{plan.n_unused} of {plan.n_videos} videos are in no split list and were left out")
    say(f"recorded in {ws.display(ws.file)}: " + ", ".join([f"stores.{j.role}" for j in plan.jobs] + list(entries)))
    return reports


# -- train -------------------------------------------------------------------------------------------
def train_out(method: str, out: Path | None, resume: bool, ws: Workspace) -> tuple[Path, bool]:
    """The run directory: `out` when given; with --resume the workspace's latest run; else a new
    runs/METHOD, runs/METHOD2, ... Returns (directory, whether this call created it)."""
    if out is not None:
        return out, False
    if resume:
        latest = ws.latest_run()
        if latest is None:
            raise AvslError(f"--resume needs a run: pass --out RUN_DIR ({ws.display(ws.file)} records no run yet)")
        ws.announce("run", latest, "latest run")
        return latest, False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each torchrun process would number its own directory
        raise AvslError("under torchrun pass --out RUN_DIR: the processes must share one run directory")
    path = ws.new_run_dir(method)
    say(f"run directory {ws.display(path)} (next free {settings().runs_dir}/{method}N)")
    return path, True


def fill_train_config(cfg: MutableMapping[str, Any], ws: Workspace) -> dict[str, str]:
    """Fill the config's unset training store and (for semi-supervised methods) annotations from the
    workspace, printing each; returns the workspace entries used."""
    data = cfg.setdefault("data", {})
    used: dict[str, str] = {}
    wanted = {"train": "stores.train"}
    if "annotations" in data:  # the methods that train with boxes declare data.annotations
        wanted["annotations"] = "annotations"
    for key, entry in wanted.items():
        if data.get(key) is None:
            path = ws.default(entry)
            if path is not None:
                data[key] = ws.display(path)
                used[entry] = data[key]
    if data.get("train") is None:
        raise AvslError(f"no training store: pass --data TRAIN.h5, or run 'avslkit preprocess VIDEOS/' first "
                        f"({ws.display(ws.file)} records no stores.train)")
    return used


def record_run(ws: Workspace, run_dir: Path, created: bool, used_workspace: bool) -> None:
    """Record a finished (or interrupted, with a checkpoint) run; drop a run directory this call created
    that stayed empty (e.g. a config error)."""
    if (run_dir / "last.pt").is_file() or (run_dir / "best.pt").is_file():
        if ws.exists or used_workspace or created:
            ws.record_result(run=run_dir)
    elif created and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def run_default(ckpt: Path | None, ws: Workspace | None = None) -> Path:
    """`ckpt` when given, else the workspace's latest run (announced); an error says what to do without one."""
    if ckpt is not None:
        return ckpt
    ws = ws or Workspace.find()
    run = ws.latest_run()
    if run is None:
        raise AvslError("no run to load: pass --ckpt RUN_DIR (or a checkpoint file), or train one with 'avslkit train METHOD' "
                        f"({ws.display(ws.file)} records no runs)")
    ws.announce("run", run, "latest run")
    return Path(ws.display(run))


# -- extend-testset / eval ------------------------------------------------------------------------
def record_extended(ws: Workspace, csv_path: str | Path, used_workspace: bool) -> None:
    """Record the extended set when the workspace exists (or gave the store)."""
    if ws.exists or used_workspace:
        ws.record_result({"extended": csv_path})


def eval_defaults(cfg: MutableMapping[str, Any], ws: Workspace) -> dict[str, str]:
    """Fill an eval config from the workspace: the latest run (when no maps, baseline or checkpoint is
    given), the test store, annotations and test list; with `extended`, build the extended set if the
    test store has none yet. Sets `out` to runs/<run>/eval/metrics.json for a workspace run. Returns
    the workspace entries used."""
    used: dict[str, str] = {}
    if not any(cfg.get(k) for k in ("maps", "baseline", "checkpoint")):
        run = ws.latest_run()
        if run is None:
            raise AvslError("nothing to evaluate: no run yet. Train one ('avslkit train METHOD'), or pass a run directory, "
                            f"--maps MAPS.npz or --baseline center ({ws.display(ws.file)} records no runs)")
        ws.announce("run", run, "latest run")
        cfg["checkpoint"] = ws.display(run)
        used["runs"] = cfg["checkpoint"]
        if cfg.get("out") is None:
            cfg["out"] = ws.display(run / settings().eval_dir / "metrics.json")
            say(f"writing {cfg['out']}")
            if not cfg.get("save_maps"):
                cfg["save_maps"] = True  # viz then draws the scored maps without running the model again
    for key, entry in (("test", "stores.test"), ("annotations", "annotations"), ("test_list", "test_list")):
        if cfg.get(key) is None:
            path = ws.default(entry)
            if path is not None:
                cfg[key] = ws.display(path)
                used[entry] = cfg[key]
    if cfg.get("extended") and not cfg.get("extended_csv") and "stores.test" in used:
        from avslkit.evaluation.items import sidecar_paths

        csv_path = sidecar_paths(cfg["test"])[0]
        if csv_path.is_file():
            ws.announce("extended test set", csv_path, "recorded beside the test store")
        elif cfg.get("annotations"):
            from avslkit.evaluation.extended import extend_store

            negatives = ws.default("real_negatives")
            say(f"no extended test set recorded for {cfg['test']}: building it (avslkit extend-testset defaults)")
            result = extend_store(cfg["test"], cfg["annotations"], negatives)
            ws.record({"extended": result["csv"]})
            csv_path = Path(result["csv"])
        used["extended"] = ws.display(csv_path)
    return used


def record_eval(ws: Workspace, out: str | Path, used: Mapping[str, str]) -> None:
    """Record the evaluation as the last one when the workspace exists (or gave any input)."""
    if ws.exists or used:
        ws.record_result({"last_eval": out})


# -- viz ---------------------------------------------------------------------------------------------
def viz_defaults(inputs: list[Path], out: Path | None, ws: Workspace) -> tuple[list[Path], Path]:
    """No inputs: the workspace's last eval, drawn into runs/<run>/viz/ (beside its eval/ folder).
    Inputs given: them, into `out` (default viz/)."""
    if inputs:
        return inputs, out or Path(settings().viz_dir)
    last = ws.default("last_eval")
    if last is None:
        raise AvslError("nothing to draw: no evaluation yet. Run 'avslkit eval' first, or pass a metrics.json or run "
                        f"directory ({ws.display(ws.file)} records no last_eval)")
    if out is None:
        parent = last.parent
        base = parent.parent if parent.name == settings().eval_dir else parent
        out = Path(ws.display(base / settings().viz_dir))
    return [Path(ws.display(last))], out


# -- status ------------------------------------------------------------------------------------------
def describe(key: str, path: Path) -> str:
    """A short summary of what a workspace entry holds (clip counts, epochs, headline metrics)."""
    import json

    try:
        if key.startswith("stores."):
            from avslkit.data.store import Store

            with Store(path) as s:
                return f"{len(s)} clips, {len(s.failures())} failed"
        if key.startswith("runs"):
            index = path / "checkpoints.json"
            if not index.is_file():
                return "no checkpoint yet"
            ck = json.loads(index.read_text())
            last, best = ck.get("last") or {}, ck.get("best")
            text = f"last.pt: epoch {last.get('epoch')}, step {last.get('global_step')}"
            return text + (f"; best.pt: epoch {best['epoch']}, {best['metric']} {best['value']:.3f}" if best else "")
        if key == "last_eval":
            m = json.loads(path.read_text())
            return f"LocAcc {100 * (m.get('locacc') or 0):.2f}, AUC {100 * (m.get('auc') or 0):.2f}, AP {100 * (m.get('ap') or 0):.2f}"
    except Exception as exc:  # noqa: BLE001 - a summary must never stop `avslkit status`
        return f"unreadable ({exc.__class__.__name__})"
    return ""
