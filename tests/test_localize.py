"""`avslkit localize`: AV / OGL / fused overlays and the heatmap video on a synthetic clip with a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile
from typer.testing import CliRunner

from _train_helpers import make_store, tiny_config
from avslkit.cli.main import app
from avslkit.training import run_training
from avslkit.errors import AvslError
from avslkit.data.video import ClipOptions, read_audio_window, read_clip
from avslkit.inference import load_task_for_inference
from avslkit.viz.localize import Localizer, load_ogl, run_localize

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from avslkit.synth import generate

    tmp = tmp_path_factory.mktemp("loc")
    generate(tmp / "synth", n_clips=2, size=64, duration=2, fps=10)
    video = sorted((tmp / "synth" / "videos").glob("*.mp4"))[0]
    store = make_store(tmp / "train.h5", n=4, size=64, seconds=0.5)
    run = tmp / "run"
    run_training(tiny_config("slavc", store), run, quiet=True)
    return tmp, video, run


def test_audio_window_of_any_file_is_cut_as_preprocessing(setup, tmp_path):
    _, video, _ = setup
    opts = ClipOptions(audio_seconds=1.0)
    window, t = read_audio_window(video, 1.0, opts)
    assert t == 1.0 and np.array_equal(window, read_clip(video, 1.0, audio_seconds=1.0).audio)  # a video's track
    wavfile.write(tmp_path / "a.wav", 16000, np.arange(32000, dtype=np.int16))
    window, t = read_audio_window(tmp_path / "a.wav", None, opts)  # a wav, as the frames/ + audio/ layout
    assert t == 1.0 and np.array_equal(window, np.arange(8000, 24000, dtype=np.int16))


def _frame_and_audio(video, time=0.5):
    clip = read_clip(video, time, allow_silent=True)
    return [clip.frame_jpeg], [clip.audio]


def test_localize_video_frame_writes_three_overlays(setup, tmp_path):
    _, video, run = setup
    res = run_localize(run, video=video, time=1.0, out=tmp_path, size=96)
    for kind in ("input", "av", "ogl", "fused"):
        img = Image.open(res["paths"][kind])
        assert img.size == (96, 96) and img.mode == "RGB"
    assert np.isfinite(res["confidence"]) and 0.0 <= res["confidence"] <= 1.0  # slavc fusion is [0, 1]-bounded
    assert res["alpha"] == 0.9 and res["time"] == 1.0


def test_fusion_rule_and_alpha(setup):
    _, video, run = setup
    task = load_task_for_inference(run)
    frames, audio = _frame_and_audio(video)
    ogl = load_ogl(None)
    av_only = Localizer(task, ogl, "slavc", alpha=1.0, size=64).maps(frames, audio)[0]
    np.testing.assert_allclose(av_only.fused, (av_only.av * task.tau + 1) / 2, rtol=1e-5, atol=1e-6)
    ogl_only = Localizer(task, ogl, "slavc", alpha=0.0, size=64).maps(frames, audio)[0]
    np.testing.assert_allclose(ogl_only.fused, ogl_only.ogl, rtol=1e-5, atol=1e-6)  # OGL shown as OGL/2.5
    slavc = Localizer(task, ogl, "slavc", size=64)
    np.testing.assert_allclose(slavc.refuse(ogl_only, 1.0), av_only.fused, rtol=1e-5, atol=1e-6)  # α sweep re-fusion
    np.testing.assert_allclose(slavc.refuse(av_only, 0.0), ogl_only.fused, rtol=1e-5, atol=1e-6)
    ez = Localizer(task, ogl, "ezvsl", size=64).maps(frames, audio)[0]
    assert ez.fused.min() == pytest.approx(0.0, abs=1e-6) and ez.fused.max() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(AvslError, match="fusion rule"):
        Localizer(task, ogl, "nope")


def test_localize_image_and_wav(setup, tmp_path):
    _, video, run = setup
    clip = read_clip(video, 1.0)
    Image.open(__import__("io").BytesIO(clip.frame_jpeg)).save(tmp_path / "img.png")
    wavfile.write(tmp_path / "a.wav", 16000, clip.audio)
    res = run_localize(run, image=tmp_path / "img.png", audio=tmp_path / "a.wav", out=tmp_path / "o", fusion="ezvsl", size=64)
    assert res["alpha"] == 0.4 and all(p.is_file() for p in res["paths"].values())
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["img_av.png", "img_fused.png", "img_input.png", "img_ogl.png"]


def test_heatmap_video_has_video_and_audio_streams(setup, tmp_path):
    import av

    _, video, run = setup
    res = run_localize(run, video=video, every=0.5, out=tmp_path, size=64, side_by_side=True)
    assert len(res["times"]) == 4 and len(res["confidences"]) == 4
    path = res["paths"]["video"]
    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (3 * 64, 64)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert 1.5 <= c.duration / 1e6 <= 2.6
    assert len(frames) >= 4 and frames[0].std() > 5  # a real picture, not a blank frame


def test_localize_cli_and_errors(setup, tmp_path):
    _, video, run = setup
    res = runner.invoke(app, ["localize", "--ckpt", str(run), "--video", str(video), "--out", str(tmp_path), "--size", "64",
                              "--alpha", "0.5", "--alpha-sweep", "0,0.5,1"])
    assert res.exit_code == 0, res.output
    assert "confidence:" in res.stdout and "alpha 0.5" in res.stdout
    assert (tmp_path / f"{video.stem}_fused.png").is_file()
    assert Image.open(tmp_path / f"{video.stem}_alpha_sweep.png").size == (3 * 66 + 2, 68)
    bad = runner.invoke(app, ["localize", "--ckpt", str(run), "--image", str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "--audio" in bad.output
    bad = runner.invoke(app, ["localize", "--ckpt", str(run), "--video", str(video), "--alpha", "2"])
    assert bad.exit_code == 1 and "alpha" in bad.output


def test_checkpoint_eval_then_viz_components(setup, tmp_path):
    """End to end: eval a checkpoint (no saved maps) → viz recomputes the maps and draws AV/OGL/fused."""
    from _train_helpers import write_vggss_annotations
    from avslkit.config import load_config
    from avslkit.evaluation.runner import run_evaluation
    from avslkit.viz.report import VizOptions, build_report

    tmp, _, run = setup
    test = make_store(tmp_path / "test.h5", n=3, size=64, seconds=0.5, seed=5, prefix="t")
    ann = write_vggss_annotations(tmp_path / "vggss.json", [f"t{i:03d}" for i in range(3)])
    cfg = load_config("eval", None, [], {"checkpoint": str(run), "test": str(test), "annotations": str(ann),
                                         "out": str(tmp_path / "ev" / "metrics.json")})
    run_evaluation(cfg, print_table=False)
    index = build_report([tmp_path / "ev", run], tmp_path / "rep", VizOptions(k=2, size=64, selections=("best",), components=True))
    comp = Image.open(tmp_path / "rep" / "grids" / "best_components.png")
    assert comp.size == (3 * 66 + 2, 14 + 2 * 66 + 2)
    assert "train_loss.png" in index.read_text()


class _UnitMapTask:
    """A stand-in task whose maps are [0, 1] probabilities (score_bounds (0, 1)), e.g. a semi-supervised model."""

    cfg = {"image_size": 32, "audio": {"sample_rate": 16000}, "model": {"tau": 0.03}, "method": "supervised"}
    tau = 0.03
    score_bounds = (0.0, 1.0)

    def localization_maps(self, images, audio):
        import torch

        m = torch.zeros(len(images), 4, 4)
        m[:, 1, 2] = 1.0
        return m


def test_slavc_fusion_uses_the_task_score_bounds():
    loc = Localizer(_UnitMapTask(), load_ogl(None), "slavc", alpha=1.0, size=32)
    ms = loc.maps([np.zeros((40, 40, 3), np.uint8)], [np.zeros(16000, np.int16)])[0]
    np.testing.assert_allclose(ms.fused, ms.av, atol=1e-5)  # AV' = (S − lo)/(hi − lo) = S for [0, 1] maps
    assert 0.9 < ms.fused.max() <= 1.1 and ms.confidence < 1.0  # not the (S·τ + 1)/2 ≈ 0.5 of cos/τ maps


def test_one_clip_same_maps_through_eval_viz_localize_and_demo(setup, tmp_path):
    """The one inference path: a preprocessed clip and the same video file give the same AV map and
    confidence in eval's per-sample CSV, viz's recomputed maps, `avslkit localize` and the demo."""
    import csv

    from _train_helpers import write_vggss_annotations
    from avslkit.config import load_config
    from avslkit.data.preprocess import preprocess
    from avslkit.demo import DemoLocalizer
    from avslkit.demo.inputs import decode_video_file, demo_clip_options
    from avslkit.evaluation.runner import run_evaluation
    from avslkit.metrics.maps import confidence, upsample_maps
    from avslkit.viz.runs import load_eval

    tmp, video, run = setup
    test = tmp_path / "test.h5"
    preprocess(video.parent, test, workers=0, progress=False)  # the frame and audio at the middle (1.0 s)
    ann = write_vggss_annotations(tmp_path / "vggss.json", sorted(p.stem for p in video.parent.glob("*.mp4")))
    out = tmp_path / "ev" / "metrics.json"
    run_evaluation(load_config("eval", None, [], {"checkpoint": str(run), "test": str(test), "annotations": str(ann),
                                                  "out": str(out)}), print_table=False)
    row = {r["name"]: r for r in csv.DictReader(out.with_suffix(".samples.csv").open())}[video.stem]
    eval_conf = float(row["confidence"])

    ev = load_eval(out)
    viz_map = upsample_maps(ev.maps([ev.row(video.stem)])[0][None])
    assert float(confidence(viz_map)[0]) == pytest.approx(eval_conf, rel=1e-5)

    res = run_localize(run, video=video, out=tmp_path / "loc", size=224)
    assert res["time"] == 1.0 and res["av_confidence"] == pytest.approx(eval_conf, rel=1e-5)

    demo = DemoLocalizer.from_checkpoint(run)
    _, audio, _, jpeg = decode_video_file(video, video.name, demo_clip_options(16000, 3.0))
    analysis = demo.analyze(jpeg, audio)
    assert demo.confidence(analysis.av) == pytest.approx(eval_conf, rel=1e-5)
    np.testing.assert_allclose(analysis.av, viz_map[0], rtol=1e-4, atol=1e-4)
    assert demo.fusion == res["rule"] == "slavc" and demo.tau == 0.03  # the run's rule and model.tau
    assert demo.confidence(analysis.fused) == pytest.approx(res["confidence"], rel=1e-5)
