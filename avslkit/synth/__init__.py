"""Synthetic toy audio-visual benchmark: real mp4 clips of procedural (or user cut-out) objects, one of
which makes the sound, written in the VGG-SS annotation formats. Entry point: `generate()`."""

from avslkit.synth.classes import MAX_PROCEDURAL_CLASSES, ObjectClass, class_names, folder_classes, procedural_classes
from avslkit.synth.generate import SynthOptions, SynthSummary, generate, plan_dataset, resolve_classes
from avslkit.synth.scene import ClipPlan, render_audio, render_frames

__all__ = [
    "MAX_PROCEDURAL_CLASSES",
    "ClipPlan",
    "ObjectClass",
    "SynthOptions",
    "SynthSummary",
    "class_names",
    "folder_classes",
    "generate",
    "plan_dataset",
    "procedural_classes",
    "render_audio",
    "render_frames",
    "resolve_classes",
]
