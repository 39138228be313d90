"""`avslkit eval` (placeholder until the evaluation issue lands)."""

from __future__ import annotations

from typing import List, Optional

import typer

from avslkit.cli.common import not_yet


def command(
    ctx: typer.Context,
    args: Optional[List[str]] = typer.Argument(None, help="Arguments (not yet implemented)."),
) -> None:
    """Not yet implemented (exit code 2).

    Example: avslkit eval --help
    """
    not_yet("eval", "evaluation")
