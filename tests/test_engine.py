"""Training engine: data order, checkpoints, exact resume, determinism, logs, best-by-validation, errors."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import engine_step, make_store, tiny_config, write_vggss_annotations  # noqa: E402

from avslkit.engine.checkpoint import CheckpointManager, capture_rng, load_checkpoint, restore_rng, save_checkpoint  # noqa: E402
from avslkit.engine.data import ResumableLoader, SeededDataset  # noqa: E402
from avslkit.engine.distributed import DistContext, resolve_device  # noqa: E402
from avslkit.engine.logging import read_log  # noqa: E402
from avslkit.engine.step import OptimizationStep  # noqa: E402
from avslkit.engine.run import resolve_data_config  # noqa: E402
from avslkit.training import run_training  # noqa: E402
from avslkit.engine.trainer import Trainer  # noqa: E402
from avslkit.errors import AvslError  # noqa: E402
from avslkit.inference import load_task_for_inference, predict_maps  # noqa: E402
from avslkit.methods import build_task  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("data") / "train.h5", n=8)


def weights_of(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / name)["task"]["models"]["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- data order ------------------------------------------------------------------------------------
class _Noisy(torch.utils.data.Dataset):
    """Returns its index and a random draw (stands in for random crops/flips)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "noise": torch.rand(()).item(), "np": float(np.random.rand()), "py": random.random()}


def test_loader_order_is_seeded_resumable_and_sharded():
    ds = _Noisy()
    full = ResumableLoader(ds, 3, seed=7, drop_last=True)
    assert len(full) == 3
    epoch0 = [b["index"].tolist() for b in full]
    assert len(set(sum(epoch0, []))) == 9  # 9 distinct samples, the 10th dropped
    again = ResumableLoader(ds, 3, seed=7)
    assert [b["index"].tolist() for b in again] == epoch0
    again.set_epoch(1)
    assert [b["index"].tolist() for b in again] != epoch0  # a new order each epoch
    tail = ResumableLoader(ds, 3, seed=7)
    tail.set_epoch(0, position=2)
    assert [b["index"].tolist() for b in tail] == epoch0[2:]
    assert tail.state_dict()["position"] == 3
    # two ranks with per-rank batch 2 split each global batch of 4 without overlap
    r0 = [b["index"].tolist() for b in ResumableLoader(ds, 2, seed=7, rank=0, world_size=2)]
    r1 = [b["index"].tolist() for b in ResumableLoader(ds, 2, seed=7, rank=1, world_size=2)]
    assert len(r0) == len(r1) == 2
    for a, b in zip(r0, r1):
        assert not set(a) & set(b)
    # without drop_last the remainder is split evenly (padded by wrap-around)
    r0 = list(ResumableLoader(ds, 2, seed=7, rank=0, world_size=2, drop_last=False))
    r1 = list(ResumableLoader(ds, 2, seed=7, rank=1, world_size=2, drop_last=False))
    assert len(r0) == len(r1) == 3 and len(r0[-1]["index"]) == len(r1[-1]["index"]) == 1


def test_augmentation_randomness_depends_only_on_seed_epoch_index():
    ds = _Noisy()
    a = [b for b in ResumableLoader(ds, 2, seed=3)]
    torch.manual_seed(999)
    np.random.seed(5)
    random.seed(1)
    before = torch.get_rng_state()
    b = [b for b in ResumableLoader(ds, 2, seed=3, workers=2)]  # other global RNG, worker processes
    assert torch.equal(before, torch.get_rng_state())  # the caller's RNG was not consumed
    for x, y in zip(a, b):
        for key in ("index", "noise", "np", "py"):
            assert torch.equal(x[key], y[key])
    wrapped = SeededDataset(ds)
    assert wrapped[(3, 11)] == wrapped[(3, 11)] and wrapped[(3, 11)]["noise"] != wrapped[(3, 12)]["noise"]


def test_persistent_workers_across_passes_and_abandoned_passes():
    # One DataLoader per ResumableLoader: its workers serve every pass, including a pass that starts
    # after the previous one was abandoned mid-way (a step budget, a stream being cycled). The batches
    # are the same as without workers.
    def passes(workers: int) -> list[list[list[int]]]:
        loader = ResumableLoader(_Noisy(), 2, seed=3, workers=workers)
        out = []
        for epoch in range(3):
            loader.set_epoch(epoch)
            taken = []
            for batch in loader:
                taken.append(batch["noise"].tolist())
                if epoch == 0 and len(taken) == 1:
                    break  # abandon the first pass after one batch
            out.append(taken)
        loader.set_epoch(0, position=1)  # resume the abandoned pass where it stopped
        out.append([b["noise"].tolist() for b in loader])
        if workers:
            assert loader._loader is not None and loader._loader.persistent_workers
        return out

    plain, workers = passes(0), passes(2)
    assert plain == workers and len(plain[0]) == 1 and len(plain[1]) >= 2
    assert plain[0] + plain[3] != plain[1]  # epochs differ; the resumed pass completes epoch 0


# -- checkpoints -----------------------------------------------------------------------------------
def test_rng_capture_restore_round_trip(tmp_path):
    state = capture_rng()
    save_checkpoint(tmp_path / "r.pt", {"rng": [state]})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(load_checkpoint(tmp_path / "r.pt")["rng"][0])  # weights_only load
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


@pytest.mark.parametrize("method", ["ezvsl", "slavc"])
def test_task_state_round_trip(method, store, tmp_path):
    from avslkit.data.dataset import collate_av

    cfg = resolve_data_config(tiny_config(method, store))
    torch.manual_seed(0)
    task = build_task(cfg, DistContext())
    ds = task.train_datasets()["train"]
    batch = collate_av([ds[i] for i in range(4)])
    terms = engine_step(task, batch)
    assert np.isfinite(terms["loss"]) and terms["lr"] == pytest.approx(1e-4)
    save_checkpoint(tmp_path / "t.pt", {"task": task._test_engine_step.state_dict()})
    torch.manual_seed(1)
    other = build_task(cfg, DistContext())
    other_step = other._test_engine_step = OptimizationStep(other, cfg)
    other_step.load_state_dict(load_checkpoint(tmp_path / "t.pt")["task"])
    assert_same_weights(task.model.state_dict(), other.model.state_dict())
    if method == "slavc":  # momentum copies are part of the state and differ from the online nets
        sd = other.model.state_dict()
        assert any(not torch.equal(sd[k], sd[k.replace("momentum_", "", 1)]) for k in sd if k.startswith("momentum_img_proj1"))
    assert other_step.global_step == 1
    # identical next step from identical state (optimizer moments restored too)
    torch.manual_seed(5)
    a = engine_step(task, batch)
    torch.manual_seed(5)
    b = engine_step(other, batch)
    assert a == b
    assert_same_weights(task.model.state_dict(), other.model.state_dict())
    # momentum copies stay out of the optimiser / DDP wrapper
    online = {id(p) for p in task.trainable_modules()["online"].parameters()}
    assert all(id(p) not in online for n, p in task.model.named_parameters() if n.startswith("momentum_"))


# -- resume, determinism ---------------------------------------------------------------------------
def test_resume_continues_exactly(store, tmp_path):
    """4 steps straight == 1 step + resume to 3 (crossing an epoch) + resume to the end; bitwise."""
    straight = tmp_path / "straight"
    run_training(tiny_config("slavc", store, "epochs=2"), straight, quiet=True)
    pieces = tmp_path / "pieces"
    run_training(tiny_config("slavc", store, "epochs=2", "max_steps=1"), pieces, quiet=True)
    assert load_checkpoint(pieces / "last.pt")["trainer"]["loaders"]["train"]["position"] == 1
    run_training(tiny_config("slavc", store, "epochs=2", "max_steps=3"), pieces, resume=True, quiet=True)
    run_training(tiny_config("slavc", store, "epochs=2"), pieces, resume=True, quiet=True)
    assert_same_weights(weights_of(straight), weights_of(pieces))
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(pieces / "last.pt")
    assert a["trainer"]["global_step"] == b["trainer"]["global_step"] == 4
    for k, v in a["task"]["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], b["task"]["optimizer"]["state"][k]["exp_avg"])
    steps = [r for r in read_log(pieces / "log.jsonl") if r["type"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert any(r.get("event") == "resumed" for r in read_log(pieces / "log.jsonl"))


def test_seed_makes_runs_deterministic(store, tmp_path):
    run_training(tiny_config("ezvsl", store, "seed=3"), tmp_path / "a", quiet=True)
    run_training(tiny_config("ezvsl", store, "seed=3"), tmp_path / "b", quiet=True)
    run_training(tiny_config("ezvsl", store, "seed=4"), tmp_path / "c", quiet=True)
    assert_same_weights(weights_of(tmp_path / "a"), weights_of(tmp_path / "b"))
    a, c = weights_of(tmp_path / "a"), weights_of(tmp_path / "c")
    assert any(not torch.equal(a[k], c[k]) for k in a)


# -- logs, validation, best ------------------------------------------------------------------------
def test_log_checkpoints_and_best_by_validation(store, tmp_path):
    val = make_store(tmp_path / "val.h5", n=5, seed=3, prefix="val")
    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"val{i:03d}" for i in range(4)])
    run = tmp_path / "run"
    summary = run_training(tiny_config("ezvsl", store, "epochs=2", f"data.val={val}", f"data.val_annotations={ann}"), run, quiet=True)
    records = read_log(run / "log.jsonl")
    steps = [r for r in records if r["type"] == "step"]
    assert len(steps) == 4
    for r in steps:
        for key in ("loss", "loss_img2aud", "loss_aud2img", "lr", "samples_per_s", "data_wait_s", "step_s", "epoch"):
            assert key in r and r[key] is not None
        assert r["loss"] == pytest.approx(r["loss_img2aud"] + r["loss_aud2img"], rel=1e-5)
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["epochs_completed"] for r in epochs] == [1, 2] and all(r["data_wait_s_mean"] >= 0 for r in epochs)
    vals = [r for r in records if r["type"] == "val"]
    assert len(vals) == 2 and all(r["n"] == 4 and 0 <= r["loc_acc"] <= 1 for r in vals)
    index = json.loads((run / "checkpoints.json").read_text())
    best_epoch = 1 + int(np.argmax([r["loc_acc"] for r in vals]))  # first maximum wins ties
    assert index["best"]["epoch"] == best_epoch and index["best"]["split"] == "validation"
    assert index["best"]["value"] == pytest.approx(max(r["loc_acc"] for r in vals))
    assert index["last"]["epoch"] == 2 and (run / "best.pt").is_file()
    assert summary["best"]["epoch"] == best_epoch and "validation" in summary["selection"]
    assert load_checkpoint(run / "best.pt")["trainer"]["epoch"] == best_epoch
    # inference prefers best.pt, and its maps are the trained task's
    task = load_task_for_inference(run)
    assert task.checkpoint_info["path"].endswith("best.pt") and not task.model.training
    maps = predict_maps(task, val, [("val000", "val000"), ("val000", "val001")])
    assert maps.shape[0] == 2 and maps.ndim == 3
    lo, hi = task.score_bounds
    assert (maps >= lo - 1e-4).all() and (maps <= hi + 1e-4).all() and not np.allclose(maps[0], maps[1])
    (run / "best.pt").unlink()
    assert load_task_for_inference(run).checkpoint_info["path"].endswith("last.pt")


def test_best_selection_logic(tmp_path):
    m = CheckpointManager(tmp_path, metric="loc_acc", mode="max")
    picks = [m.update_best({"x": i}, v, epoch=i + 1, global_step=i) for i, v in enumerate([0.2, 0.5, 0.5, float("nan"), 0.4, 0.6])]
    assert picks == [True, True, False, False, False, True]
    assert m.best["epoch"] == 6 and json.loads((tmp_path / "checkpoints.json").read_text())["best"]["value"] == 0.6
    low = CheckpointManager(tmp_path / "b", metric="mse", mode="min")
    assert [low.update_best({}, v, epoch=1, global_step=1) for v in (0.3, 0.4, 0.1)] == [True, False, True]


# -- errors ----------------------------------------------------------------------------------------
def test_cuda_requested_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AvslError, match=r"CUDA requested \(--device cuda\) but no GPU is visible; use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_bad_data_errors(store, tmp_path):
    with pytest.raises(AvslError, match="store not found"):
        run_training(tiny_config("ezvsl", tmp_path / "missing.h5"), tmp_path / "r1", quiet=True)
    with pytest.raises(AvslError, match=r"batch size 16 is larger than the training set \(8 clips"):
        run_training(tiny_config("ezvsl", store, "batch_size=16"), tmp_path / "r2", quiet=True)
    empty = tmp_path / "empty.h5"
    from avslkit.data.store import StoreAttrs, write_store

    write_store(empty, [], StoreAttrs(sample_rate=16000, audio_samples=8000))
    with pytest.raises(AvslError, match="holds no clips"):
        run_training(tiny_config("ezvsl", empty), tmp_path / "r3", quiet=True)
    with pytest.raises(AvslError, match="needs both --val"):
        run_training(tiny_config("ezvsl", store, f"data.val={store}"), tmp_path / "r4", quiet=True)
    ann = write_vggss_annotations(tmp_path / "other.json", ["nothere"])
    with pytest.raises(AvslError, match="has an annotation"):
        run_training(tiny_config("ezvsl", store, f"data.val={store}", f"data.val_annotations={ann}"), tmp_path / "r5", quiet=True)


def test_global_batch_must_divide_over_ranks(store):
    cfg = resolve_data_config(tiny_config("ezvsl", store, "batch_size=4"))
    task = build_task(cfg, DistContext())
    with pytest.raises(AvslError, match="must divide evenly over 3 processes"):
        Trainer(task, cfg, "/nonexistent-run", DistContext(rank=0, world_size=3))


def test_amp_options_on_cpu(store):
    from avslkit.data.dataset import collate_av

    cfg = resolve_data_config(tiny_config("slavc", store, "amp=bf16", "channels_last=true"))
    task = build_task(cfg, DistContext())
    assert task.amp_dtype == torch.bfloat16 and not task.channels_last  # channels_last only on CUDA
    ds = task.train_datasets()["train"]
    terms = engine_step(task, collate_av([ds[i] for i in range(4)]))
    assert np.isfinite(terms["loss"])
    assert task.localization_maps(torch.zeros(2, 3, 64, 64), torch.zeros(2, 8000)).dtype == torch.float32
    with pytest.raises(AvslError, match="fp16 needs a GPU"):
        build_task(resolve_data_config(tiny_config("slavc", store, "amp=fp16")), DistContext())


def test_official_checkpoint_loads_for_inference(store, tmp_path):
    """A checkpoint in the official SLAVC layout ({'model': module.imgnet..., momentum_audnet...})."""
    from avslkit.models.official import OFFICIAL_PREFIXES

    cfg = resolve_data_config(tiny_config("slavc", store))
    torch.manual_seed(0)
    task = build_task(cfg, DistContext())
    inverse = sorted(((ours, theirs) for theirs, ours in OFFICIAL_PREFIXES["slavc"].items()), key=lambda x: -len(x[0]))
    official = {}
    for key, value in task.model.state_dict().items():
        ours, theirs = next((o, t) for o, t in inverse if key.startswith(o))
        official["module." + theirs + key[len(ours):]] = value
    torch.save({"model": official, "epoch": 3}, tmp_path / "slavc_official.pth")
    loaded = load_task_for_inference(tmp_path / "slavc_official.pth", official_overrides={"model": cfg["model"], "image_size": 64})
    assert loaded.method == "slavc" and "official" in loaded.checkpoint_info["why"]
    assert_same_weights(task.model.state_dict(), loaded.model.state_dict())
    images, audio = torch.randn(2, 3, 64, 64), torch.randn(2, 8000) * 0.1
    assert torch.allclose(task.localization_maps(images, audio), loaded.localization_maps(images, audio))


# -- generic engine: several streams and hooks (what DMT/XPL plug into) ---------------------------
class _Vectors(torch.utils.data.Dataset):
    def __init__(self, n: int, offset: int):
        self.n, self.offset = n, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.offset + i)
        return {"x": torch.randn(2, generator=g) + torch.rand(2) * 0.1, "index": i}  # rand: "augmentation"


def _two_stream_task_class():
    from torch import nn

    from avslkit.methods.base import METHODS, Task, register_method

    if "_two_streams" in METHODS:
        return METHODS["_two_streams"]

    @register_method("_two_streams")
    class TwoStreams(Task):
        def build(self) -> None:
            self.net = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 1))
            self.events: list[tuple[str, int]] = []
            self.unlabelled_seen: list[int] = []

        def models(self) -> dict:
            return {"net": self.net}

        def trainable_modules(self) -> dict:
            return {"net": self.net}

        def train_datasets(self) -> dict:
            return {"labelled": _Vectors(6, 0), "unlabelled": _Vectors(10, 100)}

        def compute_loss(self, batch):
            self.unlabelled_seen.extend(batch["unlabelled"]["index"].tolist())
            x = torch.cat([batch["labelled"]["x"], batch["unlabelled"]["x"]])
            loss = (self.ddp("net")(x) - 1).pow(2).mean()
            return loss, {"mse": loss.detach()}

        def on_epoch_start(self, epoch, *, step, steps_per_epoch, total_steps, run_dir=None) -> None:
            self.events.append(("start", epoch))

        def on_epoch_end(self, epoch, step) -> dict:
            self.events.append(("end", epoch))
            return {"unlabelled_seen": len(self.unlabelled_seen)}

        def extra_state(self) -> dict:
            return {"unlabelled_seen": list(self.unlabelled_seen)}

        def load_extra_state(self, state) -> None:
            self.unlabelled_seen = list(state.get("unlabelled_seen", []))

    return TwoStreams


def _two_stream_run(out: Path, max_steps: int = 0, resume: bool = False):
    from avslkit.config import load_config
    from avslkit.engine.checkpoint import seed_everything

    cfg = load_config("train", overrides=["method=_two_streams", "epochs=2", "batch_size=2", "workers=0", f"max_steps={max_steps}", "seed=5"])
    seed_everything(5)
    task = _two_stream_task_class()(cfg, DistContext())
    trainer = Trainer(task, cfg, out, DistContext(), quiet=True)
    trainer.fit(resume=out / "last.pt" if resume else None)
    return task, trainer


def test_secondary_streams_hooks_and_resume(tmp_path):
    task, trainer = _two_stream_run(tmp_path / "straight")
    assert task.events == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    assert trainer.steps_per_epoch == 3 and trainer.global_step == 6  # the labelled stream defines the epoch
    seen = task.unlabelled_seen
    assert len(seen) == 12 and sorted(seen[:10]) == list(range(10))  # one full pass, then the next order
    assert trainer.loaders["unlabelled"].state_dict()["epoch"] == 1
    epochs = [r for r in read_log(tmp_path / "straight" / "log.jsonl") if r["type"] == "epoch"]
    assert [r["task_unlabelled_seen"] for r in epochs] == [6, 12] and "train_mse" in epochs[0]

    _two_stream_run(tmp_path / "pieces", max_steps=4)  # stops inside epoch 1
    resumed, _ = _two_stream_run(tmp_path / "pieces", resume=True)
    assert resumed.unlabelled_seen == seen
    assert resumed.events == [("start", 1), ("end", 1)]  # hooks run again for the resumed epoch
    assert_same_weights(task.net.state_dict(), resumed.net.state_dict())


def test_lr_schedules():
    from avslkit.engine.optim import lr_factor

    assert [lr_factor("constant", s, 10, 0) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor("cosine", s, 10, 2) for s in (0, 1)] == [0.5, 1.0]  # linear warm-up
    assert lr_factor("cosine", 2, 10, 2) == pytest.approx(1.0) and lr_factor("cosine", 10, 10, 2) == pytest.approx(0.0)
    assert lr_factor("cosine", 6, 10, 2, min_factor=0.1) == pytest.approx(0.55)
    with pytest.raises(AvslError, match="unknown optim.schedule"):
        lr_factor("step", 0, 10, 0)


def test_optimiser_and_schedule_registries_drive_the_step(store, monkeypatch):
    """A schedule / optimiser registered from outside the engine is what `optim.schedule` / `optim.name` select."""
    from avslkit.data.dataset import collate_av
    from avslkit.engine import optim

    monkeypatch.setitem(optim.SCHEDULES, "halved", lambda progress, min_factor: 0.5)
    made = []

    def plain_sgd(params, lr, weight_decay, o):
        made.append(lr)
        return torch.optim.SGD(params, lr=lr)

    monkeypatch.setitem(optim.OPTIMIZERS, "plain-sgd", plain_sgd)
    cfg = resolve_data_config(tiny_config("ezvsl", store, "optim.schedule=halved", "optim.name=plain-sgd", "optim.lr=0.2"))
    task = build_task(cfg, DistContext())
    step = OptimizationStep(task, cfg)
    step.configure_schedule(total_steps=4, steps_per_epoch=2)
    assert made == [0.2] and isinstance(step.optimizer, torch.optim.SGD)
    ds = task.train_datasets()["train"]
    assert step(collate_av([ds[i] for i in range(4)]))["lr"] == pytest.approx(0.1)
    with pytest.raises(AvslError, match="unknown optim.name 'nadam' \\(use .*plain-sgd"):
        optim.build_optimizer([], {"name": "nadam"})


def test_validator_scores_exactly_the_given_ids(store, tmp_path):
    from avslkit.engine.validation import Validator

    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"clip{i:03d}" for i in range(6)])
    every = Validator(store, ann, image_size=64)
    assert every.ids == [f"clip{i:03d}" for i in range(6)]  # no ids: every annotated clip of the store
    some = Validator(store, ann, image_size=64, ids=["clip004", "clip001", "clip004"])
    assert some.ids == ["clip004", "clip001"] and some.dataset.ids == ["clip004", "clip001"] and len(some.gt) == 2
    assert not some.skipped_ids
    task = build_task(resolve_data_config(tiny_config("ezvsl", store)))
    assert some.run(task)["n"] == 2
    partly = Validator(store, ann, image_size=64, ids=["clip002", "clip007", "nothere"])  # clip007: in the store, no box
    assert partly.ids == ["clip002"] and partly.skipped_ids == ["clip007", "nothere"]
    with pytest.raises(AvslError, match=r"none of the 2 validation ids \(first: clip007\)"):
        Validator(store, ann, image_size=64, ids=["clip007", "nothere"])
    with pytest.raises(AvslError, match="none of the 0 validation ids"):
        Validator(store, ann, image_size=64, ids=[])


@pytest.mark.parametrize("method", ["ezvsl", "slavc"])
def test_exclude_keeps_listed_clips_out_of_training(store, tmp_path, method):
    from avslkit.data.store import Store

    with Store(store) as s:
        all_ids = list(s.ids)
    (tmp_path / "test.txt").write_text("\n".join(all_ids[:3]) + "\n")
    task = build_task(resolve_data_config(tiny_config(method, store, f"data.exclude={tmp_path / 'test.txt'}")), DistContext())
    assert task.train_datasets()["train"].ids == all_ids[3:]
    (tmp_path / "all.txt").write_text("\n".join(all_ids))
    task = build_task(resolve_data_config(tiny_config(method, store, f"data.exclude={tmp_path / 'all.txt'}")), DistContext())
    with pytest.raises(AvslError, match="removes every clip"):
        task.train_datasets()


def test_close_stops_persistent_workers_and_next_pass_is_unchanged():
    # Trainer.close() relies on this: the worker processes end at close(), not at garbage collection.
    loader = ResumableLoader(_Noisy(), 2, seed=3, workers=1)
    first = [b["noise"].tolist() for b in loader]
    workers = list(loader._data_loader()._iterator._workers)
    assert workers and all(w.is_alive() for w in workers)
    loader.close()
    for w in workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in workers)
    loader.set_epoch(0)
    assert [b["noise"].tolist() for b in loader] == first  # fresh workers, same batches
