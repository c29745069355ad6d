"""The `plategen` command line: parse options, call one library function, print the result.

Every user-facing failure is a `PlategenError`; it is printed as one line and the
command exits with status 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer
from rich.console import Console

from plategen import __version__
from plategen.errors import PlategenError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Labelled licence-plate character data in the style of real plates.")
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable)
REPO_ROOT = Path(__file__).resolve().parents[1]


def user_errors(command: F) -> F:
    """Turn a PlategenError into one red line and exit status 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PlategenError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"plategen {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")) -> None:
    """Labelled licence-plate character data in the style of real plates."""


# --- commands: each one parses options and calls one library function ---


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
