"""EZ-VSL training task (and the shared machinery of the audio-visual contrastive tasks).

The audio input is computed on the device, batched, from the stored waveforms with
`avslkit.data.audio.build_audio_feature` (EZ-VSL/SLAVC: the scipy-exact log spectrogram).

Negatives and DDP: the contrastive losses classify each image's own audio among a batch of audios.
By default (`distributed.gather_features: false`, as the reference code) the batch is the
*per-device* batch (global batch / world size), so each sample sees per-device-batch − 1
negatives. With `gather_features: true` the audio (and image) features of all ranks are
all-gathered with gradient, so every sample is classified against the whole *global* batch,
which reproduces single-GPU training at the same global batch size.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from avslkit.engine.distributed import gather_with_grad, rank_offset
from avslkit.errors import AvslError
from avslkit.losses.ezvsl import ezvsl_loss_terms
from avslkit.methods.base import Task, register_method


class OnlineEncoders(nn.Module):
    """The trainable parts of a method model, as one module DDP can wrap.

    Registers only the online sub-modules (so momentum copies stay outside DDP) and runs the
    model's own `encode_image`/`encode_audio`, which use those very parameters.
    """

    def __init__(self, model: nn.Module, parts: tuple[str, ...]):
        super().__init__()
        object.__setattr__(self, "_model", model)  # not a registered child: keeps momentum copies out
        for part in parts:
            self.add_module(part, getattr(model, part))

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> tuple[Any, Any]:
        return self._model.encode_image(image), self._model.encode_audio(audio)


class AudioVisualTask(Task):
    """A task over one registered method model with `encode_image`/`encode_audio`/`localize`."""

    online_parts: tuple[str, ...] = ()

    def build(self) -> None:
        from avslkit.data.audio import build_audio_feature
        from avslkit.models.registry import build_model

        model_options = {k: v for k, v in self.config.model.raw.items() if k != "name"}
        self.model = build_model(self.config.model.name or self.method, namespace="method", **model_options)
        audio = self.config.audio
        sample_rate = audio.sample_rate
        if not sample_rate:
            raise AvslError("audio.sample_rate is not set (it is read from the training store; pass --data STORE.h5)")
        self.featurizer = build_audio_feature(str(audio.feature), int(sample_rate), **dict(audio.options or {}))
        self.featurizer.to(self.device)
        self.online = OnlineEncoders(self.model, self.online_parts)
        self.tau = float(self.model.tau)
        self.score_bounds = tuple(self.model.map_bounds)
        self.gather_features = bool(self.config.distributed.gather_features)

    def models(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"online": self.online}

    @torch.no_grad()
    def audio_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms (B×L) → the model's audio input on the device; other shapes pass through."""
        audio = audio.to(self.device, non_blocking=True)
        if audio.dim() <= 2:  # float64 waveforms (data.int16_scale 32767) stay float64 for a float64 feature
            return self.featurizer(audio if audio.dtype == torch.float64 else audio.float())
        return audio

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).float()
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @torch.no_grad()
    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Absolute maps ⟨v_i(p), a_i⟩/τ (range `score_bounds`) for pairs (images[i], audio[i]): B×h×w."""
        self.eval()
        with self.autocast():
            maps = self.model.localize(self._images(images), self.audio_features(audio))
        return maps.float()

    def _labels(self, local: int) -> torch.Tensor:
        return torch.arange(local, device=self.device) + rank_offset(local)


@register_method("ezvsl")
class EZVSLTask(AudioVisualTask):
    """EZ-VSL: multiple-instance contrastive loss (max over cells), rows + columns CE."""

    online_parts = ("visual", "audio", "img_proj", "aud_proj")

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        spec = self.audio_features(batch["audio"])
        v, a = self.ddp("online")(self._images(batch["image"]), spec)
        if self.gather_features and self.ctx.distributed:  # negatives span the global batch
            loss_rows, loss_cols = ezvsl_loss_terms(v, a, self.tau, v_all=gather_with_grad(v), a_all=gather_with_grad(a),
                                                    labels=self._labels(v.shape[0]))
        else:
            loss_rows, loss_cols = ezvsl_loss_terms(v, a, self.tau)
        loss = loss_rows + loss_cols
        return loss, {"loss_img2aud": loss_rows.detach(), "loss_aud2img": loss_cols.detach()}
