"""The one training loop every method uses (torchvision-references style, open_clip-style task).

    trainer = Trainer(task, cfg, run_dir, ctx)
    summary = trainer.fit(resume=True)

Per epoch: `task.on_epoch_start` → steps (`OptimizationStep`: the task's `compute_loss` plus
optimiser, AMP, DDP, clipping and schedule, all engine-side) → buffer sync → `task.on_epoch_end` →
the task's map-quality log (`map_quality` on `task.quality_dataset()`) → validation (if configured)
→ `last.pt` (+ `best.pt` when validation improved). The task is any object with the `Task`
interface of `avslkit.methods.base`; the engine never imports the methods. Writes
`log.jsonl` (step/epoch/val/checkpoint records) and `checkpoints.json`; only rank 0 writes.
`--resume` restores the task, trainer counters, loader positions and every RNG, so an interrupted
run continues exactly where its last checkpoint was (bitwise on CPU).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from avslkit.config_spec import TrainConfig, train_config
from avslkit.engine.checkpoint import CheckpointManager, capture_rng, load_checkpoint, restore_rng
from avslkit.engine.data import ResumableLoader
from avslkit.engine.distributed import DistContext
from avslkit.engine.logging import JsonlLogger
from avslkit.engine.step import OptimizationStep
from avslkit.engine.validation import Validator, map_quality
from avslkit.errors import AvslError
from avslkit.utils.console import log, make_progress


def _collate_for(dataset: Any) -> Any:
    from avslkit.data.dataset import collate_av

    return getattr(dataset, "collate_fn", None) or collate_av


class _Cycle:
    """A secondary stream (e.g. DMT's unlabelled data) that restarts with the next epoch's order."""

    def __init__(self, loader: ResumableLoader):
        self.loader = loader
        self._it: Iterator[Any] | None = None

    def next(self) -> Any:
        for _ in range(2):
            if self._it is None:
                if self.loader.position >= len(self.loader):
                    self.loader.set_epoch(self.loader.epoch + 1)
                self._it = iter(self.loader)
            try:
                return next(self._it)
            except StopIteration:
                self._it = None
        raise AvslError(f"training stream '{self.loader.name}' yields no batches (is it empty?)")


class Trainer:
    """Drives a Task: data order, steps, logs, validation and checkpoints."""

    def __init__(
        self,
        task: Any,
        cfg: Mapping[str, Any] | TrainConfig,
        run_dir: str | Path,
        ctx: DistContext | None = None,
        validator: Validator | None = None,
        quiet: bool = False,
    ):
        self.task = task
        self.config = train_config(cfg)
        self.cfg = self.config.raw  # saved in each checkpoint
        self.run_dir = Path(run_dir)
        self.ctx = ctx or task.ctx
        self.validator = validator
        self.quiet = quiet
        config = self.config
        self.epochs = int(config.epochs)
        self.max_steps = int(config.max_steps or 0)
        self.global_batch = int(config.batch_size)
        self.every_steps = int(config.checkpoint.every_steps or 0)
        self.log_every = max(1, int(config.log.every_steps))
        v = config.validation
        self.val_every = max(1, int(v.every_epochs))
        self.checkpoints = CheckpointManager(self.run_dir, metric=str(v.metric), mode=str(v.mode), enabled=self.ctx.is_main)
        self.logger = JsonlLogger(self.run_dir / "log.jsonl", enabled=self.ctx.is_main)
        self.epoch = 0
        self._preloaded: dict[Path, Mapping[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.loaders = self._build_loaders()
        self.primary = next(iter(self.loaders.values()))
        self.steps_per_epoch = len(self.primary)
        total = self.epochs * self.steps_per_epoch
        if self.max_steps:
            total = min(total, self.max_steps)
        self.total_steps = total
        self.step = OptimizationStep(task, config)
        self.step.configure_schedule(self.total_steps, self.steps_per_epoch)  # a cosine decay ends with the budget (--max-steps)
        self.step.setup_ddp()

    @property
    def global_step(self) -> int:
        """Optimisation steps done so far."""
        return self.step.global_step

    # -- setup --------------------------------------------------------------------------------
    def _build_loaders(self) -> dict[str, ResumableLoader]:
        world = self.ctx.world_size
        if self.global_batch % world:
            raise AvslError(
                f"batch size {self.global_batch} is the global batch and must divide evenly over {world} processes; "
                f"use a multiple of {world} for --batch-size"
            )
        per_rank = self.global_batch // world
        datasets = self.task.train_datasets()
        loaders: dict[str, ResumableLoader] = {}
        for k, (name, ds) in enumerate(datasets.items()):
            n = len(ds)
            source = getattr(getattr(ds, "store", None), "path", name)
            if n == 0:
                raise AvslError(f"{source}: the training set '{name}' is empty (preprocess clips into the store first)")
            drop_last = bool(self.config.drop_last)
            if drop_last and self.global_batch > n:
                raise AvslError(
                    f"batch size {self.global_batch} is larger than the training set ({n} clips in {source}); "
                    f"lower --batch-size to at most {n}"
                )
            loaders[name] = ResumableLoader(
                ds,
                per_rank,
                seed=int(self.config.seed) + 1000 * k,
                shuffle=True,
                drop_last=drop_last,
                rank=self.ctx.rank,
                world_size=world,
                workers=int(self.config.workers),
                collate_fn=_collate_for(ds),
                pin_memory=self.ctx.device.type == "cuda",
                name=name,
            )
        return loaders

    # -- checkpoint payload -------------------------------------------------------------------
    def _payload(self, epoch_done: bool) -> dict[str, Any]:
        rng = self.ctx.all_gather_object(capture_rng(self.ctx.device))  # every rank's RNG (exact DDP resume)
        return {
            "method": self.task.method,
            "config": dict(self.cfg),
            "task": self.step.state_dict(),
            "trainer": {
                "epoch": self.epoch,
                "global_step": self.global_step,
                "epoch_done": epoch_done,
                "loaders": {name: l.state_dict() for name, l in self.loaders.items()},
                "checkpoints": self.checkpoints.state_dict(),
                "world_size": self.ctx.world_size,
            },
            "rng": rng,
        }

    def _save_last(self, epoch_done: bool) -> None:
        payload = self._payload(epoch_done)
        if self.ctx.is_main:
            self.checkpoints.save_last(payload, epoch=self.epoch, global_step=self.global_step, epoch_done=epoch_done)
            self.logger.write("checkpoint", file="last.pt", epoch=self.epoch, global_step=self.global_step, epoch_complete=epoch_done)
        self.ctx.barrier()

    def preload_checkpoint(self, path: str | Path, checkpoint: Mapping[str, Any]) -> None:
        """Hand over a checkpoint already read (and so checked) for `resume_from(path)`."""
        self._preloaded[Path(path)] = checkpoint

    def resume_from(self, path: str | Path) -> None:
        """Restore everything from a training checkpoint (task, counters, loader positions, RNG)."""
        ckpt = self._preloaded.pop(Path(path), None) or load_checkpoint(path)
        if ckpt.get("method") != self.task.method:
            raise AvslError(f"{path}: checkpoint is a '{ckpt.get('method')}' run, not '{self.task.method}'; use a new --out")
        self.step.load_state_dict(ckpt["task"])
        t = ckpt["trainer"]
        self.epoch = int(t["epoch"])
        for name, state in t["loaders"].items():
            if name in self.loaders:
                self.loaders[name].load_state_dict(state)
        self.checkpoints.load_state_dict(t.get("checkpoints", {}))
        if self.ctx.is_main:
            self.checkpoints.last = {"file": "last.pt", "epoch": self.epoch, "global_step": self.global_step}
        rngs = ckpt["rng"]
        if len(rngs) != self.ctx.world_size:
            log.warning("resuming with %d processes from a %d-process checkpoint: data order is kept, RNG streams are not", self.ctx.world_size, len(rngs))
        restore_rng(rngs[self.ctx.rank % len(rngs)], self.ctx.device)
        if self.ctx.is_main:
            redone = self.logger.rewind(self.global_step)  # steps logged after the checkpoint are run again
            self.logger.write("event", event="resumed", checkpoint=str(path), epoch=self.epoch, global_step=self.global_step,
                              dropped_records=redone)
            log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.global_step)

    # -- loop ---------------------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        """The primary loader's remaining batches of this epoch, joined with the cycling streams."""
        others = {name: _Cycle(l) for name, l in self.loaders.items() if l is not self.primary}
        for batch in self.primary:
            if others:
                yield {self.primary.name: batch, **{name: c.next() for name, c in others.items()}}
            else:
                yield batch

    def _peak_memory(self) -> dict[str, float]:
        """Peak CUDA memory of this process so far (MiB); nothing on CPU (no cheap equivalent)."""
        if self.ctx.device.type != "cuda":
            return {}
        import torch

        return {"peak_memory_mib": round(torch.cuda.max_memory_allocated(self.ctx.device) / 2**20, 1)}

    def _validate(self) -> dict[str, float] | None:
        if self.validator is None:
            return None
        result = None
        if self.ctx.is_main:
            t0 = time.perf_counter()
            result = self.validator.run(self.task)
            result["seconds"] = round(time.perf_counter() - t0, 3)
        return self.ctx.broadcast_object(result)

    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train to `epochs` (or `max_steps`); returns a summary (final epoch, best checkpoint, ...)."""
        if resume is not None:
            self.resume_from(resume)
        for l in self.loaders.values():
            if l is not self.primary and l.epoch == 0 and l.position == 0:
                l.set_epoch(0)
        if self.ctx.is_main:
            self.logger.write(
                "event", event="start", method=self.task.method, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                global_batch=self.global_batch, world_size=self.ctx.world_size, device=str(self.ctx.device),
                train_samples=self.primary.num_samples,
            )
        stop = bool(self.max_steps) and self.global_step >= self.max_steps
        if self.epoch >= self.epochs or stop:
            log.info("nothing to train: %d/%d epochs and %d steps already done", self.epoch, self.epochs, self.global_step)
        with make_progress() as progress:
            bar = progress.add_task("train", total=self.total_steps, completed=min(self.global_step, self.total_steps), visible=self.ctx.is_main and not self.quiet)
            while self.epoch < self.epochs and not stop:
                epoch = self.epoch
                if self.primary.epoch != epoch:
                    self.primary.set_epoch(epoch)
                self.task.on_epoch_start(epoch, step=self.global_step, steps_per_epoch=self.steps_per_epoch,
                                         total_steps=self.total_steps, run_dir=self.run_dir)
                sums: dict[str, float] = {}
                steps = 0
                wait_total = 0.0
                t_epoch = time.perf_counter()
                t_prev = time.perf_counter()
                for batch in self._batches():
                    t_ready = time.perf_counter()
                    terms = self.step(batch, epoch)
                    t_done = time.perf_counter()
                    wait = t_ready - t_prev
                    step_time = t_done - t_prev
                    t_prev = t_done
                    steps += 1
                    wait_total += wait
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    step = self.global_step
                    if step % self.log_every == 0:
                        shown = self.ctx.all_reduce_mean({k: v for k, v in terms.items() if k != "lr"})
                        if self.ctx.is_main:
                            self.logger.write(
                                "step", epoch=epoch, step=step, batch=self.primary.position, **shown, lr=terms.get("lr"),
                                samples_per_s=round(self.global_batch / max(step_time, 1e-9), 3),
                                data_wait_s=round(wait, 6), step_s=round(step_time, 6),
                            )
                    progress.update(bar, advance=1, description=f"epoch {epoch + 1}/{self.epochs} loss {terms['loss']:.4f}")
                    if self.max_steps and step >= self.max_steps:
                        stop = True
                        break
                    if self.every_steps and step % self.every_steps == 0 and self.primary.position < len(self.primary):
                        self._save_last(epoch_done=False)
                    t_prev = time.perf_counter()  # exclude logging/checkpoint time from the next wait
                epoch_done = self.primary.position >= len(self.primary)
                if epoch_done:
                    self._end_epoch(epoch, sums, steps, wait_total, time.perf_counter() - t_epoch)
                else:
                    self.step.sync_buffers()
                    self._save_last(epoch_done=False)
        summary = {
            "method": self.task.method,
            "epochs_completed": self.epoch,
            "global_step": self.global_step,
            "stopped_early": stop,
            "last": self.checkpoints.last,
            "best": self.checkpoints.best,
            "selection": self.checkpoints.selection(),
        }
        if self.ctx.is_main:
            self.logger.write("event", event="end", **{k: v for k, v in summary.items() if k != "method"})
        self.logger.close()
        return summary

    def close(self) -> None:
        """Release what outlives `fit`: loader worker processes and the DDP wrappers.

        Call before destroying the process group: a DDP reducer that outlives its gloo group can
        abort the process at interpreter exit ("terminate called without an active exception").
        The task stays usable afterwards (its forward falls back to the plain modules).
        """
        for loader in self.loaders.values():
            loader.close()
        self.step.release_ddp()

    def _end_epoch(self, epoch: int, sums: dict[str, float], steps: int, wait_total: float, seconds: float) -> None:
        self.step.sync_buffers()  # identical BatchNorm statistics on every rank before validation/saving
        extra = dict(self.task.on_epoch_end(epoch, self.global_step) or {})
        quality_data = self.task.quality_dataset()
        if quality_data is not None:
            extra.update(map_quality(self.task, quality_data))
        means = {k: v / steps for k, v in sums.items()} if steps else {}
        means = self.ctx.all_reduce_mean({k: v for k, v in means.items() if k != "lr"}) | ({"lr": means["lr"]} if "lr" in means else {})
        val = self._validate() if (epoch + 1) % self.val_every == 0 or epoch + 1 == self.epochs else None
        self.checkpoints.validated = self.checkpoints.validated or val is not None
        self.epoch = epoch + 1
        self.primary.set_epoch(self.epoch)
        record = {
            "epoch": epoch,
            "epochs_completed": self.epoch,
            "global_step": self.global_step,
            "steps": steps,
            "seconds": round(seconds, 3),
            "samples_per_s": round(steps * self.global_batch / max(seconds, 1e-9), 3),
            "data_wait_s_mean": round(wait_total / steps, 6) if steps else None,
            **self._peak_memory(),
            **{f"train_{k}": v for k, v in means.items()},
            **{f"task_{k}": v for k, v in extra.items()},
        }
        self.history.append(record)
        if self.ctx.is_main:
            self.logger.write("epoch", **record)
            if val is not None:
                self.logger.write("val", epoch=epoch, epochs_completed=self.epoch, global_step=self.global_step, **val)
            shown = f"epoch {self.epoch}/{self.epochs}: loss {means.get('loss', float('nan')):.4f}"
            if val is not None:
                shown += f", val {self.checkpoints.metric} {val.get(self.checkpoints.metric, float('nan')):.4f}"
            log.info(shown)
        self._save_last(epoch_done=True)
        if val is not None:
            value = val.get(self.checkpoints.metric)
            if value is None:
                raise AvslError(f"validation metric '{self.checkpoints.metric}' not computed; use one of {sorted(val)}")
            if self.task.may_be_best() and self.checkpoints.is_better(float(value)):
                payload = self._payload(epoch_done=True)
                if self.ctx.is_main:
                    self.checkpoints.update_best(payload, float(value), epoch=self.epoch, global_step=self.global_step)
                    self.logger.write("checkpoint", file="best.pt", epoch=self.epoch, global_step=self.global_step,
                                      metric=self.checkpoints.metric, value=float(value), split="validation")
                else:
                    self.checkpoints.best = {"value": float(value)}
                self.ctx.barrier()
