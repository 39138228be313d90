"""Pseudo-models that ignore the audio: reference points for any AVSL number.

* ``center``: 1 − d/d_max, d the distance of a pixel to the image centre and d_max the half
  diagonal. Under the default relative rule (top 50% of pixels) it predicts the centred disc of
  radius sqrt(0.5·224²/π) ≈ 89.4 px; under fixed:0.5 the disc d < d_max/2 ≈ 79.2 px.
* ``full``: a constant map (whole image). Min-max of a constant is the zero map, so every pixel
  is predicted under relative; confidence is constant, so AP/F1 measure the base rate.
* ``ogl``: OGL' = mean |layer4| / 2.5 of a frozen ImageNet ResNet-18 on the test frames (7×7,
  upsampled with the evaluation's bicubic rule).

For negative pairs the baseline map is the video's map: the audio is ignored by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from avslkit.errors import AvslError
from avslkit.evaluation.items import EvalItem
from avslkit.metrics.maps import EVAL_SIZE

MapSource = Callable[[np.ndarray], np.ndarray]


def center_map(size: int = EVAL_SIZE) -> np.ndarray:
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.hypot(yy - c, xx - c)
    return (1.0 - d / np.hypot(c, c)).astype(np.float32)


def full_map(size: int = EVAL_SIZE) -> np.ndarray:
    return np.ones((size, size), dtype=np.float32)


def _constant_source(single: np.ndarray) -> MapSource:
    return lambda index: np.broadcast_to(single, (len(index), *single.shape))


def eval_image_transform():
    """Test-time image transform: resize to 224×224 (bicubic, aspect not kept) + ImageNet mean/std."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize((EVAL_SIZE, EVAL_SIZE), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])


def ogl_maps_for_videos(store_path: str | Path, videos: Sequence[str], weights: str | Path | None,
                        device: str = "cpu", batch_size: int = 32) -> dict[str, np.ndarray]:
    """OGL' maps (h×w, divided by 2.5) of each distinct video frame in the store."""
    import torch
    from PIL import Image

    from avslkit.data.store import Store
    from avslkit.models.ogl import OGL_UPPER_BOUND, build_ogl
    from avslkit.utils.console import track

    model = build_ogl(weights).to(device)
    tf = eval_image_transform()
    unique = list(dict.fromkeys(videos))
    out: dict[str, np.ndarray] = {}
    with Store(store_path) as store:
        missing = [v for v in unique if v not in store]
        if missing:
            raise AvslError(f"{store_path}: {len(missing)} evaluated clip(s) are not in the store (e.g. '{missing[0]}'); "
                            "re-run preprocess on the test videos or fix the test list")
        batches = [unique[i:i + batch_size] for i in range(0, len(unique), batch_size)]
        for batch in track(batches, "OGL maps"):
            images = torch.stack([tf(Image.fromarray(store.frame(store.index_of(v)))) for v in batch]).to(device)
            maps = (model(images) / OGL_UPPER_BOUND).cpu().numpy()
            out.update(zip(batch, maps))
    return out


def baseline_source(kind: str, items: Sequence[EvalItem], store: str | Path | None = None,
                    ogl_weights: str | Path | None = None, device: str = "cpu", batch_size: int = 32) -> MapSource:
    """A map source for `items` (index array → (k, h, w) absolute maps)."""
    if kind == "center":
        return _constant_source(center_map())
    if kind == "full":
        return _constant_source(full_map())
    if kind == "ogl":
        if store is None:
            raise AvslError("--baseline ogl needs the test frames: pass --test STORE.h5")
        if ogl_weights is None:
            raise AvslError("--baseline ogl needs ImageNet ResNet-18 weights: pass --ogl-weights PATH (or 'imagenet' online)")
        per_video = ogl_maps_for_videos(store, [it.video for it in items], ogl_weights, device, batch_size)
        stacked = np.stack([per_video[it.video] for it in items])
        return lambda index: stacked[index]
    raise AvslError(f"unknown --baseline '{kind}' (choose {', '.join(BASELINES)})")


BASELINES = ("center", "full", "ogl")
