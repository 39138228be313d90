"""CPU end-to-end smoke test on real mp4 files: synth -> preprocess -> extend-testset -> train -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.data.store import Store

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"avslkit {' '.join(args)}\n{result.output}"
    return result.output


def test_synth_preprocess_train_eval(tmp_path: Path, one_torch_thread) -> None:
    toy = tmp_path / "toy"
    _ok(["synth", str(toy), "--clips", "16", "--classes", "3", "--size", "64", "--duration", "3", "--fps", "8",
         "--test-fraction", "0.25", "--offscreen", "0.25", "--size-range", "0.3", "0.6", "--seed", "3"])
    videos = sorted((toy / "videos").glob("*.mp4"))
    assert len(videos) == 16
    # one corrupt and one audio-less clip among the training videos: recorded, not fatal
    (toy / "videos" / "broken_000001.mp4").write_bytes(videos[0].read_bytes()[:300])
    train_list = toy / "train.txt"
    train_list.write_text(train_list.read_text() + "broken_000001\n")

    train, test = tmp_path / "train.h5", tmp_path / "test.h5"
    common = ["--root", str(toy / "videos"), "--timestamps", str(toy / "timestamps.csv"),
              "--labels", str(toy / "annotations.json"), "--workers", "0", "--frame-size", "96"]
    _ok(["preprocess", str(train_list), "--out", str(train), *common])
    _ok(["preprocess", str(toy / "test_videos.txt"), "--out", str(test), *common])
    with Store(train) as s:
        assert len(s) == 12 and [f.id for f in s.failures()] == ["broken_000001"]
    with Store(test) as s:
        assert len(s) == 4

    _ok(["extend-testset", str(test), "--annotations", str(toy / "annotations.json"),
         "--real-negatives", str(toy / "offscreen.txt")])
    assert Path(f"{test}.extended.csv").is_file()

    run = tmp_path / "runs" / "slavc"
    _ok(["train", "slavc", "--data", str(train), "--out", str(run), "--epochs", "1", "--batch-size", "4",
         "--image-size", "64", "--workers", "0", "--device", "cpu", "--set", "model.visual_weights=none"])
    assert (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("loss" in rec for rec in log)

    out = tmp_path / "eval" / "metrics.json"
    _ok(["eval", str(run), "--test", str(test), "--annotations", str(toy / "annotations.json"),
         "--test-list", str(toy / "test.csv"), "--extended", "--out", str(out)])
    metrics = json.loads(out.read_text())
    n_pos = len((toy / "test.csv").read_text().split())
    assert metrics["n_positive"] == n_pos and metrics["n_negative"] == n_pos
    for key in ("locacc", "auc", "ap", "max_f1", "mean_ciou"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    by_type = metrics["by_negative_type"]
    assert "real" in by_type and set(by_type) <= {"real", "easy", "hard"}  # off-screen clips are real negatives
    assert sum(v["n"] for v in by_type.values()) == metrics["n_negative"]
    assert metrics["protocol"]["binarize"] == "relative"
