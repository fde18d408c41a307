"""What every verb of the command line shares: the two consoles, progress bars on stderr, the
``--param KEY=VALUE`` parser and the number format of the terminal tables.

Standard library, typer and rich only, so ``earshot --help`` stays fast: the verbs load the
library when they run.
"""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console

from earshot.errors import ParameterError
from earshot.reports.format import fmt_cell

__all__ = ["err", "fmt_cell", "out", "parse_params", "progress_bars"]

# Wide when not a terminal, so tables written to a file or a pipe keep one row per line.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


@contextlib.contextmanager
def progress_bars(enabled: bool = True):
    """A progress callback ``(stage, done, total)`` drawing rich bars on stderr (None when not a terminal)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    # deferred: rich.progress is needed only when bars are drawn (keeps `earshot --help` fast)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def parse_params(items: list[str]) -> dict:
    """``["hidden=64", "lr=1e-3", "flag=true"]`` -> typed dict (JSON literals, else strings)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param: expected KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params
