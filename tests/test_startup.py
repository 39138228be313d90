"""CLI start-up: `avslkit --help` and every command's --help must not import torch or numba (they cost
seconds; commands load them only on the path that needs them), nor the decoders (numpy, h5py, PyAV)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter: the test process itself has torch loaded by other tests.
_PROBE = r"""
import json, sys
import typer
from avslkit.cli.main import app

def paths(cmd, prefix):
    yield prefix
    for name, sub in (getattr(cmd, "commands", None) or {}).items():  # a group's sub-commands
        yield from paths(sub, prefix + [name])

helps = list(paths(typer.main.get_command(app), []))
for argv in helps:
    try:
        app(argv + ["--help"], prog_name="avslkit")
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
heavy = [m for m in sys.argv[1:] if m in sys.modules]
sys.stderr.write("\nPROBE " + json.dumps({"helps": [" ".join(a) for a in helps], "heavy": heavy}) + "\n")
"""

HEAVY = ("torch", "torchvision", "torchaudio", "numba", "numpy", "h5py", "av", "scipy", "PIL")


def _probe(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE "):])


def test_every_help_imports_no_heavy_module():
    result = _probe(_PROBE)
    assert "" in result["helps"] and "eval" in result["helps"] and "weights convert-soundnet" in result["helps"]
    assert result["heavy"] == [], f"--help imported {result['heavy']}: import them inside the command that needs them"


def test_probe_detects_torch():
    """The probe is not vacuous: a command module that imports torch at the top is caught."""
    leaky = _PROBE.replace("from avslkit.cli.main import app", "import torch\nfrom avslkit.cli.main import app")
    assert "torch" in _probe(leaky)["heavy"]


@pytest.mark.parametrize("argv", [["--help"], ["synth", "--help"], ["preprocess", "--help"], ["weights", "--help"]])
def test_help_from_the_entry_point(argv):
    out = subprocess.run([sys.executable, "-m", "avslkit", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Usage" in out.stdout
