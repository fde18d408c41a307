"""The verbs of the command line, one module each, registered in ``earshot --help`` order.

Each module defines ``register(app, out, err)`` adding its command(s) to the Typer ``app``;
modules import typer/rich and the light helpers of :mod:`earshot.cli` at the top and the library
inside the command body, so ``earshot --help`` stays fast.
"""

from __future__ import annotations

import importlib

#: Modules under earshot.cli, registered in this order.
MODULES: list[str] = ["train", "score", "evaluate", "info", "synth", "demo", "explore", "serve", "detect", "listen",
                      "cv", "export", "drift", "faults"]


def register_all(app, out, err) -> None:
    """Add every verb of :data:`MODULES` to ``app``."""
    for name in MODULES:
        importlib.import_module(f"earshot.cli.{name}").register(app, out, err)
