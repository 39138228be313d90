"""Validation during training: LocAcc / mean cIoU / AUC on an annotated *validation* store.

Uses the exact evaluation protocol pieces of `avslkit.metrics` (bicubic upsampling to 224,
per-sample min-max, upper-median threshold, cIoU) and the benchmark ground-truth rules of
`avslkit.data.annotations`, on the positives only. The clips scored are those of the validation
store that have an annotation, or exactly the given ``ids`` (semi-supervised runs: the clips held out
of the training store, ``val.txt``); best-checkpoint selection uses these numbers, never the test set.

Which clips (``build_validator``), first match wins:
1. ``data.val`` + ``data.val_annotations`` (``--val``, ``--val-annotations``), a store other than the
   training one: every annotated clip of it.
2. semi-supervised methods with ``validation.held_out: true`` (default): the ``--val-labeled`` clips held
   out of the training store (boxes from ``data.annotations``; also when ``--val`` names the training
   store itself, then with the boxes of ``--val-annotations``). ``--val-labeled 0`` or
   ``validation.held_out: false``: no validation, no ``best.pt``.
3. otherwise no validation.

Under DDP only rank 0 validates (small split, exact metrics, no padding to undo) and broadcasts; the
other ranks hold a ``RankZeroValidation`` so that they join the broadcast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from avslkit.config_spec import TrainConfig, train_config
from avslkit.errors import AvslError


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
        int16_scale: float = 32768.0,
        float_rule: str = "fused",
        ids: Sequence[str] | None = None,
    ):
        """`ids`: score exactly these clips (in this order; each must be in `store` and `annotations`)
        instead of every annotated clip of `store`."""
        from avslkit.data.annotations import gt_map, read_annotations
        from avslkit.data.dataset import AVDataset
        from avslkit.data.store import Store

        store_obj = Store(store)
        ann = read_annotations(annotations, annotation_format)
        store_ids = list(store_obj.ids)
        store_obj.close()
        self.skipped_ids: list[str] = []  # asked-for ids that are not annotated clips of the store
        if ids is None:
            ids = [i for i in store_ids if i in ann]
            if not ids:
                raise AvslError(
                    f"{store}: none of its {len(store_ids)} clips has an annotation in {annotations} "
                    "(validation needs annotated clips; check the ids or pass the matching --val-annotations)"
                )
        else:
            wanted = list(dict.fromkeys(str(i) for i in ids))
            in_store = set(store_ids)
            chosen = [i for i in wanted if i in in_store and i in ann]
            if not chosen:
                first = f" (first: {wanted[0]})" if wanted else ""
                raise AvslError(
                    f"{store}: none of the {len(wanted)} validation ids{first} is a clip of this store with a box in "
                    f"{annotations}; give ids of annotated clips of the store (or no ids to use all of them)"
                )
            kept = set(chosen)
            self.skipped_ids = [i for i in wanted if i not in kept]
            if self.skipped_ids:
                from avslkit.utils.console import log

                log.warning("validation: %d of %d ids are not annotated clips of %s and are skipped (first: %s)",
                            len(self.skipped_ids), len(wanted), store, self.skipped_ids[0])
            ids = chosen
        if max_samples:
            ids = ids[: int(max_samples)]
        self.ids = ids
        self.gt = np.stack([gt_map(ann[i], 224, gt_mode) for i in ids])
        self.dataset = AVDataset(store_obj, ids=ids, image_transform="test", image_size=image_size, decoder=decoder,
                                 int16_scale=int16_scale, transform_opts={"float_rule": float_rule})
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.binarize = binarize
        self.iou_threshold = float(iou_threshold)

    def __len__(self) -> int:
        return len(self.ids)

    @torch.no_grad()
    def scores(self, task: Any) -> Any:
        """Absolute maps → per-sample statistics (`metrics.samples.SampleStats`), in the order of `self.ids`."""
        from avslkit.data.dataset import collate_av
        from avslkit.metrics.maps import upsample_maps
        from avslkit.metrics.samples import SampleStats, sample_stats

        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.workers,
            collate_fn=collate_av,
            generator=torch.Generator().manual_seed(0),  # never touch the global RNG (exact resume)
        )
        was_training = [m.training for m in task.models().values()]
        parts: list[SampleStats] = []
        start = 0
        try:
            for batch in loader:
                maps = task.localization_maps(batch["image"], batch["audio"]).float().cpu()
                n = maps.shape[0]
                parts.append(sample_stats(upsample_maps(maps), self.gt[start : start + n], self.binarize))
                start += n
        finally:
            for module, mode in zip(task.models().values(), was_training):
                module.train(mode)
        return SampleStats.concat(parts)

    def run(self, task: Any) -> dict[str, float]:
        """Every registered metric with a `validation_key` (built-in: loc_acc, ciou_mean, auc) on the positives, and n."""
        from avslkit.metrics.registry import Subset, metrics

        stats = self.scores(task)
        subset = Subset(stats, np.ones(len(stats), bool))
        record: dict[str, float] = {m.validation_key: m.aggregate(subset, self.iou_threshold)
                                    for m in metrics() if m.validation_key}
        record["n"] = len(stats)
        return record


def check_validation_inputs(cfg: Mapping[str, Any] | TrainConfig) -> bool:
    """Cheap check every DDP rank runs (only rank 0 builds the Validator): are both inputs given and present?"""
    data = train_config(cfg).data
    val, ann = data.val, data.val_annotations
    if not val and not ann:
        return False
    if not val or not ann:
        raise AvslError("validation needs both --val STORE.h5 and --val-annotations (vggss.json or Flickr XML dir)")
    if not Path(val).is_file():
        raise AvslError(f"validation store not found: {val} (create it with 'avslkit preprocess VIDEOS --out {val}')")
    if not Path(ann).exists():
        raise AvslError(f"validation annotations not found: {ann} (pass vggss.json or the Flickr annotation directory)")
    return True


class RankZeroValidation:
    """Stands for the Validator on DDP ranks other than 0: validation happens (rank 0 scores and
    broadcasts the result, which these ranks receive), but nothing is scored here."""

    def run(self, task: Any) -> dict[str, float]:
        raise AvslError("validation runs on rank 0 only; the other ranks receive its result")


def _same_file(a: str | Path, b: str | Path | None) -> bool:
    return b is not None and Path(a).resolve() == Path(b).resolve()


def validation_enabled(cfg: Mapping[str, Any] | TrainConfig, held_out_ids: Sequence[str] | None = None) -> bool:
    """Whether this run validates (every DDP rank must agree): a validation store, or held-out ids."""
    return check_validation_inputs(cfg) or bool(held_out_ids)


def build_validator(cfg: Mapping[str, Any] | TrainConfig, held_out_ids: Sequence[str] | None = None) -> Validator | None:
    """The run's Validator, or None (precedence in the module docstring).

    `held_out_ids`: the clips a semi-supervised task held out of the training store (``val.txt``), or
    None for the other methods / ``validation.held_out: false``.
    """
    config = train_config(cfg)
    data, v = config.data, config.validation
    common = dict(
        gt_mode=v.gt_mode,
        binarize=v.binarize,
        iou_threshold=float(v.iou_threshold),
        image_size=int(config.image_size),
        batch_size=int(v.batch_size),
        workers=int(v.workers),
        decoder=data.decoder,
        max_samples=v.max_samples,
        int16_scale=float(data.int16_scale),
        float_rule=str(data.float_rule),
    )
    train = data.train
    if not check_validation_inputs(config):
        if not held_out_ids:
            return None
        return Validator(train, data.annotations, annotation_format=data.annotation_format or "auto",
                         ids=list(held_out_ids), **common)
    val, ann = data.val, data.val_annotations
    from avslkit.data.store import Store

    trained_sr = config.audio.sample_rate
    val_store = Store(val)
    val_sr = val_store.sample_rate
    val_store.close()
    if trained_sr and int(val_sr) != int(trained_sr):
        raise AvslError(f"{val}: validation audio is {val_sr} Hz but the training store's is {trained_sr} Hz; preprocess both with the same --sample-rate")
    ids = None
    if train and _same_file(val, train):
        if held_out_ids:
            ids = list(held_out_ids)  # never score the clips the run trains on
        else:
            from avslkit.utils.console import log

            log.warning("--val is the training store: validation scores every annotated clip of it, the training clips too; "
                        "use a separate validation store (semi-supervised methods: the held-out --val-labeled clips)")
    return Validator(val, ann, annotation_format=v.annotation_format, ids=ids, **common)


@torch.no_grad()
def map_quality(task: Any, dataset: Any) -> dict[str, float]:
    """Per-epoch quality log of a task on annotated clips (`Task.quality_dataset`): ``val_loc_acc``,
    ``val_ciou_mean`` of its inference maps and, for methods that make pseudo-labels
    (`Task.pseudo_labels_for_quality`), ``val_pl_kept`` (kept fraction) and ``val_pl_iou`` (mean IoU of
    the kept labels with the ground truth). Logged, never used to pick ``best.pt``."""
    from avslkit.data.dataset import collate_av
    from avslkit.metrics.localization import locacc
    from avslkit.metrics.maps import upsample_maps
    from avslkit.metrics.samples import sample_stats

    loader = DataLoader(dataset, batch_size=32, shuffle=False, collate_fn=collate_av,
                        generator=torch.Generator().manual_seed(0))  # never touch the global RNG (exact resume)
    was = [m.training for m in task.models().values()]
    cious, pl_ious, kept = [], [], []
    try:
        for batch in loader:
            maps = task.localization_maps(batch["image"], batch["audio"]).float().cpu()
            gt = batch["gt_map"].numpy()
            cious.append(sample_stats(upsample_maps(maps), gt, "relative").ciou)
            made = task.pseudo_labels_for_quality(batch)
            if made is not None:
                labels, keep = made
                keep = keep.cpu()
                kept.append(keep)
                pl_ious.append(_binary_iou_with_gt(labels, batch["gt_map"])[keep])
    finally:
        for m, mode in zip(task.models().values(), was):
            m.train(mode)
    c = np.concatenate(cious)
    out = {"val_loc_acc": locacc(c, 0.5), "val_ciou_mean": float(np.mean(c))}
    if kept:
        iou = torch.cat(pl_ious)
        out["val_pl_kept"] = float(torch.cat(kept).float().mean())
        out["val_pl_iou"] = float(iou.mean()) if iou.numel() else 0.0
    return out


def _binary_iou_with_gt(labels: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of binary h×w labels (nearest-upsampled to the ground truth's grid) with binary ground truth."""
    up = torch.nn.functional.interpolate(labels[:, None].float().cpu(), size=tuple(gt.shape[-2:]), mode="nearest")[:, 0] > 0.5
    g = gt.cpu() > 0.5
    inter = (up & g).flatten(1).sum(1).float()
    union = (up | g).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))
