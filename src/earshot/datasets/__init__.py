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

from earshot._util.lazy import lazy_exports
from earshot.datasets.layouts import ParsedPath, parse_path
from earshot.datasets.records import Attributes, Record, group_name

#: Names loaded when first used (PEP 562), so that scoring, which parses paths only (a bundle
#: routes a file to its group), does not import discovery and splitting: name -> its module here.
_LAZY = {"describe": "discover", "discover": "discover",
         **dict.fromkeys(("apply_split_file", "assign_default_split", "train_test"), "splits")}

lazy_exports(__name__, _LAZY)

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
