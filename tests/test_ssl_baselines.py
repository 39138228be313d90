"""Baselines (supervised, naive-ssl, hard-pl), the shared localiser data pieces and the CLI options."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store, tiny_config, write_vggss_annotations  # noqa: E402

from avslkit.data.dataset import collate_av  # noqa: E402
from avslkit.engine.logging import read_log  # noqa: E402
from avslkit.training import run_training  # noqa: E402
from avslkit.inference import load_task_for_inference  # noqa: E402
from avslkit.data.streams import GatedDataset, TwoViewTransform  # noqa: E402
from avslkit.methods.localizer import AUDIO_INPUTS, build_localizer, unit_config  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("base")
    store = make_store(root / "train.h5", n=16)
    ann = write_vggss_annotations(root / "vggss.json", [f"clip{i:03d}" for i in range(10)])
    return store, ann


def config(method: str, data, *overrides: str) -> dict:
    store, ann = data
    return tiny_config(method, store, f"data.annotations={ann}", "data.labeled=4", "data.val_labeled=4",
                       "units.a.audio=tiny_test", *overrides)


@pytest.mark.parametrize(
    "method, extra, steps, keys",
    [
        ("supervised", [], 2, ("train_loss_sup", "task_val_loc_acc")),  # epoch = the 4 labelled clips
        ("naive-ssl", [], 4, ("train_loss_sup", "train_loss_con")),  # epoch = the 8 unlabelled clips
        ("hard-pl", ["ssl.warmup_epochs=1", "ssl.delta=0.0"], 4, ("train_loss_pl", "task_pl_kept_mean", "task_val_pl_iou")),
    ],
)
def test_baseline_smoke_runs(data, tmp_path, method, extra, steps, keys):
    out = tmp_path / method
    summary = run_training(config(method, data, "epochs=2", *extra), out, quiet=True)
    assert summary["global_step"] == steps and (out / "last.pt").is_file()
    epochs = [r for r in read_log(out / "log.jsonl") if "epochs_completed" in r and "steps" in r]
    for key in keys:
        assert key in epochs[-1], key
    if method == "hard-pl":
        assert epochs[0]["task_stage_unbiased"] == 0.0 and epochs[-1]["task_pl_kept_mean"] == 1.0
    task = load_task_for_inference(out)
    ds = task.quality_dataset()
    maps = task.localization_maps(*(collate_av([ds[0], ds[1]])[k] for k in ("image", "audio")))
    assert maps.shape[0] == 2 and maps.ndim == 3


def test_two_views_share_the_geometry():
    rng = np.random.default_rng(0)
    image = tv_tensors.Image(torch.from_numpy((rng.random((3, 80, 96)) * 255).astype(np.uint8)))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[10.0, 10.0, 50.0, 40.0]]), format="XYXY", canvas_size=(80, 96))
    torch.manual_seed(3)
    same = TwoViewTransform(64, ("none", "none"))({"image": image, "boxes": boxes})
    assert same["image"].shape == (2, 3, 64, 64) and torch.equal(same["image"][0], same["image"][1])
    torch.manual_seed(3)
    weak_strong = TwoViewTransform(64, ("none", "randaugment"), magnitude=9)({"image": image, "boxes": boxes})
    assert torch.equal(weak_strong["image"][0], same["image"][0])  # same random crop/flip for the same seed
    assert torch.equal(weak_strong["boxes"], same["boxes"])


def test_gated_dataset_loads_nothing_when_off():
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            raise AssertionError("must not load while gated off")

    gated = GatedDataset(Items())
    gated.active = False
    assert gated[2] == {"index": 2} and len(gated) == 3


def test_unit_config_and_audio_inputs():
    cfg = {"model": {"visual": "tiny_test", "visual_weights": "none", "audio": "tiny_test", "dim": 8},
           "units": {"a": {"audio": "vggish", "audio_feature": None}, "b": {"audio": None}}}
    assert unit_config(cfg, "a")["audio"] == "vggish" and unit_config(cfg, "b")["audio"] == "tiny_test"
    model, feature = build_localizer(unit_config(cfg, "b"))
    assert feature == ("spectrogram", {}) and model.tau == 0.03
    assert AUDIO_INPUTS["soundnet8"] == ("waveform", {"target_rate": 22050})
    assert AUDIO_INPUTS["vggish"][0] == "vggish_logmel"


def test_cli_labeled_options(data, tmp_path):
    from typer.testing import CliRunner

    from avslkit.cli.main import app

    store, ann = data
    sets = [x for item in ("model.visual=tiny_test", "model.visual_weights=none", "model.dim=8", "units.a.audio=tiny_test",
                           "units.b.audio=tiny_test", "ssl.warmup_epochs=1") for x in ("--set", item)]
    base = ["--quiet", "train", "dmt", "--data", str(store), "--device", "cpu", "--workers", "0", "--image-size", "64",
            "--batch-size", "4", "--epochs", "1", "--annotations", str(ann), "--val-labeled", "3", *sets]
    runner = CliRunner()
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--labeled", "9"])
    assert bad.exit_code != 0 and "asked for 9 clips" in bad.output and "Traceback" not in bad.output
    ids = tmp_path / "ids.txt"
    ids.write_text("clip001\nclip004\n")
    ok = runner.invoke(app, [*base, "--out", str(tmp_path / "ok"), "--labeled", str(ids), "--student", "ezvsl"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "ok" / "labeled.txt").read_text().split() == ["clip001", "clip004"]
    assert len((tmp_path / "ok" / "val.txt").read_text().split()) == 3


def test_best_is_chosen_on_the_held_out_training_clips(data, tmp_path):
    """No --val store: the engine validates on exactly the --val-labeled clips held out of the training
    store (val.txt), which are neither labelled nor unlabelled training clips, and picks best.pt by them."""
    import json

    from avslkit.training import prepare_training
    from avslkit.semisup.labeled import read_split

    out = tmp_path / "sup"
    trainer, _ = prepare_training(config("supervised", data, "epochs=2"), out, quiet=True)
    trainer.fit()
    split = read_split(out, [f"clip{i:03d}" for i in range(16)])
    assert len(split.val) == 4 and not set(split.val) & (set(split.labeled) | set(split.unlabeled))
    assert trainer.validator.ids == split.val and trainer.validator.dataset.ids == split.val
    vals = [r for r in read_log(out / "log.jsonl") if r["type"] == "val"]
    assert len(vals) == 2 and all(r["n"] == 4 for r in vals)
    best = json.loads((out / "checkpoints.json").read_text())["best"]
    assert best["split"] == "validation" and best["value"] == max(r["loc_acc"] for r in vals)
    assert (out / "best.pt").is_file() and load_task_for_inference(out).checkpoint_info["path"].endswith("best.pt")


def test_validation_source_precedence(data, tmp_path):
    from avslkit.training import prepare_training
    from avslkit.engine.validation import Validator

    store, ann = data
    other = make_store(tmp_path / "val.h5", n=5, seed=3, prefix="val")
    other_ann = write_vggss_annotations(tmp_path / "val.json", [f"val{i:03d}" for i in range(3)])

    def validator(name: str, *overrides: str) -> Validator | None:
        trainer, _ = prepare_training(config("supervised", data, *overrides), tmp_path / name, quiet=True)
        return trainer.validator

    held = validator("held")
    held_out = held.ids
    assert len(held_out) == 4 and all(int(cid[4:]) < 10 for cid in held_out)  # annotated training clips
    # a separate validation store wins: every annotated clip of it
    assert validator("other", f"data.val={other}", f"data.val_annotations={other_ann}").ids == ["val000", "val001", "val002"]
    # --val naming the training store itself: still only the held-out clips, never the labelled ones
    assert validator("same", f"data.val={store}", f"data.val_annotations={ann}").ids == held_out
    assert validator("off", "validation.held_out=false") is None
    assert validator("none", "data.val_labeled=0") is None
