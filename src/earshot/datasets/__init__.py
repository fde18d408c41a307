"""Data sets: find clips in known folder layouts or a manifest, and split them.

Everything here works on paths; no audio is read. Imports only the standard library, numpy
and :mod:`earshot.errors`.

Examples
--------
>>> from earshot.datasets import discover, train_test          # doctest: +SKIP
>>> records = discover("data/dcase2023")                        # doctest: +SKIP
>>> for group, (train, test) in train_test(records, group_by="id").items():  # doctest: +SKIP
...     print(group, len(train), len(test))
"""

from __future__ import annotations

import importlib
import sys
import types

from earshot.datasets.layouts import ParsedPath, parse_path
from earshot.datasets.records import Attributes, Record, group_name

#: Names loaded when first used (PEP 562), so that scoring, which parses paths only (a bundle
#: routes a file to its group), does not import discovery and splitting: name -> its module here.
_LAZY = {"describe": "discover", "discover": "discover",
         **dict.fromkeys(("apply_split_file", "assign_default_split", "train_test"), "splits")}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"earshot.datasets.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``.discover`` binds it here under its
    name, which is also the name of its function; the function is kept (as when this package
    imported it at the top), so ``earshot.datasets.discover`` is the function whichever was
    imported first."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}" and name in _LAZY:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "Attributes",
    "ParsedPath",
    "Record",
    "apply_split_file",
    "assign_default_split",
    "describe",
    "discover",
    "group_name",
    "parse_path",
    "train_test",
]
