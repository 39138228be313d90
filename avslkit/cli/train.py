"""`avslkit train METHOD`: train a localisation method on a store (thin layer over avslkit.training)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from avslkit.cli.common import user_errors
from avslkit.config import list_packaged_methods


def _flag_values(**flags: object) -> dict:
    """Dedicated flags → nested config overrides (None = not given)."""
    nested: dict = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        parts = dotted.split("__")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


@user_errors
def command(
    method: str = typer.Argument(..., help="Method to train: " + " | ".join(list_packaged_methods()) + "."),
    data: Optional[Path] = typer.Option(None, "--data", help="Training store (.h5) from 'avslkit preprocess' (default: the workspace's stores.train)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (config.yaml, log.jsonl, last.pt, best.pt, checkpoints.json). Default: runs/METHOD, then runs/METHOD2, ... in the workspace (with --resume: its latest run)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation store (.h5); best.pt is chosen on it."),
    val_annotations: Optional[Path] = typer.Option(None, "--val-annotations", help="Boxes of the validation clips: vggss.json or a Flickr XML directory."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named settings bundle applied after the defaults, e.g. cpu-small (see avslkit/configs/presets/), or a preset YAML path."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file overriding the defaults (configs/train.yaml + configs/methods/METHOD.yaml)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override one config key, e.g. --set optim.lr=3e-4 (repeatable; wins over everything)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    amp: Optional[str] = typer.Option(None, "--amp", help="Mixed precision: none | bf16 | fp16 (fp16 on CUDA only)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="NHWC memory format on CUDA."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="GLOBAL batch size (split over DDP processes)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader workers per process."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (data order, augmentation, init)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=32, help="Training crop / test resize."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=0, help="Stop after this many steps in total (0 = no limit)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Semi-supervised methods: boxes of the training clips (vggss.json or Flickr XML dir; default: the workspace's annotations)."),
    labeled: Optional[str] = typer.Option(None, "--labeled", help="Semi-supervised methods: labelled clips: 4k (= 4000) | 2k | 256 | 0.03 (fraction) | all | ids.txt."),
    val_labeled: Optional[int] = typer.Option(None, "--val-labeled", min=0, help="Semi-supervised methods: annotated clips held out of the training store; best.pt is chosen on them unless --val is given (default auto: min(500, 10% of the annotated clips))."),
    student: Optional[str] = typer.Option(None, "--student", help="dmt: the pipeline each student unit runs (DMT Table 4): localizer | ezvsl | slavc."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt (exactly: optimiser, momentum, RNG, data position)."),
) -> None:
    """Train METHOD on a store; checkpoints every epoch, best.pt by validation LocAcc.

    Launch with torchrun for several GPUs/nodes (the batch size is the global one):
    torchrun --nproc-per-node 4 -m avslkit train slavc --data train.h5 --out runs/slavc

    Without --data/--annotations/--out (short form) the workspace's train store and annotations are used and
    the run goes to runs/METHOD, runs/METHOD2, ... (recorded in avslkit.yaml; docs/workspace.md).

    Example: avslkit train dmt --labeled 4k   (explicit: avslkit train slavc --data train.h5 --val val.h5 --val-annotations vggss.json --out runs/slavc --device cuda --amp bf16)
    """
    from avslkit.config import load_config, preset_layer
    from avslkit.engine.run import saved_run_config
    from avslkit.methods.base import get_method
    from avslkit.training import run_training
    from avslkit.utils.console import is_quiet

    from avslkit.workflow import fill_train_config, record_run, train_out
    from avslkit.workspace import Workspace

    get_method(method)
    if labeled is not None:  # a spec that cannot be read fails now, before a run directory exists
        from avslkit.semisup.labeled import parse_labeled_spec

        parse_labeled_spec(labeled)
    ws = Workspace.find()
    out, created = train_out(method, out, resume, ws)
    used: dict = {}
    try:  # whatever happens, a run with a checkpoint is recorded and an empty new run directory removed
        extra = _flag_values(
            data__train=str(data) if data else None,
            data__val=str(val) if val else None,
            data__val_annotations=str(val_annotations) if val_annotations else None,
            device=device, amp=amp, channels_last=channels_last, epochs=epochs, batch_size=batch_size,
            optim__lr=lr, workers=workers, seed=seed, image_size=image_size, max_steps=max_steps,
            data__annotations=str(annotations) if annotations else None, data__labeled=labeled,
            data__val_labeled=val_labeled, ssl__student=student,
        )
        saved = saved_run_config(out) if resume else None
        if saved is not None and preset:
            from avslkit.errors import AvslError

            raise AvslError(f"--preset applies to new runs only; {out} keeps the settings it was started with (drop --preset, or use --set)")
        if saved is not None:
            if saved.get("method") != method:
                from avslkit.errors import AvslError

                raise AvslError(f"{out} is a '{saved.get('method')}' run; resume it with 'avslkit train {saved.get('method')} --resume' or choose a new --out")
            cfg = load_config(saved, config, set_ or [], extra=extra)  # the run's own config, then any changes
        else:
            layer = preset_layer(preset, "train", method) if preset else None
            cfg = load_config(["train", f"methods/{method}"], config, set_ or [], extra=extra, preset=layer)
            cfg["preset"] = str(preset) if preset else cfg.get("preset")
        cfg["method"] = method
        used = fill_train_config(cfg, ws)
        summary = run_training(cfg, out, resume=resume, quiet=is_quiet())
    finally:
        record_run(ws, out, created, bool(used))
    from avslkit.utils.console import log

    log.info("done: %s; %s", out, summary["selection"])
