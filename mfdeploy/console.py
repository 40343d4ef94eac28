"""Terminal output shared by the commands: tables and progress bars (rich), on stderr for bars."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

T = TypeVar("T")

# Wide when piped (CI logs, files), so tables are not squeezed into 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
# Messages are never broken mid-path: the terminal (or the log reader) wraps them.
stderr = Console(stderr=True, soft_wrap=True)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    # Piped output (make bench, CI logs) is not squeezed into 80 columns.
    console = stdout if stdout.is_terminal else Console(soft_wrap=True, width=200)
    console.print(table)


def progress(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate with a progress bar on stderr (silent when stderr is not a terminal)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def info(message: str) -> None:
    stderr.print(message, highlight=False)


def counted(count: int, noun: str) -> str:
    """'1 thread', '2 threads': a count with its noun in the right number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
