"""`run_training`: the engine side of `avslkit train METHOD`, importable without the CLI.

Resolves the data-dependent config values (audio sample rate of the training store), sets up
the process (device, DDP, seeds), builds the task (through the `make_task` factory it is given:
the engine never imports the methods; `avslkit.training` passes the method registry's
`build_task`) and the validator, writes `config.yaml` and runs the Trainer (resuming from
`last.pt` when asked).
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from avslkit.config import save_config, yaml_load
from avslkit.config_spec import TrainConfig, train_config
from avslkit.engine.checkpoint import CheckpointManager, load_checkpoint, seed_everything
from avslkit.engine.distributed import DistContext, init_distributed, shutdown_distributed
from avslkit.engine.trainer import Trainer
from avslkit.engine.validation import RankZeroValidation, build_validator, check_validation_inputs, validation_enabled
from avslkit.errors import AvslError
from avslkit.utils.console import log

MIN_AUDIO_SAMPLES = 512  # one spectrogram frame (nperseg)

TaskFactory = Callable[[TrainConfig, DistContext], Any]  # (typed config, process context) -> task


def resolve_data_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check the training store and fill `audio.sample_rate` from it."""
    from avslkit.data.store import Store

    cfg = copy.deepcopy(dict(cfg))
    train = train_config(cfg).data.train
    if not train:
        raise AvslError("no training store given (pass --data TRAIN.h5, made by 'avslkit preprocess')")
    store = Store(train)
    try:
        n = len(store)
        if n == 0:
            raise AvslError(f"{train}: the store holds no clips ({len(store.failures())} failures recorded); preprocess videos into it first")
        if store.audio_samples < MIN_AUDIO_SAMPLES:
            raise AvslError(f"{train}: audio windows have {store.audio_samples} samples, too short for the audio features; re-run preprocess with longer --audio-seconds")
        sr = int(store.sample_rate)
    finally:
        store.close()
    audio = cfg.setdefault("audio", {})
    if audio.get("sample_rate") and int(audio["sample_rate"]) != sr:
        raise AvslError(f"{train}: store audio is {sr} Hz but the config says audio.sample_rate={audio['sample_rate']}; remove the setting or re-preprocess")
    audio["sample_rate"] = sr
    return cfg


def held_out_validation_ids(task: Any, cfg: Mapping[str, Any] | TrainConfig) -> list[str] | None:
    """The clips a semi-supervised task held out of its training store (``val.txt``) when they are to
    choose ``best.pt`` (``validation.held_out``, default true); None for the other methods."""
    if not train_config(cfg).validation.held_out:
        return None
    held = task.held_out_validation_ids()
    return None if held is None else list(held)


def saved_run_config(out: str | Path) -> dict[str, Any] | None:
    """The resolved config of an existing run directory (for --resume), or None."""
    path = Path(out) / "config.yaml"
    if not path.is_file():
        return None
    return yaml_load(path.read_text()) or {}


def prepare_training(cfg: Mapping[str, Any], out: str | Path, make_task: TaskFactory, resume: bool = False,
                     quiet: bool = False, ctx: DistContext | None = None) -> tuple[Trainer, Path | None]:
    """Set up a run: (trainer, checkpoint to resume from or None). `ctx` defaults to torchrun's env."""
    if not cfg.get("method"):
        raise AvslError("no method given (use 'avslkit train METHOD')")
    config = train_config(cfg)  # one line naming the key, the value and the range, before any work
    run_dir = Path(out)
    last = run_dir / "last.pt"
    if last.is_file() and not resume:
        raise AvslError(f"{run_dir} already holds a training run (last.pt); pass --resume to continue it or choose a new --out")
    resume_checkpoint = None
    if resume and last.is_file():  # read (and so check) it before anything in the run directory changes
        resume_checkpoint = load_checkpoint(last)
        if resume_checkpoint.get("method") != cfg["method"]:
            raise AvslError(f"{last}: checkpoint is a '{resume_checkpoint.get('method')}' run, not '{cfg['method']}'; use a new --out")
    ctx = ctx or init_distributed(config.device, config.distributed.backend)
    cfg = resolve_data_config(cfg)
    config = train_config(cfg)  # the typed config of the run, with the training store's sample rate
    check_validation_inputs(config)  # on every rank, so a bad path cannot leave the other ranks waiting
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed = int(config.seed)
    seed_everything(seed)  # identical initial weights on every rank
    task = make_task(config, ctx)
    if ctx.distributed:
        torch.manual_seed(seed + ctx.rank)  # different dropout masks per rank
    held_out = held_out_validation_ids(task, config)
    if ctx.is_main:
        validator = build_validator(config, held_out)
    else:  # rank 0 validates and broadcasts; the others must still take part in the broadcast
        validator = RankZeroValidation() if validation_enabled(config, held_out) else None
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for tmp in CheckpointManager(run_dir).remove_stale_temp_files():
            log.info("removed %s, left by a save that was interrupted", tmp.name)
        save_config(cfg, run_dir / "config.yaml")
    ctx.barrier()
    trainer = Trainer(task, config, run_dir, ctx, validator=validator, quiet=quiet)
    resume_from = None
    if resume:
        if resume_checkpoint is not None:
            resume_from = last
            trainer.preload_checkpoint(last, resume_checkpoint)
        elif ctx.is_main:
            log.info("--resume: no last.pt in %s yet, starting from scratch", run_dir)
    return trainer, resume_from


def run_training(cfg: Mapping[str, Any], out: str | Path, make_task: TaskFactory, resume: bool = False,
                 quiet: bool = False, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train the task `make_task` builds into run directory `out`; returns the Trainer summary.

    Launched by torchrun, every process calls this; the process group is created from the
    environment and destroyed at the end (unless the caller passed its own `ctx`).
    """
    own_ctx = ctx is None
    if own_ctx:
        config = train_config(cfg)
        ctx = init_distributed(config.device, config.distributed.backend)
    trainer = None
    try:
        trainer, resume_from = prepare_training(cfg, out, make_task, resume, quiet, ctx)
        return trainer.fit(resume=resume_from)
    finally:
        if trainer is not None:
            trainer.close()
            del trainer
            gc.collect()  # free the run's distributed objects (some sit in reference cycles) while the group exists
        if own_ctx and ctx is not None and ctx.distributed:
            shutdown_distributed()
