"""Typed configuration: one frozen dataclass per config section, with the type and range of every key.

Defaults live in ONE place, the packaged YAML files (`avslkit/configs/*.yaml`, the documented
defaults); the dataclasses here declare what each key is and what it may hold, and
tests/test_config_types.py checks that every key of every packaged YAML is declared here and every
field here has a packaged default. `load_config` resolves a plain nested dict (defaults → preset →
--config → flags → --set); the entry point turns it into a typed config once with
`resolve_config(cfg, "train" | "preprocess" | "eval" | "workspace")`, which checks every value against
its `Rule` and raises one `ConfigError` line naming the key, the bad value and what is allowed, e.g.::

    config key optim.lr=-1 is out of range: expected a number > 0 (set it with --set optim.lr=VALUE or in --config)

Code then reads `config.optim.lr`, never `cfg.get("optim", {}).get("lr", 1e-4)`: a mistyped key is an
AttributeError, not a silent fallback. Keys a method does not define (e.g. `ssl.delta` for ezvsl)
are None. Adding a key = its default (and comment) in the YAML + one field here.
"""

from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from avslkit.config import ConfigError, list_packaged_configs, load_config, merge, packaged_config


@dataclass(frozen=True)
class Rule:
    """Type and range of one value: `kind` int | float | bool | str | path | list | choice; bounds inclusive unless `open_*`."""

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
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "path": "a path",
                "list": "a list"}[self.kind]
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
        if self.kind == "path":
            return None if isinstance(value, (str, os.PathLike)) else "has the wrong type"
        if self.kind == "list":
            return None if isinstance(value, (list, tuple)) else "has the wrong type"
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


def Str(nullable: bool = False) -> Rule:  # noqa: N802 - a name a registry checks (its own error lists the known ones)
    return Rule("str", nullable=nullable)


def PathLike(nullable: bool = True) -> Rule:  # noqa: N802 - a file or folder (null: not given)
    return Rule("path", nullable=nullable)


def List(nullable: bool = False) -> Rule:  # noqa: N802
    return Rule("list", nullable=nullable)


def Choice(*values: Any, nullable: bool = False) -> Rule:  # noqa: N802
    return Rule("choice", choices=tuple(values), nullable=nullable)




# -- sections -----------------------------------------------------------------------------------------
_MISSING = object()


def key(rule: Rule | None = None) -> Any:
    """A config key checked by `rule` (None: free-form, any YAML value). Its default is in the packaged YAML."""
    return field(default=None, metadata={"rule": rule})


def sections(each: type[Section]) -> Any:
    """A mapping of name → `each` section (e.g. `units.a`, `units.b`)."""
    return field(default=None, metadata={"each": each})


def _shown(value: Any) -> str:
    return "null" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))


def _check(dotted: str, rule: Rule, value: Any) -> None:
    why = rule.problem(value)
    if why is not None:
        raise ConfigError(f"config key {dotted}={_shown(value)} {why}: expected {rule.describe()} "
                          f"(set it with --set {dotted}=VALUE or in --config)")


def _mapping(dotted: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {dotted}={_shown(value)} has the wrong type: expected a mapping of keys to values "
                          f"(set it with --set {dotted}.KEY=VALUE or in --config)")
    return value


@dataclass(frozen=True, kw_only=True)
class Section:
    """One config section. Fields are its keys; a key the resolved config lacks (a method that does not
    define it) is None. Built only by `from_mapping`, which checks every value against its rule."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], prefix: str = "") -> Any:
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            dotted = prefix + f.name
            value = mapping[f.name] if f.name in mapping else _MISSING
            if value is _MISSING:
                values[f.name] = None
                continue
            nested = _section_type(hints[f.name])
            each = f.metadata.get("each")
            if nested is not None:
                values[f.name] = None if value is None else nested.from_mapping(_mapping(dotted, value), dotted + ".")
            elif each is not None:
                values[f.name] = None if value is None else {
                    str(name): each.from_mapping(_mapping(f"{dotted}.{name}", sub), f"{dotted}.{name}.")
                    for name, sub in _mapping(dotted, value).items()}
            else:
                rule = f.metadata.get("rule")
                if rule is not None:
                    _check(dotted, rule, value)
                values[f.name] = value
        section = cls(**values)
        object.__setattr__(section, "_raw", mapping)
        return section

    @property
    def raw(self) -> Mapping[str, Any]:
        """The mapping this section was read from (what config.yaml saves; free-form options as given)."""
        return self._raw  # type: ignore[attr-defined]


def _section_type(hint: Any) -> type[Section] | None:
    """The Section class of an annotation like `OptimSection` or `SSLSection | None`, else None."""
    candidates = typing.get_args(hint) or (hint,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
    return None


# -- `avslkit train METHOD`: configs/train.yaml + configs/methods/<METHOD>.yaml ---------------------------
@dataclass(frozen=True, kw_only=True)
class DataSection(Section):
    train: str | None = key(PathLike())
    val: str | None = key(PathLike())
    val_annotations: str | None = key(PathLike())
    train_transform: str = key(Str())
    decoder: str = key(Choice("tensor", "pil"))
    float_rule: str = key(Choice("fused", "reference"))
    int16_scale: int = key(Choice(32768, 32767))
    exclude: str | None = key(PathLike())
    # semi-supervised methods
    annotations: str | None = key(PathLike())
    annotation_format: str = key(Choice("auto", "vggss", "flickr"))
    labeled: Any = key()  # 4k | 2k | 256 | 0.03 | all | ids.txt: parsed by avslkit.semisup.labeled
    val_labeled: int | str = key(Int(0, also=("auto",)))  # auto = min(500, 10% of the annotated clips)
    split_seed: int | None = key(Int(nullable=True))


@dataclass(frozen=True, kw_only=True)
class AudioSection(Section):
    feature: str = key(Str())
    sample_rate: int | None = key(Int(1, nullable=True))
    options: dict[str, Any] = key()


@dataclass(frozen=True, kw_only=True)
class OptimSection(Section):
    name: str = key(Str())  # a registered optimiser (avslkit.engine: register_optimizer)
    lr: float = key(Positive())
    weight_decay: float = key(Float(0))
    betas: list[float] = key(List())
    momentum: float = key(Float(0, 1))
    clip_norm: float = key(Float(0))
    schedule: str = key(Str())  # a registered LR schedule (avslkit.engine: register_schedule)
    warmup_epochs: float = key(Float(0))
    min_lr_factor: float = key(Fraction())


@dataclass(frozen=True, kw_only=True)
class ValidationSection(Section):
    metric: str = key(Str())
    mode: str = key(Choice("max", "min"))
    every_epochs: int = key(Int(1))
    batch_size: int = key(Int(1))
    workers: int = key(Int(0))
    binarize: str = key(Str())
    gt_mode: str = key(Choice("auto", "union", "consensus"))
    annotation_format: str = key(Choice("auto", "vggss", "flickr"))
    iou_threshold: float = key(Fraction())
    max_samples: int | None = key(Int(1, nullable=True))
    held_out: bool = key(Bool())


@dataclass(frozen=True, kw_only=True)
class CheckpointSection(Section):
    every_steps: int = key(Int(0))


@dataclass(frozen=True, kw_only=True)
class LogSection(Section):
    every_steps: int = key(Int(1))


@dataclass(frozen=True, kw_only=True)
class DistributedSection(Section):
    backend: str = key(Choice("auto", "nccl", "gloo"))
    gather_features: bool = key(Bool())
    find_unused_parameters: bool = key(Bool())
    sync_buffers: str = key(Choice("mean", "broadcast", "none"))


@dataclass(frozen=True, kw_only=True)
class ModelSection(Section):
    name: str | None = key(Str(nullable=True))
    visual: str = key(Str())
    audio: str | None = key(Str(nullable=True))
    visual_weights: str | None = key(PathLike())
    audio_weights: str | None = key(PathLike())
    visual_cfg: dict[str, Any] | None = key()
    audio_cfg: dict[str, Any] | None = key()
    dim: int = key(Int(1))
    tau: float = key(Positive())
    audio_head: str = key(Str())
    init: str = key(Str())
    # SLAVC (and DMT with ssl.student=slavc)
    dropout_img: float = key(OpenFraction())
    dropout_aud: float = key(OpenFraction())
    momentum: float = key(Fraction())
    momentum_aud: float | None = key(Fraction(nullable=True))
    momentum_dropout: bool = key(Bool())
    use_momentum_eval: bool = key(Bool())


@dataclass(frozen=True, kw_only=True)
class UnitSection(Section):
    """One localiser of a semi-supervised method (`units.a`, `units.b`)."""

    audio: str | None = key(Str(nullable=True))
    audio_weights: str | None = key(PathLike())
    audio_cfg: dict[str, Any] | None = key()
    audio_feature: str | None = key(Str(nullable=True))
    audio_feature_options: dict[str, Any] = key()


@dataclass(frozen=True, kw_only=True)
class AugmentSection(Section):
    labeled: str = key(Str())
    num_ops: int = key(Int(0))
    magnitude: float = key(Float(0, 30))
    teacher: str = key(Str())  # dmt
    student: str = key(Str())  # dmt
    view_a: str = key(Str())  # xpl
    view_b: str = key(Str())  # xpl


@dataclass(frozen=True, kw_only=True)
class SSLSection(Section):
    """Semi-supervised options; each method reads its own (see its configs/methods/<METHOD>.yaml)."""

    supervised_loss: str = key(Str())
    resize: str = key(Str())
    map_norm: str | None = key(Str(nullable=True))
    log_val_quality: bool = key(Bool())
    val_max_samples: int | None = key(Int(1, nullable=True))
    warmup_epochs: int = key(Int(0))
    warmup_unit: str = key(Choice("unlabeled", "labeled"))
    # hard-pl, dmt
    delta: float = key(Fraction())
    pseudo_weight: float = key(Float(0))
    # naive-ssl
    contrastive: str = key(Str())
    # dmt
    tau: float = key(Fraction())
    filter: bool = key(Bool())
    pseudo_label: str = key(Str())
    pseudo_label_size: int | None = key(Int(1, nullable=True))
    ema: float = key(Fraction())
    use_ema: bool = key(Bool())
    single_teacher: bool = key(Bool())
    labels_in_stage2: bool = key(Bool())
    contrastive_weight: float = key(Float(0))
    attention_audio: str = key(Str())
    attention_temperature: float = key(Positive())
    student: str = key(Str())
    inference: str = key(Str())  # dmt: teachers | ...; xpl: both | a | b
    # xpl
    start_fraction: float = key(Fraction())
    end_fraction: float = key(Fraction())
    ramp_epochs: int = key(Int(0))
    ramp: str = key(Str())
    floor: float | None = key(Float(-1, 1, nullable=True))
    temperature: float = key(Positive())
    bank_alpha: float = key(Fraction())
    bank_dtype: str = key(Str())
    cross_loss: str = key(Str())
    cross_weight: float = key(Float(0))


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Section):
    """`avslkit train METHOD`: configs/train.yaml, then configs/methods/<METHOD>.yaml."""

    method: str | None = key(Str(nullable=True))
    preset: str | None = key(PathLike())
    seed: int = key(Int())
    device: str = key(Str())
    epochs: int = key(Int(1))
    max_steps: int = key(Int(0))
    batch_size: int = key(Int(1))
    workers: int = key(Int(0))
    image_size: int = key(Int(32))
    drop_last: bool = key(Bool())
    amp: str = key(Choice("none", "bf16", "fp16"))
    channels_last: bool = key(Bool())
    deterministic: bool = key(Bool())
    data: DataSection | None = None
    audio: AudioSection | None = None
    optim: OptimSection | None = None
    validation: ValidationSection | None = None
    checkpoint: CheckpointSection | None = None
    log: LogSection | None = None
    distributed: DistributedSection | None = None
    model: ModelSection | None = None
    units: dict[str, UnitSection] | None = sections(UnitSection)
    augment: AugmentSection | None = None
    ssl: SSLSection | None = None


# -- `avslkit preprocess`: configs/preprocess.yaml ------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PreprocessConfig(Section):
    preset: str | None = key(PathLike())
    sample_rate: int = key(Int(1000, 384000))
    audio_seconds: float = key(Positive())
    window_rule: str = key(Choice("round", "truncate", "seek_truncate"))
    short_audio: str = key(Choice("tile", "zeros"))
    allow_silent: bool = key(Bool())
    silence_floor: float = key(Float(0, 1))
    frame_time: float | str | None = key(Rule("float", 0, choices=("middle",), nullable=True))  # "middle" (or null) or seconds
    clamp_time: bool = key(Bool())
    frame_size: int = key(Int(0))
    resize_filter: str = key(Choice("bicubic", "bilinear", "area", "lanczos"))
    jpeg_quality: int = key(Int(1, 100))
    extensions: list[str] = key(List())
    decoder_threads: int = key(Int(0))
    chunk_size: int = key(Int(1))


# -- `avslkit eval`: configs/eval.yaml ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class InferenceSection(Section):
    """How a checkpoint's maps are computed; null keeps the checkpoint's own setting."""

    use_momentum_eval: bool | None = key(Choice(True, False, nullable=True))
    decoder: str | None = key(Choice("tensor", "pil", nullable=True))
    float_rule: str | None = key(Choice("fused", "reference", nullable=True))
    int16_scale: int | None = key(Choice(32768, 32767, nullable=True))
    spectrogram_backend: str | None = key(Choice("torch", "scipy", nullable=True))


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Section):
    preset: str | None = key(PathLike())
    preset_auto: bool = key(Bool())
    maps: str | None = key(PathLike())
    checkpoint: str | None = key(PathLike())
    baseline: str | None = key(Str(nullable=True))
    annotations: str | None = key(PathLike())
    ann_format: str = key(Choice("auto", "vggss", "flickr"))
    test_list: str | None = key(PathLike())
    test: str | None = key(PathLike())
    extended: bool = key(Bool())
    extended_csv: str | None = key(PathLike())
    classes: str | None = key(PathLike())
    skip_missing: bool = key(Bool())
    strict: bool = key(Bool())
    binarize: str = key(Str())
    gt: str = key(Choice("auto", "union", "consensus"))
    max_f1: str = key(Choice("published", "full"))
    iou_thresholds: list[float] = key(List())
    upsample: str = key(Choice("bicubic", "bilinear"))
    map_scale: str = key(Choice("raw", "tau_bounds"))
    tau: float = key(Positive())
    confidence_dtype: str = key(Choice("float64", "float32"))
    negative_type_seed: int = key(Int())
    ogl_weights: str | None = key(PathLike())
    device: str = key(Str())
    batch_size: int = key(Int(1))
    inference: InferenceSection | None = None
    chunk_size: int = key(Int(1))
    out: str | None = key(PathLike())
    save_maps: bool = key(Bool())
    save_maps_dtype: str = key(Choice("float32", "float16"))


# -- the workspace conventions: configs/workspace.yaml --------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class WorkspaceConfig(Section):
    file: str = key(Str())
    store_dir: str = key(Str())
    runs_dir: str = key(Str())
    eval_dir: str = key(Str())
    viz_dir: str = key(Str())
    split_files: dict[str, list[str]] = key()


#: command → its typed config (the packaged YAML of the same name holds the defaults).
SPECS: dict[str, type[Section]] = {"train": TrainConfig, "preprocess": PreprocessConfig, "eval": EvalConfig}
CONFIGS: dict[str, type[Section]] = {**SPECS, "workspace": WorkspaceConfig}


def resolve_config(cfg: Mapping[str, Any], command: str) -> Any:
    """The typed config of `command` ("train", "preprocess", "eval", "workspace") from a resolved dict;
    one `ConfigError` line naming the first key whose value breaks its rule."""
    return CONFIGS[command].from_mapping(_mapping("config", cfg))


def check_config(cfg: Mapping[str, Any], command: str) -> Mapping[str, Any]:
    """Raise ConfigError on the first value of `cfg` that breaks its rule; returns `cfg` (partial dicts allowed)."""
    resolve_config(cfg, command)
    return cfg


def packaged_section(section: type[Section], mapping: Mapping[str, Any] | Section | None, command: str = "train") -> Any:
    """Typed `section` (e.g. DataSection) of `mapping` (a config's section, possibly partial: e.g. the
    `data` of an old checkpoint), the missing keys taken from the packaged `configs/<command>.yaml`."""
    if isinstance(mapping, section):
        return mapping
    name = next(f.name for f in fields(CONFIGS[command]) if _section_type(typing.get_type_hints(CONFIGS[command])[f.name]) is section)
    defaults = packaged_config(command)[name]
    return section.from_mapping(merge(defaults, mapping or {}, strict=False), name + ".")


def train_config(cfg: Mapping[str, Any] | TrainConfig) -> TrainConfig:
    """The typed training config of `cfg`; a partial one (a test's, an older checkpoint's) gets its missing
    keys from the packaged train.yaml + methods/<method>.yaml, the one place defaults live."""
    if isinstance(cfg, TrainConfig):
        return cfg
    method = cfg["method"] if "method" in cfg else None
    names = ["train"] + ([f"methods/{method}"] if f"methods/{method}" in list_packaged_configs() else [])
    merged = merge(load_config(names), cfg, strict=False)
    return resolve_config(cfg if merged == cfg else merged, "train")  # a complete dict stays `raw` as given


def eval_config(cfg: Mapping[str, Any] | EvalConfig) -> EvalConfig:
    """The typed eval config of `cfg`, missing keys from the packaged eval.yaml."""
    if isinstance(cfg, EvalConfig):
        return cfg
    merged = merge(packaged_config("eval"), cfg, strict=False)
    return resolve_config(cfg if merged == cfg else merged, "eval")
