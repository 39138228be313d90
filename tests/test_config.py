"""Layered configuration: defaults → user YAML → --set, unknown keys rejected by name."""

from __future__ import annotations

import pytest
import yaml

from avslkit.config import ConfigError, load_config, merge, parse_override, save_config

DEFAULTS = {"optim": {"lr": 1e-4, "betas": [0.9, 0.999]}, "epochs": 20, "name": "slavc"}


def test_override_parsing_types():
    assert parse_override("optim.lr=3e-4") == {"optim": {"lr": 3e-4}}
    assert parse_override("epochs=5") == {"epochs": 5}
    assert parse_override("name=ez vsl") == {"name": "ez vsl"}
    assert parse_override("optim.betas=[0.5, 0.9]") == {"optim": {"betas": [0.5, 0.9]}}
    with pytest.raises(ConfigError):
        parse_override("no_equals_sign")


def test_layers_apply_in_order(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("optim:\n  lr: 0.001\nepochs: 3\n")
    cfg = load_config(DEFAULTS, user, ["epochs=7"], extra={"name": "ezvsl", "epochs": None})
    assert cfg == {"optim": {"lr": 0.001, "betas": [0.9, 0.999]}, "epochs": 7, "name": "ezvsl"}
    assert DEFAULTS["epochs"] == 20  # defaults untouched


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(DEFAULTS, overrides=["optim.lrr=1"])
    user = tmp_path / "bad.yaml"
    user.write_text("optimizer: {lr: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optimizer"):
        load_config(DEFAULTS, user)


def test_missing_and_malformed_user_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(DEFAULTS, tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(DEFAULTS, bad)


def test_merge_non_strict_adds_keys():
    assert merge({"a": 1}, {"b": {"c": 2}}, strict=False) == {"a": 1, "b": {"c": 2}}


def test_save_roundtrip(tmp_path):
    path = tmp_path / "run" / "config.yaml"
    save_config(DEFAULTS, path)
    assert yaml.safe_load(path.read_text()) == DEFAULTS


def test_unknown_packaged_config():
    with pytest.raises(ConfigError, match="no packaged config"):
        load_config("does/not/exist")


def test_scientific_notation_is_a_float(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("optim:\n  lr: 5e-5\n")
    assert load_config(DEFAULTS, user)["optim"]["lr"] == 5e-5
    assert load_config(DEFAULTS, overrides=["optim.lr=1E-3"])["optim"]["lr"] == 1e-3


def test_free_form_options_accept_any_key():
    # audio.options is `{}` in train.yaml: the audio feature's keyword options, whatever they are.
    cfg = load_config(["train"], overrides=["audio.options.n_mels=64", "audio.options.exact=false"])
    assert cfg["audio"]["options"] == {"n_mels": 64, "exact": False}
    with pytest.raises(ConfigError, match="audio.sample_rat"):
        load_config(["train"], overrides=["audio.sample_rat=1"])  # non-empty sections stay strict
