"""Model registry, backbones, heads, EZ-VSL and SLAVC models (tiny CPU forwards, random weights)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.models.registry import build_model, list_models, register_model, resolve_name

SPEC = (1, 64, 32)  # a small spectrogram keeps the audio ResNet cheap; output shapes do not depend on it


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _image(size: int, b: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, size, size)


@pytest.fixture(scope="module")
def ezvsl_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("ezvsl", visual_weights="none")


@pytest.fixture(scope="module")
def slavc_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("slavc", visual_weights="none")


def _fresh(model: nn.Module) -> nn.Module:
    """A private copy for tests that change weights or modes."""
    return copy.deepcopy(model)


# ----------------------------------------------------------------------------------------------- registry


def test_registry_lists_namespaced_models() -> None:
    names = list_models()
    for expected in ("visual.resnet18", "audio.resnet18_spec", "audio.vggish", "audio.soundnet8", "method.ezvsl", "method.slavc"):
        assert expected in names
    assert list_models("audio") == sorted(n for n in names if n.startswith("audio."))
    assert resolve_name("ezvsl") == "method.ezvsl"
    assert resolve_name("resnet18", namespace="visual") == "visual.resnet18"


def test_unknown_model_error_lists_known_names() -> None:
    with pytest.raises(AvslError) as info:
        build_model("ezvls")
    assert "method.ezvsl" in str(info.value) and "audio.vggish" in str(info.value)
    with pytest.raises(AvslError):
        build_model("vggish", namespace="visual")  # exists, but not as a visual backbone
    with pytest.raises(AvslError, match="bad option"):
        build_model("audio.resnet18_spec", no_such_option=1)


def test_register_model_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError):
        register_model("resnet18")  # no namespace
    with pytest.raises(ValueError):

        @register_model("method.ezvsl")
        class Other(nn.Module):  # noqa: F811 - a second builder under a taken name
            pass


# ---------------------------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(("size", "cells"), [(112, 4), (224, 7)])
def test_visual_resnet18_map_shape(size: int, cells: int) -> None:
    net = build_model("visual.resnet18", weights="none").eval()
    with torch.no_grad():
        out = net(_image(size))
    assert out.shape == (2, 512, cells, cells)
    assert not any(k.startswith("fc.") for k in net.state_dict())


def test_audio_resnet18_spec_shape_and_max_pool() -> None:
    net = build_model("audio.resnet18_spec").eval()
    assert net.conv1.in_channels == 1
    with torch.no_grad():
        spec = torch.randn(2, 1, 257, 200)
        out = net(spec)
        trunk = net.trunk(spec)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, trunk.amax(dim=(2, 3)))  # global max pooling


def test_vggish_shapes_and_pooling() -> None:
    net = build_model("audio.vggish", pool="max").eval()
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        per_example = net.embed_examples(x.reshape(6, 96, 64)).reshape(2, 3, 128)
        pooled = net(x)
        net.pool = "mean"
        meaned = net(x.unsqueeze(2))  # B×N×1×96×64 accepted too
        net.return_features = True
        fmap = net(x)
    assert pooled.shape == (2, 128)
    torch.testing.assert_close(pooled, per_example.amax(1))
    torch.testing.assert_close(meaned, per_example.mean(1))
    assert fmap.shape == (2, 3, 512, 6, 4)
    with pytest.raises(AvslError):
        net(torch.randn(2, 3, 100, 64))


def test_soundnet_backbone_outputs() -> None:
    wave = torch.randn(2, 22050 * 3) * 0.1  # 3 s at 22.05 kHz
    net = build_model("audio.soundnet8").eval()
    with torch.no_grad():
        assert net.conv_features(wave).shape[:2] == (2, 1024)
        assert net(wave).shape == (2, 1024) and net.out_dim == 1024
        objects, scenes = net.classify(wave)  # tiled to 10 s for conv8
    assert objects.shape[:2] == (2, 1000) and scenes.shape[:2] == (2, 401)
    both = build_model("audio.soundnet8", output="conv8", pool="mean").eval()
    both.load_state_dict(net.state_dict())
    with torch.no_grad():
        out = both(wave)
    assert out.shape == (2, 1401)
    torch.testing.assert_close(out, torch.cat([objects.mean(-1), scenes.mean(-1)], 1))
    assert objects.shape[-1] == 4  # 3 s tiled to the 20 s training crop
    net.tile_conv7 = True
    with torch.no_grad():
        tiled = net(wave)
        torch.testing.assert_close(tiled, net.conv_features(wave, tile=True).amax(-1))
        assert net.conv_features(wave, tile=True).shape[-1] == 15


# ------------------------------------------------------------------------------------------------- heads


def test_audio_mlp_head_is_two_linears_with_relu() -> None:
    from avslkit.models.heads import AudioMLPHead, build_audio_head

    head = build_audio_head("mlp", 128, 512)
    assert isinstance(head, AudioMLPHead)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (128, 512, 512)
    with pytest.raises(AvslError):
        build_audio_head("transformer", 128, 512)


# ------------------------------------------------------------------------------------------------- EZ-VSL


def test_ezvsl_forward_shapes_and_formulas(ezvsl_model: nn.Module) -> None:
    model = _fresh(ezvsl_model).train()
    out = model(_image(112), torch.randn(2, *SPEC))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["logits"].shape == (2, 2)
    assert out["map"].shape == (2, 4, 4)
    assert out["v"].shape == (2, 512, 4, 4) and out["a"].shape == (2, 512)
    torch.testing.assert_close(out["v"].norm(dim=1), torch.ones(2, 4, 4))
    # map = ⟨v_i(p), a_i⟩/τ, and logits = max over cells of the all-pairs similarity
    torch.testing.assert_close(out["map"], torch.einsum("nchw,nc->nhw", out["v"], out["a"]) / 0.03)
    torch.testing.assert_close(out["logits"], model.similarity(out["v"], out["a"]).flatten(2).amax(-1))
    out["loss"].backward()
    assert model.img_proj.weight.grad is not None and model.audio.conv1.weight.grad is not None


def test_method_maps_at_224(ezvsl_model: nn.Module, slavc_model: nn.Module) -> None:
    image, spec = _image(224), torch.randn(2, *SPEC)
    for model in (ezvsl_model, slavc_model):
        with torch.no_grad():
            out = model(image, spec)
        assert out["map"].shape == (2, 7, 7) and out["logits"].shape == (2, 2) and torch.isfinite(out["loss"])


def test_ezvsl_maps_for_mismatched_pairs(ezvsl_model: nn.Module) -> None:
    model = _fresh(ezvsl_model).eval()
    image, spec = _image(112, 3), torch.randn(3, *SPEC)
    with torch.no_grad():
        v, a = model.encode_image(image), model.encode_audio(spec)
        shifted = model.pair_map(v, a.roll(1, 0))  # image i with audio i-1
        all_pairs = model.similarity(v, a)
        assert torch.allclose(model.localize(image, spec), model.pair_map(v, a))
    for i in range(3):
        torch.testing.assert_close(shifted[i], all_pairs[i, (i - 1) % 3])
    assert model.map_bounds == pytest.approx((-1 / 0.03, 1 / 0.03))


def test_ezvsl_with_dmt_audio_backbones_and_mlp_head() -> None:
    model = build_model("ezvsl", visual_weights="none", audio="vggish", audio_head="mlp")
    with torch.no_grad():
        out = model(_image(112), torch.randn(2, 3, 96, 64))
    assert out["map"].shape == (2, 4, 4)
    assert model.aud_proj[0].in_features == 128
    model = build_model("ezvsl", visual_weights="none", audio="soundnet8", audio_head="mlp")
    with torch.no_grad():
        out = model(_image(112), torch.randn(2, 22050 * 3) * 0.1)
    assert out["a"].shape == (2, 512) and model.aud_proj[0].in_features == 1024


def test_reference_init_of_projections(ezvsl_model: nn.Module) -> None:
    assert ezvsl_model.aud_proj.weight.std().item() == pytest.approx(0.01, rel=0.1)
    from avslkit.models.heads import build_audio_head

    default = build_audio_head("linear", 512, 512)  # PyTorch's uniform(±1/√512), std ≈ 0.026
    assert default.weight.std().item() > 0.02
    with pytest.raises(AvslError):
        build_model("ezvsl", visual_weights="none", init="xavier")


def test_ezvsl_state_dict_round_trip(ezvsl_model: nn.Module, tmp_path) -> None:
    model = _fresh(ezvsl_model).eval()
    path = tmp_path / "ezvsl.pt"
    torch.save(model.state_dict(), path)
    other = _fresh(ezvsl_model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(torch.load(path, weights_only=True))
    other.eval()
    image, spec = _image(112), torch.randn(2, *SPEC)
    with torch.no_grad():
        torch.testing.assert_close(model.localize(image, spec), other.localize(image, spec))


# -------------------------------------------------------------------------------------------------- SLAVC


def test_slavc_forward_shapes(slavc_model: nn.Module) -> None:
    model = _fresh(slavc_model).train()
    out = model(_image(112), torch.randn(2, *SPEC), update_momentum=True)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["logits"].shape == (2, 2) and out["map"].shape == (2, 4, 4)
    assert all(t.shape == (2, 512, 4, 4) for t in out["v"] + out["v_m"])
    assert all(t.shape == (2, 512) for t in out["a"] + out["a_m"])
    # momentum copies hold no grads, the online nets do
    out["loss"].backward()
    momentum = [p for n, p in model.named_parameters() if n.startswith("momentum_")]
    assert momentum and all(not p.requires_grad and p.grad is None for p in momentum)
    online = model.online_parameters()
    assert all(p.requires_grad for p in online)
    assert len(online) + len(momentum) == len(list(model.parameters()))
    assert model.img_proj1.weight.grad is not None and model.aud_proj2.weight.grad is not None
    assert model.visual.conv1.weight.grad is not None and model.audio.conv1.weight.grad is not None


def test_slavc_momentum_update_is_exact_ema(slavc_model: nn.Module) -> None:
    model = _fresh(slavc_model)
    model.m_img, model.m_aud = 0.9, 0.8
    with torch.no_grad():  # make online and momentum weights differ
        for p in model.online_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.momentum_update()
    after = model.state_dict()
    names = [n for n, _ in model.named_parameters() if n.startswith("momentum_")]
    for name in names:
        online_name = name[len("momentum_"):]
        m = 0.9 if online_name.split(".")[0] in ("visual", "img_proj1", "img_proj2") else 0.8
        expected = before[name] * m + before[online_name] * (1 - m)
        torch.testing.assert_close(after[name], expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(after[online_name], before[online_name], rtol=0, atol=0)
    # momentum copies cover both encoders and all four heads
    prefixes = {n.split(".")[0] for n in names}
    assert prefixes == {f"momentum_{p}" for p in ("visual", "img_proj1", "img_proj2", "audio", "aud_proj1", "aud_proj2")}


def test_slavc_dropout_only_on_visual_path_and_only_in_training(slavc_model: nn.Module) -> None:
    model = _fresh(slavc_model)
    assert model.img_dropout.p == 0.9 and model.aud_dropout.p == 0.0
    seen: dict[str, float] = {}

    def hook(_module, _inputs, output):
        seen["zeros"] = (output == 0).float().mean().item()

    model.img_dropout.register_forward_hook(hook)
    image, spec = _image(112), torch.randn(2, *SPEC)
    model.train()
    with torch.no_grad():
        v_a, v_b = model.encode_image(image), model.encode_image(image)
        assert seen["zeros"] > 0.8  # ~90% of the 512×h×w map dropped
        a_a, a_b = model.encode_audio(spec), model.encode_audio(spec)
    assert not torch.allclose(v_a[0], v_b[0])
    torch.testing.assert_close(a_a[0], a_b[0])  # no audio dropout
    model.eval()
    with torch.no_grad():
        e_a, e_b = model.encode_image(image), model.encode_image(image)
    assert seen["zeros"] < 0.8  # only ReLU zeros remain
    torch.testing.assert_close(e_a[0], e_b[0])


def test_slavc_momentum_branch_dropout_option(slavc_model: nn.Module) -> None:
    image = _image(112)
    model = _fresh(slavc_model).train()
    o_a, o_b = model.encode_image(image, "momentum"), model.encode_image(image, "momentum")
    assert not torch.allclose(o_a[0], o_b[0])  # default: targets see dropout too (official code)
    assert not o_a[0].requires_grad
    model.momentum_dropout = False
    m_a, m_b = model.encode_image(image, "momentum"), model.encode_image(image, "momentum")
    torch.testing.assert_close(m_a[0], m_b[0])
    with pytest.raises(AvslError):
        model.encode_image(image, "teacher")


def test_slavc_inference_map_uses_momentum_features(slavc_model: nn.Module) -> None:
    model = _fresh(slavc_model)
    with torch.no_grad():
        for p in model.online_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    image, spec = _image(112), torch.randn(2, *SPEC)
    with torch.no_grad():
        out = model(image, spec)
        v_m, a_m = model.encode_image(image, "momentum"), model.encode_audio(spec, "momentum")
        expected = (torch.einsum("nchw,nc->nhw", v_m[0], a_m[0]) + torch.einsum("nchw,nc->nhw", v_m[1], a_m[1])) / 2 / 0.03
        torch.testing.assert_close(out["map"], expected)
        torch.testing.assert_close(model.localize(image, spec), expected)
        model.use_momentum_eval = False
        v, a = model.encode_image(image), model.encode_audio(spec)
        torch.testing.assert_close(model.localize(image, spec), model.pair_map(v, a))
        assert not torch.allclose(model.localize(image, spec), expected)


def test_slavc_state_dict_round_trip_keeps_momentum(slavc_model: nn.Module, tmp_path) -> None:
    model = _fresh(slavc_model)
    with torch.no_grad():
        for p in model.online_parameters():
            p.add_(0.01)
    model.momentum_update()
    path = tmp_path / "slavc.pt"
    torch.save(model.state_dict(), path)
    other = _fresh(slavc_model)
    other.load_state_dict(torch.load(path, weights_only=True))
    for (name, p), (_, q) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(p, q), name
    assert all(not p.requires_grad for n, p in other.named_parameters() if n.startswith("momentum_"))


def test_slavc_options_validated() -> None:
    with pytest.raises(AvslError):
        build_model("slavc", visual_weights="none", momentum=1.5)
