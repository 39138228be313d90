"""Training-stream datasets: the plain training set of a config, and the wrappers the
semi-supervised methods build their streams from (gating, tiling, two aligned views).

- `training_dataset(cfg)`: the training store (minus ``data.exclude``) with the training transform.
- `GatedDataset`: yields only ``{"index": i}`` while a stage does not use the stream.
- `RepeatedDataset`: tiles a labelled set smaller than one global batch.
- `TwoViewTransform`: two views of one frame sharing a geometry (pixel-aligned pseudo-labels).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from avslkit.config_spec import TrainConfig, train_config
from avslkit.errors import AvslError

__all__ = ["GatedDataset", "RepeatedDataset", "TwoViewTransform", "training_dataset"]


def training_dataset(cfg: Mapping[str, Any]) -> Any:
    """`AVDataset` of ``data.train`` without the ``data.exclude`` ids, with ``data.train_transform``."""
    from avslkit.data.annotations import read_id_list
    from avslkit.data.dataset import AVDataset, dataset_options
    from avslkit.data.store import Store

    config = train_config(cfg)
    data = config.data
    ids = None
    if data.exclude:  # e.g. the test clips, when one store holds everything
        excluded = set(read_id_list(data.exclude))
        with Store(data.train) as store:
            ids = [cid for cid in store.ids if cid not in excluded]
        if not ids:
            raise AvslError(f"{data.exclude}: data.exclude removes every clip of {data.train}; "
                            "pass the ids to leave out, not the training ids")
    return AVDataset(
        data.train,
        ids=ids,
        image_transform=data.train_transform,
        image_size=int(config.image_size),
        **dataset_options(data),
    )


class TwoViewTransform:
    """Views of one frame sharing a geometry: geometric transform once, then photometric ops per view.

    Returns ``{"image": V×3×S×S}`` (V = len(views)) (``boxes`` follow the shared geometry). ``photometric`` per view:
    "none" (the weak view) or "randaugment" (photometric-only RandAugment, ``num_ops``/``magnitude``).
    """

    name = None

    def __init__(self, image_size: int, views: tuple[str, ...] = ("none", "randaugment"), num_ops: int = 2, magnitude: int = 9):
        from avslkit.data.transforms import BoxAwareRandAugment, ToNormalizedFloat, build_image_transform

        for v in views:
            if v not in ("none", "randaugment"):
                raise AvslError(f"unknown view augmentation {v!r}; use none or randaugment")
        self.geometry = build_image_transform("weak", image_size=image_size, normalize=False)
        self.views = tuple(views)
        self.photometric = BoxAwareRandAugment(num_ops=num_ops, magnitude=magnitude, geometric=False)
        self.normalize = ToNormalizedFloat()

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = self.geometry(sample)
        base = out["image"]
        views = [self.normalize(self.photometric(base) if v == "randaugment" else base) for v in self.views]
        out["image"] = torch.stack([torch.as_tensor(v).as_subclass(torch.Tensor) for v in views])
        return out


class GatedDataset(torch.utils.data.Dataset):
    """A dataset that yields only ``{"index": i}`` while ``active`` is False (no decoding, no I/O).

    Lets a stream that a stage does not use (the unlabelled data during warm-up) keep its place in
    the engine's loaders without loading anything. The flag lives in shared memory, so the engine's
    persistent loader workers see it change (a plain attribute was copied into each worker when it
    started: a warm-up longer than one epoch then gated the stream for the rest of the run). Set it
    before a pass's iterator is created (``on_epoch_start``), when no batch of that pass is prefetched.
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self._active = torch.ones(1, dtype=torch.uint8).share_memory_()
        self.store = getattr(dataset, "store", None)

    @property
    def active(self) -> bool:
        return bool(self._active[0])

    @active.setter
    def active(self, value: bool) -> None:
        self._active[0] = int(bool(value))

    def __len__(self) -> int:
        return len(self.dataset)

    def close(self) -> None:
        close = getattr(self.dataset, "close", None)
        if callable(close):
            close()

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[index] if self.active else {"index": index}


class RepeatedDataset(torch.utils.data.Dataset):
    """The items of `dataset` tiled `times` times (item i is dataset[i % len]): a labelled set smaller
    than one global batch still fills whole batches (each clip then appears several times per batch)."""

    def __init__(self, dataset: Any, times: int):
        self.dataset, self.times = dataset, max(1, int(times))
        self.store = getattr(dataset, "store", None)

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def close(self) -> None:
        close = getattr(self.dataset, "close", None)
        if callable(close):
            close()

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]
