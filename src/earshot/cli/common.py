"""What every verb of the command line shares: the two consoles, progress on stderr (bars or lines), the
``--param KEY=VALUE`` parser and the number format of the terminal tables.

Standard library only at the top, so ``earshot --help`` stays fast: the verbs load the library
when they run, and rich loads when something is printed through a console or bars are drawn
(``earshot score`` to stdout or a file, with stderr not a terminal, never loads it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from earshot.errors import ParameterError
from earshot.reports.format import fmt_cell

__all__ = ["QUIET", "ProgressLines", "err", "fmt_cell", "out", "parse_params", "progress_bars"]

class _LazyConsole:
    """A rich ``Console`` on stdout or stderr, made when first used (rich costs about 0.05 s of
    CPU to import; a verb that prints nothing through it does not pay it).

    Wide when not a terminal, so tables written to a file or a pipe keep one row per line.
    """

    def __init__(self, stderr: bool):
        self._stderr = stderr
        self._console = None

    def console(self):
        """The rich ``Console`` itself (made now if it is not yet)."""
        if self._console is None:
            from rich.console import Console  # deferred: start-up speed (see the class docstring)

            tty = (sys.stderr if self._stderr else sys.stdout).isatty()
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True, width=None if tty else 200)
        return self._console

    def __getattr__(self, name: str):
        return getattr(self.console(), name)


out = _LazyConsole(stderr=False)
err = _LazyConsole(stderr=True)

#: Variables by which rich takes a stream that is not a tty for a terminal.
_RICH_TERMINAL_ENV = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "FORCE_COLOR")


#: Set by ``earshot --quiet``: no progress on stderr, neither bars nor lines.
QUIET = {"on": False}

#: Seconds between two plain progress lines of one step (its first and last line always show).
LINE_EVERY_S = 5.0


class ProgressLines:
    """A progress callback ``(stage, done, total)`` writing plain timestamped lines on stderr.

    For logs and CI, where no bar can be drawn: a step's first update, then at most one line
    every :data:`LINE_EVERY_S` seconds, and its last one (``done == total``), each as
    ``HH:MM:SS earshot: STAGE: DONE/TOTAL``. ``note(stage, text)`` adds a detail (an epoch's
    loss) to the step's next line.
    """

    def __init__(self, every_s: float = LINE_EVERY_S, clock=time.monotonic, stream=None):
        self.every_s = every_s
        self.clock = clock
        self.stream = stream
        self.last: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.notes: dict[str, str] = {}
        self.finished: set[str] = set()

    def note(self, stage: str, text: str) -> None:
        """A detail for the step's next line (e.g. ``loss 0.123``)."""
        self.notes[stage] = text

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self.clock()
        if stage in self.finished:  # the same step again (a second model's training): start over
            self.finished.discard(stage)
            del self.started[stage]
        first = stage not in self.started
        if first:
            self.started[stage] = now
        complete = total is not None and done >= total
        if not (first or complete or now - self.last.get(stage, now) >= self.every_s):
            return
        self.last[stage] = now
        count = "started" if done == 0 else f"{done}/{total}" if total is not None else f"{done}"
        extra = [self.notes.pop(stage)] if stage in self.notes else []
        if complete:
            self.finished.add(stage)
            extra.append(f"done in {now - self.started[stage]:.1f} s")
        stream = self.stream or sys.stderr
        stream.write(f"{time.strftime('%H:%M:%S')} earshot: {stage}: {count}{''.join('; ' + e for e in extra)}\n")
        stream.flush()


class _Bars:
    """Rich bars on stderr, one per stage; ``note`` shows a detail beside the stage's bar."""

    def __init__(self, bar):
        self.bar = bar
        self.tasks: dict[str, int] = {}

    def _task(self, stage: str, total) -> int:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, note="")
        return self.tasks[stage]

    def note(self, stage: str, text: str) -> None:
        self.bar.update(self._task(stage, None), note=text)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self.bar.update(self._task(stage, total), completed=done, total=total)


@contextlib.contextmanager
def progress_bars(enabled: bool = True):
    """A progress callback ``(stage, done, total)`` for the library's long steps, on stderr:
    rich bars on a terminal, plain timestamped lines otherwise (:class:`ProgressLines`), None
    with ``earshot --quiet`` (or ``enabled=False``). It also has ``note(stage, text)``."""
    if not enabled or QUIET["on"]:
        yield None
        return
    # a stderr that is no tty, with none of rich's overrides set, is no terminal: no need to load rich to ask
    if not (sys.stderr.isatty() or any(v in os.environ for v in _RICH_TERMINAL_ENV)) or not err.is_terminal:
        yield ProgressLines()
        return
    # deferred: rich.progress is needed only when bars are drawn (keeps `earshot --help` fast)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}"), console=err.console(), transient=True) as bar:
        yield _Bars(bar)


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
