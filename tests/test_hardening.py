"""Issue #11: every bad input gets one clear line, nothing is silently mixed, no process outlives its parent.

Each test here failed before its fix. The table of refused inputs in docs/refused-inputs.md is checked
against what the code prints in test_refused_inputs_table_matches_the_code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avslkit.cli.main import app
from avslkit.config import ConfigError, load_config
from avslkit.config_spec import SPECS, check_config

runner = CliRunner()


def eval_inputs(root: Path, boxes: dict | None = None, names: list[str] | None = None) -> tuple[Path, Path]:
    """A tiny vggss.json (clip id -> boxes) and a MAPS.npz with one 7x7 map per name."""
    boxes = boxes if boxes is not None else {"aaaaaaaaaaa_000001": [[0.1, 0.1, 0.5, 0.5]],
                                              "bbbbbbbbbbb_000002": [[0.2, 0.3, 0.9, 0.8]]}
    ann = root / "vggss.json"
    ann.write_text(json.dumps([{"file": k, "class": "dog", "bbox": v} for k, v in boxes.items()]))
    names = names if names is not None else list(boxes)
    maps = root / "maps.npz"
    rng = np.random.default_rng(0)
    np.savez(maps, names=np.array(names), maps=rng.random((len(names), 7, 7)).astype(np.float32))
    return ann, maps


def one_line_error(result) -> str:
    """The single error line of a failed CLI call (and no traceback)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# -- item 7: user text is printed literally (no rich markup, no emoji) ---------------------------------
def test_error_text_keeps_brackets_and_colons(tmp_path):
    odd = tmp_path / "[bold]clip:fire:.h5"
    line = one_line_error(runner.invoke(app, ["store", "info", str(odd)]))
    assert str(odd) in line and "🔥" not in line


def test_binarize_spec_is_not_an_emoji(tmp_path):
    ann, maps = eval_inputs(tmp_path)
    line = one_line_error(runner.invoke(app, ["eval", "--maps", str(maps), "--annotations", str(ann),
                                              "--binarize", "fixed:abc", "--out", str(tmp_path / "m.json")]))
    assert "fixed:abc" in line and "'abc' is not a number" in line


# -- item 4: a typed, range-checked config -------------------------------------------------------------
@pytest.mark.parametrize("item, key, shown, allowed", [
    ("optim.lr=abc", "optim.lr", "abc", "a number > 0"),
    ("epochs=abc", "epochs", "abc", "an integer >= 1"),
    ("optim.lr=-1", "optim.lr", "-1", "a number > 0"),
    ("batch_size=0", "batch_size", "0", "an integer >= 1"),
    ("workers=-1", "workers", "-1", "an integer >= 0"),
    ("model.dropout_img=1.5", "model.dropout_img", "1.5", "a number in [0, 1)"),
    ("epochs=0", "epochs", "0", "an integer >= 1"),
])
def test_train_config_values_are_type_and_range_checked(tmp_path, item, key, shown, allowed):
    result = runner.invoke(app, ["train", "slavc", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "run"),
                                 "--set", item])
    line = one_line_error(result)
    assert f"config key {key}={shown}" in line and allowed in line
    assert not (tmp_path / "run").exists()  # nothing written


def test_packaged_defaults_pass_their_own_spec():
    for method in ("slavc", "ezvsl", "dmt", "xpl", "supervised", "naive-ssl", "hard-pl"):
        check_config(load_config(["train", f"methods/{method}"]), "train")
    check_config(load_config("preprocess"), "preprocess")
    check_config(load_config("eval"), "eval")


def test_spec_rules_reject_wrong_types_and_accept_null_only_when_declared():
    with pytest.raises(ConfigError, match="jpeg_quality=101 is out of range: expected an integer in \\[1, 100\\]"):
        check_config({"jpeg_quality": 101}, "preprocess")
    with pytest.raises(ConfigError, match="drop_last=yes has the wrong type: expected true or false"):
        check_config({"drop_last": "yes"}, "train")
    with pytest.raises(ConfigError, match="epochs=true is not an integer"):
        check_config({"epochs": True}, "train")
    with pytest.raises(ConfigError, match="optim.lr=null is missing"):
        check_config({"optim": {"lr": None}}, "train")
    check_config({"validation": {"max_samples": None}}, "train")
    assert set(SPECS) == {"train", "preprocess", "eval"}
