"""`avslkit eval`: MAPS.npz → metrics.json round trip with hand-derived numbers, baselines, errors."""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.data.store import ClipRecord, StoreAttrs, write_store

runner = CliRunner()
P1, P2, P3 = "pos0000001_000001", "pos0000002_000002", "pos0000003_000003"
OFF = "off00000001_000004"
X = np.arange(224, dtype=np.float32)[None, :].repeat(224, axis=0) / 223  # column ramp 0 … 1


@pytest.fixture()
def case(tmp_path):
    # P1: box cols/rows [0, 112) (area 112² = 12544, "large"); P2, P3: cols [0, 112) × all rows (25088, "huge").
    ann = [
        {"file": P1, "class": "dog", "bbox": [[0, 0, 0.5, 0.5]]},
        {"file": P2, "class": "cat", "bbox": [[0, 0, 0.5, 1.0]]},
        {"file": P3, "class": "car", "bbox": [[0, 0, 0.5, 1.0]]},
    ]
    (tmp_path / "vggss.json").write_text(json.dumps(ann))
    (tmp_path / "test.csv").write_bytes(f"{P1}\r\n{P2}\r\n{P3}".encode())
    (tmp_path / "ext.csv").write_text(f"video,audio,label\n{P1},{P3},non-sounding\n{OFF},{OFF},non-sounding\n")
    # Relative rule on a column ramp: the upper median is the 113th column group, so a decreasing ramp predicts
    # columns [0, 112) and an increasing one [112, 224). Confidence = mean of the top 56 columns (n/4).
    maps = {
        P1: 10 - X,                  # B = cols < 112: cIoU = 12544 / (12544 + 12544) = .5; conf ≈ 9.88
        P2: 8 - X,                   # B = G → cIoU 1; conf ≈ 7.88
        P3: 6 + X,                   # B = cols ≥ 112, disjoint from G → cIoU 0; conf ≈ 6.88
        f"{P1}__{P3}": 9 - X,        # easy negative, conf ≈ 8.88
        f"{OFF}__{OFF}": 5 - X,      # real negative, conf ≈ 4.88
    }
    np.savez(tmp_path / "maps.npz", names=np.array(list(maps)), maps=np.stack(list(maps.values())))
    return tmp_path


def _eval(case, *extra):
    args = ["eval", "--maps", str(case / "maps.npz"), "--annotations", str(case / "vggss.json"),
            "--test-list", str(case / "test.csv"), "--out", str(case / "out" / "metrics.json"), *extra]
    return runner.invoke(app, args)


def test_round_trip_hand_derived(case):
    result = _eval(case, "--extended-csv", str(case / "ext.csv"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("metrics.json")
    m = json.loads((case / "out" / "metrics.json").read_text())
    assert (m["n_positive"], m["n_negative"]) == (3, 2)
    # cIoU [.5, 1, 0]: LocAcc 2/3, mean .5, AUC = .041667 + .3 + .025 + .15 (see test_metrics).
    assert m["locacc"] == pytest.approx(2 / 3) and m["mean_ciou"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(0.5166666667)
    # Conf order: P1 (hit) 9.88 > easy 8.88 > P2 (hit) 7.88 > P3 (miss) 6.88 > real 4.88.
    # AP@.5 thresholds [8.88, 7.88, 6.88, 4.88]: (P, R) = (.5, 1/3), (2/3, 2/3), (.5, 1), (.4, 1);
    # envelope [2/3, 2/3, .5, .4] → AP = 2/3·1/3 + 2/3·1/3 + .5·0 = 4/9.
    assert m["ap"] == pytest.approx(4 / 9)
    # F1 at the 5 confidences: .5, .4, 2/3, 2/3, 4/7 → 2/3.
    assert m["max_f1"] == pytest.approx(2 / 3)
    # θ = .75 (only P2 hits): (0, 0), (1/3, 1/2), (.25, 1), (.2, 1); envelope [1/3, 1/3, .25, .2] → AP = 1/3.
    assert m["at_iou_0.75"]["ap"] == pytest.approx(1 / 3) and m["at_iou_0.75"]["locacc"] == pytest.approx(1 / 3)
    assert m["by_size"]["large"]["n"] == 1 and m["by_size"]["large"]["locacc"] == 1.0
    assert m["by_size"]["huge"]["n"] == 2 and m["by_size"]["huge"]["locacc"] == 0.5
    assert m["by_size"]["small"] == {"n": 0, "locacc": None, "auc": None, "ap": None, "max_f1": None}
    assert set(m["by_negative_type"]) == {"real", "easy"}
    assert m["by_negative_type"]["easy"]["n"] == 1 and m["by_negative_type"]["easy"]["n_positive"] == 1
    # MSE of P1: P = 1 − x/223, G = box → mean (P − G)², averaged with P2 and P3.
    g1 = np.zeros((224, 224)); g1[:112, :112] = 1
    g23 = np.zeros((224, 224)); g23[:, :112] = 1
    p = 1 - X.astype(np.float64)
    expected = np.mean([np.mean((p - g1) ** 2), np.mean((p - g23) ** 2), np.mean((1 - p - g23) ** 2)])
    assert m["mse"] == pytest.approx(expected, rel=1e-6)
    proto = m["protocol"]
    assert proto["binarize"] == "relative" and proto["ground_truth"] == "union" and proto["iou_thresholds"] == [0.5, 0.75]
    rows = list(csv.DictReader(io.StringIO((case / "out" / "metrics.samples.csv").read_text())))
    assert [r["type"] for r in rows] == ["positive"] * 3 + ["easy", "real"]
    assert float(rows[1]["ciou"]) == 1.0 and rows[0]["size_bucket"] == "large"
    cfg = yaml.safe_load((case / "out" / "metrics.config.yaml").read_text())
    assert cfg["extended_csv"].endswith("ext.csv")


def test_positives_only_and_options(case):
    result = _eval(case, "--max-f1", "full", "--binarize", "fixed:0.5")
    assert result.exit_code == 0, result.output
    m = json.loads((case / "out" / "metrics.json").read_text())
    assert m["n_negative"] == 0 and m["by_negative_type"] == {}
    assert "max_f1_full" in m and "max_f1_full" in m["at_iou_0.75"]
    # fixed:0.5 on P = 1 − x/223: P ≥ .5 ⇔ x ≤ 111.5 → the same 112 columns → same cIoUs as relative.
    assert m["locacc"] == pytest.approx(2 / 3)
    assert m["protocol"]["binarize"] == "fixed:0.5"


def test_missing_map_is_a_clear_error(case):
    z = np.load(case / "maps.npz")
    np.savez(case / "maps.npz", names=z["names"][:-1], maps=z["maps"][:-1])
    result = _eval(case, "--extended-csv", str(case / "ext.csv"))
    assert result.exit_code == 1
    assert "1 of 5 evaluated samples have no map" in result.output and OFF in result.output
    result = _eval(case, "--extended-csv", str(case / "ext.csv"), "--skip-missing")
    assert result.exit_code == 0 and json.loads((case / "out" / "metrics.json").read_text())["n_negative"] == 1


def test_full_and_center_baselines(case):
    args = ["eval", "--annotations", str(case / "vggss.json"), "--test-list", str(case / "test.csv"),
            "--extended-csv", str(case / "ext.csv"), "--out", str(case / "b.json")]
    result = runner.invoke(app, args + ["--baseline", "full"])
    assert result.exit_code == 0, result.output
    m = json.loads((case / "b.json").read_text())
    # Whole image predicted: cIoU = ΣG / 50176 → P1 .25, P2 .5, P3 .5 → LocAcc 2/3, mean 5/12.
    assert m["locacc"] == pytest.approx(2 / 3) and m["mean_ciou"] == pytest.approx(5 / 12)
    assert m["protocol"]["source"] == "baseline:full"
    result = runner.invoke(app, args + ["--baseline", "center"])
    assert result.exit_code == 0, result.output
    m = json.loads((case / "b.json").read_text())
    # The centred disc holds half the pixels; half of it lies in the left half (P2's box):
    # cIoU(P2) = 12544 / (25088 + 12544) = 1/3 up to the disc's pixelisation.
    rows = list(csv.DictReader(io.StringIO((case / "b.samples.csv").read_text())))
    assert float(rows[1]["ciou"]) == pytest.approx(1 / 3, abs=0.01)
    # Baselines ignore the audio: the easy negative (video P1) has P1's confidence.
    assert rows[3]["confidence"] == rows[0]["confidence"]


def test_ogl_baseline_on_store_frames(case, tmp_path):
    from torchvision.models import resnet18

    jpeg = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(jpeg, format="JPEG")
    recs = [ClipRecord(id=i, source=i, time=0.0, duration=1.0, frame_jpeg=jpeg.getvalue(), height=48, width=64,
                       audio=np.zeros(16, np.int16), sample_rate=16000) for i in (P1, P2, P3, OFF)]
    write_store(tmp_path / "test.h5", recs, StoreAttrs(16000, 16))
    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    result = runner.invoke(app, ["eval", "--baseline", "ogl", "--ogl-weights", str(tmp_path / "r18.pth"),
                                 "--test", str(tmp_path / "test.h5"), "--annotations", str(case / "vggss.json"),
                                 "--test-list", str(case / "test.csv"), "--extended-csv", str(case / "ext.csv"),
                                 "--out", str(tmp_path / "ogl.json")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "ogl.samples.csv").read_text())))
    assert rows[3]["confidence"] == rows[0]["confidence"]  # same frame, audio ignored
    assert float(rows[0]["confidence"]) > 0


def test_recorded_extended_set(case, tmp_path):
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    recs = [ClipRecord(id=i, source=i, time=0.0, duration=1.0, frame_jpeg=jpeg.getvalue(), height=8, width=8,
                       audio=np.zeros(16, np.int16), sample_rate=16000) for i in (P1, P2, P3)]
    store = tmp_path / "t.h5"
    write_store(store, recs, StoreAttrs(16000, 16))
    assert runner.invoke(app, ["extend-testset", str(store), "--annotations", str(case / "vggss.json")]).exit_code == 0
    pairs = [line.split(",")[:2] for line in (tmp_path / "t.h5.extended.csv").read_text().splitlines()[1:]]
    names = [P1, P2, P3] + [f"{v}__{a}" for v, a in pairs]
    np.savez(tmp_path / "m.npz", names=np.array(names), maps=np.random.default_rng(0).random((len(names), 7, 7)))
    result = runner.invoke(app, ["eval", "--maps", str(tmp_path / "m.npz"), "--annotations", str(case / "vggss.json"),
                                 "--test", str(store), "--extended", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "r.json").read_text())
    assert (m["n_positive"], m["n_negative"]) == (3, 3)
    assert sum(e["n"] for e in m["by_negative_type"].values()) == 3
    # --extended without a store is an error that says what to pass
    result = runner.invoke(app, ["eval", "--maps", str(tmp_path / "m.npz"), "--annotations", str(case / "vggss.json"),
                                 "--extended", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1 and "--test" in result.output


def test_checkpoint_round_trip_with_trained_run(tmp_path):
    """`avslkit eval RUN --test STORE --extended`: maps come from the training methods' predict_maps."""
    try:
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
        from _train_helpers import make_store, tiny_config, write_vggss_annotations

        from avslkit.training import run_training
    except ImportError as exc:  # training code not present in this checkout
        pytest.skip(f"training engine unavailable: {exc}")
    train = make_store(tmp_path / "train.h5", n=8)
    test = make_store(tmp_path / "test.h5", n=6, seed=1, prefix="test")
    ann_path = write_vggss_annotations(tmp_path / "ann.json", [f"test{i:03d}" for i in range(6)])
    ann = json.loads(ann_path.read_text())
    for k, item in enumerate(ann):
        item["class"] = "a" if k % 2 else "b"
    ann_path.write_text(json.dumps(ann))
    run_training(tiny_config("ezvsl", train), tmp_path / "run", quiet=True)
    assert runner.invoke(app, ["extend-testset", str(test), "--annotations", str(ann_path)]).exit_code == 0
    result = runner.invoke(app, ["eval", str(tmp_path / "run"), "--test", str(test), "--annotations", str(ann_path),
                                 "--extended", "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "m.json").read_text())
    # 6 positives, 6 automated negatives: hard = floor(.25·6 + .5) = 2, easy = 4
    assert (m["n_positive"], m["n_negative"]) == (6, 6)
    assert {k: v["n"] for k, v in m["by_negative_type"].items()} == {"easy": 4, "hard": 2}
    assert m["protocol"]["source"].startswith("checkpoint:")


def test_ogl_is_mean_abs_layer4_and_frozen():
    from torchvision.models import resnet18

    from avslkit.models.ogl import OGL

    torch.manual_seed(0)
    net = resnet18()
    ogl = OGL(net)
    ogl.train()  # stays in eval mode (BatchNorm statistics frozen)
    assert not ogl.training and not any(p.requires_grad for p in ogl.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        feats = net.layer4(net.layer3(net.layer2(net.layer1(h))))
    out = ogl(x)
    assert out.shape == (2, 2, 2)
    torch.testing.assert_close(out, feats.abs().mean(dim=1))


def test_quiet_prints_no_table(case):
    loud = _eval(case)
    assert loud.exit_code == 0 and "LocAcc" in loud.output
    args = ["--quiet", "eval", "--maps", str(case / "maps.npz"), "--annotations", str(case / "vggss.json"),
            "--test-list", str(case / "test.csv"), "--out", str(case / "q" / "metrics.json")]
    quiet = runner.invoke(app, args)
    assert quiet.exit_code == 0, quiet.output
    assert "LocAcc" not in quiet.output and quiet.stdout.strip().endswith("metrics.json")
    assert json.loads((case / "q" / "metrics.json").read_text())["n_positive"] == 3
