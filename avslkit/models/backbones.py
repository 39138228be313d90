"""ResNet-18 backbones of EZ-VSL/SLAVC: the visual map network and the spectrogram audio network.

Both keep torchvision's child names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``) so their state dict
keys equal torchvision's (minus ``fc``), which keeps ImageNet and official-checkpoint loading a
prefix rename.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avslkit.models.registry import register_model
from avslkit.models.weights import load_into, read_state_dict, torchvision_resnet18

_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class _ResNetTrunk(nn.Module):
    """The ResNet-18 trunk up to layer4 (torchvision child names, no avgpool/fc)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        for name in _TRUNK:
            self.add_module(name, getattr(resnet, name))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for name in _TRUNK:
            x = getattr(self, name)(x)
        return x


@register_model("visual.resnet18")
class VisualResNet18(_ResNetTrunk):
    """torchvision ResNet-18 truncated after layer4: B×3×H×W → B×512×H/32×W/32 (7×7 at 224, 4×4 at 112).

    `weights`: "imagenet" (torchvision IMAGENET1K_V1, the published protocol), "none", or a state-dict path.
    """

    out_channels = 512

    def __init__(self, weights: str | Path | None = "imagenet") -> None:
        super().__init__(torchvision_resnet18(weights))
        self.pretrained = str(weights) != "none" and weights is not None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.trunk(image)


@register_model("audio.resnet18_spec")
class AudioResNet18Spec(_ResNetTrunk):
    """EZ-VSL/SLAVC ``audnet``: ResNet-18 on a B×1×F×T log-spectrogram, global max pool → B×512.

    conv1 is replaced by a 1-channel 7×7/2 convolution; trained from scratch by default
    (`weights`: None, or a path to a state dict of this module).
    """

    out_dim = 512

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__(torchvision_resnet18("none"))
        self.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
        self.pool = nn.AdaptiveMaxPool2d((1, 1))
        self.pretrained = weights not in (None, "none")
        if self.pretrained:
            load_into(self, read_state_dict(weights), str(weights))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.ndim == 3:  # B×F×T → B×1×F×T
            spec = spec.unsqueeze(1)
        return self.pool(self.trunk(spec)).flatten(1)
