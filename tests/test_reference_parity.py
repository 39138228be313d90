"""The conventions of the official EZ-VSL / SLAVC test scripts, on small cases derived by hand.

Each case fixes one convention the `ezvsl-test` / `slavc-test` presets select (docs/conventions.md):
bilinear vs bicubic upsampling, the audio window start, the int16 scale, the scaled SLAVC scores and
their float32 confidence, and SLAVC's online vs momentum branch after loading an official checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store, tiny_config  # noqa: E402

from avslkit.config import load_config, preset_layer
from avslkit.data.dataset import int16_to_float
from avslkit.data.video import ClipOptions, cut_window
from avslkit.metrics.maps import scale_maps, upsample_maps
from avslkit.metrics.samples import sample_stats

# -- upsampling ------------------------------------------------------------------------------------
# A 7×7 map with a single 1 at the centre, upsampled to 224 with align_corners=True: output pixel j
# samples the source at x_j = 6j/223, so the map becomes k(x_i − 3)·k(x_j − 3) for the interpolation
# kernel k. Bilinear: k(d) = 1 − |d| on |d| < 1, zero beyond. Bicubic (torch, a = −0.75):
# k(d) = 1.25|d|³ − 2.25|d|² + 1 on |d| ≤ 1 and a(|d| − 1)(|d| − 2)² (< 0) on 1 < |d| < 2.
DELTA = np.zeros((1, 7, 7), np.float32)
DELTA[0, 3, 3] = 1.0
X = 6 * np.arange(224) / 223


def _bilinear_kernel(d: np.ndarray) -> np.ndarray:
    return np.clip(1 - np.abs(d), 0, None)


def _bicubic_kernel(d: np.ndarray, a: float = -0.75) -> np.ndarray:
    d = np.abs(d)
    near = (a + 2) * d**3 - (a + 3) * d**2 + 1
    far = a * (d - 1) * (d - 2) ** 2
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


@pytest.mark.parametrize("mode, kernel", [("bilinear", _bilinear_kernel), ("bicubic", _bicubic_kernel)])
def test_delta_map_upsamples_to_the_kernel_product(mode, kernel):
    expected = np.outer(kernel(X - 3), kernel(X - 3))
    got = upsample_maps(DELTA, 224, mode)[0]
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_bilinear_and_bicubic_give_the_hand_derived_ciou():
    """Ground truth = the 74×74 square (pixels 75..148) where the bilinear map is > 0.

    Predicting every pixel ≥ 1e-9 of the raw map: bilinear predicts exactly the square (cIoU 1);
    bicubic adds its four corner lobes (both |d| in (1, 2): 37×37 pixels each, negative × negative),
    so cIoU = 74² / (74² + 4·37²) = 0.5.
    """
    gt = np.zeros((1, 224, 224), np.float32)
    gt[0, 75:149, 75:149] = 1
    bilinear = sample_stats(upsample_maps(DELTA, 224, "bilinear"), gt, "absolute:1e-9")
    bicubic = sample_stats(upsample_maps(DELTA, 224, "bicubic"), gt, "absolute:1e-9")
    assert bilinear.ciou[0] == 1.0
    assert bicubic.ciou[0] == 0.5


def test_eval_upsample_option_reaches_the_metrics(tmp_path):
    from avslkit.evaluation.runner import run_evaluation

    maps = tmp_path / "maps.npz"
    np.savez(maps, names=np.array(["a"]), maps=DELTA)
    # int(224·x) = 75 and 149: the box covers pixels 75..148
    ann = tmp_path / "vggss.json"
    ann.write_text(json.dumps([{"file": "a", "class": "x", "bbox": [[75.5 / 224, 75.5 / 224, 149.5 / 224, 149.5 / 224]]}]))
    cious = {}
    for mode in ("bilinear", "bicubic"):
        cfg = load_config("eval", overrides=[f"maps={maps}", f"annotations={ann}", "binarize=absolute:1e-9",
                                             f"upsample={mode}", f"out={tmp_path / mode}.json"])
        cious[mode] = run_evaluation(cfg, print_table=False)["mean_ciou"]
        assert json.loads((tmp_path / f"{mode}.json").read_text())["protocol"]["upsampling"].startswith(mode)
    assert cious == {"bilinear": 1.0, "bicubic": 0.5}


# -- audio window ----------------------------------------------------------------------------------
def test_window_start_on_an_odd_length_signal():
    """48,003 samples at 16 kHz, window centred on the middle: start = 3/32000 s = 1.5 samples.

    round → sample 2 (avslkit); truncate → sample 1 (int(1.5)); seek_truncate (the references' wav
    reader) seeks to int(93.75) = 93 µs → sample s0 = round(1.488) = 1, then 1 + int(0.5) = 1.
    """
    samples = np.arange(48003, dtype=np.int64).astype(np.int16)
    first = {}
    for rule in ("round", "truncate", "seek_truncate"):
        opts = ClipOptions(sample_rate=16000, audio_seconds=3.0, window_rule=rule).validate()
        window = cut_window(samples, 0.0, 48003 / 16000 / 2, opts)
        assert len(window) == 48000
        first[rule] = int(window[0])
    assert first == {"round": 2, "truncate": 1, "seek_truncate": 1}


def test_seek_truncate_loses_a_sample_of_a_short_window_like_the_reference():
    """A 50,626-sample wav at 22.05 kHz (< 3 s): the reference takes int((n/rate)·rate) samples, and
    50626/22050·22050 evaluates to 50625.99…, so the last sample is dropped before tiling."""
    n, rate = 50626, 22050
    assert int((n / rate) * rate) == n - 1
    samples = (np.arange(n) % 30000 + 1).astype(np.int16)
    opts = ClipOptions(sample_rate=rate, audio_seconds=3.0, window_rule="seek_truncate").validate()
    window = cut_window(samples, 0.0, n / rate / 2, opts)
    assert len(window) == 66150 and window[n - 1] == samples[0]  # tiling restarts one sample early
    rounded = cut_window(samples, 0.0, n / rate / 2, ClipOptions(sample_rate=rate, audio_seconds=3.0).validate())
    assert rounded[n - 1] == samples[n - 1] and rounded[n] == samples[0]
    with pytest.raises(Exception, match="window_rule"):
        ClipOptions(window_rule="nearest").validate()


# -- int16 scale -----------------------------------------------------------------------------------
def test_int16_scale_32767_clips_like_the_reference():
    x = np.array([-32768, -32767, -1, 0, 1, 32767], np.int16)
    ref = int16_to_float(x, 32767.0)
    assert ref.dtype == np.float64
    assert ref.tolist() == [-1.0, -1.0, -1 / 32767, 0.0, 1 / 32767, 1.0]  # -32768/32767 < -1 is clipped
    ours = int16_to_float(x, 32768.0)
    assert ours.dtype == np.float32
    assert ours.tolist() == [-1.0, -32767 / 32768, -1 / 32768, 0.0, 1 / 32768, 32767 / 32768]


def test_dataset_reads_audio_with_the_configured_scale(tmp_path):
    from avslkit.data.dataset import AVDataset
    from avslkit.data.store import ClipRecord, StoreAttrs, write_store

    audio = np.array([-32768, 32767, 3] * 100, np.int16)
    write_store(tmp_path / "s.h5", [ClipRecord("c", "x", 0.0, 1.0, _tiny_jpeg(), 8, 8, audio, 16000, "")],
                StoreAttrs(sample_rate=16000, audio_samples=len(audio)))
    ref = AVDataset(tmp_path / "s.h5", image_transform="test", image_size=8, int16_scale=32767)[0]["audio"]
    assert ref.dtype == torch.float64 and ref[:3].tolist() == [-1.0, 1.0, 3 / 32767]
    ours = AVDataset(tmp_path / "s.h5", image_transform="test", image_size=8)[0]["audio"]
    assert ours.dtype == torch.float32 and ours[:3].tolist() == [-1.0, 32767 / 32768, 3 / 32768]


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


# -- SLAVC scores and confidence -------------------------------------------------------------------
def test_tau_bounds_maps_cosine_range_onto_unit_interval():
    tau = 0.03
    maps = np.array([[[-1 / tau, 0.0, 1 / tau, 0.3 / tau]]], np.float32)
    scaled = scale_maps(maps, "tau_bounds", tau)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[0, 0], [0.0, 0.5, 1.0, 0.65], atol=1e-7)
    assert scale_maps(maps, "raw") is not None and np.array_equal(scale_maps(maps, "raw"), maps)


def test_float32_confidence_is_numpys_mean_of_the_sorted_top_quarter():
    rng = np.random.default_rng(3)
    maps = (rng.random((6, 224, 224)) * 0.2 + 0.4).astype(np.float32)
    gt = np.zeros_like(maps)
    n = 224 * 224
    expected = [np.sort(m.flatten())[-n // 4:].mean() for m in maps]  # float32 scalars
    got = sample_stats(maps, gt, "absolute:0.5", confidence_dtype="float32").confidence
    assert [np.float32(c) for c in got] == expected and all(float(c) == float(e) for c, e in zip(got, expected))
    as64 = sample_stats(maps, gt, "absolute:0.5").confidence
    assert not np.array_equal(as64, got)  # the float64 mean is a different number
    assert math.isclose(float(as64[0]), float(got[0]), rel_tol=1e-6)


# -- SLAVC: online vs momentum branch after loading an official checkpoint ----------------------------
def _official_slavc_checkpoint(path: Path, cfg: dict) -> None:
    """An official-format SLAVC checkpoint whose momentum image projections are the negated online ones
    (every other momentum weight a copy): momentum image features are then exactly −(online ones), so
    the momentum map is −(online map)."""
    from avslkit.methods.base import build_task
    from avslkit.engine.distributed import DistContext
    from avslkit.models.official import OFFICIAL_PREFIXES

    torch.manual_seed(0)
    model = build_task(cfg, DistContext()).model
    state = model.state_dict()
    for key in list(state):
        if key.startswith("momentum_img_proj"):
            state[key] = -state[key[len("momentum_"):]]
        elif key.startswith("momentum_"):
            state[key] = state[key[len("momentum_"):]].clone()
    inverse = sorted(((ours, theirs) for theirs, ours in OFFICIAL_PREFIXES["slavc"].items()), key=lambda x: -len(x[0]))
    official = {}
    for key, value in state.items():
        ours, theirs = next((o, t) for o, t in inverse if key.startswith(o))
        official["module." + theirs + key[len(ours):]] = value
    torch.save({"model": official, "epoch": 20}, path)


def test_slavc_branch_selection_after_loading_an_official_checkpoint(tmp_path):
    from avslkit.inference import load_task_for_inference

    from avslkit.engine.run import resolve_data_config

    store = make_store(tmp_path / "s.h5", n=2)
    cfg = resolve_data_config(tiny_config("slavc", store))
    path = tmp_path / "latest.pth"
    _official_slavc_checkpoint(path, cfg)
    overrides = {"model": cfg["model"], "image_size": 64}
    images, audio = torch.randn(2, 3, 64, 64), torch.randn(2, 8000) * 0.1
    online = load_task_for_inference(path, official_overrides=overrides, inference={"use_momentum_eval": False})
    momentum = load_task_for_inference(path, official_overrides=overrides)  # avslkit default: momentum
    assert online.model.use_momentum_eval is False and momentum.model.use_momentum_eval is True
    m_online = online.localization_maps(images, audio)
    m_momentum = momentum.localization_maps(images, audio)
    assert torch.equal(m_momentum, -m_online) and m_online.abs().max() > 0
    with torch.no_grad():  # the online map by hand: mean over the two heads of <v_k(p), a_k> / tau
        model = online.model
        spec = online.audio_features(audio)
        v = model.encode_image(images, "online")
        a = model.encode_audio(spec, "online")
        by_hand = sum(torch.einsum("nchw,nc->nhw", v[k], a[k]) / model.tau for k in (0, 1)) / 2
    assert torch.equal(m_online, by_hand)


# -- presets ---------------------------------------------------------------------------------------
def test_test_presets_select_the_pipelines_conventions():
    slavc = load_config("eval", preset=preset_layer("slavc-test", "eval"))
    assert (slavc["upsample"], slavc["map_scale"], slavc["confidence_dtype"], slavc["binarize"], slavc["batch_size"]) == (
        "bicubic", "tau_bounds", "float32", "absolute:0.5", 1)
    assert slavc["inference"] == {"use_momentum_eval": False, "decoder": "pil", "float_rule": "reference",
                                  "int16_scale": 32767, "spectrogram_backend": "scipy"}
    ezvsl = load_config("eval", preset=preset_layer("ezvsl-test", "eval"))
    assert (ezvsl["upsample"], ezvsl["map_scale"], ezvsl["binarize"]) == ("bilinear", "raw", "relative")
    for name in ("slavc-test", "ezvsl-test"):
        pre = load_config("preprocess", preset=preset_layer(name, "preprocess"))
        assert (pre["frame_size"], pre["window_rule"], pre["allow_silent"]) == (0, "seek_truncate", True)
    default = load_config("eval")
    assert (default["upsample"], default["map_scale"], default["confidence_dtype"]) == ("bicubic", "raw", "float64")


def test_eval_of_an_official_checkpoint_picks_its_preset_and_an_explicit_flag_wins(tmp_path):
    """Full-size SLAVC (packaged defaults, random weights) saved in the official layout, evaluated by the CLI."""
    from typer.testing import CliRunner

    from avslkit.cli.main import app
    from avslkit.engine.run import resolve_data_config
    from avslkit.evaluation.runner import choose_preset

    store = make_store(tmp_path / "test.h5", n=2, seconds=3.0)
    ann = tmp_path / "vggss.json"
    ann.write_text(json.dumps([{"file": f"clip{i:03d}", "class": "x", "bbox": [[0.1, 0.1, 0.8, 0.9]]} for i in range(2)]))
    cfg = resolve_data_config(load_config(["train", "methods/slavc"], overrides=["model.visual_weights=none", f"data.train={store}"]))
    ckpt = tmp_path / "latest.pth"
    _official_slavc_checkpoint(ckpt, cfg)
    assert choose_preset(None, ckpt) == ("slavc-test", True)
    assert choose_preset("none", ckpt) == (None, False) and choose_preset("ezvsl-test", ckpt) == ("ezvsl-test", False)
    assert choose_preset(None, store) == (None, False)  # not a checkpoint: no preset

    def run(*extra: str) -> dict:
        out = tmp_path / f"m{len(list(tmp_path.glob('m*.json')))}.json"
        res = CliRunner().invoke(app, ["eval", str(ckpt), "--test", str(store), "--annotations", str(ann),
                                       "--save-maps", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        return {**json.loads(out.read_text()), "_output": res.output, "_maps": np.load(out.with_suffix(".maps.npz"))["maps"]}

    auto = run()
    p = auto["protocol"]
    assert p["preset"] == "slavc-test" and p["preset_auto"] is True and "slavc-test" in auto["_output"]
    assert p["binarize"] == "absolute:0.5" and p["inference"]["use_momentum_eval"] is False
    assert p["map_scale"].startswith("tau_bounds") and "float32" in p["confidence"]
    # explicit flags win over the preset: --binarize, and --set inference.use_momentum_eval=null (the
    # checkpoint's own setting: avslkit's momentum branch, here −(online maps) exactly)
    flag = run("--binarize", "relative", "--set", "inference.use_momentum_eval=null")
    assert flag["protocol"]["binarize"] == "relative" and flag["protocol"]["preset"] == "slavc-test"
    assert np.array_equal(flag["_maps"], -auto["_maps"])
    plain = run("--preset", "none")
    assert plain["protocol"]["preset"] is None and plain["protocol"]["map_scale"] == "raw"
    assert plain["protocol"]["upsampling"].startswith("bicubic") and "float64" in plain["protocol"]["confidence"]


def test_reference_options_are_checked_with_one_line_errors():
    from avslkit.config import ConfigError
    from avslkit.config_spec import check_config

    for cfg, command, key in (({"upsample": "nearest"}, "eval", "upsample=nearest"),
                              ({"inference": {"int16_scale": 32000}}, "eval", "inference.int16_scale=32000"),
                              ({"window_rule": "floor"}, "preprocess", "window_rule=floor"),
                              ({"data": {"float_rule": "exact"}}, "train", "data.float_rule=exact")):
        with pytest.raises(ConfigError, match=f"config key {key} is not allowed"):
            check_config(cfg, command)
    for name in ("slavc-test", "ezvsl-test"):
        check_config(load_config("eval", preset=preset_layer(name, "eval")), "eval")
        check_config(load_config("preprocess", preset=preset_layer(name, "preprocess")), "preprocess")
