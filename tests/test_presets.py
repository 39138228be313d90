"""Presets: named bundles of settings layered after the packaged defaults (avslkit.config)."""

from __future__ import annotations

import pytest

from avslkit.config import ConfigError, list_presets, load_config, preset_layer, read_preset


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_preset_file_layers_train_then_method_section(tmp_path):
    path = _write(tmp_path, "train:\n  image_size: 96\n  optim: {lr: 3.0e-4}\nmethods:\n  slavc:\n    model: {dropout_img: 0.5}\n")
    layer = preset_layer(path, "train", "slavc")
    cfg = load_config(["train", "methods/slavc"], preset=layer, overrides=["optim.lr=1e-3"])
    assert cfg["image_size"] == 96 and cfg["model"]["dropout_img"] == 0.5
    assert cfg["optim"]["lr"] == 1e-3  # --set still wins over the preset
    ez = load_config(["train", "methods/ezvsl"], preset=preset_layer(path, "train", "ezvsl"))
    assert ez["image_size"] == 96 and "dropout_img" not in ez["model"]  # other methods' sections ignored


def test_preset_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        read_preset("nope")
    with pytest.raises(ConfigError, match="unknown section"):
        read_preset(_write(tmp_path, "trian: {}\n"))
    bad = preset_layer(_write(tmp_path, "train:\n  imagesize: 96\n"), "train", "slavc")
    with pytest.raises(ConfigError, match="preset: unknown config key 'imagesize'"):
        load_config(["train", "methods/slavc"], preset=bad)


def test_packaged_presets_resolve_for_every_command_and_method():
    from avslkit.config import list_packaged_configs
    from avslkit.methods.base import list_methods

    packaged = [m for m in list_methods() if f"methods/{m}" in list_packaged_configs()]  # not test-registered ones
    for name in list_presets():
        for method in packaged:
            load_config(["train", f"methods/{method}"], preset=preset_layer(name, "train", method))
        load_config("eval", preset=preset_layer(name, "eval"))
