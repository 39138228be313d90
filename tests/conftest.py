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
