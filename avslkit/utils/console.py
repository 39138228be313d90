"""Logging and progress bars. Logs and progress go to stderr so stdout stays machine-readable."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# emoji=False: a user path such as "clips:fire:" must print as written, never as an emoji.
stderr_console = Console(stderr=True, emoji=False)
_QUIET = False

log = logging.getLogger("avslkit")


def plain(value: object, style: str = "") -> Text:
    """User-supplied text (paths, ids, messages) for rich output: printed literally, never read as
    markup (`[bold]`) or emoji codes (`:fire:`)."""
    return Text(str(value), style=style)


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Route avslkit logs to stderr through rich; `quiet` also hides progress bars."""
    global _QUIET
    _QUIET = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    log.handlers.clear()
    handler = RichHandler(console=stderr_console, show_path=False, show_time=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def is_quiet() -> bool:
    return _QUIET


def make_progress(transient: bool = False) -> Progress:
    """A rich progress display with count, ETA and elapsed time, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=stderr_console,
        transient=transient,
        disable=_QUIET,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (hidden under --quiet)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
