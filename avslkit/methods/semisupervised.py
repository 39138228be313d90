"""`SemiSupervisedTask`: the base of supervised / naive-ssl / hard-pl / DMT / XPL.

It holds the localiser units (``methods.localizer``), builds the data streams from the run's split
and keeps the stage machine (warm-up → unbiased). The split itself is ``semisup.labeled``, the
stream wrappers are ``data.streams``, and the per-epoch quality log is the engine's
``validation.map_quality`` on `quality_dataset()`.

**Data of the semi-supervised tasks** (``SemiSupervisedTask``):

- the split (``avslkit.semisup.labeled.split_labeled``): ``data.labeled`` (4k | 2k | 256 | 0.03 |
  all | ids.txt) labelled clips drawn (``data.split_seed``, default the run seed) from the clips of the
  training store that have boxes in ``data.annotations``; ``data.val_labeled`` (auto: min(500, 10%)) annotated clips
  held out for validation (never the test set; ``data.exclude`` = an id file removed from every
  part): without a separate ``--val`` store the engine's validation — and so ``best.pt`` — scores
  exactly these clips (``held_out_validation_ids``, ``validation.held_out``); the rest unlabelled.
  The chosen ids are written to ``labeled.txt``/``val.txt`` in the run directory at the first epoch;
  a resumed run must draw the same ids (checked).
- streams: ``labeled`` (strong augmentation, boxes follow geometric ops, ground-truth map; tiled
  when it holds fewer clips than one global batch) and
  ``unlabeled``. One epoch is one pass over the *first* stream: ``unlabeled`` for the methods that use
  unlabelled data (also during their warm-up epochs, where the steps draw labelled batches and the
  unlabelled stream is gated off so it loads nothing), ``labeled`` for ``supervised``. With
  ``ssl.warmup_unit: labeled`` the warm-up lasts ``warmup_epochs`` passes over the labelled stream
  instead (a step count; the stage may switch mid-epoch, and is derived from the global step, so
  resume is exact).
- unlabelled items carry two views stacked in ``image`` (B×2×3×S×S): view 0 and view 1 share one
  geometry (resize, crop, flip) and differ only photometrically (``TwoViewTransform``), so a map
  predicted on one view is a pixel-aligned label for the other. DMT: view 0 = weak (teachers), view 1 =
  strong photometric (students). XPL: view 0 → model A, view 1 → model B (independently drawn
  photometric RandAugment). Geometric RandAugment on unlabelled data would need warping the
  pseudo-labels; it is not offered.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from avslkit.data.streams import GatedDataset, RepeatedDataset, TwoViewTransform
from avslkit.errors import AvslError
from avslkit.losses.supervised import supervised_loss
from avslkit.methods.base import Task
from avslkit.methods.localizer import FeatureBank, UnitForward, build_localizer, unit_config
from avslkit.utils.console import log

__all__ = ["SemiSupervisedTask"]


class SemiSupervisedTask(Task):
    """Base of supervised / naive-ssl / hard-pl / DMT / XPL: units, split, streams, features, metrics.

    Subclasses set ``unit_names``, ``uses_unlabeled`` and implement ``compute_loss``; ``inference_units``
    names the units whose maps are averaged by ``localization_maps``.
    """

    unit_names: tuple[str, ...] = ("a",)
    unit_model: str = "method.ezvsl"  # registered network of every unit (see ``UNIT_MODELS``)
    uses_unlabeled: bool = True
    unlabeled_views: tuple[str, ...] = ("none", "randaugment")

    # -- models ---------------------------------------------------------------------------------
    def build(self) -> None:
        sample_rate = self.config.audio.sample_rate
        if not sample_rate:
            raise AvslError("audio.sample_rate is not set (it is read from the training store; pass --data STORE.h5)")
        self.features = FeatureBank(int(sample_rate), self.device)
        self.units: dict[str, nn.Module] = {}
        self.unit_features: dict[str, str] = {}
        for name in self.unit_names:
            model, spec = build_localizer(unit_config(self.cfg, name), self.unit_model)
            self.units[name] = model
            self.unit_features[name] = self.features.add(spec)
        self.forwards = {f"unit_{n}": UnitForward(m) for n, m in self.units.items()}
        first = self.units[self.unit_names[0]]
        self.score_bounds = tuple(first.map_bounds)
        ssl = self.config.ssl
        self.loss_kind = str(ssl.supervised_loss)
        self.loss_resize = str(ssl.resize)
        from avslkit.losses.supervised import SUPERVISED_LOSSES

        if self.loss_kind not in SUPERVISED_LOSSES:
            raise AvslError(f"unknown ssl.supervised_loss {self.loss_kind!r}; use one of {', '.join(SUPERVISED_LOSSES)}")
        self.map_norm = str(ssl.map_norm or SUPERVISED_LOSSES[self.loss_kind].map_norm)
        self.warmup_epochs = int(ssl.warmup_epochs or 0)  # None: the method has no warm-up
        self.split = None
        self._datasets: dict[str, Any] | None = None
        self.stage = "warmup" if self.warmup_epochs > 0 else "unbiased"
        self._epoch_stats: dict[str, list[float]] = {}
        self.build_extra()

    def build_extra(self) -> None:
        """Teachers, banks... (after the units exist)."""

    def models(self) -> dict[str, nn.Module]:
        return {f"unit_{n}": m for n, m in self.units.items()}

    def trainable_modules(self) -> dict[str, nn.Module]:
        """``unit_<n>`` → ``UnitForward`` (call ``self.ddp(name)(images, audio_input)`` in training)."""
        return self.forwards

    def inference_units(self) -> dict[str, nn.Module]:
        return self.units

    # -- data -----------------------------------------------------------------------------------
    def make_split(self) -> Any:
        """The labelled / validation / unlabelled split of the training store (``semisup.labeled``)."""
        if self.split is None:
            from avslkit.semisup.labeled import split_for_run

            self.split, self.annotations = split_for_run(self.cfg, self.method, self.uses_unlabeled, announce=self.ctx.is_main)
        return self.split

    def held_out_validation_ids(self) -> list[str]:
        """The ``data.val_labeled`` annotated clips held out of the training store (``val.txt``): the
        engine validates on exactly these (and picks ``best.pt`` by them) unless a separate validation
        store is given (``avslkit.engine.validation``)."""
        return list(self.make_split().val)

    def _boxes(self, ids: list[str]) -> dict[str, np.ndarray]:
        from avslkit.semisup.labeled import normalised_boxes

        return {cid: normalised_boxes(self.annotations[cid]) for cid in ids}

    def train_datasets(self) -> dict[str, Any]:
        from avslkit.data.dataset import AVDataset

        if self._datasets is not None:
            return self._datasets
        split = self.make_split()
        data, aug = self.config.data, self.config.augment
        size = int(self.config.image_size)
        decoder = data.decoder
        scale = float(data.int16_scale)
        labeled = AVDataset(
            data.train, ids=split.labeled, image_transform=str(aug.labeled), boxes=self._boxes(split.labeled),
            image_size=size, decoder=decoder, transform_opts=self._strong_opts(str(aug.labeled)),
            int16_scale=scale,
        )
        streams: dict[str, Any] = {}
        if self.uses_unlabeled:
            two = TwoViewTransform(size, self.unlabeled_views, int(aug.num_ops), int(aug.magnitude))
            self.unlabeled_data = GatedDataset(AVDataset(data.train, ids=split.unlabeled, image_transform=two, image_size=size,
                                                         decoder=decoder, int16_scale=scale))
            streams["unlabeled"] = self.unlabeled_data
        batch = int(self.config.batch_size)
        if 0 < len(labeled) < batch:  # fewer labels than one batch: tile them (see RepeatedDataset)
            labeled = RepeatedDataset(labeled, -(-batch // len(labeled)))
        streams["labeled"] = labeled
        self._datasets = streams
        return streams

    def _strong_opts(self, name: str) -> dict[str, Any]:
        aug = self.config.augment
        return {"num_ops": int(aug.num_ops), "magnitude": int(aug.magnitude)} if name.startswith("strong") else {}

    def quality_dataset(self) -> Any:
        """The held-out annotated clips (test transform, ground-truth maps) for the per-epoch quality
        logs (``ssl.log_val_quality``, ``ssl.val_max_samples``); None when off or empty."""
        if not self.config.ssl.log_val_quality:
            return None
        from avslkit.data.dataset import AVDataset, dataset_options

        split = self.make_split()
        ids = split.val[: int(self.config.ssl.val_max_samples or len(split.val))]
        if not ids:
            return None
        return AVDataset(self.config.data.train, ids=ids, image_transform="test", boxes=self._boxes(ids),
                         image_size=int(self.config.image_size), **dataset_options(self.config.data))

    # -- stage / epoch hooks --------------------------------------------------------------------
    def warmup_steps(self) -> int | None:
        """With ``ssl.warmup_unit: labeled``: the warm-up length in steps (``warmup_epochs`` passes over
        the labelled stream); None with ``unlabeled`` (warm-up = the first ``warmup_epochs`` epochs)."""
        unit = self.config.ssl.warmup_unit  # None: a method without a warm-up
        if unit in (None, "unlabeled") or not self.uses_unlabeled:
            return None
        if unit != "labeled":
            raise AvslError(f"unknown ssl.warmup_unit {unit!r}; use unlabeled or labeled")
        labeled = self.train_datasets()["labeled"]
        return self.warmup_epochs * max(1, len(labeled) // max(1, int(self.config.batch_size)))

    def stage_for(self, epoch: int, step: int | None = None) -> str:
        """Stage of the step `step` (global) in epoch `epoch`."""
        w = self.warmup_steps()
        if w is None:
            return "warmup" if epoch < self.warmup_epochs else "unbiased"
        return "warmup" if (step if step is not None else self.global_step) < w else "unbiased"

    def _update_stage(self, epoch: int) -> None:
        new_stage = self.stage_for(epoch, self.global_step)
        if new_stage != self.stage:
            self.enter_stage(new_stage)
        self.stage = new_stage

    def on_epoch_start(self, epoch: int, *, step: int, steps_per_epoch: int, total_steps: int,
                       run_dir: Path | None = None) -> None:
        super().on_epoch_start(epoch, step=step, steps_per_epoch=steps_per_epoch, total_steps=total_steps, run_dir=run_dir)
        if self.ctx.is_main and run_dir is not None:
            from avslkit.semisup.labeled import save_split_checked

            save_split_checked(self.make_split(), run_dir)
        self.current_epoch = epoch
        self._update_stage(epoch)
        if self.warmup_epochs > 0 and not getattr(self, "_warned_all_warmup", False):
            last = max(0, int(total_steps) - 1)
            if self.stage_for(last // max(1, int(steps_per_epoch)), last) == "warmup":
                self._warned_all_warmup = True
                log.warning("all %d steps of this run are the labelled warm-up (ssl.warmup_epochs=%d): the semi-supervised "
                            "stage never runs; raise --epochs/--max-steps or lower ssl.warmup_epochs", last + 1, self.warmup_epochs)
        if self.uses_unlabeled and self._datasets is not None:
            # load unlabelled data in every epoch that has at least one unbiased-stage step
            self.unlabeled_data.active = self.stage_for(epoch, (epoch + 1) * steps_per_epoch - 1) != "warmup"
        self._epoch_stats = {}

    def before_step(self, epoch: int, step: int) -> None:
        super().before_step(epoch, step)
        self._update_stage(epoch)  # a step-based warm-up may end mid-epoch

    def enter_stage(self, stage: str) -> None:
        """Stage transition (e.g. teachers initialised from the warmed-up students)."""

    def record(self, **values: float) -> None:
        """Accumulate per-step statistics whose epoch means go into the epoch log."""
        for k, v in values.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self._epoch_stats.setdefault(k, []).append(float(v))

    def on_epoch_end(self, epoch: int, step: int) -> dict[str, float]:
        out = {f"{k}_mean": float(np.mean(v)) for k, v in self._epoch_stats.items() if v}
        out["stage_unbiased"] = float(self.stage == "unbiased")
        return out

    # -- forward helpers ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "SemiSupervisedTask":
        for name, module in self.models().items():
            module.train(mode and name not in self.frozen_models())
        return self

    def frozen_models(self) -> set[str]:
        """Models that always run in eval mode (teachers)."""
        return set()

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).float()
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last and images.ndim == 4 else images

    def features_for(self, audio: torch.Tensor, units: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """Audio inputs of the given units (default all), each feature type computed once."""
        names = self.units if units is None else units
        computed = self.features.compute(audio, {self.unit_features[n] for n in names})
        return {n: computed[self.unit_features[n]] for n in names}

    @torch.no_grad()
    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Mean of the inference units' maps ⟨v, a⟩/τ (DMT Eq. 15 for the two teachers): B×h×w."""
        self.eval()
        images = self._images(images)
        models = self.inference_units()
        feats = self.features.compute(audio, {self._feature_of(m) for m in models})
        maps = []
        with self.autocast():
            for name, model in models.items():
                maps.append(model.pair_map(model.encode_image(images), model.encode_audio(feats[self._feature_of(name)])).float())
        return torch.stack(maps).mean(0)

    def _feature_of(self, name: str) -> str:
        """Feature key of an inference model name (unit name, or teacher_<unit>)."""
        return self.unit_features[name.split("_")[-1]]

    def labeled_terms(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, gt maps) of a labelled batch on the device."""
        return self._images(batch["image"]), batch["gt_map"].to(self.device, non_blocking=True)

    def supervised_losses(self, images: torch.Tensor, gt: torch.Tensor, audio: torch.Tensor,
                          units: Any = None) -> dict[str, torch.Tensor]:
        """H(G, P) of each unit on labelled data (warm-up stages, the supervised baseline); the audio
        inputs are computed once for all units."""
        names = list(self.units if units is None else units)
        feats = self.features_for(audio, names)
        losses = {}
        for n in names:
            v, a = self.ddp(f"unit_{n}")(images, feats[n])
            losses[n] = supervised_loss(self.units[n].pair_map(v, a), gt, self.loss_kind, self.loss_resize)
        return losses
