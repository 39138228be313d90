"""`avslkit synth` (placeholder, being implemented)."""

from __future__ import annotations

from typing import List, Optional

import typer

from avslkit.cli.common import not_yet


def command(
    args: Optional[List[str]] = typer.Argument(None, help="Arguments (not yet implemented)."),
) -> None:
    """Not yet implemented (exit code 2)."""
    not_yet("synth", "foundation")
