"""The CPU-scale regime: narrow backbones in the registry, the cpu-small preset, a 2-step run per method."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store, write_vggss_annotations  # noqa: E402

from avslkit.cli.main import app  # noqa: E402
from avslkit.config import load_config, preset_layer, read_preset, save_config, yaml_load  # noqa: E402
from avslkit.models.registry import build_model, list_models  # noqa: E402

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- narrow backbones -------------------------------------------------------------------------------
def test_narrow_backbones_are_registered_with_their_shapes():
    assert "visual.resnet_narrow" in list_models("visual") and "audio.resnet_narrow_spec" in list_models("audio")
    v = build_model("resnet_narrow", namespace="visual", width=8, depth=10, stride=16).eval()
    assert v.out_channels == 64
    assert v(torch.randn(2, 3, 96, 96)).shape == (2, 64, 6, 6)  # stride 16: 6x6 at 96 px, 7x7 at 112
    assert v(torch.randn(1, 3, 112, 112)).shape == (1, 64, 7, 7)
    v32 = build_model("visual.resnet_narrow", width=8, stride=32).eval()
    assert v32(torch.randn(1, 3, 96, 96)).shape == (1, 64, 3, 3)
    deep = build_model("visual.resnet_narrow", width=8, depth=18)
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in v.parameters())
    assert [len(getattr(deep, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    a = build_model("audio.resnet_narrow_spec", width=8).eval()
    assert a.out_dim == 64 and a(torch.randn(2, 257, 200)).shape == (2, 64)  # B×F×T gets its channel axis
    a3 = build_model("audio.resnet_narrow_spec", width=8, in_channels=3).eval()
    assert a3(torch.randn(2, 3, 96, 64)).shape == (2, 64)  # VGGish's three log-mel examples as channels


def test_narrow_backbone_weights_round_trip_and_bad_options(tmp_path):
    torch.manual_seed(0)
    v = build_model("visual.resnet_narrow", width=8)
    path = tmp_path / "narrow.pt"
    torch.save(v.state_dict(), path)
    w = build_model("visual.resnet_narrow", width=8, weights=str(path))
    assert w.pretrained and all(torch.equal(v.state_dict()[k], w.state_dict()[k]) for k in v.state_dict())
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model("visual.resnet_narrow", weights="imagenet")
    with pytest.raises(ValueError, match="depth must be one of"):
        build_model("visual.resnet_narrow", depth=12)
    with pytest.raises(ValueError, match="stride must be 16 or 32"):
        build_model("visual.resnet_narrow", stride=8)


# -- the preset -------------------------------------------------------------------------------------
ALL_METHODS = ("ezvsl", "slavc", "supervised", "naive-ssl", "hard-pl", "dmt", "xpl")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_cpu_small_resolves_and_round_trips(method, tmp_path):
    cfg = load_config(["train", f"methods/{method}"], preset=preset_layer("cpu-small", "train", method))
    assert cfg["image_size"] == 96 and cfg["model"]["visual"] == "resnet_narrow" and cfg["model"]["visual_weights"] == "none"
    if method == "slavc":
        assert cfg["model"]["momentum"] == 0.99
    if method == "dmt":
        assert cfg["ssl"]["ema"] == 0.99 and cfg["units"]["b"]["audio_feature"] == "vggish_logmel"
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    assert yaml_load(path.read_text()) == cfg  # the saved run config reads back identically


def test_cpu_small_synth_section_and_explicit_flags_win(tmp_path, monkeypatch):
    import importlib

    gen = importlib.import_module("avslkit.synth.generate")

    assert read_preset("cpu-small")["synth"]["size_range"] == [0.25, 0.95]
    opts = gen.preset_options("cpu-small", given={"n_clips"})
    assert "n_clips" not in opts and opts["size_range"] == (0.25, 0.95) and opts["n_classes"] == 8
    seen = {}

    def fake_generate(out_dir, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(gen, "generate", fake_generate)  # the command imports it when it runs
    runner.invoke(app, ["synth", str(tmp_path / "toy"), "--preset", "cpu-small", "--clips", "12", "--size", "64"])
    assert seen["n_clips"] == 12 and seen["size"] == 64  # explicit flags win
    assert seen["n_classes"] == 8 and tuple(seen["size_range"]) == (0.25, 0.95) and seen["fps"] == 10  # the rest from the preset
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth: {n_clip: 3}\n")
    res = runner.invoke(app, ["synth", str(tmp_path / "toy2"), "--preset", str(bad)])
    assert res.exit_code != 0 and "unknown synth option(s) n_clip" in res.output


# -- a 2-step run of every method under the preset ---------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpu_small")
    store = make_store(root / "train.h5", n=12, size=72, seconds=3.0)  # 3 s: VGGish's three examples
    ids = [f"clip{i:03d}" for i in range(12)]
    return store, write_vggss_annotations(root / "ann.json", ids)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_two_steps_of_every_method_with_the_preset(method, data, tmp_path):
    store, ann = data
    out = tmp_path / method
    args = ["--quiet", "train", method, "--preset", "cpu-small", "--data", str(store), "--out", str(out), "--device", "cpu",
            "--workers", "0", "--batch-size", "4", "--max-steps", "2", "--epochs", "3",
            "--set", "model.visual_cfg.width=4", "--set", "model.dim=16"]
    if method in ("ezvsl", "slavc"):
        args += ["--set", "model.audio_cfg.width=4"]
    else:
        args += ["--annotations", str(ann), "--labeled", "4", "--val-labeled", "2",
                 "--set", "units.a.audio_cfg.width=4"]
        if method in ("dmt", "xpl"):
            args += ["--set", "units.b.audio_cfg.width=4", "--set", "ssl.warmup_unit=labeled", "--set", "ssl.warmup_epochs=1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["preset"] == "cpu-small" and cfg["image_size"] == 96 and cfg["model"]["visual"] == "resnet_narrow"
    from avslkit.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["trainer"]["global_step"] == 2
    # resuming with another preset is refused: the run keeps the settings it started with
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code != 0 and "--preset applies to new runs only" in res.output


def test_stage_two_gets_unlabelled_clips_after_a_warm_up_longer_than_an_epoch(data, tmp_path):
    """Regression (found by bench_learning): with loader workers, which persist across passes, a
    labelled warm-up longer than one unlabelled epoch left the unlabelled stream gated for good, and
    stage 2 failed with KeyError 'image'. 6 unlabelled clips at batch 2 = 3 steps per epoch; the
    warm-up is 2 passes over 4 labelled clips = 4 steps; stage 2 then runs steps 5-6."""
    store, ann = data
    out = tmp_path / "hard-pl"
    args = ["--quiet", "train", "hard-pl", "--preset", "cpu-small", "--data", str(store), "--out", str(out), "--device", "cpu",
            "--workers", "1", "--batch-size", "2", "--max-steps", "6", "--epochs", "3", "--annotations", str(ann),
            "--labeled", "4", "--val-labeled", "2", "--set", "model.visual_cfg.width=4", "--set", "model.dim=16",
            "--set", "units.a.audio_cfg.width=4", "--set", "ssl.warmup_unit=labeled", "--set", "ssl.warmup_epochs=2",
            "--set", "ssl.log_val_quality=false"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    from avslkit.engine.logging import read_log

    steps = {r["step"]: r for r in read_log(out / "log.jsonl") if r["type"] == "step"}
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert all("loss_pl" not in steps[s] for s in (1, 2, 3, 4)) and all("loss_pl" in steps[s] for s in (5, 6))


def _tiny_args(method, store, out, *more):
    return ["--quiet", "train", method, "--preset", "cpu-small", "--data", str(store), "--out", str(out), "--device", "cpu",
            "--workers", "0", "--batch-size", "4", "--set", "model.visual_cfg.width=4", "--set", "model.dim=16", *more]


def test_cosine_schedule_ends_with_the_step_budget(data, tmp_path):
    """The preset's cosine decay spans --max-steps, not the --epochs upper bound: the evaluated
    last.pt is annealed. 12 clips at batch 4 = 3 steps per epoch; 3 epochs would be 9 steps."""
    store, _ = data
    out = tmp_path / "ez"
    res = runner.invoke(app, _tiny_args("ezvsl", store, out, "--epochs", "3", "--max-steps", "4", "--set", "model.audio_cfg.width=4"))
    assert res.exit_code == 0, res.output
    from avslkit.engine.logging import read_log

    lrs = [r["lr"] for r in read_log(out / "log.jsonl") if r["type"] == "step"]
    assert len(lrs) == 4 and lrs[0] > lrs[-1]
    assert lrs[-1] < 0.2 * 1e-3  # cosine over 4 steps; over 9 steps step 4 would still be at >= 0.75 of the base LR


def test_a_run_that_is_all_warm_up_says_so(data, tmp_path, monkeypatch):
    """`train dmt --epochs 1` with the default 6 warm-up epochs never reaches stage 2: a warning says so,
    and the selection says why there is no best.pt although validation ran."""
    store, ann = data
    warnings = []
    monkeypatch.setattr("avslkit.methods.semisupervised.log.warning", lambda msg, *a: warnings.append(msg % a))
    out = tmp_path / "dmt"
    res = runner.invoke(app, _tiny_args("dmt", store, out, "--epochs", "1", "--annotations", str(ann), "--labeled", "4",
                                        "--val-labeled", "2", "--set", "units.a.audio_cfg.width=4", "--set", "units.b.audio_cfg.width=4"))
    assert res.exit_code == 0, res.output
    assert any("semi-supervised stage never runs" in w for w in warnings), warnings
    import json

    selection = json.loads((out / "checkpoints.json").read_text())["selection"]
    assert "validation ran" in selection and not (out / "best.pt").exists()


def test_offline_imagenet_error_names_the_flags(monkeypatch):
    import torchvision.models

    from avslkit.errors import AvslError
    from avslkit.models.weights import torchvision_resnet18

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    with pytest.raises(AvslError, match=r"--set model.visual_weights=PATH; or --preset cpu-small"):
        torchvision_resnet18("imagenet")
