"""Object classes: procedural ones (shape + colour + texture + sound family) or cut-outs from a folder.

The first 12 procedural classes are hand-designed; classes 13..60 are variants of them (other hue,
shape and texture; transposed pitch and tempo), so `n_classes` up to `MAX_PROCEDURAL_CLASSES` works.
A user folder (`--objects DIR`) replaces them with RGBA cut-outs and recorded sounds:
`DIR/<class>/*.png` + `DIR/<class>/*.wav` (images and sounds of a class are paired at random), or
flat `DIR/<class>.png` + `DIR/<class>.wav`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avslkit.errors import AvslError
from avslkit.synth import sounds
from avslkit.synth.appearance import SHAPES, TEXTURES

GOLDEN_HUE_STEP = 0.3819660112501051  # golden angle: the first k hues are spread far apart


@dataclass(frozen=True)
class ObjectClass:
    """One class: how it looks and how it sounds."""

    name: str
    hue: float = 0.0
    shape: str = "disc"
    texture: str = "solid"
    texture_angle: float = 0.0
    family: str = "harmonic"
    params: dict[str, Any] = field(default_factory=dict)
    images: tuple[str, ...] = ()  # cut-out PNGs (folder classes only)
    sounds: tuple[str, ...] = ()  # WAV files (folder classes only)

    @property
    def is_procedural(self) -> bool:
        return not self.images


# (name, shape, texture, sound family, parameters)
_BASE_CLASSES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("organ", "disc", "solid", "harmonic", {"f0": 220.0, "n_harmonics": 10, "rolloff": 1.2, "vibrato_depth": 0.004, "vibrato_rate": 5.0}),
    ("siren", "triangle", "stripes", "fm_tone", {"carrier": 950.0, "deviation": 0.3, "mod_rate": 0.6, "second": 0.3}),
    ("rain", "square", "dots", "band_noise", {"centre": 3200.0, "octaves": 2.0}),
    ("drum", "hexagon", "rings", "pulses", {"rate": 2.5, "carrier": 80.0, "decay": 0.12, "pitch_drop": 0.8, "pattern": [1.0, 0.6, 1.0, 0.0]}),
    ("bell", "star", "gradient", "bell", {"f0": 620.0, "period": 1.3, "decay": 0.9}),
    ("bird", "diamond", "waves", "chirp", {"f_start": 2400.0, "f_end": 4200.0, "sweep": 0.12, "period": 0.35}),
    ("engine", "capsule", "checker", "harmonic", {"f0": 55.0, "n_harmonics": 20, "rolloff": 0.7, "am_rate": 14.0, "am_depth": 0.6}),
    ("whistle", "ring", "solid", "fm_tone", {"carrier": 1700.0, "deviation": 0.02, "mod_rate": 6.0}),
    ("bee", "cross", "stripes", "harmonic", {"f0": 170.0, "n_harmonics": 15, "rolloff": 0.9, "odd_only": True, "am_rate": 25.0, "am_depth": 0.3}),
    ("clock", "crescent", "dots", "pulses", {"rate": 4.0, "carrier": 0.0, "decay": 0.02, "click_centre": 5000.0, "pattern": [1.0, 0.5]}),
    ("wind", "heart", "gradient", "band_noise", {"centre": 450.0, "octaves": 1.5, "am_rate": 0.25, "am_depth": 0.7}),
    ("horn", "pentagon", "checker", "am_tone", {"carrier": 330.0, "mod_rate": 3.0, "depth": 0.8}),
]
_VARIANTS_PER_BASE = 5
MAX_PROCEDURAL_CLASSES = len(_BASE_CLASSES) * _VARIANTS_PER_BASE


def _procedural_class(index: int, sample_rate: int) -> ObjectClass:
    base_index, variant = index % len(_BASE_CLASSES), index // len(_BASE_CLASSES)
    name, shape, texture, family, params = _BASE_CLASSES[base_index]
    shapes, textures = list(SHAPES), list(TEXTURES)
    if variant:
        # Alternate up/down by half an octave per step; tempo follows pitch loosely.
        steps = (variant + 1) // 2 * (1 if variant % 2 else -1)
        pitch = 2.0 ** (0.5 * steps)
        params = sounds.transpose(params, pitch, pitch**0.5, sample_rate)
        shape = shapes[(shapes.index(shape) + 5 * variant) % len(shapes)]
        texture = textures[(textures.index(texture) + variant) % len(textures)]
        name = f"{name}{variant + 1}"
    else:
        params = sounds.transpose(params, 1.0, 1.0, sample_rate)
    return ObjectClass(
        name=name,
        hue=(index * GOLDEN_HUE_STEP) % 1.0,
        shape=shape,
        texture=texture,
        texture_angle=float((index * 0.7) % np.pi),
        family=family,
        params=params,
    )


def procedural_classes(n: int, sample_rate: int = 16000) -> list[ObjectClass]:
    """The first `n` procedural classes (stable: class i is the same for every n > i)."""
    if not 1 <= n <= MAX_PROCEDURAL_CLASSES:
        raise AvslError(f"--classes must be between 1 and {MAX_PROCEDURAL_CLASSES} for procedural objects (got {n})")
    return [_procedural_class(i, sample_rate) for i in range(n)]


def class_names(n: int) -> list[str]:
    """Names of the first `n` procedural classes, e.g. class_names(3) == ['organ', 'siren', 'rain']."""
    return [c.name for c in procedural_classes(n)]


# ---------------------------------------------------------------------------------------------
# Folder of cut-outs


def read_wav_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV as mono float32 in [-1, 1]; AvslError naming the file when it cannot be read."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(str(path))
    except Exception as exc:  # scipy raises ValueError/OSError for non-WAV content
        raise AvslError(f"{path}: not a readable WAV file ({exc}); export it as PCM WAV") from exc
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0 or not np.any(data):
        raise AvslError(f"{path}: the WAV file is empty or silent; give each class an audible sound")
    return data, int(rate)


def read_rgba(path: str | Path) -> np.ndarray:
    """Read a cut-out as RGBA uint8; AvslError naming the file when it is unreadable or fully transparent."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgba = np.asarray(image.convert("RGBA"))
    except Exception as exc:
        raise AvslError(f"{path}: not a readable image ({exc}); use an RGBA PNG cut-out") from exc
    if not (rgba[..., 3] >= 128).any():
        raise AvslError(f"{path}: the image is fully transparent; the object must have opaque pixels")
    return rgba


def folder_classes(objects_dir: str | Path) -> list[ObjectClass]:
    """Classes from a folder of cut-outs and sounds (see module docstring); validates every file."""
    root = Path(objects_dir)
    if not root.is_dir():
        raise AvslError(f"{root}: --objects folder not found; point it at DIR/<class>/*.png + *.wav or DIR/<class>.png + <class>.wav")
    classes: dict[str, tuple[list[Path], list[Path]]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(sub.glob("*.png"))
        wavs = sorted(sub.glob("*.wav"))
        if not images and not wavs:
            continue
        if not images:
            raise AvslError(f"{wavs[0]}: class folder {sub.name!r} has sounds but no .png cut-out; add one")
        if not wavs:
            raise AvslError(f"{images[0]}: class folder {sub.name!r} has cut-outs but no .wav sound; add one")
        classes[sub.name] = (images, wavs)
    flat_images = {p.stem: p for p in root.glob("*.png")}
    flat_wavs = {p.stem: p for p in root.glob("*.wav")}
    for stem in sorted(set(flat_images) | set(flat_wavs)):
        if stem not in flat_wavs:
            raise AvslError(f"{flat_images[stem]}: no matching sound {stem}.wav beside it; add it or remove the image")
        if stem not in flat_images:
            raise AvslError(f"{flat_wavs[stem]}: no matching cut-out {stem}.png beside it; add it or remove the sound")
        if stem in classes:
            raise AvslError(f"{flat_images[stem]}: class {stem!r} is defined both as a folder and as flat files; keep one")
        classes[stem] = ([flat_images[stem]], [flat_wavs[stem]])
    if not classes:
        raise AvslError(f"{root}: no object classes found; expected DIR/<class>/*.png + *.wav or DIR/<class>.png + <class>.wav")
    out = []
    for name in sorted(classes):
        images, wavs = classes[name]
        for path in images:
            read_rgba(path)
        for path in wavs:
            read_wav_mono(path)
        out.append(ObjectClass(name=name, images=tuple(str(p) for p in images), sounds=tuple(str(p) for p in wavs)))
    return out
