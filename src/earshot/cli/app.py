"""The ``earshot`` command line: a thin layer over the library.

Library errors become one line on stderr and exit code 1 (2 for usage errors); long work
shows a progress bar on stderr; machine-readable results go to stdout or files. Each verb is
its own module (:mod:`earshot.cli.commands` lists them, in ``earshot --help`` order); what
they share is in :mod:`earshot.cli.common` and :mod:`earshot.cli.options`.
"""

from __future__ import annotations

import importlib
import logging
import re
import signal
import sys
import threading
import warnings
from typing import Annotated

import typer

from earshot.cli.commands import PRELOAD, register_all, verb_of
from earshot.cli.common import QUIET, err, out
from earshot.errors import EarshotError, EarshotWarning

log = logging.getLogger("earshot")


# ---------------------------------------------------------------------- plumbing
class _OneLineHandler(logging.Handler):
    """Log records as ``earshot: level: message``, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().strip().splitlines() or [""]
        if record.name == "py.warnings":  # "file:line: Category: message" then the source line
            text = re.sub(r"^.*?:\d+: \w+: ", "", lines[0])
        else:
            text = " ".join(line.strip() for line in lines)
        sys.stderr.write(f"earshot: {record.levelname.lower()}: {text}\n")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _OneLineHandler()
    for name in ("earshot", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # earshot's own warnings are logged by the library as well: show them once
    warnings.filterwarnings("ignore", category=EarshotWarning)


def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log lines (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr (bars on a terminal, timestamped lines otherwise).")] = False,
) -> None:
    """Listen to industrial machines and tell when one sounds wrong."""
    _setup_logging(verbose)
    QUIET["on"] = quiet


_APPS: dict[str | None, typer.Typer] = {}


def app_for(verb: str | None = None) -> typer.Typer:
    """The Typer app with the one verb ``verb``, or with every verb (None); built once each.

    ``earshot VERB`` runs an app with VERB alone, so it imports VERB's module only; its usage,
    help and errors are those of the full app. ``app`` (this module's attribute) is the full one.
    """
    if verb not in _APPS:
        new = typer.Typer(name="earshot", help="Listen to industrial machines and tell when one sounds wrong.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                          rich_markup_mode=None)
        new.callback()(_root)
        register_all(new, out, err, None if verb is None else [verb])
        _APPS[verb] = new
    return _APPS[verb]


def __getattr__(name: str):
    """``app``: the full Typer app, built on first use (PEP 562; ``main`` builds only the verb it runs)."""
    if name == "app":
        return app_for(None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- entry point
#: Optional top-level packages -> the extra that installs them.
_EXTRAS = {"torch": "train", "onnx": "train", "matplotlib": "plots", "fastapi": "serve", "uvicorn": "serve",
           "sqlalchemy": "serve", "sounddevice": "live", "dask": "dask", "distributed": "dask", "pyarrow": "parquet"}


class _Terminated(BaseException):
    """SIGTERM as an exception: it unwinds the stack, so context managers remove what they were
    writing (temporary folders, locks) before the process exits 143. Not an ``Exception``, so no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_SIGINT: list[int] = []  # set when SIGINT arrived (a command may end gracefully on Ctrl-C: still 130)


def _on_sigint(signum, _frame) -> None:
    _SIGINT.append(signum)
    raise KeyboardInterrupt


def _on_sigterm(signum, _frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise _Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code.

    0 on success, 1 for earshot errors, 2 for usage errors, 130 when interrupted by SIGINT
    (Ctrl-C) and 143 by SIGTERM, each failure with one line on stderr.
    """
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        return _run(argv)
    _SIGINT.clear()
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGINT, _on_sigint), (signal.SIGTERM, _on_sigterm))}
    try:
        return _run(argv)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _preload(verb: str | None, args: list[str]) -> None:
    """Import the library module that ``verb`` runs (:data:`~earshot.cli.commands.PRELOAD`) on a
    fresh thread, whose Python stack starts empty; nothing for ``--help``.

    CPython 3.11 keeps a thread's frames in 16 KiB chunks and maps and unmaps a chunk each time a
    call crosses a chunk boundary (python/cpython#142183; 3.13 and 3.14 keep one chunk). Imported
    inside Typer's call stack, scipy.special's import loop (scipy.fft imports it) sat on such a
    boundary: about 9,000 mmap/munmap pairs and 0.15-0.2 s more CPU for ``earshot score`` than the
    same import at the top of a script, and the depth, so the cost, changed with each entry point.
    A fresh thread imports at the same shallow depth whoever called :func:`main`. An error is left
    to the command's own import, which raises it where the command line reports it.
    """
    if verb not in PRELOAD or "--help" in args:
        return

    def load() -> None:
        try:
            importlib.import_module(PRELOAD[verb])
        except Exception:  # noqa: BLE001 - the command's own import raises it again, where it is reported
            pass

    thread = threading.Thread(target=load, name="earshot-preload", daemon=True)
    thread.start()
    thread.join()


def _run(argv: list[str] | None) -> int:
    try:
        args = sys.argv[1:] if argv is None else list(argv)
        verb = verb_of(args)
        _preload(verb, args)
        rv = app_for(verb)(args=args, prog_name="earshot", standalone_mode=False)
    except _Terminated as exc:
        sys.stderr.write(f"earshot: terminated ({signal.Signals(exc.signum).name})\n")
        return 128 + exc.signum
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("earshot: aborted\n")
        return 130
    except typer.TyperException as exc:  # usage errors: click's message and exit code 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"earshot: error: {exc}\n")
        return int(getattr(exc, "exit_code", 2))
    except EarshotError as exc:
        sys.stderr.write(f"earshot: error: {exc}\n")
        return 1
    except ModuleNotFoundError as exc:  # an optional extra is not installed (e.g. the edge install)
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        sys.stderr.write(f"earshot: error: this command needs {exc.name}, which is not installed: "
                         f"pip install 'earshot[{extra}]'\n")
        return 1
    except OSError as exc:  # disk full, permission denied...: still one line
        sys.stderr.write(f"earshot: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("earshot: interrupted\n")
        return 130
    if _SIGINT or rv == 130:  # Typer turns KeyboardInterrupt into a returned 130
        sys.stderr.write("earshot: interrupted\n")
        return 130
    if isinstance(rv, int) and not isinstance(rv, bool) and rv:  # typer.Exit(code) raised by a command
        return rv
    return 0


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
