"""`avslkit viz`: overlay colours and geometry, selections, figures, the HTML report and its links."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from _train_helpers import make_store, write_vggss_annotations
from avslkit.cli.main import app
from avslkit.config import load_config
from avslkit.evaluation.runner import run_evaluation
from avslkit.viz.overlay import colorize, heatmap_overlay, mask_contour, prediction_mask, render_sample, save_png
from avslkit.viz.plots import training_curves
from avslkit.viz.report import VizOptions, build_report
from avslkit.viz.runs import load_eval, save_eval_maps
from avslkit.viz.select import SampleRow, select

runner = CliRunner()


def peak_map(row: float, col: float, n: int = 7, width: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * width ** 2)).astype(np.float32)


def is_red(px) -> bool:
    r, g, b = (int(v) for v in px[:3])
    return r > 100 and r > b + 60 and r > g + 50  # JET's top is dark red (128, 0, 0)


def is_blue(px) -> bool:
    r, g, b = (int(v) for v in px[:3])
    return b > r + 60


def test_colormap_is_rgb_hot_red_cold_blue():
    rgb = colorize(np.array([[0.0, 0.9, 1.0]]))
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    assert is_blue(rgb[0, 0]) and is_red(rgb[0, 1]) and rgb[0, 2, 0] > rgb[0, 2, 2]


def test_hot_region_lands_on_the_map_peak_in_the_saved_png(tmp_path):
    image = np.full((48, 80, 3), 128, np.uint8)  # non-square input: resized to the 112×112 view
    over = heatmap_overlay(image, peak_map(1, 5), size=112, heat_alpha=0.6)
    assert over.shape == (112, 112, 3)
    png = np.asarray(Image.open(save_png(over, tmp_path / "o.png")).convert("RGB"))
    assert png.shape == (112, 112, 3) and np.array_equal(png, over)
    # 7×7 cell (1, 5) upsampled with align_corners: centre at (1/6, 5/6) of the side
    peak = png[round(111 / 6), round(111 * 5 / 6)]
    assert is_red(peak), peak
    assert is_blue(png[105, 5]), png[105, 5]  # far corner
    red = png[..., 0].astype(int) - png[..., 2] > 60
    cy, cx = np.argwhere(red).mean(axis=0)  # the red blob is centred on the peak
    assert abs(cy - 111 / 6) < 6 and abs(cx - 111 * 5 / 6) < 6 and red.mean() < 0.2


def test_render_sample_draws_boxes_contour_and_caption():
    image = np.zeros((64, 64, 3), np.uint8)
    m = peak_map(3, 3)
    out = render_sample(image, m, boxes=np.array([[0.25, 0.25, 0.75, 0.75]]), ciou=0.42, confidence=1.5, size=96)
    assert out.shape == (96, 96, 3)
    green = (out[..., 1] == 255) & (out[..., 0] == 0) & (out[..., 2] == 0)
    assert green[47, int(0.25 * 95)] and green[int(0.75 * 95), 47]  # left and bottom box edges
    mask = prediction_mask(m, "relative", 96)
    assert 0.4 < mask.mean() < 0.6 and mask[48, 48] and not mask[2, 90]  # upper-median disc around the centre
    edge = mask_contour(mask)
    white = (out == 255).all(axis=-1)
    edge[:20] = False  # the caption covers the top rows
    assert edge.sum() > 50 and white[edge & ~green].all()  # contour pixels are white (where no box is drawn over them)
    assert not white[48, 48]  # the inside is not
    corner = out[:10, :40].astype(int).sum(-1)
    assert (corner == 0).mean() > 0.3 and (corner > 600).any()  # caption: light text on black


def rows_fixture() -> list[SampleRow]:
    mk = lambda n, kind, ciou, conf, bucket: SampleRow(n, n, n, kind, ciou, conf, 1.0, bucket, 0.1)  # noqa: E731
    return [mk("a", "positive", 0.9, 1.0, "small"), mk("b", "positive", 0.1, 2.0, "large"),
            mk("c", "positive", 0.5, 3.0, "huge"), mk("d", "positive", 0.1, 5.0, "huge"),
            mk("n1", "easy", float("nan"), 9.0, ""), mk("n2", "real", float("nan"), 0.5, "")]


def test_selections():
    rows = rows_fixture()
    assert [r.name for r in select(rows, "best", 2)] == ["a", "c"]
    assert [r.name for r in select(rows, "worst", 2)] == ["d", "b"]  # equal cIoU: the confident one first
    assert [r.name for r in select(rows, "negatives", 1)] == ["n1"]
    per = select(rows, "per-size", 1)
    assert sorted(r.size_bucket for r in per) == ["huge", "large", "small"]
    rnd = select(rows, "random", 3, seed=1)
    assert len(rnd) == 3 and rnd == select(rows, "random", 3, seed=1)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A 6-clip store, annotations, two map sets evaluated by the real runner (with negatives)."""
    tmp = tmp_path_factory.mktemp("viz")
    store = make_store(tmp / "test.h5", n=6, size=72, seconds=0.25)
    ids = [f"clip{i:03d}" for i in range(6)]
    ann = write_vggss_annotations(tmp / "vggss.json", ids)
    ext = tmp / "ext.csv"
    ext.write_text("video,audio,label\n" + "".join(f"{ids[i]},{ids[i + 1]},non-sounding\n" for i in range(2)))
    out = {}
    for k, name in enumerate(("good", "other")):
        rng = np.random.default_rng(k)
        names = ids + [f"{ids[i]}__{ids[i + 1]}" for i in range(2)]
        maps = np.stack([peak_map(*rng.uniform(0, 6, 2)) * rng.uniform(1, 3) for _ in names])
        np.savez(tmp / f"{name}.npz", names=np.array(names), maps=maps)
        cfg = load_config("eval", None, [], {"maps": str(tmp / f"{name}.npz"), "annotations": str(ann), "test": str(store),
                                             "extended_csv": str(ext), "out": str(tmp / name / "metrics.json")})
        run_evaluation(cfg, print_table=False)
        out[name] = (tmp / name / "metrics.json", names, maps)
    log = tmp / "run" / "log.jsonl"
    log.parent.mkdir()
    lines = [{"type": "step", "time": 0, "global_step": s, "loss": 2.0 - s / 10, "loss_a": 1.0, "pl_kept": 0.1 * s, "lr": 1e-4}
             for s in range(5)]
    lines += [{"type": "val", "time": 0, "epochs_completed": e, "loc_acc": 0.2 * e, "n": 4} for e in (1, 2)]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp, out


def links_of(index: Path) -> list[str]:
    return re.findall(r"(?:href|src)='([^']+)'", index.read_text())


def test_report_links_resolve_and_images_have_the_right_size(evaluated, tmp_path):
    tmp, out = evaluated
    index = build_report([out["good"][0].parent, tmp / "run"], tmp_path / "rep",
                         VizOptions(k=2, size=96, selections=("best", "negatives", "per-size")))
    links = links_of(index)
    assert links and all(not l.startswith(("/", "file:")) for l in links)
    for l in links:
        assert (index.parent / unquote(l)).is_file(), l
    html = index.read_text()
    run = load_eval(out["good"][0])
    assert f"{100 * run.metrics['locacc']:.2f}" in html and "By negative type" in html
    for fig in ("success_curve", "locacc_by_size", "f1_vs_confidence", "ap_vs_iou", "train_loss", "val_metrics", "pseudo_labels"):
        assert any(fig in l for l in links), fig
    best = sorted((index.parent / "samples" / "best").glob("*.png"))
    assert len(best) == 2 and all(Image.open(p).size == (96, 96) for p in best)
    top = max((r for r in run.rows if r.is_positive), key=lambda r: (r.ciou, r.confidence))
    assert (index.parent / "samples" / "best" / f"{top.name}.png").is_file()
    negs = list((index.parent / "samples" / "negatives").glob("*.png"))
    assert len(negs) == 2


def test_overlay_peak_follows_the_evaluated_map(evaluated, tmp_path):
    tmp, out = evaluated
    path, names, maps = out["good"]
    index = build_report([path], tmp_path / "rep", VizOptions(k=1, size=112, selections=("best",), heat_alpha=0.7))
    run = load_eval(path)
    row = max((r for r in run.rows if r.is_positive), key=lambda r: (r.ciou, r.confidence))
    m = maps[names.index(row.name)]
    png = np.asarray(Image.open(index.parent / "samples" / "best" / f"{row.name}.png").convert("RGB")).astype(int)
    r, c = np.unravel_index(np.argmax(m), m.shape)
    y, x = round(r * 111 / 6), round(c * 111 / 6)
    region = png[max(0, y - 3):y + 4, max(0, x - 3):x + 4]
    assert (region[..., 0] - region[..., 2]).max() > 80  # red at the map's peak


def test_compare_runs_side_by_side(evaluated, tmp_path):
    _, out = evaluated
    index = build_report([out["good"][0], out["other"][0]], tmp_path / "cmp", VizOptions(k=3, size=64, selections=("random",)))
    sheet = Image.open(index.parent / "grids" / "random.png")
    # two columns of 64 px tiles (+ 2 px padding), three rows, a title band
    assert sheet.size == (2 * 66 + 2, 14 + 3 * 66 + 2)
    assert len(list((index.parent / "samples" / "random").glob("*.png"))) == 6


def test_save_eval_maps_round_trip(evaluated):
    _, out = evaluated
    path, names, maps = out["good"]
    saved = save_eval_maps(path)
    with np.load(saved) as z:
        got = dict(zip(z["names"].tolist(), z["maps"]))
    assert set(got) == set(names)
    for n, m in zip(names, maps):
        np.testing.assert_allclose(got[n], m, rtol=1e-6)
    saved.unlink()


def test_training_curves_only_from_present_data(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"type": "step", "time": 0, "global_step": 1, "loss": 1.0}) + "\n")
    figs = training_curves(log, tmp_path / "f")
    assert set(figs) == {"train_loss"} and Image.open(figs["train_loss"]).size[0] > 100


def test_viz_cli(evaluated, tmp_path):
    tmp, out = evaluated
    res = runner.invoke(app, ["viz", str(out["good"][0]), "--out", str(tmp_path / "v"), "--select", "worst", "--k", "1", "--size", "64"])
    assert res.exit_code == 0, res.output
    assert Path(res.stdout.strip().splitlines()[-1]).name == "index.html"
    assert len(list((tmp_path / "v" / "samples" / "worst").glob("*.png"))) == 1
    res = runner.invoke(app, ["viz", str(out["good"][0]), "--out", str(tmp_path / "c"), "--select", "worst", "--k", "1",
                              "--size", "64", "--cmap", "gray"])
    assert res.exit_code == 0, res.output
    jet, gray = (np.asarray(Image.open(next((tmp_path / d / "samples" / "worst").glob("*.png"))).convert("RGB")).astype(int)[20:]
                 for d in ("v", "c"))
    assert np.abs(gray[..., 0] - gray[..., 2]).mean() < 0.6 * np.abs(jet[..., 0] - jet[..., 2]).mean()  # grey heat: less hue
    bad = runner.invoke(app, ["viz", str(out["good"][0]), "--out", str(tmp_path / "w"), "--cmap", "nocmap"])
    assert bad.exit_code == 1 and "colormap" in bad.output
    res = runner.invoke(app, ["viz", str(tmp / "run"), "--out", str(tmp_path / "t")])  # a training run only
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t" / "training" / "train_loss.png").is_file() and "Metrics" not in (tmp_path / "t" / "index.html").read_text()
    bad = runner.invoke(app, ["viz", str(tmp_path / "nope"), "--out", str(tmp_path / "w")])
    assert bad.exit_code == 1 and "not found" in bad.output
    bad = runner.invoke(app, ["viz", str(out["good"][0]), "--out", str(tmp_path / "w"), "--select", "nonsense"])
    assert bad.exit_code == 1 and "unknown selection" in bad.output


def test_eval_save_maps_option_feeds_viz(evaluated, tmp_path):
    tmp, out = evaluated
    _, names, maps = out["good"]
    target = tmp_path / "ev" / "metrics.json"
    res = runner.invoke(app, ["eval", "--maps", str(tmp / "good.npz"), "--annotations", str(tmp / "vggss.json"),
                              "--test", str(tmp / "test.h5"), "--out", str(target), "--save-maps"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "ev" / "metrics.maps.npz") as z:
        assert z["maps"].shape == (6, 7, 7)  # the positives evaluated (no --extended-csv here)
        np.testing.assert_allclose(z["maps"], maps[[names.index(n) for n in z["names"]]])
    (tmp / "good.npz").rename(tmp / "good.moved.npz")  # viz must now draw from the saved maps
    try:
        index = build_report([target], tmp_path / "rep", VizOptions(k=1, size=64, selections=("best",)))
        assert (index.parent / "grids" / "best.png").is_file()
    finally:
        (tmp / "good.moved.npz").rename(tmp / "good.npz")
