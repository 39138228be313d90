"""Baselines of the semi-supervised papers, on the same engine, data split and localiser unit.

- ``supervised``: one localiser trained with H(G, P) on the labelled clips only (an epoch is one
  pass over the labelled set).
- ``naive-ssl`` (XPL's "Attention10k-SSL"): H on labelled batches + ``ssl.contrastive_weight`` × the
  contrastive loss (``ssl.contrastive``: gmp = EZ-VSL max pooling, default; attention = DMT Eq. 12)
  on the unlabelled batches (one epoch = one pass over the unlabelled set).
- ``hard-pl`` (XPL's "vanilla hard pseudo-labels"): one model; after ``ssl.warmup_epochs`` on
  labelled data it labels each unlabelled batch itself: its map on the weak view (eval mode, no
  gradient) → 1[P ≥ ``ssl.delta``] → target of H on the strong (photometric) view of the same crop,
  samples with an empty label skipped; loss = H(labelled) + ``ssl.pseudo_weight`` × H(pseudo).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from avslkit.losses.attention import CONTRASTIVE_LOSSES
from avslkit.losses.supervised import supervised_loss
from avslkit.methods.base import register_method
from avslkit.methods.semisupervised import SemiSupervisedTask
from avslkit.config_spec import TrainConfig
from avslkit.errors import AvslError


def contrastive_fn(config: TrainConfig, default: str) -> Any:
    """The ``ssl.contrastive`` loss; `default` for a method whose YAML does not define the key."""
    name = str(config.ssl.contrastive or default)
    try:
        return CONTRASTIVE_LOSSES[name]
    except KeyError:
        raise AvslError(f"unknown ssl.contrastive {name!r}; use one of {', '.join(CONTRASTIVE_LOSSES)}") from None


@register_method("supervised")
class SupervisedTask(SemiSupervisedTask):
    """H(G, P) on the labelled clips only."""

    uses_unlabeled = False

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = batch.get("labeled", batch)
        images, gt = self.labeled_terms(batch)
        loss = self.supervised_losses(images, gt, batch["audio"], ["a"])["a"]
        return loss, {"loss_sup": loss.detach()}


@register_method("naive-ssl")
class NaiveSSLTask(SemiSupervisedTask):
    """H on labelled batches + λ × contrastive loss on unlabelled batches."""

    unlabeled_views = ("randaugment",)  # one photometric strong view per unlabelled clip

    def build_extra(self) -> None:
        self.contrastive = contrastive_fn(self.config, "gmp")
        self.contrastive_weight = float(self.config.ssl.contrastive_weight)

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        lab, unl = batch["labeled"], batch["unlabeled"]
        images, gt = self.labeled_terms(lab)
        n = images.shape[0]
        both = torch.cat([images, self._images(unl["image"][:, 0])])
        feats = self.features_for(torch.cat([lab["audio"], unl["audio"]]))
        model, unit = self.ddp("unit_a"), self.units["a"]
        v, a = model(both, feats["a"])
        loss_sup = supervised_loss(unit.pair_map(v[:n], a[:n]), gt, self.loss_kind, self.loss_resize)
        loss_con, _ = self.contrastive(v[n:], a[n:], tau=float(unit.tau))
        loss = loss_sup + self.contrastive_weight * loss_con
        return loss, {"loss_sup": loss_sup.detach(), "loss_con": loss_con.detach()}


@register_method("hard-pl")
class HardPLTask(SemiSupervisedTask):
    """One model, thresholded self pseudo-labels after a labelled warm-up."""

    def build_extra(self) -> None:
        self.delta = float(self.config.ssl.delta)
        self.pseudo_weight = float(self.config.ssl.pseudo_weight)

    @torch.no_grad()
    def self_labels(self, images: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        from avslkit.semisup.dmt import binarize
        from avslkit.semisup.maps import to_unit_maps

        unit = self.units["a"]
        was = unit.training
        unit.eval()
        try:
            maps = unit.pair_map(unit.encode_image(images), unit.encode_audio(feats))
        finally:
            unit.train(was)
        return binarize(to_unit_maps(maps.float(), self.map_norm), self.delta).float()

    def pseudo_labels_for_quality(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features_for(batch["audio"])
        labels = self.self_labels(self._images(batch["image"]), feats["a"])
        return labels, labels.flatten(1).any(1)

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        lab = batch["labeled"]
        images, gt = self.labeled_terms(lab)
        model, unit = self.ddp("unit_a"), self.units["a"]
        if self.stage == "warmup":
            loss = self.supervised_losses(images, gt, lab["audio"], ["a"])["a"]
            return loss, {"loss_sup": loss.detach()}
        unl = batch["unlabeled"]
        n = images.shape[0]
        feats = self.features_for(torch.cat([lab["audio"], unl["audio"]]))["a"]
        views = self._images(unl["image"])
        labels = self.self_labels(self._images(views[:, 0]), feats[n:])
        keep = labels.flatten(1).any(1)
        v, a = model(torch.cat([images, self._images(views[:, 1])]), feats)
        maps = unit.pair_map(v, a)
        loss_sup = supervised_loss(maps[:n], gt, self.loss_kind, self.loss_resize)
        loss_pl = supervised_loss(maps[n:], labels, self.loss_kind, self.loss_resize, mask=keep)
        kept = keep.float().mean()
        self.record(pl_kept=float(kept))
        loss = loss_sup + self.pseudo_weight * loss_pl
        return loss, {"loss_sup": loss_sup.detach(), "loss_pl": loss_pl.detach(), "pl_kept": kept}
