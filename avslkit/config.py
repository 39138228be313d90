"""Layered configuration: packaged defaults → user YAML (`--config`) → `--set key.sub=value`.

Like DINOv2's config utilities: every run resolves one plain nested dict, rejects keys the defaults
do not define (naming the offending key), and saves the resolved result beside its outputs.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from avslkit.utils.io import atomic_write_text


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (PyYAML follows YAML 1.1, which needs `1.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML with the config loader (scientific notation without a dot is a float)."""
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A configuration key or value the user must fix."""


def packaged_config(name: str) -> dict[str, Any]:
    """Load a YAML file shipped inside `avslkit/configs/` (e.g. "preprocess", "methods/slavc")."""
    ref = resources.files("avslkit").joinpath("configs", f"{name}.yaml")
    if not ref.is_file():
        available = ", ".join(list_packaged_configs())
        raise ConfigError(f"no packaged config named '{name}' (available: {available})")
    return yaml_load(ref.read_text()) or {}


def list_packaged_configs() -> list[str]:
    """Names of every packaged config, e.g. ['methods/slavc', 'preprocess', ...]."""
    root = resources.files("avslkit").joinpath("configs")
    names: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                names.append(prefix + child.name[: -len(".yaml")])

    walk(root, "")
    return sorted(names)


def merge(base: Mapping[str, Any], override: Mapping[str, Any], *, strict: bool = True, _path: str = "") -> dict[str, Any]:
    """Recursively merge `override` into a copy of `base`; unknown keys raise when `strict`.

    Sections named `options` or `*_options` (e.g. `audio.options`, the audio feature's keyword
    arguments) are free-form: any key may be set in them.
    """
    out = copy.deepcopy(dict(base))
    section = _path.rstrip(".").rsplit(".", 1)[-1]
    free_form = section == "options" or section.endswith("_options")
    for key, value in override.items():
        dotted = f"{_path}{key}"
        if strict and not free_form and key not in out:
            known = ", ".join(sorted(map(str, out))) or "none"
            raise ConfigError(f"unknown config key '{dotted}' (known at this level: {known})")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value, strict=strict, _path=f"{dotted}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> dict[str, Any]:
    """Turn `a.b.c=value` into {'a': {'b': {'c': value}}}; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set expects key.sub=value, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key.sub=value, got '{item}'")
    try:
        value = yaml_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item}: cannot parse value ({exc})") from exc
    node: dict[str, Any] = {}
    cursor = node
    parts = key.split(".")
    for part in parts[:-1]:
        cursor[part] = {}
        cursor = cursor[part]
    cursor[parts[-1]] = value
    return node


def read_yaml_mapping(path: Path, expected: str) -> dict[str, Any]:
    """A user YAML file whose top level is a mapping; one-line errors name the file and what to pass."""
    if not path.is_file():
        raise ConfigError(f"file not found: {path} (pass {expected})")
    try:
        data = yaml_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return dict(data)


PRESET_SECTIONS = ("train", "methods", "eval", "preprocess", "synth")


def list_packaged_methods() -> list[str]:
    """Names of the methods with packaged defaults (`avslkit/configs/methods/*.yaml`), read without
    importing torch (the CLI's METHOD help text)."""
    return [n.split("/", 1)[1] for n in list_packaged_configs() if n.startswith("methods/")]


def list_presets() -> list[str]:
    """Names of the packaged presets (`avslkit/configs/presets/*.yaml`)."""
    return [n.split("/", 1)[1] for n in list_packaged_configs() if n.startswith("presets/")]


def read_preset(name: str | Path) -> dict[str, Any]:
    """A preset by packaged name (e.g. "cpu-small") or YAML path, checked for its known sections.

    A preset is one named bundle of settings for several commands: `train` (every method),
    `methods.<METHOD>` (one method only), `eval`, `preprocess` and `synth` (SynthOptions fields); `description` says what it is for.
    """
    path = Path(str(name))
    if path.suffix in (".yaml", ".yml") or path.is_file():
        preset = read_yaml_mapping(path, "a packaged preset name or an existing YAML file")
    else:
        if str(name) not in list_presets():
            raise ConfigError(f"unknown preset '{name}' (packaged presets: {', '.join(list_presets()) or 'none'}; or a YAML path)")
        preset = packaged_config(f"presets/{name}")
    if not isinstance(preset, Mapping):
        raise ConfigError(f"preset {name}: top level must be a mapping")
    unknown = sorted(set(preset) - set(PRESET_SECTIONS) - {"description"})
    if unknown:
        raise ConfigError(f"preset {name}: unknown section(s) {', '.join(unknown)} (known: {', '.join(PRESET_SECTIONS)}, description)")
    return dict(preset)


def preset_layer(name: str | Path, command: str, method: str | None = None) -> dict[str, Any]:
    """The settings preset `name` gives `command` ("train", "eval", "preprocess"), `method` included."""
    preset = read_preset(name)
    layer = copy.deepcopy(preset.get(command) or {})
    if command == "train" and method is not None:
        layer = merge(layer, (preset.get("methods") or {}).get(method) or {}, strict=False)
    return layer


def load_config(
    defaults: str | Iterable[str] | Mapping[str, Any],
    user_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
    preset: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve a config: packaged defaults (names or a dict), a preset layer, a user YAML, `--set` items.

    `preset` is the layer `preset_layer` returns (applied right after the defaults, strictly);
    `extra` holds values set by dedicated CLI flags (e.g. `--epochs`); it is applied last but before
    `--set`, so `--set` always wins.
    """
    if isinstance(defaults, Mapping):
        cfg = copy.deepcopy(dict(defaults))
    else:
        names = [defaults] if isinstance(defaults, str) else list(defaults)
        cfg = {}
        for name in names:
            cfg = merge(cfg, packaged_config(name), strict=False)
    if preset:
        try:
            cfg = merge(cfg, preset)
        except ConfigError as exc:
            raise ConfigError(f"preset: {exc}") from exc
    if user_file is not None:
        path = Path(user_file)
        user = read_yaml_mapping(path, "an existing YAML file to --config")
        try:
            cfg = merge(cfg, user)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    if extra:
        cfg = merge(cfg, {k: v for k, v in extra.items() if v is not None})
    for item in overrides:
        cfg = merge(cfg, parse_override(item))
    return cfg


def save_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))
