"""DMT task: frozen EMA teachers, Noise Filtering/IPL in the step, stages, exact resume, CLI options, inference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import engine_step, make_store, start_epoch, tiny_config, write_vggss_annotations  # noqa: E402

from avslkit.data.dataset import collate_av  # noqa: E402
from avslkit.engine.checkpoint import load_checkpoint  # noqa: E402
from avslkit.engine.logging import read_log  # noqa: E402
from avslkit.engine.run import resolve_data_config  # noqa: E402
from avslkit.training import run_training  # noqa: E402
from avslkit.errors import AvslError  # noqa: E402
from avslkit.inference import load_task_for_inference  # noqa: E402
from avslkit.methods import build_task  # noqa: E402

TINY_UNITS = ["units.a.audio=tiny_test", "units.b.audio=tiny_test"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ssl")
    store = make_store(root / "train.h5", n=16)
    ann = write_vggss_annotations(root / "vggss.json", [f"clip{i:03d}" for i in range(10)])
    return store, ann


def dmt_config(data, *overrides: str) -> dict:
    store, ann = data
    return tiny_config("dmt", store, f"data.annotations={ann}", "data.labeled=4", "data.val_labeled=4", *TINY_UNITS,
                       "ssl.warmup_epochs=1", *overrides)


def _batch(task, stream: str) -> dict:
    ds = task.train_datasets()[stream]
    return collate_av([ds[i] for i in range(4)])


def _stage2_task(data, *overrides: str):
    task = build_task(resolve_data_config(dmt_config(data, *overrides)))
    task.train_datasets()
    start_epoch(task, 0)
    for _ in range(2):  # a few warm-up steps so students and teachers differ from their init
        engine_step(task, {"labeled": _batch(task, "labeled"), "unlabeled": {"index": torch.arange(4)}})
    start_epoch(task, 1)  # enter the unbiased stage: teachers := students
    assert task.stage == "unbiased"
    return task


def test_teachers_get_no_gradient_and_follow_the_ema_exactly(data):
    task = _stage2_task(data, "ssl.ema=0.9")
    for n in ("a", "b"):
        for (k, t), s in zip(task.teachers[n].state_dict().items(), task.units[n].state_dict().values()):
            assert torch.equal(t, s), k  # stage entry copies the warmed-up students
    before = {n: {k: p.detach().clone() for k, p in t.named_parameters()} for n, t in task.teachers.items()}
    batch = {"labeled": _batch(task, "labeled"), "unlabeled": _batch(task, "unlabeled")}
    assert batch["unlabeled"]["image"].shape[1] == 2  # weak + strong view of one crop
    terms = engine_step(task, batch)
    assert "loss_con_a" in terms and "pl_kept" in terms
    for n, teacher in task.teachers.items():
        assert not teacher.training
        student = dict(task.units[n].named_parameters())
        changed = False
        for k, p in teacher.named_parameters():
            assert not p.requires_grad and p.grad is None
            expected = before[n][k].mul(0.9).add(student[k].detach(), alpha=1 - 0.9)
            assert torch.equal(p, expected), k
            changed |= not torch.equal(p, before[n][k])
        assert changed  # the students moved, so the teachers did too


def test_noise_filter_and_ipl_are_applied(data):
    everything = _stage2_task(data, "ssl.delta=0.0", "ssl.tau=0.0")  # every pixel foreground, IoU 1 → all kept
    batch = {"labeled": _batch(everything, "labeled"), "unlabeled": _batch(everything, "unlabeled")}
    assert engine_step(everything, batch)["pl_kept"] == 1.0
    strict = _stage2_task(data, "ssl.delta=0.0")
    strict.tau_iou = 1.01  # IoU ≤ 1 < τ → nothing kept (ssl.tau itself is checked to lie in [0, 1])
    assert engine_step(strict, batch)["pl_kept"] == 0.0
    unfiltered = _stage2_task(data, "ssl.delta=0.0", "ssl.filter=false")
    unfiltered.tau_iou = 1.01
    assert engine_step(unfiltered, batch)["pl_kept"] == 1.0
    # IPL = M^A · M^B on teacher maps
    maps = {"a": torch.tensor([[[-5.0, 5.0], [5.0, 5.0]]]), "b": torch.tensor([[[5.0, 5.0], [-5.0, 5.0]]])}
    strict.delta = 0.6
    pl = strict.pseudo_labels(maps)
    assert pl.labels.tolist() == [[[0.0, 1.0], [0.0, 1.0]]]


def test_smoke_run_logs_resume_and_inference(data, tmp_path):
    cfg = dmt_config(data, "epochs=3", "ssl.tau=0.0", "ssl.delta=0.0")
    straight = tmp_path / "straight"
    run_training(cfg, straight, quiet=True)
    assert (straight / "last.pt").is_file()
    assert len((straight / "labeled.txt").read_text().split()) == 4 and len((straight / "val.txt").read_text().split()) == 4
    epochs = [r for r in read_log(straight / "log.jsonl") if "epochs_completed" in r and "steps" in r]
    assert [r["task_stage_unbiased"] for r in epochs] == [0.0, 1.0, 1.0]
    for key in ("task_pl_kept_mean", "task_pl_iou_mean", "task_val_pl_iou", "task_val_pl_kept", "task_val_loc_acc", "train_loss_con_b"):
        assert key in epochs[-1], key
    assert epochs[-1]["task_pl_kept_mean"] == 1.0
    # 2 warm-up steps + 1, then resume (re-entering epoch 1 mid-way), then the rest == straight
    pieces = tmp_path / "pieces"
    run_training({**cfg, "max_steps": 3}, pieces, quiet=True)
    run_training(cfg, pieces, resume=True, quiet=True)
    a, b = load_checkpoint(straight / "last.pt")["task"], load_checkpoint(pieces / "last.pt")["task"]
    assert a["extra"] == b["extra"] == {"stage": "unbiased"}
    for name in ("unit_a", "unit_b", "teacher_a", "teacher_b"):
        for k in a["models"][name]:
            assert torch.equal(a["models"][name][k], b["models"][name][k]), (name, k)
    task = load_task_for_inference(straight)
    store, _ = data
    ds = task.quality_dataset()
    batch = collate_av([ds[0], ds[1]])
    maps = task.localization_maps(batch["image"], batch["audio"])
    assert maps.shape[0] == 2 and maps.ndim == 3
    ta = task.teachers["a"]
    feats = task.features_for(batch["audio"])
    with torch.no_grad():
        only_a = ta.pair_map(ta.encode_image(batch["image"]), ta.encode_audio(feats["a"]))
        tb = task.teachers["b"]
        only_b = tb.pair_map(tb.encode_image(batch["image"]), tb.encode_audio(feats["b"]))
    assert torch.allclose(maps, (only_a + only_b) / 2, atol=1e-5)  # Eq. 15: mean of the two teachers


def test_single_teacher_and_ezvsl_student_ablations(data, tmp_path):
    task = _stage2_task(data, "ssl.single_teacher=true", "ssl.delta=0.0", "ssl.tau=0.0", "ssl.student=ezvsl")
    assert set(task.teachers) == {"a"} and isinstance(task.units["a"].aud_proj, torch.nn.Linear)
    batch = {"labeled": _batch(task, "labeled"), "unlabeled": _batch(task, "unlabeled")}
    terms = engine_step(task, batch)
    assert terms["pl_kept"] == 1.0 and "loss_sup_b" not in terms


@pytest.mark.parametrize("spec, message", [("lots", "cannot read labelled spec"), ("7", "asked for 7 clips"), ("0", "at least 1")])
def test_labeled_spec_errors(data, tmp_path, spec, message):
    with pytest.raises(AvslError, match=message):
        run_training(dmt_config(data, f"data.labeled={spec}"), tmp_path / "run", quiet=True)


def test_missing_annotations_is_a_clear_error(data, tmp_path):
    with pytest.raises(AvslError, match="--annotations"):
        run_training(dmt_config(data, "data.annotations=null"), tmp_path / "run", quiet=True)


def test_no_ema_own_labels_and_no_labels_in_stage2_ablations(data):
    task = _stage2_task(data, "ssl.use_ema=false", "ssl.pseudo_label=own", "ssl.labels_in_stage2=false", "ssl.delta=0.0", "ssl.tau=0.0")
    before = {n: {k: v.clone() for k, v in t.state_dict().items()} for n, t in task.teachers.items()}
    maps = {"a": torch.tensor([[[-5.0, 5.0], [5.0, 5.0]]]), "b": torch.tensor([[[5.0, 5.0], [-5.0, 5.0]]])}
    task.delta = 0.6
    pl = task.pseudo_labels(maps)
    assert task.labels_for(pl, "a").tolist() == [[[0.0, 1.0], [1.0, 1.0]]]  # no IPL: each student its own teacher's mask
    assert task.labels_for(pl, "b").tolist() == [[[1.0, 1.0], [0.0, 1.0]]]
    task.delta = 0.0
    batch = {"labeled": _batch(task, "labeled"), "unlabeled": _batch(task, "unlabeled")}
    terms = engine_step(task, batch)
    assert terms["pl_kept"] == 1.0
    for n, t in task.teachers.items():  # use_ema=false: the teachers stay the warmed-up networks
        for k, v in t.state_dict().items():
            assert torch.equal(v, before[n][k]), (n, k)


def test_step_based_warmup_ends_mid_epoch_and_resumes_exactly(data, tmp_path):
    # 4 labels / batch 4 → 1 step per labelled pass: warm-up = 3 steps; 8 unlabelled clips → 2 steps per epoch
    cfg = dmt_config(data, "epochs=3", "ssl.warmup_epochs=3", "ssl.warmup_unit=labeled", "ssl.tau=0.0", "ssl.delta=0.0")
    straight = tmp_path / "straight"
    run_training(cfg, straight, quiet=True)
    steps = [r for r in read_log(straight / "log.jsonl") if "step" in r and "samples_per_s" in r and "epochs_completed" not in r]
    assert [("loss_con_a" in r) for r in steps] == [False, False, False, True, True, True]
    pieces = tmp_path / "pieces"
    run_training({**cfg, "max_steps": 3}, pieces, quiet=True)  # stops exactly at the end of the warm-up, mid-epoch
    run_training(cfg, pieces, resume=True, quiet=True)
    a, b = load_checkpoint(straight / "last.pt")["task"], load_checkpoint(pieces / "last.pt")["task"]
    for name in ("unit_a", "unit_b", "teacher_a", "teacher_b"):
        for k in a["models"][name]:
            assert torch.equal(a["models"][name][k], b["models"][name][k]), (name, k)


def test_inference_config_drops_unit_weight_files():
    """A DMT/XPL run rebuilt for inference must not need the pretrained files its units started from."""
    import torch

    from avslkit.inference import _inference_config

    cfg = {"model": {"visual_weights": "imagenet"},
           "units": {"a": {"audio": "vggish", "audio_weights": "/gone/vggish.pth", "visual_weights": "/gone/r18.pth"},
                     "b": {"audio": "soundnet8", "audio_weights": "/gone/sound8.pt"}}}
    out = _inference_config(cfg, torch.device("cpu"))
    assert out["units"]["a"]["audio_weights"] is None and out["units"]["a"]["visual_weights"] == "none"
    assert out["units"]["b"]["audio_weights"] is None and "visual_weights" not in out["units"]["b"]
    assert cfg["units"]["a"]["audio_weights"] == "/gone/vggish.pth"  # the saved config is untouched


def test_slavc_student_runs_the_slavc_pipeline(data, monkeypatch):
    """--student slavc (Table 4): SLAVC networks as units, SLAVC's own loss (with its momentum targets) as
    the unsupervised term, H on the pseudo-labels; teachers frozen, EMA of the students."""
    from avslkit.models.slavc import SLAVC

    task = _stage2_task(data, "ssl.student=slavc", "ssl.ema=0.9", "model.momentum=0.5", "ssl.delta=0.0", "ssl.tau=0.0")
    for n in ("a", "b"):
        unit, teacher = task.units[n], task.teachers[n]
        assert isinstance(unit, SLAVC) and isinstance(teacher, SLAVC)
        assert isinstance(unit.aud_proj1, torch.nn.Linear) and unit.img_dropout.p == 0.9 and unit.m_img == 0.5
        assert not any(p.requires_grad for p in unit.momentum_visual.parameters())
    calls = []
    real_loss = SLAVC.loss

    def spy(self, v, a, v_m, a_m):
        out = real_loss(self, v, a, v_m, a_m)
        calls.append((v[0].requires_grad, v_m[0].requires_grad, float(out[0].detach())))
        return out

    monkeypatch.setattr(SLAVC, "loss", spy)
    online = {n: {k: p.detach().clone() for k, p in u.named_parameters() if not k.startswith("momentum_")} for n, u in task.units.items()}
    momentum = {n: {k: p.detach().clone() for k, p in u.named_parameters() if k.startswith("momentum_")} for n, u in task.units.items()}
    teachers = {n: {k: p.detach().clone() for k, p in t.named_parameters()} for n, t in task.teachers.items()}
    batch = {"labeled": _batch(task, "labeled"), "unlabeled": _batch(task, "unlabeled")}
    terms = engine_step(task, batch)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    assert terms["pl_kept"] == 1.0 and {"loss_sup_a", "loss_con_a", "loss_sup_b", "loss_con_b"} <= set(terms)
    # the unsupervised term is SLAVC's loss, online features (with grad) against momentum targets (without)
    assert [(g, gm) for g, gm, _ in calls] == [(True, False), (True, False)]
    assert [c[2] for c in calls] == pytest.approx([terms["loss_con_a"], terms["loss_con_b"]], rel=1e-6)
    for n, unit in task.units.items():
        params = dict(unit.named_parameters())
        for k, before in momentum[n].items():  # SLAVC's momentum protocol: m·θ̂ + (1 − m)·θ, θ before the step
            assert torch.allclose(params[k], before * 0.5 + online[n][k[len("momentum_"):]] * 0.5, atol=1e-6), k
        teacher = task.teachers[n]
        assert not teacher.training
        for k, p in teacher.named_parameters():
            assert not p.requires_grad and p.grad is None
            assert torch.allclose(p, teachers[n][k] * 0.9 + params[k].detach() * 0.1, atol=1e-6), k


def test_slavc_student_smoke_run_and_inference_rebuild(data, tmp_path):
    from avslkit.models.slavc import SLAVC

    out = tmp_path / "dmt_slavc"
    run_training(dmt_config(data, "epochs=2", "ssl.student=slavc", "ssl.tau=0.0", "ssl.delta=0.0"), out, quiet=True)
    epochs = [r for r in read_log(out / "log.jsonl") if "epochs_completed" in r and "steps" in r]
    assert epochs[-1]["task_stage_unbiased"] == 1.0 and torch.isfinite(torch.tensor(epochs[-1]["train_loss_con_a"]))
    task = load_task_for_inference(out)
    assert all(isinstance(m, SLAVC) for m in (*task.units.values(), *task.teachers.values()))
    saved = load_checkpoint(out / "last.pt")["task"]["models"]
    assert any(k.startswith("momentum_img_proj1.") for k in saved["unit_a"])
    ds = task.quality_dataset()
    batch = collate_av([ds[0], ds[1]])
    maps = task.localization_maps(batch["image"], batch["audio"])
    feats = task.features_for(batch["audio"])
    with torch.no_grad():
        per_teacher = [t.pair_map(t.encode_image(batch["image"]), t.encode_audio(feats[n])) for n, t in task.teachers.items()]
    assert maps.shape[0] == 2 and torch.allclose(maps, sum(per_teacher) / 2, atol=1e-5)


def test_cli_student_option(data, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from _train_helpers import TINY_MODEL
    from avslkit.cli.main import app

    store, ann = data
    sets = [x for item in (*TINY_MODEL, *TINY_UNITS, "ssl.warmup_epochs=0") for x in ("--set", item)]
    args = ["--quiet", "train", "dmt", "--data", str(store), "--annotations", str(ann), "--labeled", "4", "--val-labeled", "4",
            "--device", "cpu", "--workers", "0", "--image-size", "64", "--batch-size", "4", "--max-steps", "1", *sets]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ok"), "--student", "slavc"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "ok" / "config.yaml").read_text())["ssl"]["student"] == "slavc"
    assert any(k.startswith("momentum_visual.") for k in load_checkpoint(tmp_path / "ok" / "last.pt")["task"]["models"]["unit_b"])
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "bad"), "--student", "lvs"])
    assert res.exit_code == 1 and "unknown ssl.student 'lvs'; use one of localizer, ezvsl, slavc" in res.output


def test_warmup_epochs_never_choose_best(data, tmp_path, monkeypatch):
    # During the warm-up DMT's teachers are the untrained initial networks: a validation score then
    # (made the highest here) is logged but must not become best.pt.
    import json

    from avslkit.engine import validation

    scores = iter([0.9, 0.1, 0.2])
    real = validation.Validator.run

    def scripted(self, task):
        out = real(self, task)
        return {**out, "loc_acc": next(scores)}

    monkeypatch.setattr(validation.Validator, "run", scripted)
    out = tmp_path / "run"
    run_training(dmt_config(data, "epochs=3"), out, quiet=True)
    vals = [r for r in read_log(out / "log.jsonl") if r["type"] == "val"]
    assert [r["loc_acc"] for r in vals] == [0.9, 0.1, 0.2]  # the warm-up epoch is still validated
    best = json.loads((out / "checkpoints.json").read_text())["best"]
    assert best["value"] == 0.2 and best["epoch"] == 3
