"""Lazy re-exports of a package (PEP 562), one implementation for every package that has them.

A package re-exports names from its submodules without importing them at its own import, so
that a command which needs one submodule (``earshot score`` scores, it does not train) does
not load the others::

    lazy_exports(__name__, {"train": "train", "score_files": "evaluate"})

A name is imported from its home submodule when first read and then kept in the package.
Where a submodule has the name of a function it defines (``earshot.pipeline.train`` the
module, ``train`` the function), importing the submodule binds the function in the package,
not the module (as when the package imported the function at its top), so ``from
earshot.pipeline import train`` is the function whichever was imported first.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping

__all__ = ["lazy_exports"]


class _LazyPackage(types.ModuleType):
    """The module type of a package whose re-exports are loaded when first used."""

    _lazy_homes: Mapping[str, str]

    def __getattr__(self, name: str):  # only reached when the name is not in the package yet
        homes = self.__dict__.get("_lazy_homes", {})
        if name in homes:
            value = getattr(importlib.import_module(f"{self.__name__}.{homes[name]}"), name)
            self.__dict__[name] = value
            return value
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self.__dict__.get("_lazy_homes", {})))

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"
                and name in self.__dict__.get("_lazy_homes", {})):
            value = getattr(value, name)  # the submodule of the same name: keep its function
        super().__setattr__(name, value)


def lazy_exports(package: str, homes: Mapping[str, str]) -> None:
    """Make ``homes`` (re-exported name -> the submodule of ``package`` defining it) load lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (it must be imported: call this from its ``__init__``).
    homes : mapping of str to str
        Each lazily re-exported name and the submodule (relative to ``package``) it comes from.
    """
    module = sys.modules[package]
    module.__dict__["_lazy_homes"] = dict(homes)
    module.__class__ = _LazyPackage
