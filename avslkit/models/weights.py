"""Loading pretrained weights: torchvision's weights API when online, or a local state dict file.

A weights spec is one of: "none" (random init), "imagenet" (torchvision's published ImageNet
weights, downloaded or taken from the torch hub cache), or a path to a file holding a state dict
(optionally wrapped as {"state_dict": ...} or {"model": ...}, with "module." prefixes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from avslkit.errors import AvslError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a file, unwrapping common containers and DDP `module.` prefixes."""
    p = Path(path)
    if not p.is_file():
        raise AvslError(f"weights file not found: {p} (pass an existing .pt/.pth file, 'imagenet' or 'none')")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a user-facing file problem
        raise AvslError(f"{p}: cannot read weights ({exc.__class__.__name__}: {exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise AvslError(f"{p}: expected a state dict (mapping of tensor names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, strict: bool = True) -> None:
    """Load `state` into `module`, turning key/shape mismatches into an error naming `source`."""
    try:
        missing, unexpected = module.load_state_dict(dict(state), strict=strict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise AvslError(f"{source}: weights do not fit {module.__class__.__name__} ({first})") from exc
    if strict and (missing or unexpected):  # pragma: no cover - load_state_dict(strict) raises already
        raise AvslError(f"{source}: missing {missing[:3]}, unexpected {unexpected[:3]}")


def torchvision_resnet18(weights: str | Path | None = "none") -> nn.Module:
    """A torchvision ResNet-18 with `weights` = "none" | "imagenet" | path to a state dict."""
    from torchvision.models import ResNet18_Weights, resnet18

    spec = "none" if weights is None else str(weights)
    if spec == "none":
        return resnet18(weights=None)
    if spec == "imagenet":
        try:
            return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except Exception as exc:  # noqa: BLE001 - offline machines fail inside urllib
            raise AvslError(
                "cannot download torchvision ImageNet weights for ResNet-18 (offline?): "
                "download resnet18-f37072fd.pth elsewhere and pass its path instead of 'imagenet' "
                "(training: --set model.visual_weights=PATH; or --preset cpu-small, small networks trained from scratch)"
            ) from exc
    model = resnet18(weights=None)
    load_into(model, read_state_dict(spec), spec)
    return model
