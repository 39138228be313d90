"""The localiser unit of the semi-supervised methods (the task that trains it: ``methods.semisupervised``).

**Localiser unit** (DMT App. B.2, XPL Sec. 3): a visual ResNet-18 → B×512×h×w map, an audio
backbone (``vggish`` | ``soundnet8`` | ``resnet18_spec``, each with its own audio input, see
``AUDIO_INPUTS``) and the audio head g(·) (default the two-layer MLP), both projected and
L2-normalised; the map is ⟨v(p), a⟩/τ (the EZ-VSL model, ``avslkit.models.ezvsl.EZVSL``, is
exactly this network, so the unit reuses it). The maps are read as per-pixel logits by the
supervised loss ``pixel_bce`` (P = sigmoid(map)) or as a spatial distribution by ``spatial_ce``.
Units are configured by ``model.*`` (shared) merged with ``units.<name>.*`` (per unit).

Efficiency: each audio input type is computed once per step for the whole (labelled + unlabelled)
batch and shared by every unit, teacher and student that uses it (``FeatureBank``).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from avslkit.config_spec import TrainConfig, train_config
from avslkit.errors import AvslError

__all__ = [
    "AUDIO_INPUTS",
    "FeatureBank",
    "UnitForward",
    "UNIT_MODELS",
    "build_localizer",
    "unit_config",
]

# audio backbone → (audio feature of avslkit.data.audio, its options); others default to the spectrogram
AUDIO_INPUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "vggish": ("vggish_logmel", {}),
    "soundnet8": ("waveform", {"target_rate": 22050}),  # SoundNet was trained on 22.05 kHz audio
    "resnet18_spec": ("spectrogram", {}),
}
_UNIT_KEYS = ("visual", "audio", "visual_weights", "audio_weights", "visual_cfg", "audio_cfg", "dim", "tau", "audio_head", "init")
# registered model of a unit → the unit-config keys its constructor takes (``method.slavc``: DMT's SLAVC student)
UNIT_MODELS: dict[str, tuple[str, ...]] = {
    "method.ezvsl": _UNIT_KEYS,
    "method.slavc": _UNIT_KEYS + ("dropout_img", "dropout_aud", "momentum", "momentum_aud", "momentum_dropout"),
}


def unit_config(cfg: Mapping[str, Any] | TrainConfig, unit: str) -> dict[str, Any]:
    """``model.*`` merged with ``units.<unit>.*`` (keys of the unit win when not null), as the model's keyword options."""
    config = train_config(cfg)
    merged = {k: v for k, v in dict(config.model.raw).items() if k != "name"}
    units = config.units or {}
    for k, v in (dict(units[unit].raw) if unit in units else {}).items():
        if v is not None:
            merged[k] = v
    if not merged.get("audio"):
        raise AvslError(f"no audio backbone for unit '{unit}': set units.{unit}.audio (vggish, soundnet8, resnet18_spec)")
    return merged


def build_localizer(unit_cfg: Mapping[str, Any], model_name: str = "method.ezvsl") -> tuple[nn.Module, tuple[str, dict[str, Any]]]:
    """(model with encode_image/encode_audio/pair_map, (audio feature name, options)) of one unit.

    `model_name` (a key of ``UNIT_MODELS``): ``method.ezvsl`` is the localiser; ``method.slavc`` is the
    SLAVC network (two heads per modality, momentum encoders), whose features are (head 1, head 2) pairs.
    """
    from avslkit.models.registry import build_model

    if model_name not in UNIT_MODELS:
        raise AvslError(f"unknown unit model {model_name!r}; use one of {', '.join(UNIT_MODELS)}")
    kwargs = {k: unit_cfg[k] for k in UNIT_MODELS[model_name] if k in unit_cfg}
    model = build_model(model_name, **kwargs)
    audio = str(unit_cfg["audio"]).split(".")[-1]
    default_name, default_opts = AUDIO_INPUTS.get(audio, ("spectrogram", {}))
    name = unit_cfg.get("audio_feature") or default_name
    opts = dict(default_opts if name == default_name else {})
    opts.update(dict(unit_cfg.get("audio_feature_options") or {}))
    return model, (str(name), opts)


class FeatureBank:
    """Audio feature modules by (name, options); ``compute`` evaluates each once per waveform batch."""

    def __init__(self, sample_rate: int, device: torch.device):
        self.sample_rate, self.device = int(sample_rate), device
        self.modules: dict[str, nn.Module] = {}

    @staticmethod
    def key(spec: tuple[str, Mapping[str, Any]]) -> str:
        name, opts = spec
        return name + repr(sorted(opts.items()))

    def add(self, spec: tuple[str, Mapping[str, Any]]) -> str:
        from avslkit.data.audio import build_audio_feature

        k = self.key(spec)
        if k not in self.modules:
            self.modules[k] = build_audio_feature(spec[0], self.sample_rate, **dict(spec[1])).to(self.device)
        return k

    @torch.no_grad()
    def compute(self, audio: torch.Tensor, keys: set[str] | list[str]) -> dict[str, torch.Tensor]:
        audio = audio.to(self.device, non_blocking=True).float()
        return {k: self.modules[k](audio) for k in dict.fromkeys(keys)}


class UnitForward(nn.Module):
    """A localiser unit as one module whose ``forward(images, audio_input) -> (v, a)`` DDP can wrap
    (DDP only runs ``forward``; the unit itself is the registered child, so parameters are shared)."""

    def __init__(self, unit: nn.Module):
        super().__init__()
        self.unit = unit

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.unit.encode_image(images), self.unit.encode_audio(audio)
