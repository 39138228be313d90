"""`avslkit train` (placeholder until the training issue lands)."""

from __future__ import annotations

from typing import List, Optional

import typer

from avslkit.cli.common import not_yet


def command(
    ctx: typer.Context,
    args: Optional[List[str]] = typer.Argument(None, help="Arguments (not yet implemented)."),
) -> None:
    """Not yet implemented (exit code 2).

    Example: avslkit train --help
    """
    not_yet("train", "training")
