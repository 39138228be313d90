"""`avslkit train METHOD` through the Typer CLI (tiny CPU runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store, tiny_train_args  # noqa: E402

from avslkit.cli.main import app  # noqa: E402
from avslkit.engine.checkpoint import load_checkpoint  # noqa: E402
from avslkit.engine.logging import read_log  # noqa: E402

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("cli") / "train.h5", n=8)


tiny_args = tiny_train_args


def test_train_writes_run_and_resumes(store, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, tiny_args(store, out, "--epochs", "1", "--lr", "3e-4", "--seed", "9"))
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["method"] == "slavc" and cfg["epochs"] == 1 and cfg["optim"]["lr"] == 3e-4 and cfg["seed"] == 9
    assert cfg["audio"]["sample_rate"] == 16000 and cfg["data"]["train"] == str(store)
    assert cfg["model"]["visual"] == "tiny_test" and cfg["batch_size"] == 4
    assert (out / "last.pt").is_file() and (out / "checkpoints.json").is_file()
    # a second run into the same directory must be explicit
    res = runner.invoke(app, tiny_args(store, out, "--epochs", "1"))
    assert res.exit_code == 1 and "--resume" in res.output
    # --resume continues the saved run with one more epoch
    res = runner.invoke(app, tiny_args(store, out, "--epochs", "2", "--resume"))
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out / "last.pt")["trainer"]["global_step"] == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 3e-4  # the run's own config kept
    assert [r["step"] for r in read_log(out / "log.jsonl") if r["type"] == "step"] == [1, 2, 3, 4]


def test_train_errors_are_one_line(store, tmp_path, monkeypatch):
    res = runner.invoke(app, tiny_args(store, tmp_path / "big", "--batch-size", "64"))
    assert res.exit_code == 1 and "larger than the training set" in res.output
    res = runner.invoke(app, tiny_args(tmp_path / "nope.h5", tmp_path / "x"))
    assert res.exit_code == 1 and "store not found" in res.output
    res = runner.invoke(app, ["train", "nomethod", "--data", str(store), "--out", str(tmp_path / "y")])
    assert res.exit_code == 1 and "unknown method 'nomethod'" in res.output
    res = runner.invoke(app, tiny_args(store, tmp_path / "z", "--set", "optim.nonsense=1"))
    assert res.exit_code == 2 and "unknown config key 'optim.nonsense'" in res.output
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = tiny_args(store, tmp_path / "gpu")
    args[args.index("--device") + 1] = "cuda"
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "CUDA requested (--device cuda) but no GPU is visible; use --device cpu" in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_help_has_example():
    res = runner.invoke(app, ["train", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--resume" in res.output
