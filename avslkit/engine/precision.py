"""Mixed precision (``amp``: none | bf16 | fp16) and memory format (``channels_last``) of a run."""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch

from avslkit.config_spec import TrainConfig
from avslkit.errors import AvslError

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (None: full precision); fp16 needs a GPU (it needs loss scaling)."""
    amp = str(config.amp or "none").lower()
    if amp not in AMP_DTYPES:
        raise AvslError(f"unknown amp mode '{amp}' (use none, bf16 or fp16)")
    if amp == "fp16" and device.type != "cuda":
        raise AvslError("--amp fp16 needs a GPU (float16 autocast with loss scaling); on CPU use --amp bf16 or none")
    return AMP_DTYPES[amp]


def uses_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """``channels_last`` applies on CUDA only (no gain on CPU)."""
    return bool(config.channels_last) and device.type == "cuda"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type, or nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
