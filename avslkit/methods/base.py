"""The `Task` interface every training method implements, and the method registry.

A Task (as open_clip's / timm's task objects) owns everything method-specific: its models, the
momentum/EMA copies, losses, optimiser, grad scaler and LR schedule, and how one optimisation step
goes. The engine (`avslkit.engine.Trainer`) only feeds batches, logs, validates and checkpoints.

Contract:
- `training_step(batch) -> dict[str, float]`: forward, loss, backward, optimiser step and the
  method's momentum/EMA updates, in the method's order; returns the loss terms (and "lr").
- `localization_maps(images, audio) -> B×h×w`: *absolute* score maps (not min-max normalised) for
  arbitrary pairs (image i with audio i of the two batches), in eval mode, no gradient. `audio` is a
  B×L float waveform batch at the training store's sample rate (what `AVDataset` yields); the
  task turns it into its own input features on its device. `score_bounds` gives the maps' range.
- `trainable_modules()`: what DDP wraps. Momentum/EMA copies and frozen networks stay outside.
- `state_dict()/load_state_dict()`: models, momentum copies, optimiser, scaler, scheduler and
  `extra_state()` (per-sample memory banks, stage flags of later methods).
- Hooks for multi-stage methods: `train_datasets()` (one or several named datasets; the first
  defines the epoch, the others cycle), `on_epoch_start/on_epoch_end`, `extra_state`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from avslkit.engine.distributed import DistContext
from avslkit.errors import AvslError

T = TypeVar("T", bound=type)

METHODS: dict[str, type["Task"]] = {}

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: make a Task available as `avslkit train NAME`."""

    def decorator(cls: T) -> T:
        existing = METHODS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"method {name!r} already registered by {existing!r}")
        METHODS[name] = cls  # type: ignore[assignment]
        cls.method = name  # type: ignore[attr-defined]
        return cls

    return decorator


_BUILTIN_METHODS = ("avslkit.methods.ezvsl", "avslkit.methods.slavc")


def _ensure_builtins() -> None:
    import importlib

    for module in _BUILTIN_METHODS:
        importlib.import_module(module)


def list_methods() -> list[str]:
    _ensure_builtins()
    return sorted(METHODS)


def get_method(name: str) -> type["Task"]:
    _ensure_builtins()
    try:
        return METHODS[name]
    except KeyError:
        raise AvslError(f"unknown method '{name}'; available: {', '.join(sorted(METHODS))}") from None


def build_task(cfg: Mapping[str, Any], ctx: DistContext | None = None) -> "Task":
    """Instantiate the task named by `cfg['method']` on `ctx.device`."""
    name = cfg.get("method")
    if not name:
        raise AvslError("config has no 'method' key (use 'avslkit train METHOD' or set method: in --config)")
    return get_method(str(name))(cfg, ctx)


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int, min_factor: float = 0.0) -> float:
    """Multiplier of the base LR at `step`: 'constant' (the references) or 'cosine', after linear warm-up."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise AvslError(f"unknown optim.schedule '{schedule}' (use constant or cosine)")


class Task:
    """Base class of training methods; subclasses implement `build`, `compute_loss`, `localization_maps`."""

    method: ClassVar[str] = ""

    def __init__(self, cfg: Mapping[str, Any], ctx: DistContext | None = None):
        self.cfg = cfg
        self.ctx = ctx or DistContext()
        self.device = self.ctx.device
        amp = str(cfg.get("amp", "none") or "none").lower()
        if amp not in AMP_DTYPES:
            raise AvslError(f"unknown amp mode '{amp}' (use none, bf16 or fp16)")
        if amp == "fp16" and self.device.type != "cuda":
            raise AvslError("--amp fp16 needs a GPU (float16 autocast with loss scaling); on CPU use --amp bf16 or none")
        self.amp_dtype = AMP_DTYPES[amp]
        self.channels_last = bool(cfg.get("channels_last", False)) and self.device.type == "cuda"
        self.global_step = 0
        self._ddp: dict[str, nn.Module] = {}
        self.build()
        for module in self.models().values():
            module.to(self.device)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)
        self.optimizer = self.build_optimizer()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self._schedule = ("constant", 1, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self._lr_lambda(step))

    # -- to implement -------------------------------------------------------------------------
    def build(self) -> None:
        """Create the models (and momentum copies) as attributes."""
        raise NotImplementedError

    def models(self) -> dict[str, nn.Module]:
        """Every module whose weights belong in a checkpoint (trainable and momentum copies)."""
        raise NotImplementedError

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules the optimiser updates and DDP wraps (never momentum/EMA copies)."""
        raise NotImplementedError

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward pass (through `self.ddp(name)`) → total loss and named terms (detached)."""
        raise NotImplementedError

    def may_be_best(self) -> bool:
        """Whether the weights used for inference right now may become best.pt (validation still logs).

        False while they are not trained yet, e.g. DMT's teachers during the warm-up.
        """
        return True

    def held_out_validation_ids(self) -> list[str] | None:
        """Clips of the training store held out for validation (semi-supervised ``val.txt``), or None:
        without a separate validation store the engine validates on exactly these."""
        return None

    def after_optimizer_step(self) -> None:
        """Method updates after `optimizer.step()` (e.g. EMA teachers); momentum-before-target
        methods (SLAVC) do theirs inside `compute_loss`."""

    @torch.no_grad()
    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    score_bounds: tuple[float, float] | None = None  # range of the absolute maps, when known

    # -- data hooks ---------------------------------------------------------------------------
    def train_datasets(self) -> dict[str, Any]:
        """Named training datasets; the first defines an epoch, the others cycle alongside it."""
        from avslkit.data.annotations import read_id_list
        from avslkit.data.dataset import AVDataset, dataset_options
        from avslkit.data.store import Store

        data = self.cfg["data"]
        ids = None
        if data.get("exclude"):  # e.g. the test clips, when one store holds everything
            excluded = set(read_id_list(data["exclude"]))
            with Store(data["train"]) as store:
                ids = [cid for cid in store.ids if cid not in excluded]
            if not ids:
                raise AvslError(f"{data['exclude']}: data.exclude removes every clip of {data['train']}; "
                                "pass the ids to leave out, not the training ids")
        return {
            "train": AVDataset(
                data["train"],
                ids=ids,
                image_transform=data.get("train_transform", "train"),
                image_size=int(self.cfg.get("image_size", 224)),
                **dataset_options(data),
            )
        }

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Called before each epoch's first step (stage switches, curriculum updates)."""

    def on_epoch_end(self, epoch: int, trainer: Any) -> dict[str, float]:
        """Called after each epoch's last step; returned numbers go into the epoch log record."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Method state outside models/optimiser (memory banks, stage flags) for checkpoints."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of `extra_state`."""

    # -- shared machinery ---------------------------------------------------------------------
    def parameters_to_optimize(self) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for module in self.trainable_modules().values():
            params.extend(p for p in module.parameters() if p.requires_grad)
        return params

    def build_optimizer(self) -> torch.optim.Optimizer:
        """Adam / AdamW / SGD from `optim` (the references: Adam, lr 1e-4, no weight decay)."""
        o = self.cfg.get("optim", {})
        name = str(o.get("name", "adam")).lower()
        lr, wd = float(o.get("lr", 1e-4)), float(o.get("weight_decay", 0.0))
        params = self.parameters_to_optimize()
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=tuple(o.get("betas", (0.9, 0.999))))
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=tuple(o.get("betas", (0.9, 0.999))))
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=float(o.get("momentum", 0.9)))
        raise AvslError(f"unknown optim.name '{name}' (use adam, adamw or sgd)")

    def configure_schedule(self, total_steps: int, steps_per_epoch: int) -> None:
        """Tell the LR schedule how long the run is (called by the Trainer before training)."""
        o = self.cfg.get("optim", {})
        warmup = int(round(float(o.get("warmup_epochs", 0)) * steps_per_epoch))
        self._schedule = (str(o.get("schedule", "constant")), max(1, total_steps), warmup)
        lr_factor(self._schedule[0], 0, 1, 0)  # validate the name early
        # re-apply the factor for the current step (LambdaLR evaluated it with the placeholder)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self._lr_lambda(self.scheduler.last_epoch)

    def _lr_lambda(self, step: int) -> float:
        schedule, total, warmup = self._schedule
        return lr_factor(schedule, step, total, warmup, float(self.cfg.get("optim", {}).get("min_lr_factor", 0.0)))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def setup_ddp(self) -> None:
        """Wrap each trainable module in DDP (momentum/EMA copies stay plain)."""
        if not self.ctx.distributed:
            return
        find_unused = bool(self.cfg.get("distributed", {}).get("find_unused_parameters", False))
        for name, module in self.trainable_modules().items():
            if any(p.requires_grad for p in module.parameters()):
                ids = [self.device.index] if self.device.type == "cuda" else None
                self._ddp[name] = DDP(module, device_ids=ids, find_unused_parameters=find_unused)

    def release_ddp(self) -> None:
        """Drop the DDP wrappers (before the process group goes); `ddp()` then returns the plain modules."""
        self._ddp.clear()

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Make BatchNorm statistics (online and momentum) identical on every rank.

        DDP only broadcasts the wrapped modules' buffers at the start of each forward, and momentum
        copies see only their rank's data, so after an epoch the running statistics differ per rank.
        `distributed.sync_buffers`: "mean" (average float buffers, as timm's distribute_bn),
        "broadcast" (take rank 0's) or "none". Called by the Trainer at the end of each epoch.
        """
        if not self.ctx.distributed:
            return
        import torch.distributed as dist

        mode = str(self.cfg.get("distributed", {}).get("sync_buffers", "mean"))
        if mode == "none":
            return
        if mode not in ("mean", "broadcast"):
            raise AvslError(f"unknown distributed.sync_buffers '{mode}' (use mean, broadcast or none)")
        for module in self.models().values():
            for buf in module.buffers():
                if mode == "mean" and buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf /= self.ctx.world_size
                else:
                    dist.broadcast(buf, src=0)

    def ddp(self, name: str) -> nn.Module:
        """The module to run the training forward through: its DDP wrapper when distributed."""
        return self._ddp.get(name) or self.trainable_modules()[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train(self, mode: bool = True) -> "Task":
        for module in self.models().values():
            module.train(mode)
        return self

    def eval(self) -> "Task":
        return self.train(False)

    def to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Move a collated batch's tensors to the device (images in channels_last when enabled)."""
        out: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if key == "image" and self.channels_last:
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def training_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """One optimisation step: forward+loss (autocast), backward (scaled), clip, step, schedule."""
        self.train()
        batch = self.to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, terms = self.compute_loss(batch)
        if not torch.isfinite(loss):
            raise AvslError(
                f"loss became {loss.item()} at step {self.global_step}; lower --lr, or use --amp none / bf16 instead of fp16"
            )
        self.scaler.scale(loss).backward()
        clip = float(self.cfg.get("optim", {}).get("clip_norm", 0.0) or 0.0)
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.parameters_to_optimize(), clip)
        lr = self.lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.after_optimizer_step()
        self.global_step += 1
        out = {"loss": float(loss.detach())}
        out.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()})
        out["lr"] = lr
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "models": {name: module.state_dict() for name, module in self.models().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], weights_only: bool = False) -> None:
        """Restore a `state_dict()`; `weights_only` restores models only (inference, fine-tuning)."""
        if state.get("method") not in (None, self.method):
            raise AvslError(f"checkpoint is for method '{state.get('method')}', not '{self.method}'")
        models = self.models()
        saved = state["models"]
        missing = sorted(set(models) - set(saved))
        if missing:
            raise AvslError(f"checkpoint lacks the weights of {', '.join(missing)} for method '{self.method}'")
        for name, module in models.items():
            try:
                module.load_state_dict(saved[name])
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise AvslError(f"checkpoint weights of '{name}' do not fit this {self.method} model ({first}); was it trained with another config?") from exc
        if weights_only:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = int(state.get("global_step", 0))
        self.load_extra_state(state.get("extra", {}))
