"""Typed configuration (avslkit/config_spec.py): one dataclass per section, defaults only in the packaged
YAML, one-line errors naming the key, and the saved config.yaml of a run unchanged."""

from __future__ import annotations

import ast
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

import pytest
from typer.testing import CliRunner

from _train_helpers import make_store, tiny_train_args
from avslkit.cli.main import app
from avslkit.config import ConfigError, list_packaged_configs, load_config
from avslkit.config_spec import (CONFIGS, DataSection, EvalConfig, PreprocessConfig, Section, TrainConfig,
                                 _section_type, check_config, packaged_section, resolve_config)

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted(n.split("/", 1)[1] for n in list_packaged_configs() if n.startswith("methods/"))


def packaged_defaults() -> list[tuple[str, dict[str, Any]]]:
    """(command, resolved packaged defaults) for every command and every packaged method."""
    out = [("train", load_config(["train", f"methods/{m}"])) for m in METHODS]
    return out + [(c, load_config(c)) for c in ("preprocess", "eval", "workspace")]


def declared_keys(cls: type[Section], prefix: str = "") -> set[str]:
    """Dotted keys a section declares (a units-like mapping of sections as `units.*.key`)."""
    hints = typing.get_type_hints(cls)
    keys: set[str] = set()
    for f in fields(cls):
        nested = _section_type(hints[f.name])
        if nested is not None:
            keys |= declared_keys(nested, f"{prefix}{f.name}.")
        elif "each" in f.metadata:
            keys |= declared_keys(f.metadata["each"], f"{prefix}{f.name}.*.")
        else:
            keys.add(prefix + f.name)
    return keys


def yaml_keys(cfg: Mapping[str, Any], cls: type[Section], prefix: str = "") -> set[str]:
    """Dotted keys of a packaged config, down to the sections `cls` declares (free-form values are leaves)."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    keys: set[str] = set()
    for name, value in cfg.items():
        f = by_name.get(name)
        nested = _section_type(hints[name]) if f else None
        if nested is not None and isinstance(value, Mapping):
            keys |= yaml_keys(value, nested, f"{prefix}{name}.")
        elif f is not None and "each" in f.metadata and isinstance(value, Mapping):
            for sub in value.values():
                keys |= yaml_keys(sub, f.metadata["each"], f"{prefix}{name}.*.")
        else:
            keys.add(prefix + name)
    return keys


def test_every_packaged_key_is_declared_and_every_declared_key_has_a_packaged_default():
    seen: dict[str, set[str]] = {}
    for command, cfg in packaged_defaults():
        keys = yaml_keys(cfg, CONFIGS[command])
        undeclared = keys - declared_keys(CONFIGS[command])
        assert not undeclared, f"{command}: keys in the packaged YAML without a field in config_spec.py: {sorted(undeclared)}"
        seen.setdefault(command, set()).update(keys)
        resolve_config(cfg, command)  # the defaults pass their own rules
    for command, keys in seen.items():
        without_default = declared_keys(CONFIGS[command]) - keys
        assert not without_default, f"{command}: fields with no default in any packaged YAML: {sorted(without_default)}"


def test_resolved_config_is_typed_and_keys_a_method_lacks_are_none():
    dmt = resolve_config(load_config(["train", "methods/dmt"]), "train")
    assert isinstance(dmt, TrainConfig) and dmt.optim.lr == 1e-4 and dmt.ssl.delta == 0.6 and dmt.units["b"].audio == "soundnet8"
    ezvsl = resolve_config(load_config(["train", "methods/ezvsl"]), "train")
    assert ezvsl.ssl is None and ezvsl.units is None and ezvsl.model.momentum is None and ezvsl.data.labeled is None
    assert isinstance(resolve_config(load_config("eval"), "eval"), EvalConfig)
    assert isinstance(resolve_config(load_config("preprocess"), "preprocess"), PreprocessConfig)
    with pytest.raises(AttributeError):
        ezvsl.optim.learning_rate  # noqa: B018 - a mistyped key fails loudly instead of falling back


def test_a_partial_config_takes_its_missing_keys_from_the_packaged_yaml_of_its_method():
    from avslkit.config_spec import eval_config, train_config

    config = train_config({"method": "dmt", "ssl": {"delta": 0.5}})
    assert (config.ssl.delta, config.ssl.ema, config.seed, config.units["a"].audio) == (0.5, 0.999, 12345, "vggish")
    assert config.raw["ssl"]["delta"] == 0.5 and config.ssl.raw["ema"] == 0.999  # what config.yaml would save
    assert train_config(config) is config and eval_config({"tau": 0.05}).tau == 0.05
    with pytest.raises(ConfigError, match=r"^config key ssl.delta=2 is out of range"):
        train_config({"method": "dmt", "ssl": {"delta": 2}})


def test_a_partial_section_takes_its_missing_keys_from_the_packaged_yaml():
    data = packaged_section(DataSection, {"decoder": "pil"})
    assert (data.decoder, data.float_rule, data.int16_scale) == ("pil", "fused", 32768)
    with pytest.raises(ConfigError, match=r"^config key data.decoder=jpeg is not allowed: expected one of tensor, pil"):
        packaged_section(DataSection, {"decoder": "jpeg"})


BAD_VALUES = [  # (command, --set item, key, value shown, what the error says)
    ("train", "optim.lr=abc", "optim.lr", "abc", "is not a number"),
    ("train", "optim.lr=-1", "optim.lr", "-1", "is out of range: expected a number > 0"),
    ("train", "model.dim=2.5", "model.dim", "2.5", "is not an integer"),
    ("train", "model.dropout_img=1.0", "model.dropout_img", "1.0", "is out of range: expected a number in [0, 1)"),
    ("train", "validation.held_out=maybe", "validation.held_out", "maybe", "has the wrong type: expected true or false"),
    ("train", "validation.iou_threshold=2", "validation.iou_threshold", "2", "is out of range"),
    ("train", "data.decoder=jpeg", "data.decoder", "jpeg", "is not allowed: expected one of tensor, pil"),
    ("train", "augment.magnitude=31", "augment.magnitude", "31", "is out of range: expected a number in [0, 30]"),
    ("train", "ssl.delta=1.5", "ssl.delta", "1.5", "is out of range: expected a number in [0, 1]"),
    ("train", "ssl.use_ema=1", "ssl.use_ema", "1", "has the wrong type"),
    ("train", "units.a.audio=[1]", "units.a.audio", "[1]", "has the wrong type: expected a string"),
    ("train", "optim=3", "optim", "3", "has the wrong type: expected a mapping"),
    ("preprocess", "jpeg_quality=101", "jpeg_quality", "101", "is out of range: expected an integer in [1, 100]"),
    ("preprocess", "sample_rate=fast", "sample_rate", "fast", "is not an integer"),
    ("preprocess", "frame_time=-2", "frame_time", "-2", "is out of range: expected a number >= 0 or middle"),
    ("eval", "tau=0", "tau", "0", "is out of range: expected a number > 0"),
    ("eval", "inference.decoder=jpeg", "inference.decoder", "jpeg", "is not allowed"),
    ("eval", "iou_thresholds=0.5", "iou_thresholds", "0.5", "has the wrong type: expected a list"),
]


@pytest.mark.parametrize("command,item,key,shown,why", BAD_VALUES, ids=[b[1] for b in BAD_VALUES])
def test_a_wrong_type_or_range_is_one_line_naming_the_key(command, item, key, shown, why):
    defaults = ["train", "methods/dmt"] if command == "train" else command
    with pytest.raises(ConfigError) as info:
        resolve_config(load_config(defaults, overrides=[item]), command)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config key {key}={shown} {why}"), message
    assert message.endswith(f"(set it with --set {key}=VALUE or in --config)") or "KEY=VALUE" in message


def test_cli_commands_reject_a_bad_value_in_one_line_before_any_work(tmp_path):
    runner = CliRunner()
    cases = [["train", "dmt", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "run"), "--set", "ssl.ema=2"],
             ["preprocess", str(tmp_path), "--out", str(tmp_path / "s.h5"), "--set", "jpeg_quality=0"],
             ["eval", "--baseline", "center", "--out", str(tmp_path / "m.json"), "--set", "tau=-1"]]
    for args, key in zip(cases, ("ssl.ema=2", "jpeg_quality=0", "tau=-1")):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"config key {key}" in errors[0], result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "s.h5").exists() and not (tmp_path / "m.json").exists()


def test_check_config_accepts_partial_configs():
    check_config({"validation": {"max_samples": None}}, "train")
    with pytest.raises(ConfigError, match="optim.lr=null is missing"):
        check_config({"optim": {"lr": None}}, "train")


def test_saved_config_yaml_of_a_tiny_run_is_unchanged(tmp_path):
    """tests/golden/tiny_slavc_config.yaml was written by a tiny run before the typed configuration."""
    store = make_store(tmp_path / "train.h5", n=8)
    result = CliRunner().invoke(app, tiny_train_args(store, tmp_path / "run", "--max-steps", "1", "--epochs", "1"))
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "run" / "config.yaml").read_text().replace(str(store), "STORE")
    assert saved == (ROOT / "tests" / "golden" / "tiny_slavc_config.yaml").read_text()


# -- no `.get(key, default)` on config mappings outside avslkit/config*.py -----------------------------
_CONFIG_NAMES = {"cfg", "config"}
_CONFIG_PARAMS = {"cfg", "data", "ssl", "aug", "section", "model_cfg"}


def config_gets_with_default(path: Path) -> list[str]:
    """`X.get(key, default)` calls where X is a config (`cfg`, `self.cfg`, ...) or a name assigned from one,
    or a parameter named like a config section, within the same function."""
    tree = ast.parse(path.read_text())
    found = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        tainted = ({a.arg for a in fn.args.args + fn.args.kwonlyargs} & _CONFIG_PARAMS) | _CONFIG_NAMES

        def is_config(expr: ast.AST) -> bool:
            return any((isinstance(n, ast.Name) and n.id in tainted) or (isinstance(n, ast.Attribute) and n.attr in _CONFIG_NAMES)
                       for n in ast.walk(expr))

        changed = True
        while changed:
            changed = False
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and is_config(node.value):
                    for name in [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]:
                        changed |= name not in tainted
                        tainted.add(name)
        for node in ast.walk(fn):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) + len(node.keywords) >= 2 and is_config(node.func.value)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return sorted(set(found))


def test_no_config_get_with_a_default_outside_the_config_layer():
    offenders = []
    for path in sorted((ROOT / "avslkit").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith("avslkit/config"):
            continue
        offenders += config_gets_with_default(path)
    assert not offenders, "read typed config values (avslkit.config_spec) instead:\n" + "\n".join(offenders)


def test_a_preset_synth_value_of_the_wrong_type_names_the_key(tmp_path):
    from avslkit.synth.options import preset_options

    good = tmp_path / "good.yaml"
    good.write_text("synth: {n_clips: 12, size_range: [0.2, 0.9], duration: 4}\n")
    assert preset_options(str(good)) == {"n_clips": 12, "size_range": (0.2, 0.9), "duration": 4}
    for text, key in (("synth: {n_clips: many}\n", "synth.n_clips=many"), ("synth: {size_range: 0.5}\n", "synth.size_range=0.5"),
                      ("synth: {duration: true}\n", "synth.duration=True")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=rf"^config key {re.escape(key)} has the wrong type"):
            preset_options(str(bad))
