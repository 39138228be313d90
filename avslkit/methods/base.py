"""The `Task` interface every training method implements, and the method registry.

A Task owns what is method-specific: its models (and momentum/EMA copies), its loss and its maps.
The engine owns the rest (`avslkit.engine.step.OptimizationStep`: optimiser and LR schedule from
registries, AMP autocast and GradScaler, DDP wrapping, buffer sync, clipping, the step itself;
`avslkit.engine.Trainer`: data order, logs, validation, checkpoints).

Contract:
- `build()`: create the models as attributes; `models()`: every module whose weights are saved;
  `trainable_modules()`: what the optimiser updates and DDP wraps (never momentum/EMA copies).
- `compute_loss(batch) -> (loss, terms)`: the forward pass (through `self.ddp(name)`, which is the
  engine's DDP wrapper when distributed), run by the engine under autocast.
- `localization_maps(images, audio) -> B×h×w`: *absolute* score maps (not min-max normalised) for
  arbitrary pairs (image i with audio i of the two batches), in eval mode, no gradient. `audio` is a
  B×L float waveform batch at the training store's sample rate (what `AVDataset` yields); the
  task turns it into its own input features on its device. `score_bounds` gives the maps' range.
- `state_dict()/load_state_dict()`: models and `extra_state()` (memory banks, stage flags).
- Hooks receive plain values, never the engine: `train_datasets()` (one or several named datasets;
  the first defines the epoch, the others cycle), `on_epoch_start(epoch, ...)`, `before_step(epoch,
  step)`, `after_optimizer_step()`, `on_epoch_end(epoch, step)`, `quality_dataset()`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import torch
from torch import nn

from avslkit.config_spec import TrainConfig, train_config
from avslkit.engine.distributed import DistContext
from avslkit.engine.optim import lr_factor  # noqa: F401  (re-exported: its home moved to the engine)
from avslkit.engine.precision import amp_dtype, autocast, uses_channels_last
from avslkit.errors import AvslError

T = TypeVar("T", bound=type)

METHODS: dict[str, type["Task"]] = {}


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


def _ensure_builtins() -> None:
    """Import every module of `avslkit.methods`, so that a new method file registers itself (no list to edit)."""
    import importlib
    import pkgutil

    import avslkit.methods as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def list_methods() -> list[str]:
    _ensure_builtins()
    return sorted(METHODS)


def get_method(name: str) -> type["Task"]:
    _ensure_builtins()
    try:
        return METHODS[name]
    except KeyError:
        raise AvslError(f"unknown method '{name}'; available: {', '.join(sorted(METHODS))}") from None


def build_task(cfg: Mapping[str, Any] | TrainConfig, ctx: DistContext | None = None) -> "Task":
    """Instantiate the task named by `cfg['method']` on `ctx.device`."""
    config = train_config(cfg)
    if not config.method:
        raise AvslError("config has no 'method' key (use 'avslkit train METHOD' or set method: in --config)")
    return get_method(str(config.method))(config, ctx)


class Task:
    """Base class of training methods; subclasses implement `build`, `models`, `trainable_modules`,
    `compute_loss`, `localization_maps` (and the hooks they need)."""

    method: ClassVar[str] = ""
    score_bounds: tuple[float, float] | None = None  # range of the absolute maps, when known

    def __init__(self, cfg: Mapping[str, Any] | TrainConfig, ctx: DistContext | None = None):
        self.config = train_config(cfg)  # typed (avslkit.config_spec); the engine passes the run's, resolved once
        self.cfg = self.config.raw  # the same values as a plain dict (checkpoints, models' keyword options)
        self.ctx = ctx or DistContext()
        self.device = self.ctx.device
        self.amp_dtype = amp_dtype(self.config, self.device)  # also the inference autocast of `localization_maps`
        self.channels_last = uses_channels_last(self.config, self.device)
        self.global_step = 0  # the engine's step counter, as last given to a hook
        self.wrapped: dict[str, nn.Module] = {}  # DDP wrappers of trainable modules, set by the engine
        self.build()
        for module in self.models().values():
            module.to(self.device)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)

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

    @torch.no_grad()
    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- hooks (plain values in, never the engine) ----------------------------------------------
    def may_be_best(self) -> bool:
        """Whether the weights used for inference right now may become best.pt (validation still logs).

        False while they are not trained yet, e.g. DMT's teachers during the warm-up.
        """
        return True

    def held_out_validation_ids(self) -> list[str] | None:
        """Clips of the training store held out for validation (semi-supervised ``val.txt``), or None:
        without a separate validation store the engine validates on exactly these."""
        return None

    def train_datasets(self) -> dict[str, Any]:
        """Named training datasets; the first defines an epoch, the others cycle alongside it."""
        from avslkit.data.streams import training_dataset

        return {"train": training_dataset(self.cfg)}

    def on_epoch_start(self, epoch: int, *, step: int, steps_per_epoch: int, total_steps: int,
                       run_dir: Path | None = None) -> None:
        """Before each epoch's first step (stage switches, curriculum updates). `step`: steps done so
        far; `run_dir`: where the run writes (None outside a run)."""
        self.global_step = step

    def before_step(self, epoch: int, step: int) -> None:
        """Before each optimisation step (`step`: its 0-based global index; a stage may switch mid-epoch)."""
        self.global_step = step

    def after_optimizer_step(self) -> None:
        """Method updates after `optimizer.step()` (e.g. EMA teachers); momentum-before-target
        methods (SLAVC) do theirs inside `compute_loss`."""

    def on_epoch_end(self, epoch: int, step: int) -> dict[str, float]:
        """After each epoch's last step; returned numbers go into the epoch log record (``task_*``)."""
        return {}

    def quality_dataset(self) -> Any:
        """Annotated clips (with ``gt_map``) on which the engine logs per-epoch map quality, or None."""
        return None

    def pseudo_labels_for_quality(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(binary pseudo-labels B×h×w, kept B) the method would make for these clips, or None
        (the quality log's ``val_pl_iou`` / ``val_pl_kept``)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Method state outside models/optimiser (memory banks, stage flags) for checkpoints."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of `extra_state`."""

    # -- shared helpers -----------------------------------------------------------------------
    def ddp(self, name: str) -> nn.Module:
        """The module to run the training forward through: its DDP wrapper when distributed."""
        return self.wrapped.get(name) or self.trainable_modules()[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's autocast (``amp``), for `localization_maps`; training steps get it from the engine."""
        return autocast(self.device, self.amp_dtype)

    def train(self, mode: bool = True) -> "Task":
        for module in self.models().values():
            module.train(mode)
        return self

    def eval(self) -> "Task":
        return self.train(False)

    def state_dict(self) -> dict[str, Any]:
        """Weights and extra state (the engine adds the optimisation state to a training checkpoint)."""
        return {
            "method": self.method,
            "models": {name: module.state_dict() for name, module in self.models().items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], weights_only: bool = False) -> None:
        """Restore the weights of a checkpoint's ``task`` entry (and, unless `weights_only`, the extra state)."""
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
        if not weights_only:
            self.load_extra_state(state.get("extra", {}))
