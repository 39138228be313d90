"""SLAVC training task: two heads per modality, visual dropout, momentum encoders (DESIGN.md §4).

Step order (the official code's): online features → momentum (EMA) update → momentum features
→ loss → backward → optimiser step. The momentum copies live in the model but outside the DDP
wrapper (only `OnlineEncoders` is wrapped); they are identical on every rank because they are
EMAs of DDP-synchronised parameters. Inference maps use the momentum features (model option
`use_momentum_eval`). With `distributed.gather_features: true` the softmax over audios (π1) and
the row classification span the global batch (see `avslkit.methods.ezvsl`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from avslkit.engine.distributed import gather_with_grad
from avslkit.losses.slavc import slavc_logits
from avslkit.methods.base import register_method
from avslkit.methods.ezvsl import AudioVisualTask


def _gather_pair(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return gather_with_grad(pair[0]), gather_with_grad(pair[1])


@register_method("slavc")
class SLAVCTask(AudioVisualTask):
    """SLAVC: CE_rows(ℓ(v, â)) + CE_rows(ℓ(v̂, a)) with EMA targets."""

    online_parts = ("visual", "audio", "img_dropout", "aud_dropout", "img_proj1", "img_proj2", "aud_proj1", "aud_proj2")

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = self._images(batch["image"])
        spec = self.audio_features(batch["audio"])
        v, a = self.ddp("online")(images, spec)
        self.model.momentum_update()  # before the targets are computed
        with torch.no_grad():
            v_m = self.model.encode_image(images, "momentum")
            a_m = self.model.encode_audio(spec, "momentum")
        if self.gather_features and self.ctx.distributed:
            a_m_all, a_all = _gather_pair(a_m), _gather_pair(a)
            img_to_aud = slavc_logits(v[0], v[1], a_m_all[0], a_m_all[1], self.tau)
            aud_to_img = slavc_logits(v_m[0], v_m[1], a_all[0], a_all[1], self.tau)
            labels = self._labels(img_to_aud.shape[0])
        else:
            img_to_aud = slavc_logits(v[0], v[1], a_m[0], a_m[1], self.tau)
            aud_to_img = slavc_logits(v_m[0], v_m[1], a[0], a[1], self.tau)
            labels = torch.arange(img_to_aud.shape[0], device=img_to_aud.device)
        loss_v = F.cross_entropy(img_to_aud, labels)
        loss_a = F.cross_entropy(aud_to_img, labels)
        return loss_v + loss_a, {"loss_online_img": loss_v.detach(), "loss_online_aud": loss_a.detach()}
