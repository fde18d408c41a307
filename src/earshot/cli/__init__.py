"""The ``earshot`` command line: the Typer app (:mod:`.app`) and one thin module per verb."""

from __future__ import annotations

from earshot.cli.app import app_for, main

__all__ = ["app", "main"]


def __getattr__(name: str):
    """``app``, the full Typer app, built on first use (PEP 562): ``earshot VERB`` loads VERB's module only."""
    if name == "app":
        return app_for(None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
