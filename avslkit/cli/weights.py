"""`avslkit weights ...` (placeholder, being implemented)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Convert and inspect pretrained weights (SoundNet, VGGish, official checkpoints).", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """List weight converters (placeholder)."""
    typer.echo("no converters yet")
