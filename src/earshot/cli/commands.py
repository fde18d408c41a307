"""The verbs of the command line, one module each, registered in ``earshot --help`` order.

Each module defines ``register(app, out, err)`` adding its command (named as the module) to the
Typer ``app``; modules import typer and the light helpers of :mod:`earshot.cli` at the top and the
library inside the command body, so ``earshot --help`` stays fast. ``earshot VERB ...`` registers
only VERB's module (:func:`verb_of`), so one verb's start-up does not pay for the others.
"""

from __future__ import annotations

import importlib

#: Modules under earshot.cli, registered in this order.
MODULES: list[str] = ["train", "score", "evaluate", "info", "synth", "demo", "explore", "serve", "detect", "listen",
                      "cv", "export", "drift", "faults"]


#: The library module a verb's command imports first (numpy, scipy.fft and onnxruntime behind it),
#: imported by ``main`` before Typer runs, on a fresh thread (see ``earshot.cli.app._preload``).
PRELOAD: dict[str, str] = {"score": "earshot.pipeline.batch"}


def register_all(app, out, err, names: list[str] | None = None) -> None:
    """Add the verbs ``names`` (default: every verb of :data:`MODULES`) to ``app``."""
    for name in MODULES if names is None else names:
        importlib.import_module(f"earshot.cli.{name}").register(app, out, err)


def verb_of(argv: list[str]) -> str | None:
    """The verb that ``argv`` runs, when it names one of :data:`MODULES`, else None.

    The root options (``-v``, ``-q``, ``--help``) take no value, so the verb is the first
    argument that is not an option. None for ``earshot [--help]``, ``--help`` before the verb
    or an unknown verb: those need every verb (to list them, or to suggest one).
    """
    for arg in map(str, argv):
        if arg == "--help":
            return None
        if not arg.startswith("-"):
            return arg if arg in MODULES else None
    return None
