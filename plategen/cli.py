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
from rich.markup import escape
from rich.progress import track as rich_track
from rich.table import Table

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
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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


def tracker(description: str) -> Callable:
    """A progress-bar wrapper for iterables, drawn on stderr so tables stay clean on stdout."""

    def track(items):
        items = list(items)
        return rich_track(items, description=description, console=err_console, transient=True)

    return track


def count_grid(title: str, counts: dict[str, int], groups: int = 6) -> Table:
    """Per-label counts as a compact grid of (label, count) column pairs."""
    table = Table(title=title)
    for _ in range(groups):
        table.add_column("char")
        table.add_column("n", justify="right")
    items = list(counts.items())
    for start in range(0, len(items), groups):
        row = items[start:start + groups]
        cells = [cell for label, n in row for cell in (label, str(n))]
        table.add_row(*cells, *[""] * (2 * groups - len(cells)))
    return table


# --- commands: each one parses options and calls one library function ---


@app.command()
@user_errors
def inspect(
    data: Path = typer.Argument(..., help="A plate folder: YOLO boxes, plate text as file name, or a CSV."),
    fmt: Optional[str] = typer.Option(None, "--format", help="yolo | filename | csv (default: detected)."),
    sheet: Optional[Path] = typer.Option(None, help="Contact sheet PNG (default: inspect-<folder>.png here)."),
    strict: bool = typer.Option(False, help="Fail on any bad record instead of listing it."),
    show: int = typer.Option(10, help="How many bad or skipped records to list."),
) -> None:
    """Show what an import reads: plates, characters per class, boxes, skipped plates; write a contact sheet."""
    from plategen.inspection import inspect_import
    from plategen.plates import load_plates

    result = load_plates(data, fmt, strict=strict, progress=tracker(f"reading {data}"))
    sheet = sheet or Path(f"inspect-{data.resolve().name}.png")
    summary = inspect_import(result, sheet, progress=tracker("cutting characters"))

    table = Table(title=f"{summary.folder} ({summary.format})", show_header=False)
    table.add_row("plates read", str(summary.plates))
    table.add_row("characters", str(summary.characters))
    table.add_row("boxes annotated / estimated", f"{summary.annotated} / {summary.estimated}")
    table.add_row("plates not segmented", str(len(summary.skipped)))
    table.add_row("bad records", str(len(summary.problems)))
    console.print(table)
    console.print(count_grid("characters per class", summary.per_class))
    for reason, count in summary.skipped_reasons.items():
        console.print(f"[yellow]skipped[/] {count} x {reason}", highlight=False)
    for problem in (summary.problems + summary.skipped)[:show]:
        console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
    hidden = len(summary.problems) + len(summary.skipped) - show
    if hidden > 0:
        console.print(f"  ... and {hidden} more (--show N lists more)")
    console.print(f"contact sheet: [bold]{sheet}[/]")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
