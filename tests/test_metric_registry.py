"""The metric registry: a toy metric registered here (the docs/architecture.md recipe) reaches the summary,
the per-sample CSV, the printed table, the viz tables and the training Validator; the docs table is generated."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_store, write_vggss_annotations  # noqa: E402

from avslkit.cli.main import app  # noqa: E402
from avslkit.metrics import registry  # noqa: E402
from avslkit.metrics.maps import upsample_maps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IDS = ["pos0000001_000001", "pos0000002_000002", "pos0000003_000003"]


def test_docs_metrics_table_is_the_generated_one():
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    assert registry.docs_with_table(text) == text, (
        "docs/evaluation.md's metrics table is stale: run `python -m avslkit.metrics.registry docs/evaluation.md`")


def test_builtin_order_is_the_published_format():
    """metrics.json keys and CSV columns come from the registration order: it must not drift."""
    assert [m.key for m in registry.metrics()] == ["locacc", "mean_ciou", "auc", "ap", "max_f1", "max_f1_full", "mse"]
    assert [s.column for s in registry.sample_statistics()] == ["ciou", "confidence", "gt_area", "size_bucket", "mse"]
    assert {m.validation_key for m in registry.metrics() if m.validation_key} == {"loc_acc", "ciou_mean", "auc"}
    with pytest.raises(ValueError, match="already registered"):
        registry.register_metric("auc", label="AUC", description="again")(lambda s, iou: 0.0)
    with pytest.raises(ValueError, match="unknown section"):
        registry.register_metric("toy", label="toy", description="x", sections=("everywhere",))


@pytest.fixture()
def toy_metric():
    """Step 1 of the recipe, done from this file: a per-sample statistic and its aggregate."""

    @registry.register_sample_statistic("peak", description="largest value of the absolute map")
    def peak(maps: np.ndarray, gt: np.ndarray) -> np.ndarray:
        return maps.reshape(len(maps), -1).max(axis=1)

    @registry.register_metric("mean_peak", label="mean peak", sections=("all", "by_size"), validation_key="peak_mean",
                              description="mean of `peak` over positives")
    def mean_peak(subset: registry.Subset, iou: float) -> float:
        return registry.positive_mean(subset.positives.peak)

    yield
    registry.unregister("mean_peak")
    registry.unregister("peak")


def test_a_registered_metric_reaches_summary_csv_tables_and_docs(tmp_path, toy_metric):
    ann = write_vggss_annotations(tmp_path / "vggss.json", IDS)
    (tmp_path / "test.csv").write_text("\n".join(IDS))
    maps = np.random.default_rng(0).random((3, 7, 7)).astype(np.float32) * np.float32(0.5)  # viz shows values ≤ 1 in %
    np.savez(tmp_path / "maps.npz", names=np.array(IDS), maps=maps)
    out = tmp_path / "metrics.json"
    res = CliRunner().invoke(app, ["eval", "--maps", str(tmp_path / "maps.npz"), "--annotations", str(ann),
                                   "--test-list", str(tmp_path / "test.csv"), "--out", str(out)],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    peaks = upsample_maps(maps).reshape(3, -1).max(axis=1).astype(np.float64)  # the maps as scored: 224×224

    m = json.loads(out.read_text())
    assert m["mean_peak"] == pytest.approx(peaks.mean(), rel=1e-12)
    assert list(m)[list(m).index("mse") + 1] == "mean_peak"  # appended after the built-ins
    assert all("mean_peak" in e for e in m["by_size"].values()) and "mean_peak" not in m["at_iou_0.75"]
    rows = list(csv.DictReader(io.StringIO(out.with_suffix(".samples.csv").read_text())))
    assert [float(r["peak"]) for r in rows] == pytest.approx(peaks.tolist(), rel=1e-12)
    assert "mean peak" in res.output  # a column of the printed table (reported per size bucket)
    assert f"{100 * m['mean_peak']:.2f}" in res.output

    from avslkit.viz.report import metrics_tables
    from avslkit.viz.runs import load_eval

    html = metrics_tables([load_eval(out)])
    assert "<th>mean peak</th>" in html and f"{100 * m['mean_peak']:.2f}" in html
    assert "`mean_peak`" in registry.markdown_table() and "`peak`" in registry.markdown_table()


class _ToyTask:
    """The two things the Validator uses of a task: its models and its maps."""

    def __init__(self):
        self.maps: list[torch.Tensor] = []

    def models(self) -> dict[str, torch.nn.Module]:
        return {}

    def localization_maps(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        out = images[:, 0, :7, :7] + images[:, 1, 7:14, 7:14] ** 2
        self.maps.append(out)
        return out


def test_a_registered_metric_reaches_the_validator(tmp_path, toy_metric):
    from avslkit.engine.validation import Validator

    store = make_store(tmp_path / "val.h5", n=5)
    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"clip{i:03d}" for i in range(5)])
    task = _ToyTask()
    record = Validator(store, ann, image_size=64, batch_size=2).run(task)
    peaks = upsample_maps(torch.cat(task.maps).numpy()).reshape(5, -1).max(axis=1)
    assert record["n"] == 5 and list(record) == ["loc_acc", "ciou_mean", "auc", "peak_mean", "n"]
    assert record["peak_mean"] == pytest.approx(float(peaks.astype(np.float64).mean()), rel=1e-12)
