"""The `avslkit` command: global options plus one sub-command per module in `avslkit.cli`."""

from __future__ import annotations

import importlib
from typing import Optional

import typer

from avslkit import __version__
from avslkit.utils.console import setup_logging

app = typer.Typer(
    name="avslkit",
    help=(
        "Audio-visual source localization toolkit.\n\n"
        "Pipeline: synth/preprocess videos into an HDF5 store, extend-testset, train, eval, viz.\n\n"
        "Short forms in a workspace (avslkit.yaml, see 'avslkit status'):\n\n"
        "avslkit synth toy && avslkit preprocess toy/ && avslkit train dmt --labeled 64 && avslkit eval --extended && avslkit viz"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# (command name, module under avslkit.cli). Each module defines `command` (a Typer callback) whose
# docstring is its --help text, or `app` (a Typer sub-application) for command groups.
COMMANDS: list[tuple[str, str]] = [
    ("synth", "synth"),
    ("preprocess", "preprocess"),
    ("store", "store"),
    ("extend-testset", "extend_testset"),
    ("train", "train"),
    ("eval", "evaluate"),
    ("viz", "viz"),
    ("localize", "localize"),
    ("weights", "weights"),
    ("demo", "demo"),
    ("status", "status"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avslkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Audio-visual source localization toolkit."""
    setup_logging(quiet=quiet, verbose=verbose)


def _register() -> None:
    for name, module_name in COMMANDS:
        module = importlib.import_module(f"avslkit.cli.{module_name}")
        sub_app = getattr(module, "app", None)
        if sub_app is not None:
            app.add_typer(sub_app, name=name)
        else:
            app.command(name)(module.command)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
