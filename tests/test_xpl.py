"""XPL task: curriculum selection and PL-EMA banks in the step, exact resume with the banks, logs, inference."""

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
from avslkit.inference import load_task_for_inference  # noqa: E402
from avslkit.methods import build_task  # noqa: E402
from avslkit.semisup.maps import to_unit_maps  # noqa: E402
from avslkit.semisup.xpl import sharpen  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xpl")
    store = make_store(root / "train.h5", n=16)
    ann = write_vggss_annotations(root / "vggss.json", [f"clip{i:03d}" for i in range(10)])
    return store, ann


def xpl_config(data, *overrides: str) -> dict:
    store, ann = data
    return tiny_config("xpl", store, f"data.annotations={ann}", "data.labeled=4", "data.val_labeled=4",
                       "units.a.audio=tiny_test", "units.b.audio=tiny_test", "ssl.warmup_epochs=1", *overrides)


def test_step_selects_sharpens_and_fills_the_banks(data):
    task = build_task(resolve_data_config(xpl_config(data, "ssl.start_fraction=0.5", "ssl.floor=null", "ssl.bank_dtype=float32")))
    streams = task.train_datasets()
    start_epoch(task, 1)  # first stage-2 epoch: fraction = start_fraction
    assert task.stage == "unbiased" and task.fraction == 0.5
    lab = collate_av([streams["labeled"][i] for i in range(4)])
    unl = collate_av([streams["unlabeled"][i] for i in (0, 2, 4, 6)])
    before = {u: {k: v.clone() for k, v in m.state_dict().items()} for u, m in task.units.items()}
    terms = engine_step(task, {"labeled": lab, "unlabeled": unl})
    assert terms["xpl_kept"] == 0.5  # 2 of the 4 most correlated
    assert {"loss_cross_a", "loss_cross_b", "loss_con_a", "loss_sup_b"} <= set(terms)
    assert task.banks["a"].seen.tolist() == [True, False, True, False, True, False, True, False]
    # bank a holds model A's sharpened map of its own view, from the pre-step weights (first visit: Y = Ŷ)
    unit = task.units["a"]
    unit.load_state_dict(before["a"])
    unit.train()
    images = torch.cat([lab["image"], unl["image"][:, 0]])
    feats = task.features_for(torch.cat([lab["audio"], unl["audio"]]))
    with torch.no_grad():
        maps = unit.pair_map(unit.encode_image(images), unit.encode_audio(feats["a"]))[4:]
    expected = sharpen(to_unit_maps(maps, task.map_norm), task.temperature)
    assert torch.allclose(task.banks["a"].get(torch.tensor([0, 2, 4, 6])), expected, atol=1e-6)


def test_smoke_resume_with_bank_and_inference(data, tmp_path):
    cfg = xpl_config(data, "epochs=3")
    straight = tmp_path / "straight"
    run_training(cfg, straight, quiet=True)
    epochs = [r for r in read_log(straight / "log.jsonl") if "epochs_completed" in r and "steps" in r]
    for key in ("task_xpl_kept_mean", "task_xpl_corr_mean", "task_fraction", "task_val_pl_iou", "task_val_pl_kept", "train_loss_cross_a"):
        assert key in epochs[-1], key
    assert epochs[1]["task_fraction"] == pytest.approx(0.2) and epochs[2]["task_fraction"] == pytest.approx(0.28)
    pieces = tmp_path / "pieces"
    run_training({**cfg, "max_steps": 3}, pieces, quiet=True)  # stops inside the first stage-2 epoch
    mid = load_checkpoint(pieces / "last.pt")["task"]["extra"]
    assert mid["banks"]["a"]["seen"].sum() == 4  # one stage-2 batch visited so far
    run_training(cfg, pieces, resume=True, quiet=True)
    a, b = load_checkpoint(straight / "last.pt")["task"], load_checkpoint(pieces / "last.pt")["task"]
    for u in ("a", "b"):
        for k in ("labels", "seen"):
            assert torch.equal(a["extra"]["banks"][u][k], b["extra"]["banks"][u][k]), (u, k)
        for k in a["models"][f"unit_{u}"]:
            assert torch.equal(a["models"][f"unit_{u}"][k], b["models"][f"unit_{u}"][k]), (u, k)
    assert a["extra"]["banks"]["a"]["labels"].dtype == torch.float16
    task = load_task_for_inference(straight)
    ds = task.quality_dataset()
    batch = collate_av([ds[0], ds[1], ds[2]])
    maps = task.localization_maps(batch["image"], batch["audio"])
    assert maps.shape[0] == 3 and torch.isfinite(maps).all()


_DDP_WORKER = '''
import sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from _train_helpers import tiny_config
from avslkit.engine.distributed import init_distributed, shutdown_distributed
from avslkit.training import prepare_training
store, ann, root = sys.argv[1:4]
ctx = init_distributed("cpu", "gloo")
for method, extra in (("xpl", ["ssl.floor=null"]), ("dmt", ["ssl.tau=0.0", "ssl.delta=0.0"])):
    out = Path(root) / method
    cfg = tiny_config(method, Path(store), f"data.annotations={{ann}}", "data.labeled=4", "data.val_labeled=4",
                      "units.a.audio=tiny_test", "units.b.audio=tiny_test", "ssl.warmup_epochs=1", "epochs=2", *extra)
    trainer, resume_from = prepare_training(cfg, out, quiet=True, ctx=ctx)
    trainer.fit(resume=resume_from)
    torch.save(trainer.step.state_dict(), out / f"rank{{ctx.rank}}.pt")
shutdown_distributed()
'''


def test_two_process_ddp_keeps_models_and_banks_identical(tmp_path):
    """gloo, 2 CPU processes: the PL-EMA banks are updated with the global batch on every rank."""
    import os
    import socket
    import subprocess

    store = make_store(tmp_path / "train.h5", n=24)
    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"clip{i:03d}" for i in range(10)])
    worker = tmp_path / "worker.py"
    worker.write_text(_DDP_WORKER.format(tests=str(Path(__file__).resolve().parent)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                          "--master-port", str(port), str(worker), str(store), str(ann), str(tmp_path)],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-4000:]
    for method in ("xpl", "dmt"):
        a, b = (torch.load(tmp_path / method / f"rank{r}.pt", weights_only=False) for r in (0, 1))
        assert a["global_step"] == b["global_step"] == 8  # 16 unlabelled clips, global batch 4, 2 epochs
        # rank 0 validated on the 4 held-out clips each epoch (the other rank took part in the broadcast)
        vals = [r for r in read_log(tmp_path / method / "log.jsonl") if r["type"] == "val"]
        assert [r["n"] for r in vals] == [4, 4] and (tmp_path / method / "best.pt").is_file()
        for name in a["models"]:
            for k in a["models"][name]:
                assert torch.equal(a["models"][name][k], b["models"][name][k]), (method, name, k)
    a, b = (torch.load(tmp_path / "xpl" / f"rank{r}.pt", weights_only=False)["extra"]["banks"] for r in (0, 1))
    assert int(a["a"]["seen"].sum()) == 16  # both ranks recorded every clip of the stage-2 epoch, not just their own half
    for u in ("a", "b"):
        assert torch.equal(a[u]["labels"], b[u]["labels"]) and torch.equal(a[u]["seen"], b[u]["seen"])
