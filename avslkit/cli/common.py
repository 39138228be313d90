"""Helpers shared by the command modules: error reporting and common option types."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from avslkit.config import ConfigError
from avslkit.errors import AvslError
from rich.text import Text

from avslkit.utils.console import stderr_console

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error on stderr and exit with `code`."""
    stderr_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn AvslError/ConfigError/file-system errors/KeyboardInterrupt into one-line errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AvslError as exc:
            fail(str(exc), exc.exit_code)
        except ConfigError as exc:
            fail(str(exc), 2)
        except FileNotFoundError as exc:
            name = exc.filename or str(exc)
            fail(f"file not found: {name} (check the path)")
        except PermissionError as exc:
            fail(f"permission denied: {exc.filename or exc} (choose a path you can write to or read from)")
        except OSError as exc:
            if exc.filename is None:
                raise
            fail(f"cannot use {exc.filename}: {exc.strerror or exc} (check the path and free space)")
        except KeyboardInterrupt:
            stderr_console.print("[yellow]interrupted[/]: completed work is kept on disk; re-run the same command (train: with --resume) to continue")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
