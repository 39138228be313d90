"""Load checkpoints released by the official EZ-VSL / SLAVC code (stoneMo/EZ-VSL, stoneMo/SLAVC).

Both repositories save ``{'model': model.state_dict(), ...}`` from a DDP-wrapped model, so keys carry
a ``module.`` prefix. Their modules (``model.py``): ``imgnet`` = torchvision resnet18 with
``avgpool``/``fc`` = Identity (no parameters), ``audnet`` = resnet18 with a 1-channel conv1,
``avgpool`` = AdaptiveMaxPool2d and ``fc`` = Identity, projections ``img_proj`` (Conv2d 1×1) and
``aud_proj`` (Linear); SLAVC has two of each (``img_proj1/2``, ``aud_proj1/2``) plus ``momentum_*``
copies. Our backbones keep torchvision's child names, so the mapping is a prefix rename:

=========================  ===========================  =======
official key prefix        avslkit key prefix           method
=========================  ===========================  =======
``imgnet.``                ``visual.``                  both
``audnet.``                ``audio.``                   both
``img_proj.``              ``img_proj.``                ezvsl
``aud_proj.``              ``aud_proj.``                ezvsl
``img_proj1.`` / ``2.``    ``img_proj1.`` / ``2.``      slavc
``aud_proj1.`` / ``2.``    ``aud_proj1.`` / ``2.``      slavc
``momentum_imgnet.``       ``momentum_visual.``         slavc
``momentum_audnet.``       ``momentum_audio.``          slavc
``momentum_img_proj1.``…   ``momentum_img_proj1.``…     slavc
``momentum_aud_proj1.``…   ``momentum_aud_proj1.``…     slavc
=========================  ===========================  =======

(BatchNorm ``running_mean``/``running_var``/``num_batches_tracked`` follow their module's prefix.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.models.registry import build_model
from avslkit.models.weights import load_into, read_state_dict

_COMMON = {"imgnet.": "visual.", "audnet.": "audio."}
_SLAVC_HEADS = ("img_proj1.", "img_proj2.", "aud_proj1.", "aud_proj2.")
OFFICIAL_PREFIXES: dict[str, dict[str, str]] = {
    "ezvsl": {**_COMMON, "img_proj.": "img_proj.", "aud_proj.": "aud_proj."},
    "slavc": {
        **_COMMON,
        **{h: h for h in _SLAVC_HEADS},
        "momentum_imgnet.": "momentum_visual.",
        "momentum_audnet.": "momentum_audio.",
        **{f"momentum_{h}": f"momentum_{h}" for h in _SLAVC_HEADS},
    },
}


def map_official_state_dict(state: Mapping[str, torch.Tensor], method: str) -> dict[str, torch.Tensor]:
    """Rename an official EZ-VSL/SLAVC state dict (``module.`` prefixes allowed) to our model's keys."""
    if method not in OFFICIAL_PREFIXES:
        raise AvslError(f"no official checkpoint mapping for method {method!r}; use one of {', '.join(OFFICIAL_PREFIXES)}")
    table = OFFICIAL_PREFIXES[method]
    # Longest prefix first so "momentum_imgnet." is not taken for something shorter.
    prefixes = sorted(table, key=len, reverse=True)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        src = next((p for p in prefixes if key.startswith(p)), None)
        if src is None:
            unknown.append(key)
            continue
        out[table[src] + key[len(src):]] = value
    if unknown:
        raise AvslError(f"not an official {method} checkpoint: unexpected keys {unknown[:3]} (check --method)")
    return out


def load_official_checkpoint(path: str | Path, method: str, **cfg: Any) -> nn.Module:
    """Build our `method` model (options `cfg`) and load an official checkpoint file into it."""
    if method not in OFFICIAL_PREFIXES:
        raise AvslError(f"no official checkpoint mapping for method {method!r}; use one of {', '.join(OFFICIAL_PREFIXES)}")
    cfg.setdefault("visual_weights", "none")  # the checkpoint holds the visual weights
    model = build_model(method, namespace="method", **cfg)
    state = map_official_state_dict(read_state_dict(path), method)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise AvslError(f"{path}: not a complete official {method} checkpoint, missing {missing[:3]} (check --method)")
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise AvslError(
            f"{path}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(expected[k].shape)} "
            "(set the model options, e.g. dim, to the checkpoint's)"
        )
    load_into(model, state, str(path))
    return model
