"""Library workflows that join the layers for the command line and the service: extract
features (:mod:`.extract`), train (:mod:`.train`), score and evaluate (:mod:`.evaluate`),
batch scoring to a file (:mod:`.batch`), cross-validation (:mod:`.crossval`), comparison of
models (:mod:`.compare`), detect on a long recording (:mod:`.detect`) and the demo (:mod:`.demo`).

The common entry points are re-exported here, each loaded when first used (PEP 562): importing
one workflow module (``earshot score`` imports :mod:`.batch`) does not load the others.
"""

from __future__ import annotations

import importlib
import sys
import types

#: Re-exported name -> the module under earshot.pipeline that defines it.
_HOMES = {
    **dict.fromkeys(("evaluate", "evaluation_records", "score_files"), "evaluate"),
    **dict.fromkeys(("GROUP_BYS", "LONG_RECORDING_S", "Progress", "extract_store", "long_recording_windows"), "extract"),
    **dict.fromkeys(("TrainResult", "apply_labels", "record_metadata", "train"), "train"),
}


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(f"earshot.pipeline.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``.evaluate`` or ``.train`` binds it
    here under its name, which is also the name of its workflow function; the function is kept
    (as when this package imported them at the top), so ``from earshot.pipeline import train``
    is the function whichever was imported first."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}" and name in _HOMES:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "GROUP_BYS",
    "LONG_RECORDING_S",
    "Progress",
    "TrainResult",
    "apply_labels",
    "evaluate",
    "evaluation_records",
    "extract_store",
    "long_recording_windows",
    "record_metadata",
    "score_files",
    "train",
]
