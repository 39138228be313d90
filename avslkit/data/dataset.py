"""``AVDataset`` over a clip store, its collate function, loader factory and device-side audio features.

Workers get their own HDF5 handle: the dataset closes the store after reading its index in the
main process, and ``Store`` reopens lazily in whichever process reads next (``build_loader`` closes
it again before workers fork). Audio leaves the workers as float waveforms; the method's audio
input (spectrogram, VGGish log-mel, raw waveform) is computed batched on the device by
``AudioFeaturizer``, which is much cheaper than one scipy call per clip in each worker.

Ground truth follows the VGG-SS rule on a ``gt_size`` grid: clip each normalised coordinate to
[0, 1], ``int(gt_size·c)``, fill rows y1:y2 and columns x1:x2, union over the clip's boxes. Boxes
go through the image transform (so they follow crops and flips); with ``test`` (which does not
change normalised coordinates) the annotation values are used as they are, so evaluation maps
are exactly the reference ones.
"""

from __future__ import annotations

import io
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import PIL.Image
import torch
import torchvision.io
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from torchvision import tv_tensors

from avslkit.config_spec import DataSection, packaged_section
from avslkit.data.audio import build_audio_feature
from avslkit.data.store import Store
from avslkit.data.transforms import PRESERVES_NORMALISED_GEOMETRY, build_image_transform
from avslkit.errors import AvslError

__all__ = [
    "AVDataset",
    "AudioFeaturizer",
    "FRAME_DECODERS",
    "INT16_SCALES",
    "build_loader",
    "collate_av",
    "dataset_options",
    "int16_to_float",
    "rasterize_boxes",
    "seed_worker",
]


def _decode_pil(jpeg: bytes) -> PIL.Image.Image:
    im = PIL.Image.open(io.BytesIO(jpeg))
    if im.mode == "RGB":
        im.load()  # decode now; no copy needed
        return im
    return im.convert("RGB")


def _decode_pil_tensor(jpeg: bytes) -> tv_tensors.Image:
    return tv_tensors.Image(torch.from_numpy(np.array(_decode_pil(jpeg))).permute(2, 0, 1))


def _decode_torchvision(jpeg: bytes) -> tv_tensors.Image:
    data = torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)
    with warnings.catch_warnings():  # deprecated since torchvision 0.29 in favour of torchcodec
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        return tv_tensors.Image(torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB))


# "tensor" (default): a CHW uint8 tensor for torch transforms, decoded by torchvision.io (libjpeg-turbo
# straight into a tensor; the fastest, see benchmarks/RESULTS.md) when this torchvision has
# it, else by PIL ("pil_tensor"). "pil": PIL images through the transforms — the references' exact
# pixels, but PIL's bicubic resize is several times slower than torch's, which lands within 1 grey
# level of it (the JPEG decoders give identical pixels).
FRAME_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "tensor": _decode_torchvision if hasattr(torchvision.io, "decode_jpeg") else _decode_pil_tensor,
    "pil": _decode_pil,
    "torchvision": _decode_torchvision,
    "pil_tensor": _decode_pil_tensor,
}


#: Divisors of stored int16 audio: 32768 maps it exactly into [-1, 1) in float32; 32767 is the references'.
INT16_SCALES = (32768.0, 32767.0)


def int16_to_float(samples: np.ndarray, scale: float = 32768.0) -> np.ndarray:
    """int16 waveform → float in [-1, 1]: float32 x/32768, or float64 clip(x/32767, -1, 1) (audio_io + datasets.py)."""
    if scale == 32768.0:
        return samples.astype(np.float32) / np.float32(32768.0)
    return np.clip(samples / np.iinfo(np.int16).max, -1.0, 1.0) if scale == 32767.0 else samples / scale


def dataset_options(data: Mapping[str, Any] | DataSection) -> dict[str, Any]:
    """AVDataset keyword arguments from a config's `data` section: decoder, int16 scale, image float rule
    (keys a partial section lacks, e.g. an older checkpoint's, come from the packaged train.yaml)."""
    section = packaged_section(DataSection, data)
    return {"decoder": str(section.decoder), "int16_scale": float(section.int16_scale),
            "transform_opts": {"float_rule": str(section.float_rule)}}


def rasterize_boxes(boxes: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """Union of normalised XYXY boxes as a size×size {0, 1} float map (VGG-SS rule).

    Coordinates are clipped to [0, 1] (sentinel values such as -2.88e16 included) and truncated
    with ``int(size·c)``; rows y1:y2 and columns x1:x2 are filled (end-exclusive, as the reference).
    """
    gt = torch.zeros(size, size, dtype=torch.float32)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for x1, y1, x2, y2 in np.clip(arr, 0.0, 1.0):
        gt[int(size * y1):int(size * y2), int(size * x1):int(size * x2)] = 1.0
    return gt


class AVDataset(Dataset):
    """Frame + audio window per clip of a store, with optional boxes and ground-truth maps.

    Items are dicts: ``image`` (3×S×S float), ``audio`` (float32 waveform, L samples in [-1, 1]),
    ``index`` (position in this dataset, e.g. for per-sample memory banks), ``id``, ``label`` and,
    when ``boxes`` is given or ``return_gt`` is set: ``boxes`` (K×4 normalised XYXY after the
    transform, K = 0 without annotation), ``gt_map`` (gt_size×gt_size) and ``has_gt``.

    ``image_transform`` is a registered name (built for ``image_size`` with ``transform_opts``,
    e.g. ``{"normalize": False}`` to ship uint8 images and normalise on the device) or a callable
    taking and returning ``{"image", "boxes"}`` dicts. ``decoder`` (``FRAME_DECODERS``): "tensor"
    (default; uint8 tensors, torch transforms) or "pil" (the references' exact pixels, slower).
    ``int16_scale`` turns stored int16 samples into [-1, 1]: 32768 (default, exact in float32) or
    32767 (the references' ``audio / iinfo(int16).max``, clipped to [-1, 1] and kept in float64 so
    that a float64 audio feature sees the references' values).
    """

    def __init__(
        self,
        store: str | os.PathLike | Store,
        ids: Sequence[str] | None = None,
        image_transform: str | Callable[[dict[str, Any]], dict[str, Any]] = "train",
        boxes: Mapping[str, Any] | None = None,
        gt_size: int = 224,
        return_gt: bool = False,
        image_size: int = 224,
        decoder: str = "tensor",
        transform_opts: Mapping[str, Any] | None = None,
        int16_scale: float = 32768.0,
    ):
        self.store = store if isinstance(store, Store) else Store(store)
        if isinstance(ids, (str, bytes)):
            raise TypeError("AVDataset: ids must be a sequence of clip ids, not a string (pass image_transform= by name)")
        store_ids = self.store.ids
        if ids is None:
            self.indices = np.arange(len(store_ids), dtype=np.int64)
        else:
            missing = [i for i in ids if i not in self.store]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise AvslError(
                    f"{self.store.path}: clip '{missing[0]}'{more} requested but not in the store "
                    "(check the id list, or preprocess those videos into the store)"
                )
            self.indices = np.array([self.store.index_of(i) for i in ids], dtype=np.int64)
        all_labels = self.store.column("label")
        self.ids = [store_ids[i] for i in self.indices]
        self.labels = [str(all_labels[i]) for i in self.indices]
        self.sample_rate = self.store.sample_rate
        self.audio_samples = self.store.audio_samples
        self._datasets: tuple[Any, Any, Any] | None = None
        self.store.close()  # never hand an open HDF5 handle to forked workers

        if isinstance(image_transform, str):
            self.transform_name: str | None = image_transform
            self.transform = build_image_transform(image_transform, image_size=image_size, **dict(transform_opts or {}))
        else:
            self.transform_name = getattr(image_transform, "name", None)
            self.transform = image_transform
        self.boxes = {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in (boxes or {}).items()}
        self.with_gt = boxes is not None or return_gt
        self.gt_size = int(gt_size)
        self.int16_scale = float(int16_scale)
        if self.int16_scale not in INT16_SCALES:
            raise AvslError(f"int16_scale must be one of {', '.join(str(int(v)) for v in INT16_SCALES)}, got {int16_scale}")
        try:
            self.decode = FRAME_DECODERS[decoder]
        except KeyError:
            raise AvslError(f"unknown frame decoder '{decoder}'; choose one of {', '.join(FRAME_DECODERS)}") from None

    def __len__(self) -> int:
        return len(self.indices)

    def close(self) -> None:
        self._datasets = None
        self.store.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_datasets"] = None  # h5py objects are per process and not picklable
        return state

    def _clip_datasets(self) -> tuple[Any, Any]:
        """The frame and audio h5py datasets of this process's handle (path lookups cost ~0.2 ms)."""
        h5 = self.store.h5  # reopens lazily in a new process
        if self._datasets is None or self._datasets[0] is not h5:
            self._datasets = (h5, h5["clips/frame"], h5["clips/audio"])
        return self._datasets[1], self._datasets[2]

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(self.indices[index])
        clip_id = self.ids[index]
        frames, audios = self._clip_datasets()
        image = self.decode(frames[i].tobytes())
        audio = torch.from_numpy(int16_to_float(audios[i], self.int16_scale))
        item: dict[str, Any] = {"index": index, "id": clip_id, "label": self.labels[index], "audio": audio}
        if not self.with_gt:
            item["image"] = self.transform({"image": image})["image"]
            return item

        norm = self.boxes.get(clip_id)
        has_gt = norm is not None
        norm = np.zeros((0, 4)) if norm is None else norm
        height, width = (image.height, image.width) if isinstance(image, PIL.Image.Image) else image.shape[-2:]
        scale = np.array([width, height, width, height], dtype=np.float64)
        pixel = tv_tensors.BoundingBoxes(
            torch.from_numpy(np.clip(norm, 0.0, 1.0) * scale),
            format="XYXY", canvas_size=(height, width), clamping_mode="hard",
        )
        out = self.transform({"image": image, "boxes": pixel})
        img = out["image"]
        if self.transform_name in PRESERVES_NORMALISED_GEOMETRY:
            moved = np.clip(norm, 0.0, 1.0)
        else:
            out_h, out_w = img.shape[-2:]
            pixels_out = out["boxes"].as_subclass(torch.Tensor).double().numpy()
            moved = np.clip(pixels_out / np.array([out_w, out_h, out_w, out_h]), 0.0, 1.0)
        item.update(
            image=img,
            boxes=torch.from_numpy(moved.astype(np.float32)).reshape(-1, 4),
            gt_map=rasterize_boxes(moved, self.gt_size),
            has_gt=has_gt,
        )
        return item


def collate_av(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate AVDataset items: tensors stacked, strings listed, ragged boxes padded.

    ``boxes`` becomes B×Kmax×4 (zero padding) with ``boxes_valid`` B×Kmax (bool).
    """
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if key == "boxes":
            kmax = max(v.shape[0] for v in values)
            padded = torch.zeros(len(values), kmax, 4, dtype=torch.float32)
            valid = torch.zeros(len(values), kmax, dtype=torch.bool)
            for j, v in enumerate(values):
                padded[j, : v.shape[0]] = v
                valid[j, : v.shape[0]] = True
            out["boxes"], out["boxes_valid"] = padded, valid
        elif isinstance(values[0], torch.Tensor):
            # default_collate stacks straight into shared memory inside a worker (no extra copy)
            out[key] = default_collate([v.as_subclass(torch.Tensor) for v in values])
        elif isinstance(values[0], (bool, np.bool_)):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(values[0], (int, np.integer)):
            out[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(values[0], (float, np.floating)):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = list(values)
    return out


class AudioFeaturizer:
    """Applies a registered audio feature to collated batches on the training device.

    ``feats = AudioFeaturizer("spectrogram", store.sample_rate, device)(batch)`` → B×1×257×200.
    """

    def __init__(self, name: str, sample_rate: int, device: torch.device | str = "cpu", **opts: Any):
        self.device = torch.device(device)
        self.module = build_audio_feature(name, sample_rate, **opts).to(self.device)

    @torch.no_grad()
    def __call__(self, batch: Mapping[str, Any] | torch.Tensor) -> torch.Tensor:
        audio = batch["audio"] if isinstance(batch, Mapping) else batch
        return self.module(audio.to(self.device, non_blocking=True))


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in each worker from torch's per-worker seed (reproducible loaders)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    workers: int = 4,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
    collate_fn: Callable = collate_av,
    prefetch_factor: int | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoader:
    """A seeded DataLoader (persistent workers, pinned memory on CUDA, DistributedSampler on DDP).

    With ``distributed`` (world size and rank from the initialised process group unless given),
    call ``loader.sampler.set_epoch(epoch)`` each epoch; the sampler pads the shards to equal
    length, and evaluation must drop the repeats (de-duplicate on ``index``).
    """
    close = getattr(dataset, "close", None)
    if callable(close):
        close()  # workers open their own HDF5 handles
    sampler = (
        DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        if distributed else None
    )
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs["persistent_workers"] = True
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=seed_worker,
        **kwargs,
    )
