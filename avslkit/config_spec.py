"""Types and allowed ranges of config values, declared once per command and checked once per run.

`load_config` resolves a plain nested dict (defaults → preset → --config → flags → --set); the
command then calls `check_config(cfg, "train" | "preprocess" | "eval")`, which compares every key
declared here against its `Rule` and raises one `ConfigError` line naming the key, the bad value
and what is allowed, e.g.::

    config key optim.lr=-1 is out of range: expected a number > 0 (set it with --set optim.lr=VALUE or in --config)

Keys a method does not define (e.g. `ssl.delta` for ezvsl) are skipped; keys not declared here are
not checked. Adding a key = one line in `SPECS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from avslkit.config import ConfigError


@dataclass(frozen=True)
class Rule:
    """Type and range of one value: `kind` int | float | bool | str | choice; bounds inclusive unless `open_*`."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices) + (" or null" if self.nullable else "")
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.kind]
        bounds = []
        if self.low is not None and self.high is not None:
            left, right = ("(" if self.open_low else "["), (")" if self.open_high else "]")
            bounds.append(f"in {left}{_num(self.low)}, {_num(self.high)}{right}")
        elif self.low is not None:
            bounds.append(f"{'>' if self.open_low else '>='} {_num(self.low)}")
        elif self.high is not None:
            bounds.append(f"{'<' if self.open_high else '<='} {_num(self.high)}")
        words = "".join(f" or {c}" for c in self.choices)
        return " ".join([noun, *bounds]) + words + (" or null" if self.nullable else "")

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks this rule ("not a number", "out of range"), or None if it is fine."""
        if value is None:
            return None if self.nullable else "is missing"
        if self.kind == "choice":
            return None if value in self.choices else "is not allowed"
        if isinstance(value, str) and value in self.choices:  # a word a number rule also accepts (Int(also=...))
            return None
        if self.kind == "bool":
            return None if isinstance(value, bool) else "has the wrong type"
        if self.kind == "str":
            return None if isinstance(value, str) else "has the wrong type"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "is not a number" if self.kind == "float" else "is not an integer"
        if self.kind == "int" and not isinstance(value, int):
            return "is not an integer"
        if not math.isfinite(value):
            return "is not finite"
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return "is out of range"
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            return "is out of range"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def Int(low: float | None = None, high: float | None = None, nullable: bool = False, also: tuple[Any, ...] = ()) -> Rule:  # noqa: N802
    """An integer in range; `also` lists words accepted besides numbers (e.g. "auto")."""
    return Rule("int", low, high, nullable=nullable, choices=tuple(also))


def Float(low: float | None = None, high: float | None = None, *, open_low: bool = False, open_high: bool = False,
          nullable: bool = False) -> Rule:  # noqa: N802
    return Rule("float", low, high, open_low, open_high, nullable=nullable)


def Positive(nullable: bool = False) -> Rule:  # noqa: N802
    return Float(0, open_low=True, nullable=nullable)


def Fraction(nullable: bool = False) -> Rule:  # noqa: N802 - a value in [0, 1]
    return Float(0, 1, nullable=nullable)


def OpenFraction() -> Rule:  # noqa: N802 - a probability that must leave something: [0, 1)
    return Float(0, 1, open_high=True)


def Bool() -> Rule:  # noqa: N802
    return Rule("bool")


def Choice(*values: Any, nullable: bool = False) -> Rule:  # noqa: N802
    return Rule("choice", choices=tuple(values), nullable=nullable)


_TRAIN: dict[str, Rule] = {
    "seed": Int(),
    "epochs": Int(1),
    "max_steps": Int(0),
    "batch_size": Int(1),
    "workers": Int(0),
    "image_size": Int(32),
    "drop_last": Bool(),
    "amp": Choice("none", "bf16", "fp16"),
    "channels_last": Bool(),
    "deterministic": Bool(),
    "data.decoder": Choice("tensor", "pil"),
    "data.float_rule": Choice("fused", "reference"),
    "data.int16_scale": Choice(32768, 32767),
    "data.val_labeled": Int(0, also=("auto",)),  # auto = min(500, 10% of the annotated clips)
    "optim.name": Choice("adam", "adamw", "sgd"),
    "optim.lr": Positive(),
    "optim.weight_decay": Float(0),
    "optim.momentum": Float(0, 1),
    "optim.clip_norm": Float(0),
    "optim.schedule": Choice("constant", "cosine"),
    "optim.warmup_epochs": Float(0),
    "optim.min_lr_factor": Fraction(),
    "validation.metric": Rule("str"),
    "validation.mode": Choice("max", "min"),
    "validation.every_epochs": Int(1),
    "validation.batch_size": Int(1),
    "validation.workers": Int(0),
    "validation.gt_mode": Choice("auto", "union", "consensus"),
    "validation.annotation_format": Choice("auto", "vggss", "flickr"),
    "validation.iou_threshold": Fraction(),
    "validation.max_samples": Int(1, nullable=True),
    "validation.held_out": Bool(),
    "checkpoint.every_steps": Int(0),
    "log.every_steps": Int(1),
    "distributed.backend": Choice("auto", "nccl", "gloo"),
    "distributed.gather_features": Bool(),
    "distributed.sync_buffers": Choice("mean", "broadcast", "none"),
    "model.dim": Int(1),
    "model.tau": Positive(),
    "model.dropout_img": OpenFraction(),
    "model.dropout_aud": OpenFraction(),
    "model.momentum": Fraction(),
    "model.momentum_aud": Fraction(nullable=True),
    "augment.num_ops": Int(0),
    "augment.magnitude": Float(0, 30),
    "ssl.warmup_epochs": Int(0),
    "ssl.delta": Fraction(),
    "ssl.tau": Fraction(),
    "ssl.ema": Fraction(),
    "ssl.contrastive_weight": Float(0),
    "ssl.pseudo_weight": Float(0),
    "ssl.attention_temperature": Positive(),
    "ssl.val_max_samples": Int(1, nullable=True),
}

_PREPROCESS: dict[str, Rule] = {
    "sample_rate": Int(1000, 384000),
    "audio_seconds": Positive(),
    "short_audio": Choice("tile", "zeros"),
    "window_rule": Choice("round", "truncate", "seek_truncate"),
    "allow_silent": Bool(),
    "silence_floor": Float(0, 1),
    "clamp_time": Bool(),
    "frame_size": Int(0),
    "resize_filter": Choice("bicubic", "bilinear", "area", "lanczos"),
    "jpeg_quality": Int(1, 100),
    "decoder_threads": Int(0),
    "chunk_size": Int(1),
}

_EVAL: dict[str, Rule] = {
    "ann_format": Choice("auto", "vggss", "flickr"),
    "extended": Bool(),
    "skip_missing": Bool(),
    "strict": Bool(),
    "gt": Choice("auto", "union", "consensus"),
    "max_f1": Choice("published", "full"),
    "negative_type_seed": Int(),
    "batch_size": Int(1),
    "chunk_size": Int(1),
    "save_maps": Bool(),
    "preset_auto": Bool(),
    "upsample": Choice("bicubic", "bilinear"),
    "map_scale": Choice("raw", "tau_bounds"),
    "tau": Positive(),
    "confidence_dtype": Choice("float64", "float32"),
    "inference.use_momentum_eval": Choice(True, False, nullable=True),
    "inference.decoder": Choice("tensor", "pil", nullable=True),
    "inference.float_rule": Choice("fused", "reference", nullable=True),
    "inference.int16_scale": Choice(32768, 32767, nullable=True),
    "inference.spectrogram_backend": Choice("torch", "scipy", nullable=True),
    "save_maps_dtype": Choice("float32", "float16"),
}

#: command → {dotted key: rule}. The one place where the type and range of a config value is declared.
SPECS: dict[str, dict[str, Rule]] = {"train": _TRAIN, "preprocess": _PREPROCESS, "eval": _EVAL}

_MISSING = object()


def _lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_config(cfg: Mapping[str, Any], command: str) -> Mapping[str, Any]:
    """Raise ConfigError on the first value of `cfg` that breaks its rule in `SPECS[command]`; returns `cfg`."""
    for key, rule in SPECS[command].items():
        value = _lookup(cfg, key)
        if value is _MISSING:
            continue
        why = rule.problem(value)
        if why is not None:
            shown = "null" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            raise ConfigError(f"config key {key}={shown} {why}: expected {rule.describe()} "
                              f"(set it with --set {key}=VALUE or in --config)")
    return cfg
