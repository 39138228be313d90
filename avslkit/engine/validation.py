"""Validation during training: LocAcc / mean cIoU / AUC on an annotated *validation* store.

Uses the exact evaluation protocol pieces of `avslkit.metrics` (bicubic upsampling to 224,
per-sample min-max, upper-median threshold, cIoU) and the benchmark ground-truth rules of
`avslkit.data.annotations`, on the positives only. The clips scored are those of the validation
store that have an annotation; best-checkpoint selection uses these numbers, never the test set.
Under DDP only rank 0 validates (small split, exact metrics, no padding to undo) and broadcasts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from avslkit.errors import AvslError

VAL_METRICS = ("loc_acc", "ciou_mean", "auc")


class Validator:
    """Scores a task's maps on the annotated clips of a validation store."""

    def __init__(
        self,
        store: str | Path,
        annotations: str | Path,
        *,
        annotation_format: str = "auto",
        gt_mode: str = "auto",
        binarize: str = "relative",
        iou_threshold: float = 0.5,
        image_size: int = 224,
        batch_size: int = 32,
        workers: int = 0,
        decoder: str = "tensor",
        max_samples: int | None = None,
    ):
        from avslkit.data.annotations import gt_map, read_annotations
        from avslkit.data.dataset import AVDataset
        from avslkit.data.store import Store

        store_obj = Store(store)
        ann = read_annotations(annotations, annotation_format)
        ids = [i for i in store_obj.ids if i in ann]
        store_obj.close()
        if not ids:
            raise AvslError(
                f"{store}: none of its {len(store_obj.ids)} clips has an annotation in {annotations} "
                "(validation needs annotated clips; check the ids or pass the matching --val-annotations)"
            )
        if max_samples:
            ids = ids[: int(max_samples)]
        self.ids = ids
        self.gt = np.stack([gt_map(ann[i], 224, gt_mode) for i in ids])
        self.dataset = AVDataset(store_obj, ids=ids, image_transform="test", image_size=image_size, decoder=decoder)
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.binarize = binarize
        self.iou_threshold = float(iou_threshold)

    def __len__(self) -> int:
        return len(self.ids)

    @torch.no_grad()
    def scores(self, task: Any) -> np.ndarray:
        """Absolute maps → per-sample cIoU, in the order of `self.ids`."""
        from avslkit.data.dataset import collate_av
        from avslkit.metrics.maps import upsample_maps
        from avslkit.metrics.samples import sample_stats

        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.workers,
            collate_fn=collate_av,
            generator=torch.Generator().manual_seed(0),  # never touch the global RNG (exact resume)
        )
        was_training = [m.training for m in task.models().values()]
        cious: list[np.ndarray] = []
        start = 0
        try:
            for batch in loader:
                maps = task.localization_maps(batch["image"], batch["audio"]).float().cpu()
                n = maps.shape[0]
                stats = sample_stats(upsample_maps(maps), self.gt[start : start + n], self.binarize)
                cious.append(stats.ciou)
                start += n
        finally:
            for module, mode in zip(task.models().values(), was_training):
                module.train(mode)
        return np.concatenate(cious) if cious else np.zeros(0)

    def run(self, task: Any) -> dict[str, float]:
        from avslkit.metrics.localization import locacc, success_auc

        c = self.scores(task)
        return {
            "loc_acc": locacc(c, self.iou_threshold),
            "ciou_mean": float(np.mean(c)) if c.size else float("nan"),
            "auc": success_auc(c),
            "n": int(c.size),
        }


def check_validation_inputs(cfg: Mapping[str, Any]) -> bool:
    """Cheap check every DDP rank runs (only rank 0 builds the Validator): are both inputs given and present?"""
    data = cfg.get("data", {})
    val, ann = data.get("val"), data.get("val_annotations")
    if not val and not ann:
        return False
    if not val or not ann:
        raise AvslError("validation needs both --val STORE.h5 and --val-annotations (vggss.json or Flickr XML dir)")
    if not Path(val).is_file():
        raise AvslError(f"validation store not found: {val} (create it with 'avslkit preprocess VIDEOS --out {val}')")
    if not Path(ann).exists():
        raise AvslError(f"validation annotations not found: {ann} (pass vggss.json or the Flickr annotation directory)")
    return True


def build_validator(cfg: Mapping[str, Any]) -> Validator | None:
    """A Validator from the config's `data.val`/`data.val_annotations` and `validation.*`, or None."""
    if not check_validation_inputs(cfg):
        return None
    data = cfg.get("data", {})
    val, ann = data.get("val"), data.get("val_annotations")
    v = cfg.get("validation", {})
    from avslkit.data.store import Store

    trained_sr = cfg.get("audio", {}).get("sample_rate")
    val_store = Store(val)
    val_sr = val_store.sample_rate
    val_store.close()
    if trained_sr and int(val_sr) != int(trained_sr):
        raise AvslError(f"{val}: validation audio is {val_sr} Hz but the training store's is {trained_sr} Hz; preprocess both with the same --sample-rate")
    return Validator(
        val,
        ann,
        annotation_format=v.get("annotation_format", "auto"),
        gt_mode=v.get("gt_mode", "auto"),
        binarize=v.get("binarize", "relative"),
        iou_threshold=float(v.get("iou_threshold", 0.5)),
        image_size=int(cfg.get("image_size", 224)),
        batch_size=int(v.get("batch_size", 32)),
        workers=int(v.get("workers", 0)),
        decoder=data.get("decoder", "tensor"),
        max_samples=v.get("max_samples"),
    )
