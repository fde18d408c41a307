"""The ``earshot`` command line: the Typer app (:mod:`.app`) and one thin module per verb."""

from __future__ import annotations

from earshot.cli.app import app, main

__all__ = ["app", "main"]
