"""Cross Pseudo-Labeling (XPL, ICASSP 2024; DESIGN.md §4) as a training task: ``avslkit train xpl``.

Two localisers A, B (``units.a``/``units.b``; audio VGGish and SoundNet-8 by default). Both are first
trained on the labelled clips for ``ssl.warmup_epochs`` (H(G, P) only). Then, per step:

- each model sees labelled clips (strong augmentation) and the unlabelled batch; on unlabelled data
  A gets view 0 and B view 1 — the same crop with independently drawn photometric RandAugment, so
  their maps are pixel-aligned (``avslkit.methods.semisupervised``);
- the maps the models predict in that very forward (detached, train mode: nothing is run twice) feed
  ``avslkit.semisup.xpl.xpl_cross_targets``: Pearson correlation r between the two maps per sample;
  keep the ``fraction`` most correlated of the batch (the global batch under DDP), the fraction
  ramping from ``ssl.start_fraction`` to ``ssl.end_fraction`` over ``ssl.ramp_epochs`` stage-2 epochs
  (``ssl.ramp``: linear), and reject r < ``ssl.floor``; sharpen Ŷ = sigmoid((P − 0.5)/T)
  (``ssl.temperature``); PL-EMA per-sample banks Y ← αY + (1 − α)Ŷ (``ssl.bank_alpha`` 0.7,
  ``ssl.bank_dtype``); every visited sample's bank entry is updated, selected or not;
- loss = Σ_models [H(G, P) on labelled + ``ssl.cross_weight`` × pixel-wise CE of A's map against B's
  bank label (and B's against A's) on the kept samples + ``ssl.contrastive_weight`` (0.5) × the
  max-pooled InfoNCE (EZ-VSL) over the model's whole batch].

The banks (one per model, indexed by position in the unlabelled set) are part of the checkpoint
(``extra_state``), so a resumed run continues exactly. Inference (``ssl.inference``): ``both`` (mean of
the two maps, default), ``a`` or ``b``. Logged per epoch: ``xpl_kept_mean``, ``xpl_corr_mean``,
``fraction`` and the held-out clips' ``val_pl_iou``/``val_pl_kept`` (pseudo-label P ≥ 0.5 of the
partner model, i.e. sharpened label ≥ 0.5, for the clips the selection keeps) and ``val_loc_acc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.losses.attention import gmp_contrastive_loss
from avslkit.losses.supervised import supervised_loss
from avslkit.methods.base import register_method
from avslkit.methods.semisupervised import SemiSupervisedTask
from avslkit.semisup.maps import to_unit_maps
from avslkit.semisup.xpl import PseudoLabelBank, pearson_correlation, ramp_fraction, select_by_correlation, xpl_cross_targets

INFERENCE = ("both", "a", "b")


def _gather(ctx: Any, t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` over DDP ranks (rank order); identity when not distributed."""
    if not ctx.distributed:
        return t
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


@register_method("xpl")
class XPLTask(SemiSupervisedTask):
    """Cross Pseudo-Labeling: curriculum selection, sharpened PL-EMA labels, cross-refinement."""

    unit_names = ("a", "b")
    unlabeled_views = ("randaugment", "randaugment")

    def build_extra(self) -> None:
        ssl, aug = self.config.ssl, self.config.augment
        self.unlabeled_views = (str(aug.view_a), str(aug.view_b))
        self.start_fraction, self.end_fraction = float(ssl.start_fraction), float(ssl.end_fraction)
        self.ramp_epochs, self.ramp = float(ssl.ramp_epochs), str(ssl.ramp)
        self.floor = None if ssl.floor is None else float(ssl.floor)
        self.temperature = float(ssl.temperature)
        self.bank_alpha, self.bank_dtype = float(ssl.bank_alpha), str(ssl.bank_dtype)
        self.cross_weight = float(ssl.cross_weight)
        self.contrastive_weight = float(ssl.contrastive_weight)
        self.cross_loss = str(ssl.cross_loss)
        self.inference = str(ssl.inference)
        if self.inference not in INFERENCE:
            raise AvslError(f"unknown ssl.inference {self.inference!r}; use one of {', '.join(INFERENCE)}")
        ramp_fraction(0, self.start_fraction, self.end_fraction, self.ramp_epochs, self.ramp)  # validate early
        self.banks: dict[str, PseudoLabelBank] | None = None
        self.epoch, self.steps_per_epoch = 0, 1

    def inference_units(self) -> dict[str, nn.Module]:
        return dict(self.units) if self.inference == "both" else {self.inference: self.units[self.inference]}

    @property
    def fraction(self) -> float:
        """Kept fraction now: stage-2 epochs elapsed = epoch − warmup_epochs, or with a step-based
        warm-up (``ssl.warmup_unit: labeled``) the fractional epochs since the warm-up's last step."""
        w = self.warmup_steps() if self._datasets is not None else None
        elapsed = self.epoch - self.warmup_epochs if w is None else (self.global_step - w) / max(1, self.steps_per_epoch)
        return ramp_fraction(elapsed, self.start_fraction, self.end_fraction, self.ramp_epochs, self.ramp)

    def on_epoch_start(self, epoch: int, *, step: int, steps_per_epoch: int, total_steps: int,
                       run_dir: Path | None = None) -> None:
        self.epoch = epoch
        self.steps_per_epoch = steps_per_epoch
        super().on_epoch_start(epoch, step=step, steps_per_epoch=steps_per_epoch, total_steps=total_steps, run_dir=run_dir)

    def on_epoch_end(self, epoch: int, step: int) -> dict[str, float]:
        out = super().on_epoch_end(epoch, step)
        if self.stage == "unbiased":
            out["fraction"] = self.fraction
        return out

    # -- memory banks -----------------------------------------------------------------------------
    def _make_banks(self, map_size: tuple[int, int]) -> dict[str, PseudoLabelBank]:
        n = len(self.make_split().unlabeled)
        return {u: PseudoLabelBank(n, map_size, self.bank_alpha, self.bank_dtype, self.device) for u in self.units}

    def extra_state(self) -> dict[str, Any]:
        return {"stage": self.stage, "banks": None if self.banks is None else {u: b.state_dict() for u, b in self.banks.items()}}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.stage = str(state.get("stage", self.stage))
        banks = state.get("banks")
        if banks:
            self.banks = self._make_banks(tuple(banks["a"]["labels"].shape[1:]))
            for u, b in self.banks.items():
                b.load_state_dict(banks[u])

    # -- quality on held-out clips ---------------------------------------------------------------
    def pseudo_labels_for_quality(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        images = self._images(batch["image"])
        feats = self.features_for(batch["audio"])
        maps = {}
        with torch.no_grad():
            for u, m in self.units.items():
                maps[u] = to_unit_maps(m.pair_map(m.encode_image(images), m.encode_audio(feats[u])).float(), self.map_norm)
        keep = select_by_correlation(pearson_correlation(maps["a"], maps["b"]), self.fraction, self.floor)
        return maps["b"] >= 0.5, keep  # the label A learns from (sharpened ≥ 0.5 ⇔ P ≥ 0.5)

    # -- step -------------------------------------------------------------------------------------
    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        lab = batch["labeled"]
        images, gt = self.labeled_terms(lab)
        n = images.shape[0]
        terms: dict[str, torch.Tensor] = {}
        total = images.new_zeros(())
        if self.stage == "warmup":
            losses = self.supervised_losses(images, gt, lab["audio"])
            return sum(losses.values()), {f"loss_sup_{u}": h.detach() for u, h in losses.items()}

        unl = batch["unlabeled"]
        views = self._images(unl["image"])
        feats = self.features_for(torch.cat([lab["audio"], unl["audio"]]))
        out = {}
        for k, u in enumerate(self.units):
            model = self.ddp(f"unit_{u}")
            v, a = model(torch.cat([images, self._images(views[:, k])]), feats[u])
            out[u] = (v, a, self.units[u].pair_map(v, a))
        maps_a, maps_b = out["a"][2][n:].detach().float(), out["b"][2][n:].detach().float()
        if self.banks is None:
            self.banks = self._make_banks(tuple(maps_a.shape[-2:]))
        indices = unl["index"].to(self.device)
        local = maps_a.shape[0]
        targets = xpl_cross_targets(
            _gather(self.ctx, maps_a), _gather(self.ctx, maps_b), _gather(self.ctx, indices), self.banks["a"], self.banks["b"],
            self.fraction, self.floor, self.temperature, self.map_norm,
        )
        start = self.ctx.rank * local if self.ctx.distributed else 0
        keep = targets.keep[start:start + local]
        cross_targets = {"a": targets.target_for_a[start:start + local], "b": targets.target_for_b[start:start + local]}
        log = targets.log_dict()
        self.record(**log)
        for u, (v, a, maps) in out.items():
            h = supervised_loss(maps[:n], gt, self.loss_kind, self.loss_resize)
            cross = supervised_loss(maps[n:], cross_targets[u], self.cross_loss, self.loss_resize, mask=keep)
            con, _ = gmp_contrastive_loss(v, a, tau=float(self.units[u].tau))
            terms[f"loss_sup_{u}"], terms[f"loss_cross_{u}"], terms[f"loss_con_{u}"] = h.detach(), cross.detach(), con.detach()
            total = total + h + self.cross_weight * cross + self.contrastive_weight * con
        terms.update({k: torch.tensor(v) for k, v in log.items()})
        return total, terms
