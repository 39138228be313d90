"""`avslkit status`: what the workspace (avslkit.yaml) knows, as a table."""

from __future__ import annotations

import typer

from avslkit.cli.common import user_errors


@user_errors
def command() -> None:
    """Show the workspace: its folder and every entry of avslkit.yaml (stores, annotations, lists, runs, last eval),
    whether each path still exists, and a short summary of it.

    Example: avslkit status
    """
    from rich.console import Console
    from rich.table import Table

    from avslkit.workflow import describe
    from avslkit.workspace import Workspace

    ws = Workspace.find()
    if not ws.exists:
        typer.echo(f"no {ws.file.name} in {ws.display(ws.root)} or its parents: start a workspace with 'avslkit preprocess VIDEOS/'")
        return
    table = Table(title=f"workspace {ws.root} ({ws.file.name})", title_justify="left")
    table.add_column("entry", no_wrap=True)
    table.add_column("path", no_wrap=True)
    table.add_column("exists", no_wrap=True)
    table.add_column("summary", overflow="fold")
    for key, recorded, exists in ws.rows():
        summary = describe(key, ws.resolve(recorded)) if exists else ""
        table.add_row(key, recorded, "yes" if exists else "[red]missing[/]", summary)
    Console().print(table)  # stdout: the table is this command's output
