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


class _AudioTrunk(_ResNetTrunk):
    """A ResNet trunk on a B×C×F×T time-frequency input, global max pool → B×channels (EZ-VSL's ``audnet``).

    Subclasses shape the trunk, then call ``load_weights`` (None/"none": random init, else a state-dict path).
    """

    def __init__(self, resnet: nn.Module, weights: str | Path | None) -> None:
        super().__init__(resnet)
        self.pool = nn.AdaptiveMaxPool2d((1, 1))
        self.pretrained = weights not in (None, "none")

    def load_weights(self, weights: str | Path | None) -> None:
        if self.pretrained:
            load_into(self, read_state_dict(weights), str(weights))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.ndim == 3:  # B×F×T → B×1×F×T
            spec = spec.unsqueeze(1)
        return self.pool(self.trunk(spec)).flatten(1)


@register_model("audio.resnet18_spec")
class AudioResNet18Spec(_AudioTrunk):
    """EZ-VSL/SLAVC ``audnet``: ResNet-18 on a B×1×F×T log-spectrogram, global max pool → B×512.

    conv1 is replaced by a 1-channel 7×7/2 convolution; trained from scratch by default
    (`weights`: None, or a path to a state dict of this module).
    """

    out_dim = 512

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__(torchvision_resnet18("none"), weights)
        self.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
        self.load_weights(weights)


# ---------------------------------------------------------------------------------------------
# Narrow ResNets: the same trunk layout (torchvision BasicBlock, child names conv1 ... layer4) with
# fewer blocks and channels, so a CPU can train a localiser in minutes (configs/presets/cpu-small).
# ---------------------------------------------------------------------------------------------

NARROW_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}


def narrow_resnet_trunk(depth: int = 10, width: int = 16, in_channels: int = 3, stride: int = 32) -> nn.Module:
    """A torchvision-style ResNet trunk with `width` base channels (64 in ResNet-18), `depth` 10 or 18.

    `stride` 32 is the standard trunk; 16 drops the stem max-pool, which keeps a 7×7 map at 112 px
    (the papers' grid at 224 px) for the small images a CPU can afford.
    """
    from torchvision.models.resnet import BasicBlock

    if depth not in NARROW_DEPTHS:
        raise ValueError(f"narrow ResNet depth must be one of {sorted(NARROW_DEPTHS)}, got {depth}")
    if width < 4:
        raise ValueError(f"narrow ResNet width must be >= 4 base channels, got {width}")
    if stride not in (16, 32):
        raise ValueError(f"narrow ResNet stride must be 16 or 32, got {stride}")
    trunk = nn.Module()
    trunk.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
    trunk.bn1 = nn.BatchNorm2d(width)
    trunk.relu = nn.ReLU(inplace=True)
    trunk.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stride == 32 else nn.Identity()
    planes_in = width
    for i, blocks in enumerate(NARROW_DEPTHS[depth]):
        planes = width * 2**i
        layer_stride = 1 if i == 0 else 2
        downsample = None
        if layer_stride != 1 or planes_in != planes:
            downsample = nn.Sequential(nn.Conv2d(planes_in, planes, 1, stride=layer_stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(planes_in, planes, layer_stride, downsample)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        trunk.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        planes_in = planes
    for m in trunk.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return trunk


@register_model("visual.resnet_narrow")
class VisualNarrowResNet(_ResNetTrunk):
    """Narrow ResNet visual trunk: B×3×H×W → B×(8·width)×H/stride×W/stride, random init or a state dict.

    `weights`: "none"/None (random init; there are no ImageNet weights for this shape) or a path to a
    state dict of this module (e.g. one saved by a longer run).
    """

    def __init__(self, weights: str | Path | None = None, depth: int = 10, width: int = 16, stride: int = 16) -> None:
        super().__init__(narrow_resnet_trunk(depth, width, 3, stride))
        self.out_channels = 8 * width
        self.pretrained = weights not in (None, "none")
        if weights == "imagenet":
            raise ValueError("visual.resnet_narrow has no ImageNet weights: use weights=none or a state-dict path")
        if self.pretrained:
            load_into(self, read_state_dict(weights), str(weights))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.trunk(image)


@register_model("audio.resnet_narrow_spec")
class AudioNarrowResNet(_AudioTrunk):
    """Narrow ResNet on a B×C×F×T time-frequency input (C = `in_channels`: 1 for the spectrogram, 3 for
    VGGish's three 96×64 log-mel examples), global max pool → B×(8·width), like EZ-VSL's ``audnet``."""

    def __init__(self, weights: str | Path | None = None, depth: int = 10, width: int = 16, in_channels: int = 1) -> None:
        super().__init__(narrow_resnet_trunk(depth, width, in_channels, 32), weights)
        self.in_channels = in_channels
        self.out_dim = 8 * width
        self.load_weights(weights)
