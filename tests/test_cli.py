"""The CLI shell: --help lists every command with an example, --version, exit codes."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from avslkit import __version__
from avslkit.cli.main import COMMANDS, app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name, _ in COMMANDS:
        assert name in result.stdout
    for required in ("synth", "preprocess", "extend-testset", "train", "eval", "viz"):
        assert required in [n for n, _ in COMMANDS]


def test_every_command_help_has_an_example():
    for name, _ in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.stdout, f"'avslkit {name} --help' has no example"


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "avslkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"avslkit {__version__}"


def test_store_info_on_missing_file_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["store", "info", str(tmp_path / "nope.h5")])
    assert result.exit_code == 1
    assert "store not found" in result.output and "Traceback" not in result.output
