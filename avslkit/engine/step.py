"""`OptimizationStep`: the one optimisation step of every method, owned by the engine.

The task computes a loss (`Task.compute_loss`); this object does everything around it, in this
order: batch to device (channels_last images when enabled), zero grads, forward + loss under
autocast, a finite-loss check, scaled backward (GradScaler for fp16), optional gradient clipping
(``optim.clip_norm``), optimiser step, scaler update, LR-schedule step, the task's
`after_optimizer_step` hook (EMA teachers). It also owns the optimiser, scaler and LR schedule
(built from the registries of `avslkit.engine.optim`), the DDP wrappers of the task's trainable
modules and the end-of-epoch buffer sync, and the step counter.

Its `state_dict()` is the checkpoint's ``task`` entry (same layout as before the engine owned
the step: method, models, optimizer, scaler, scheduler, global_step, extra).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from avslkit.config_spec import TrainConfig, train_config
from avslkit.engine.optim import build_optimizer, lr_factor
from avslkit.engine.precision import autocast
from avslkit.errors import AvslError


class OptimizationStep:
    """Optimiser, scaler, LR schedule, DDP wrappers and the step counter of one training run."""

    def __init__(self, task: Any, cfg: Mapping[str, Any] | TrainConfig):
        self.task = task
        self.config = train_config(cfg)
        self.optim = self.config.optim
        self.ctx = task.ctx
        self.device = task.device
        self.global_step = 0
        self.params = [p for m in task.trainable_modules().values() for p in m.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, self.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=task.amp_dtype is torch.float16)
        self._schedule = ("constant", 1, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self._lr_lambda(step))

    # -- LR schedule ------------------------------------------------------------------------------
    def configure_schedule(self, total_steps: int, steps_per_epoch: int) -> None:
        """Tell the LR schedule how long the run is (``optim.warmup_epochs`` is counted in epochs)."""
        warmup = int(round(float(self.optim.warmup_epochs) * steps_per_epoch))
        self._schedule = (str(self.optim.schedule), max(1, total_steps), warmup)
        lr_factor(self._schedule[0], 0, 1, 0)  # validate the name early
        # re-apply the factor for the current step (LambdaLR evaluated it with the placeholder)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self._lr_lambda(self.scheduler.last_epoch)

    def _lr_lambda(self, step: int) -> float:
        schedule, total, warmup = self._schedule
        return lr_factor(schedule, step, total, warmup, float(self.optim.min_lr_factor))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- distributed ------------------------------------------------------------------------------
    def setup_ddp(self) -> None:
        """Wrap each trainable module in DDP (momentum/EMA copies stay plain); the task's forward
        passes find the wrappers through `Task.ddp(name)`."""
        if not self.ctx.distributed:
            return
        find_unused = bool(self.config.distributed.find_unused_parameters)
        for name, module in self.task.trainable_modules().items():
            if any(p.requires_grad for p in module.parameters()):
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.task.wrapped[name] = DDP(module, device_ids=ids, find_unused_parameters=find_unused)

    def release_ddp(self) -> None:
        """Drop the DDP wrappers (before the process group goes); the task then runs its plain modules."""
        self.task.wrapped.clear()

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Make BatchNorm statistics (online and momentum) identical on every rank.

        DDP only broadcasts the wrapped modules' buffers at the start of each forward, and momentum
        copies see only their rank's data, so after an epoch the running statistics differ per rank.
        `distributed.sync_buffers`: "mean" (average float buffers, as timm's distribute_bn),
        "broadcast" (take rank 0's) or "none".
        """
        if not self.ctx.distributed:
            return
        import torch.distributed as dist

        mode = str(self.config.distributed.sync_buffers)
        if mode == "none":
            return
        if mode not in ("mean", "broadcast"):
            raise AvslError(f"unknown distributed.sync_buffers '{mode}' (use mean, broadcast or none)")
        for module in self.task.models().values():
            for buf in module.buffers():
                if mode == "mean" and buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf /= self.ctx.world_size
                else:
                    dist.broadcast(buf, src=0)

    # -- the step ---------------------------------------------------------------------------------
    def to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Move a collated batch's tensors to the device (images in channels_last when enabled)."""
        out: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if key == "image" and self.task.channels_last:
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def __call__(self, batch: Mapping[str, Any], epoch: int = 0) -> dict[str, float]:
        """One optimisation step on `batch` of epoch `epoch`; returns the loss terms and "lr"."""
        task = self.task
        task.before_step(epoch, self.global_step)
        task.train()
        batch = self.to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, task.amp_dtype):
            loss, terms = task.compute_loss(batch)
        if not torch.isfinite(loss):
            raise AvslError(
                f"loss became {loss.item()} at step {self.global_step}; lower --lr, or use --amp none / bf16 instead of fp16"
            )
        self.scaler.scale(loss).backward()
        clip = float(self.optim.clip_norm or 0.0)
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, clip)
        lr = self.lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        task.after_optimizer_step()
        self.global_step += 1
        out = {"loss": float(loss.detach())}
        out.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()})
        out["lr"] = lr
        return out

    # -- checkpoint -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``task`` entry: the task's weights and extra state plus the optimisation state."""
        weights = self.task.state_dict()
        return {
            "method": weights["method"],
            "models": weights["models"],
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "extra": weights["extra"],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of `state_dict` (weights, optimiser moments, scaler, schedule position, counter, extra)."""
        self.task.load_state_dict(state, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = int(state.get("global_step", 0))
        self.task.load_extra_state(state.get("extra", {}))
