"""Synthetic toy audio-visual benchmark: real mp4 clips of procedural (or user cut-out) objects, one of
which makes the sound, written in the VGG-SS annotation formats. Entry point: `generate()`.

The names below load their module on first use (PEP 562), so that importing `avslkit.synth.options`
(the CLI's defaults) does not pull in numpy and the renderer."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_WHERE = {
    "MAX_PROCEDURAL_CLASSES": "classes",
    "ObjectClass": "classes",
    "class_names": "classes",
    "folder_classes": "classes",
    "procedural_classes": "classes",
    "SynthOptions": "options",
    "SynthSummary": "generate",
    "generate": "generate",
    "plan_dataset": "generate",
    "resolve_classes": "generate",
    "ClipPlan": "scene",
    "render_audio": "scene",
    "render_frames": "scene",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'avslkit.synth' has no attribute {name!r}")
    return getattr(importlib.import_module(f"avslkit.synth.{_WHERE[name]}"), name)


class _Package(types.ModuleType):
    """The import system sets `avslkit.synth.generate` to the submodule when it is first imported; keep
    the function of that name there instead, as an eagerly importing package would."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
