"""Command-line verbs beyond the core ones, one module each.

Each module defines ``register(app, out, err)`` adding its command(s) to the Typer ``app``;
modules import only typer/rich at the top and the library inside the command body, so
``earshot --help`` stays fast.
"""

from __future__ import annotations

import importlib

#: Modules under earshot.cli, registered in this order.
MODULES: list[str] = ["synth", "demo", "explore", "serve", "detect", "listen", "cv", "export"]


def register_all(app, out, err) -> None:
    for name in MODULES:
        importlib.import_module(f"earshot.cli.{name}").register(app, out, err)
