"""`avslkit store info STORE.h5`: what a store holds (counts, failures, size, provenance)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from avslkit.cli.common import user_errors
from avslkit.utils.console import plain

app = typer.Typer(help="Inspect HDF5 clip stores. Example: avslkit store info toy/train.h5", no_args_is_help=True)


@app.command("info")
@user_errors
def info(
    store: Path = typer.Argument(..., help="Store written by 'avslkit preprocess'."),
    failures: bool = typer.Option(False, "--failures", help="List every failed clip and its reason."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Print clip count, failures, classes, size per clip and provenance of a store.

    Example: avslkit store info toy/train.h5 --failures
    """
    from avslkit.data.store import Store  # h5py: loaded only when a store is read, not for --help

    with Store(store) as s:
        summary = s.summary()
        fails = s.failures()
    if as_json:
        summary["failure_list"] = [f.__dict__ for f in fails]
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=plain(store), show_header=False)
    for key in ("clips", "failures", "classes", "sample_rate", "audio_seconds", "frame_format", "bytes",
                "bytes_per_clip", "avslkit_version", "created", "has_extended"):
        value = summary[key]
        if key == "bytes_per_clip" and value is not None:
            value = f"{value / 1024:.1f} KiB"
        table.add_row(key, plain(value))
    console = Console(emoji=False)
    console.print(table)
    if failures and fails:
        ft = Table(title="failures")
        ft.add_column("id")
        ft.add_column("reason")
        ft.add_column("source")
        for f in fails:
            ft.add_row(plain(f.id), plain(f.reason), plain(f.source))
        console.print(ft)
