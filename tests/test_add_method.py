"""The "add a method" recipe of docs/architecture.md, followed once: a toy method registered from
this file (no file of the package touched) trains 2 steps through the app layer and the engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store  # noqa: E402

from avslkit.config import load_config  # noqa: E402
from avslkit.engine.checkpoint import load_checkpoint  # noqa: E402
from avslkit.engine.logging import read_log  # noqa: E402
from avslkit.methods.base import Task, get_method, register_method  # noqa: E402
from avslkit.training import run_training  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToyNet(nn.Module):
    """Image → 4×h×w features, audio → 4 features; the map is their dot product."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Conv2d(3, 4, 8, stride=8)
        self.audio = nn.Linear(16, 4)

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        a = self.audio(audio[:, : audio.shape[1] // 16 * 16].reshape(len(audio), 16, -1).abs().mean(-1))
        return torch.einsum("bchw,bc->bhw", self.image(images), a)


@register_method("_toy-recipe")
class ToyTask(Task):
    """Step 1 of the recipe: the five methods a Task implements."""

    def build(self) -> None:
        self.net = ToyNet()

    def models(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def compute_loss(self, batch):
        maps = self.ddp("net")(batch["image"], batch["audio"])
        loss = maps.pow(2).mean() - maps.mean()
        return loss, {"map_mean": maps.mean().detach()}

    @torch.no_grad()
    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        self.eval()
        with self.autocast():
            return self.net(images.to(self.device), audio.to(self.device)).float()


def test_a_method_registered_from_a_test_file_trains_two_steps(tmp_path):
    assert get_method("_toy-recipe") is ToyTask
    store = make_store(tmp_path / "train.h5", n=8)
    cfg = load_config("train", overrides=["method=_toy-recipe", f"data.train={store}", "image_size=64", "batch_size=4",
                                           "workers=0", "epochs=1", "max_steps=2", "device=cpu", "seed=0"])
    torch.manual_seed(0)  # the run seeds the same way before it builds the task
    before = ToyNet()
    summary = run_training(cfg, tmp_path / "run", quiet=True)
    assert summary["global_step"] == 2 and summary["method"] == "_toy-recipe"
    steps = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r["type"] == "step"]
    assert [r["step"] for r in steps] == [1, 2] and all("map_mean" in r and r["lr"] == pytest.approx(1e-4) for r in steps)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["method"] == "_toy-recipe" and ckpt["task"]["global_step"] == 2
    assert set(ckpt["task"]["optimizer"]["state"])  # the engine's Adam moments were saved
    trained = ckpt["task"]["models"]["net"]["audio.weight"]
    assert trained.shape == before.audio.weight.shape and not torch.equal(trained, before.audio.weight)  # it learned
