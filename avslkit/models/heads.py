"""Projection heads into the joint audio-visual space, and the reference initialisation.

- Visual projection: a 1×1 convolution C→dim on the B×C×h×w map (EZ-VSL/SLAVC ``img_proj``).
- Audio projection, ``audio_head="linear"``: one Linear D→dim (EZ-VSL/SLAVC ``aud_proj``).
- Audio projection, ``audio_head="mlp"``: g(·) = Linear(D, 512)-ReLU-Linear(512, dim), the two-layer
  head DMT (App. B.2) puts on pretrained VGGish/SoundNet features.
"""

from __future__ import annotations

from typing import Callable, Iterable

from torch import nn

from avslkit.errors import AvslError


class AudioMLPHead(nn.Sequential):
    """g(·): Linear(d_in, hidden)-ReLU-Linear(hidden, d_out) (DMT App. B.2; hidden = d_out = 512)."""

    def __init__(self, d_in: int, d_out: int = 512, hidden: int = 512) -> None:
        super().__init__(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


def _linear_head(d_in: int, d_out: int) -> nn.Module:
    return nn.Linear(d_in, d_out)


def _mlp_head(d_in: int, d_out: int) -> nn.Module:
    return AudioMLPHead(d_in, d_out)


AUDIO_HEADS: dict[str, Callable[[int, int], nn.Module]] = {"linear": _linear_head, "mlp": _mlp_head}


def build_audio_head(kind: str, d_in: int, d_out: int) -> nn.Module:
    """Audio projection head by name ("linear" | "mlp")."""
    try:
        return AUDIO_HEADS[kind](d_in, d_out)
    except KeyError:
        raise AvslError(f"unknown audio_head {kind!r}; use one of {', '.join(AUDIO_HEADS)}") from None


def visual_projection(d_in: int, d_out: int) -> nn.Conv2d:
    """1×1 convolution projecting every cell of the visual map (EZ-VSL ``img_proj``)."""
    return nn.Conv2d(d_in, d_out, kernel_size=(1, 1))


def reference_init_(modules: Iterable[nn.Module]) -> None:
    """Re-initialise like the EZ-VSL/SLAVC code does for everything except the pretrained image net.

    Conv: Kaiming normal (fan_out, relu); Linear: weight ~ truncated N(0, 0.01) (bias keeps PyTorch's
    default); BatchNorm/GroupNorm: weight ~ N(1, 0.02), bias 0.
    """
    for net in modules:
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.normal_(m.weight, mean=1, std=0.02)
                nn.init.constant_(m.bias, 0)
