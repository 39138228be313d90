"""`avslkit extend-testset`: counts, no self-pairs, hard/easy classes, determinism, sidecar files."""

from __future__ import annotations

import io
import json

import numpy as np
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.data.annotations import read_extended_csv
from avslkit.data.store import ClipRecord, StoreAttrs, write_store
from avslkit.evaluation import build_extended_set, read_recorded_extended, sidecar_paths
from avslkit.errors import AvslError

runner = CliRunner()
CLASSES = ["dog", "cat", "car", "bell"]
N_POS = 16  # 4 per class
REAL = ["offscreen00_000000", "offscreen01_000000"]


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def _pos_id(k: int) -> str:
    return f"clip{k:07d}_{k:06d}"


@pytest.fixture()
def test_store(tmp_path):
    ids = [_pos_id(k) for k in range(N_POS)] + REAL
    jpeg = _jpeg()
    recs = [ClipRecord(id=i, source=f"/v/{i}.mp4", time=1.0, duration=2.0, frame_jpeg=jpeg, height=16, width=16,
                       audio=np.zeros(160, np.int16), sample_rate=16000) for i in ids]
    store = tmp_path / "test.h5"
    write_store(store, recs, StoreAttrs(16000, 160))
    ann = [{"file": _pos_id(k), "class": CLASSES[k % 4], "bbox": [[0.1, 0.1, 0.1 + 0.05 * (k + 1), 0.6]]}
           for k in range(N_POS)]
    (tmp_path / "vggss.json").write_text(json.dumps(ann))
    (tmp_path / "offscreen.txt").write_text("\n".join(REAL) + "\n")
    return store


def test_cli_short_form_uses_and_records_the_workspace(test_store, tmp_path, monkeypatch):
    import yaml

    from avslkit.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["extend-testset"])
    assert res.exit_code == 1 and "pass the test store and --annotations ANN" in res.output
    Workspace(tmp_path).record({"stores.test": test_store, "annotations": tmp_path / "vggss.json",
                                "real_negatives": tmp_path / "offscreen.txt"})
    res = runner.invoke(app, ["extend-testset"])
    assert res.exit_code == 0, res.output
    assert "using test store test.h5 (avslkit.yaml)" in res.output and "using real negatives offscreen.txt" in res.output
    pairs, types = read_recorded_extended(test_store)
    assert len(pairs) == N_POS and sum(v == "real" for v in types.values()) == 2  # the workspace's real negatives
    assert yaml.safe_load((tmp_path / "avslkit.yaml").read_text())["extended"] == "test.h5.extended.csv"


def _classes() -> dict[str, str]:
    return {_pos_id(k): CLASSES[k % 4] for k in range(N_POS)}


def test_cli_records_sidecars(test_store, tmp_path):
    out = tmp_path / "export.csv"
    args = ["extend-testset", str(test_store), "--annotations", str(tmp_path / "vggss.json"),
            "--real-negatives", str(tmp_path / "offscreen.txt"), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    csv_path, json_path = sidecar_paths(test_store)
    assert csv_path.name == "test.h5.extended.csv" and csv_path.is_file() and json_path.is_file()
    assert out.read_text() == csv_path.read_text()
    assert csv_path.read_text().splitlines()[0] == "video,audio,label"
    pairs, types = read_recorded_extended(test_store)
    # One negative per positive: 2 real + 14 automated; hard = floor(0.25·14 + 0.5) = 4, easy = 10.
    assert len(pairs) == N_POS
    counts = {t: sum(v == t for v in types.values()) for t in ("real", "easy", "hard")}
    assert counts == {"real": 2, "easy": 10, "hard": 4}
    classes = _classes()
    for p in pairs:
        kind = types[p.name]
        if kind == "real":
            assert p.video == p.audio and p.video in REAL
        else:
            assert p.video != p.audio
            assert (classes[p.video] == classes[p.audio]) == (kind == "hard")
    record = json.loads(json_path.read_text())
    assert record["seed"] == 0 and record["hard_fraction"] == 0.25
    assert record["statistics"]["n_total"] == 2 * N_POS
    assert sum(record["statistics"]["positives_by_size"].values()) == N_POS
    assert record["statistics"]["audio_max_reuse"] <= 2
    assert "Real Neg" in result.output or "extended test set" in result.output


def test_deterministic_and_seeded(test_store, tmp_path):
    args = ["extend-testset", str(test_store), "--annotations", str(tmp_path / "vggss.json")]
    assert runner.invoke(app, args).exit_code == 0
    first = sidecar_paths(test_store)[0].read_text()
    assert runner.invoke(app, args).exit_code == 0
    assert sidecar_paths(test_store)[0].read_text() == first
    assert runner.invoke(app, args + ["--seed", "1"]).exit_code == 0
    assert sidecar_paths(test_store)[0].read_text() != first
    # Without real negatives: 16 automated → 4 hard, 12 easy.
    pairs = read_extended_csv(sidecar_paths(test_store)[0])
    assert len(pairs) == N_POS and all(p.video != p.audio for p in pairs)


def test_build_extended_set_ratio_and_reuse():
    positives = [f"c{k}" for k in range(40)]
    classes = {p: f"k{k % 5}" for k, p in enumerate(positives)}
    ext = build_extended_set(positives, classes, hard_fraction=0.5, seed=3)
    assert ext.counts() == {"real": 0, "easy": 20, "hard": 20}
    audios = [p.audio for p in ext.pairs]
    assert max(audios.count(a) for a in set(audios)) == 1  # 40 audios, 40 draws: none reused
    assert {p.video for p in ext.pairs} == set(positives)  # every positive gets exactly one negative


def test_needs_classes():
    with pytest.raises(AvslError, match="need clip classes"):
        build_extended_set(["a", "b", "c"], {}, seed=0)


def test_unknown_real_negative_is_an_error(test_store, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("notinstore_000001\n")
    result = runner.invoke(app, ["extend-testset", str(test_store), "--annotations", str(tmp_path / "vggss.json"),
                                 "--real-negatives", str(bad)])
    assert result.exit_code == 1 and "none of its 1 real negative" in result.output


def test_real_negatives_outside_the_store_are_skipped(test_store, tmp_path):
    from avslkit.data.store import Store

    with Store(test_store) as s:
        stored = s.ids
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(f"notinstore_000001\n{stored[-1]}\n")
    result = runner.invoke(app, ["extend-testset", str(test_store), "--annotations", str(tmp_path / "vggss.json"),
                                 "--real-negatives", str(mixed)])
    assert result.exit_code == 0, result.output
    rows = (Path(f"{test_store}.extended.csv")).read_text().splitlines()[1:]
    assert f"{stored[-1]},{stored[-1]},non-sounding" in rows
