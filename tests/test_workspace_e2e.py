"""The user's four commands, exactly as typed, in an empty folder after `avslkit synth toy`:

    avslkit preprocess toy/
    avslkit train dmt --labeled 64 --epochs 1 --preset cpu-small
    avslkit eval --extended
    avslkit viz
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from avslkit.cli.main import app

runner = CliRunner()



def typed(line: str) -> str:
    result = runner.invoke(app, shlex.split(line))
    assert result.exit_code == 0, f"avslkit {line}\n{result.output}"
    return result.output


def test_four_commands_as_typed(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    # 140 clips: 112 train, ~95 annotated; 64 labelled + the auto validation clips leave a batch of unlabelled ones
    typed("synth toy --clips 140 --classes 4 --size 64 --duration 2 --fps 5 --test-fraction 0.2 --offscreen 0.15 --seed 0 -j 1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]

    out = typed("preprocess toy/ -j 0")
    assert "toy/train.txt (train split)" in out and "toy/test_videos.txt (test split)" in out
    ws = yaml.safe_load((tmp_path / "avslkit.yaml").read_text())
    assert ws["stores"] == {"train": "data/train.h5", "test": "data/test.h5"}
    assert ws["annotations"] == "toy/annotations.json" and ws["test_list"] == "toy/test.csv"

    out = typed("train dmt --labeled 64 --epochs 1 --preset cpu-small")  # cpu-small: avslkit/configs/presets/
    assert "using train store data/train.h5 (avslkit.yaml)" in out and "using annotations toy/annotations.json" in out
    assert "val_labeled auto: holding out" in out
    run = tmp_path / "runs" / "dmt"
    assert (run / "last.pt").is_file() and len((run / "labeled.txt").read_text().split()) == 64

    out = typed("eval --extended")
    assert "using run runs/dmt (avslkit.yaml: latest run)" in out and "using test store data/test.h5" in out
    metrics_path = run / "eval" / "metrics.json"
    assert out.strip().splitlines()[-1] == "runs/dmt/eval/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    index = json.loads((run / "checkpoints.json").read_text())
    chosen = index["best"] or index["last"]  # eval takes best.pt when there is one, else last.pt
    assert metrics["checkpoint"]["file"] == chosen["file"] and metrics["checkpoint"]["path"] == f"runs/dmt/{chosen['file']}"
    assert (metrics["checkpoint"]["epoch"], metrics["checkpoint"]["global_step"]) == (chosen["epoch"], chosen["global_step"])
    assert metrics["checkpoint"]["epoch"] == 1  # --epochs 1
    assert metrics["workspace"]["runs"] == "runs/dmt" and metrics["workspace"]["stores.test"] == "data/test.h5"
    assert metrics["n_negative"] == metrics["n_positive"] > 0  # the extended set, built on first use
    assert Path(tmp_path / metrics["workspace"]["extended"]).is_file()

    out = typed("viz")
    index = run / "viz" / "index.html"
    assert out.strip().splitlines()[-1] == "runs/dmt/viz/index.html" and index.is_file()
    assert "<img" in index.read_text()
    ws = yaml.safe_load((tmp_path / "avslkit.yaml").read_text())
    assert ws["runs"] == ["runs/dmt"] and ws["last_eval"] == "runs/dmt/eval/metrics.json"
    assert ws["last_report"] == "runs/dmt/viz/index.html"

    # a second run numbers itself; explicit flags still win over the workspace
    typed("train dmt --labeled 8 --max-steps 1 --data data/train.h5 --preset cpu-small")
    assert (tmp_path / "runs" / "dmt2" / "last.pt").is_file()
    assert yaml.safe_load((tmp_path / "avslkit.yaml").read_text())["runs"] == ["runs/dmt", "runs/dmt2"]
    status = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert status.exit_code == 0 and "runs/dmt2" in status.output and "clips" in status.output
