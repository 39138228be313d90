"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFDATA = REPO_ROOT.parent / "shared" / "refdata"


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The public benchmarks' annotation files (../shared/refdata); skip when absent."""
    if not REFDATA.is_dir():
        pytest.skip(f"refdata not found at {REFDATA}")
    return REFDATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a 2-core machine: intra-op threads spin-wait against other processes (seen
    10× slower), so torch-heavy test modules run with one thread; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_stray_workspace_file():
    """Commands run with explicit paths must not create a workspace file (avslkit.yaml) in the checkout."""
    existed = (REPO_ROOT / "avslkit.yaml").exists()
    yield
    assert existed or not (REPO_ROOT / "avslkit.yaml").exists(), "a test created avslkit.yaml in the repository root"
