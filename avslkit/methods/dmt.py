"""Dual Mean-Teacher (Guo et al., NeurIPS 2023) as a training task: ``avslkit train dmt``.

Two teacher–student pairs A, B (``units.a`` / ``units.b``: ResNet-18 visual encoder, audio backbone
VGGish for A and SoundNet-8 for B by default, audio head g(·)). Stages (one epoch = one pass over
the unlabelled set, see ``avslkit.methods.semisupervised``):

1. **Warm-up** (``ssl.warmup_epochs``, 6; counted in passes over the unlabelled set by default, or over
   the labelled set with ``ssl.warmup_unit: labeled``, which may end mid-epoch): the students are trained with H(G, P) on labelled batches
   (strong augmentation); at the end the teachers are set to copies of them — i.e. the teachers are
   the warmed-up networks and the students start the unbiased stage from the same weights.
2. **Unbiased stage**: per step, the teachers (eval mode, ``torch.no_grad``, frozen parameters) map
   the weak view of the unlabelled batch; ``avslkit.semisup.dmt.dmt_pseudo_labels`` binarises at
   δ (``ssl.delta``), keeps samples with IoU(M^A, M^B) ≥ τ (``ssl.tau``) and labels them with M^A·M^B
   (IPL). Each student sees labelled ∪ kept samples on the strong view of the same crop
   (photometric-only RandAugment, so the labels stay aligned), loss
   H = mean over labelled and kept samples of H(G, P), plus ``ssl.contrastive_weight`` (λ_u = 1) × the
   attention-pooled contrastive loss (Eq. 12) over the student's whole batch (labelled + unlabelled
   pairs). After each optimiser step the teachers follow the students by EMA (β = ``ssl.ema``).

Inference (``ssl.inference``): ``teachers`` = mean of the two teachers' maps (Eq. 15, default),
``teacher_a``, ``students`` or ``student_a``.

Ablations (DMT Tables 5, 15) as config switches: ``ssl.single_teacher`` (one pair A; label = M^A,
samples with an empty map skipped), ``ssl.filter: false`` (no Noise Filtering), ``ssl.pseudo_label``
(``intersection`` = IPL; ``own`` = each student learns its own teacher's map (no IPL); ``union``,
``teacher_a``, ``teacher_b``), ``ssl.use_ema: false`` (teachers stay the warmed-up networks),
same backbone (``units.b.audio: vggish``), same augmentation (``augment.student: none``: students see
the weak view too), ``ssl.labels_in_stage2: false`` (students see only pseudo-labelled data).
``ssl.student`` (the pipeline each unit runs, Table 4): ``localizer`` (default: attention contrastive),
``ezvsl`` (the EZ-VSL pipeline: max-pooled contrastive loss and the linear audio head) or ``slavc``
(the SLAVC pipeline: each unit is the SLAVC network, ``avslkit.models.slavc.SLAVC`` — two heads per
modality, visual dropout ``model.dropout_img``, momentum encoders ``model.momentum`` — and its
unsupervised term is SLAVC's own loss with its momentum targets (``SLAVC.loss``) instead of Eq. 12;
the students' momentum encoders are updated once per step in both stages, as in SLAVC). With every
student, the supervised term is H on the unit's map (``pair_map``: for SLAVC the mean of the two heads'
online maps) and teachers, EMA, Noise Filtering and IPL are unchanged; teachers (and inference) map
with their own online encoders (a teacher is already an EMA; its momentum copies are carried along).

Logged per epoch (``task_*`` in the epoch records): ``pl_kept_mean`` (fraction of unlabelled samples
kept), ``pl_iou_mean`` (mean IoU between the teachers), ``val_pl_iou`` (IoU with ground truth of the
pseudo-labels the teachers make on the held-out labelled clips — Fig. 5), ``val_pl_kept`` and the
held-out ``val_loc_acc``/``val_ciou_mean`` of the inference maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from avslkit.config_spec import train_config
from avslkit.errors import AvslError
from avslkit.losses.attention import CONTRASTIVE_LOSSES
from avslkit.losses.supervised import supervised_loss
from avslkit.methods.base import register_method
from avslkit.methods.semisupervised import SemiSupervisedTask
from avslkit.semisup.dmt import PSEUDO_LABEL_RULES, dmt_pseudo_labels
from avslkit.semisup.ema import ema_update_, make_teacher

INFERENCE = ("teachers", "teacher_a", "students", "student_a")
SLAVC_LOSS = "slavc"  # StudentUnit.unsupervised: the SLAVC model's own loss (online vs momentum features)


@dataclass(frozen=True)
class StudentUnit:
    """One ``ssl.student`` choice: its unsupervised loss (a key of ``CONTRASTIVE_LOSSES``, or
    ``SLAVC_LOSS``), its audio head (None = ``model.audio_head``) and its registered network."""

    unsupervised: str
    audio_head: str | None = None
    model: str = "method.ezvsl"


STUDENTS = {
    "localizer": StudentUnit("attention"),
    "ezvsl": StudentUnit("gmp", "linear"),
    "slavc": StudentUnit(SLAVC_LOSS, "linear", "method.slavc"),
}


@register_method("dmt")
class DMTTask(SemiSupervisedTask):
    """Dual Mean-Teacher: warm-up, then EMA teachers' filtered intersection pseudo-labels."""

    def build(self) -> None:
        ssl = self.config.ssl
        self.unit_names = ("a",) if ssl.single_teacher else ("a", "b")
        student = str(ssl.student)
        if student not in STUDENTS:
            raise AvslError(f"unknown ssl.student {student!r}; use one of {', '.join(STUDENTS)}")
        self.student = STUDENTS[student]
        if self.student.audio_head is not None:
            self.cfg = {**self.cfg, "model": {**dict(self.cfg["model"]), "audio_head": self.student.audio_head}}
            self.config = train_config(self.cfg)
        self.unit_model = self.student.model
        aug = self.config.augment
        self.unlabeled_views = (str(aug.teacher), str(aug.student))
        unsupervised = self.student.unsupervised
        self.contrastive = None if unsupervised == SLAVC_LOSS else CONTRASTIVE_LOSSES[unsupervised]
        self.contrastive_kwargs = (
            {"attention_audio": str(ssl.attention_audio), "attention_temperature": float(ssl.attention_temperature)}
            if unsupervised == "attention" else {}
        )
        super().build()

    def build_extra(self) -> None:
        ssl = self.config.ssl
        self.teachers: dict[str, nn.Module] = {n: make_teacher(m) for n, m in self.units.items()}
        for t in self.teachers.values():
            t.eval()
        self.delta, self.tau_iou = float(ssl.delta), float(ssl.tau)
        self.use_filter = bool(ssl.filter)
        self.rule = str(ssl.pseudo_label)
        if self.rule != "own" and self.rule not in PSEUDO_LABEL_RULES:
            raise AvslError(f"unknown ssl.pseudo_label {self.rule!r}; use own or one of {', '.join(PSEUDO_LABEL_RULES)}")
        self.beta = float(ssl.ema) if ssl.use_ema else 1.0
        self.lambda_u = float(ssl.contrastive_weight)
        self.labels_in_stage2 = bool(ssl.labels_in_stage2)
        self.pl_size = ssl.pseudo_label_size
        self.inference = str(ssl.inference)
        if self.inference not in INFERENCE:
            raise AvslError(f"unknown ssl.inference {self.inference!r}; use one of {', '.join(INFERENCE)}")

    def models(self) -> dict[str, nn.Module]:
        return {**{f"unit_{n}": m for n, m in self.units.items()}, **{f"teacher_{n}": t for n, t in self.teachers.items()}}

    def frozen_models(self) -> set[str]:
        return {f"teacher_{n}" for n in self.teachers}

    def inference_units(self) -> dict[str, nn.Module]:
        """Keys end in the unit name ("teacher_a", "a"): the feature type is looked up from it."""
        if self.inference == "teachers":
            return {f"teacher_{n}": t for n, t in self.teachers.items()}
        if self.inference == "teacher_a":
            return {"teacher_a": self.teachers["a"]}
        if self.inference == "students":
            return dict(self.units)
        return {"a": self.units["a"]}

    def may_be_best(self) -> bool:
        # During the warm-up the teachers are still the initial networks (they copy the students when
        # the unbiased stage starts): their validation scores must not choose best.pt.
        return self.stage == "unbiased" or self.inference in ("students", "student_a")

    # -- stages -----------------------------------------------------------------------------------
    @torch.no_grad()
    def enter_stage(self, stage: str) -> None:
        if stage == "unbiased":
            for n, teacher in self.teachers.items():
                ema_update_(teacher, self.units[n], 0.0)  # teachers := the warmed-up networks

    def extra_state(self) -> dict[str, Any]:
        return {"stage": self.stage}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.stage = str(state.get("stage", self.stage))

    def after_optimizer_step(self) -> None:
        if self.stage == "unbiased" and self.beta < 1.0:
            for n, teacher in self.teachers.items():
                ema_update_(teacher, self.units[n], self.beta)

    # -- pseudo-labels ----------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_maps(self, images: torch.Tensor, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for n, t in self.teachers.items():
            t.eval()
            out[n] = t.pair_map(t.encode_image(images), t.encode_audio(feats[n])).float()
        return out

    def pseudo_labels(self, maps: Mapping[str, torch.Tensor]) -> Any:
        rule = "teacher_a" if self.rule == "own" else self.rule
        return dmt_pseudo_labels(maps["a"], maps.get("b"), self.delta, self.tau_iou, self.map_norm,
                                 size=self.pl_size, use_filter=self.use_filter, label=rule)

    def labels_for(self, pl: Any, unit: str) -> torch.Tensor:
        if self.rule == "own" and unit == "b" and pl.masks_b is not None:
            return pl.masks_b.float()
        return pl.labels

    def pseudo_labels_for_quality(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features_for(batch["audio"])
        pl = self.pseudo_labels(self.teacher_maps(self._images(batch["image"]), feats))
        return pl.labels, pl.keep

    # -- step -------------------------------------------------------------------------------------
    @torch.no_grad()
    def update_student_momentum(self) -> None:
        """SLAVC students: θ̂ ← m·θ̂ + (1 − m)·θ of their momentum encoders, once per step (both stages).

        Called before any feature of the step is computed, which equals SLAVC's order (online
        features, update, momentum features): the online parameters do not change within a step."""
        if self.student.unsupervised == SLAVC_LOSS:
            for unit in self.units.values():
                unit.momentum_update()

    def unsupervised_loss(self, unit: nn.Module, v: Any, a: Any, images: torch.Tensor, audio_input: torch.Tensor) -> torch.Tensor:
        """The student pipeline's own loss on the whole student batch: Eq. 12 / EZ-VSL's, or SLAVC's
        ``SLAVC.loss`` (online features against the momentum encoders' targets, no gradient to them)."""
        if self.contrastive is None:
            with torch.no_grad():
                v_m, a_m = unit.encode_image(images, "momentum"), unit.encode_audio(audio_input, "momentum")
            return unit.loss(v, a, v_m, a_m)[0]
        return self.contrastive(v, a, tau=float(unit.tau), **self.contrastive_kwargs)[0]

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        lab = batch["labeled"]
        images, gt = self.labeled_terms(lab)
        n_lab = images.shape[0]
        terms: dict[str, torch.Tensor] = {}
        self.update_student_momentum()
        if self.stage == "warmup":
            losses = self.supervised_losses(images, gt, lab["audio"])
            return sum(losses.values()), {f"loss_sup_{n}": h.detach() for n, h in losses.items()}

        unl = batch["unlabeled"]
        views = self._images(unl["image"])
        use_lab = self.labels_in_stage2
        audio = torch.cat([lab["audio"], unl["audio"]]) if use_lab else unl["audio"]
        feats = self.features_for(audio)  # one feature computation per audio input type
        off = n_lab if use_lab else 0
        pl = self.pseudo_labels(self.teacher_maps(self._images(views[:, 0]), {n: f[off:] for n, f in feats.items()}))
        self.record(pl_kept=pl.kept_fraction, pl_iou=pl.mean_iou)
        student_images = torch.cat([images, self._images(views[:, -1])]) if use_lab else self._images(views[:, -1])
        total = images.new_zeros(())
        for n in self.units:
            model, unit = self.ddp(f"unit_{n}"), self.units[n]
            v, a = model(student_images, feats[n])
            maps = unit.pair_map(v, a)
            per_pl = supervised_loss(maps[off:], self.labels_for(pl, n), self.loss_kind, self.loss_resize, mask=pl.keep, reduction="none")
            count = pl.keep.sum()
            h_sum = per_pl.sum()
            if use_lab:
                per_lab = supervised_loss(maps[:off], gt, self.loss_kind, self.loss_resize, reduction="none")
                h_sum, count = h_sum + per_lab.sum(), count + n_lab
            h = h_sum / count.clamp_min(1)
            con = self.unsupervised_loss(unit, v, a, student_images, feats[n])
            terms[f"loss_sup_{n}"], terms[f"loss_con_{n}"] = h.detach(), con.detach()
            total = total + h + self.lambda_u * con
        terms["pl_kept"] = torch.tensor(pl.kept_fraction)
        if pl.masks_b is not None:
            terms["pl_iou"] = torch.tensor(pl.mean_iou)
        return total, terms
