"""Model registry (timm-like): builders are registered by name in one of three namespaces.

Names are "<namespace>.<name>":
- ``visual.*``  image backbones returning a B×C×h×w map (attribute ``out_channels``),
- ``audio.*``   audio backbones returning a B×D vector (attribute ``out_dim``),
- ``method.*``  full method models (EZ-VSL, SLAVC, ...).

``build_model`` also accepts a bare name ("ezvsl", "vggish") when it is unique across namespaces.
Registration happens when the defining module is imported; ``build_model``/``list_models`` import
the built-in model modules first, so callers never need to.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

from torch import nn

from avslkit.errors import AvslError

NAMESPACES = ("visual", "audio", "method")

# Modules whose import registers the built-in models (kept here so nothing else needs to know).
_BUILTIN_MODULES = (
    "avslkit.models.backbones",
    "avslkit.models.vggish",
    "avslkit.models.soundnet",
    "avslkit.models.ezvsl",
    "avslkit.models.slavc",
)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_loaded = False

F = TypeVar("F", bound=Callable[..., nn.Module])


def _split(full_name: str) -> tuple[str, str]:
    namespace, sep, name = full_name.partition(".")
    if not sep or namespace not in NAMESPACES or not name:
        raise ValueError(f"model names are '<namespace>.<name>' with namespace in {NAMESPACES}: got {full_name!r}")
    return namespace, name


def register_model(full_name: str) -> Callable[[F], F]:
    """Decorator registering a builder (a class or function returning an nn.Module) under `full_name`."""
    _split(full_name)

    def decorator(builder: F) -> F:
        existing = _REGISTRY.get(full_name)
        if existing is not None and existing is not builder:
            raise ValueError(f"model {full_name!r} is already registered by {existing!r}")
        _REGISTRY[full_name] = builder
        return builder

    return decorator


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def list_models(namespace: str | None = None) -> list[str]:
    """Registered full names, sorted; only those of `namespace` when given."""
    _ensure_builtins()
    if namespace is not None and namespace not in NAMESPACES:
        raise AvslError(f"unknown model namespace {namespace!r}; use one of {', '.join(NAMESPACES)}")
    return sorted(n for n in _REGISTRY if namespace is None or n.startswith(namespace + "."))


def resolve_name(name: str, namespace: str | None = None) -> str:
    """Full registered name for `name` (full or bare), or an AvslError listing the known ones."""
    _ensure_builtins()
    if namespace is not None and "." not in name:
        name = f"{namespace}.{name}"
    if name in _REGISTRY and (namespace is None or name.startswith(namespace + ".")):
        return name
    if "." not in name:
        matches = [n for n in _REGISTRY if n.split(".", 1)[1] == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AvslError(f"model name {name!r} is ambiguous: use one of {', '.join(sorted(matches))}")
    known = ", ".join(list_models(namespace))
    raise AvslError(f"unknown model {name!r}; known models: {known} (fix the model name in your config)")


def build_model(name: str, namespace: str | None = None, **cfg: Any) -> nn.Module:
    """Build a registered model with keyword configuration `cfg`."""
    full_name = resolve_name(name, namespace)
    try:
        return _REGISTRY[full_name](**cfg)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc) or "positional argument" in str(exc):
            raise AvslError(f"model {full_name!r}: bad option ({exc}); check the model section of your config") from exc
        raise


def build_visual_backbone(name: str, **cfg: Any) -> nn.Module:
    """A visual backbone by bare or full name (B×3×H×W → B×C×h×w)."""
    return build_model(name, namespace="visual", **cfg)


def build_audio_backbone(name: str, **cfg: Any) -> nn.Module:
    """An audio backbone by bare or full name (input → B×out_dim)."""
    return build_model(name, namespace="audio", **cfg)
