"""VGGish (Hershey et al. 2017) as in the widely used PyTorch port (harritaylor/torchvggish).

Same module layout and state-dict keys as that port, so its published ``vggish-10086976.pth`` loads
as is: ``features.{0,3,6,8,11,13}.{weight,bias}`` (3×3 convs 1→64→128→256→256→512→512 with ReLU,
2×2 max pools after 64, 128, the second 256 and the second 512) and
``embeddings.{0,2,4}.{weight,bias}`` (Linear(512·4·6, 4096)-ReLU-Linear(4096, 4096)-ReLU-
Linear(4096, 128)-ReLU). The port's PCA post-processor (``pproc.*``) is not part of the backbone;
such keys are ignored when loading.

Input: B×N×96×64 log-mel examples (N non-overlapping 0.96 s examples; 3 s → N = 3), or B×N×1×96×64.
Output: per-example 128-d embeddings pooled over the N examples (`pool`: "mean" default | "max")
→ B×128; with ``return_features=True`` the conv feature map B×N×512×6×4 instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.models.registry import register_model
from avslkit.models.weights import load_into, read_state_dict

VGGISH_CONV_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
EXAMPLE_FRAMES, MEL_BANDS = 96, 64
POOLS = ("mean", "max")


def make_vggish_features() -> nn.Sequential:
    """The VGG-like conv stack of VGGish, layer indices identical to torchvggish's ``make_layers``."""
    layers: list[nn.Module] = []
    in_channels = 1
    for v in VGGISH_CONV_CONFIG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(v)
    return nn.Sequential(*layers)


@register_model("audio.vggish")
class VGGish(nn.Module):
    """VGGish audio backbone; `weights` is a torchvggish-format state dict path or None (random init)."""

    out_dim = 128

    def __init__(self, weights: str | Path | None = None, pool: str = "mean", return_features: bool = False) -> None:
        super().__init__()
        if pool not in POOLS:
            raise AvslError(f"VGGish pool must be one of {POOLS}, got {pool!r}")
        self.pool, self.return_features = pool, return_features
        self.features = make_vggish_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 128),
            nn.ReLU(True),
        )
        self.pretrained = weights not in (None, "none")
        if self.pretrained:
            self.load_port_state_dict(read_state_dict(weights), source=str(weights))

    def load_port_state_dict(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load torchvggish weights, ignoring its PCA post-processor parameters."""
        load_into(self, {k: v for k, v in state.items() if not k.startswith("pproc.")}, source)

    def embed_examples(self, examples: torch.Tensor) -> torch.Tensor:
        """E×1×96×64 (or E×96×64) examples → E×128 embeddings, exactly the port's ``VGG.forward``."""
        if examples.ndim == 3:
            examples = examples.unsqueeze(1)
        x = self.features(examples)
        # NCHW → NHWC before flattening: the TF model's flatten order, which the port keeps.
        x = x.permute(0, 2, 3, 1).contiguous().flatten(1)
        return self.embeddings(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:
            x = x.squeeze(2)
        if x.ndim != 4 or tuple(x.shape[-2:]) != (EXAMPLE_FRAMES, MEL_BANDS):
            raise AvslError(f"VGGish expects B×N×96×64 log-mel examples, got shape {tuple(x.shape)}")
        b, n = x.shape[:2]
        flat = x.reshape(b * n, 1, EXAMPLE_FRAMES, MEL_BANDS)
        if self.return_features:
            fmap = self.features(flat)
            return fmap.reshape(b, n, *fmap.shape[1:])
        emb = self.embed_examples(flat).reshape(b, n, -1)
        return emb.mean(1) if self.pool == "mean" else emb.amax(1)
