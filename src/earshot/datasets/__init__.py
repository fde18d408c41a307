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

from earshot.datasets.discover import describe, discover
from earshot.datasets.layouts import ParsedPath, parse_path
from earshot.datasets.records import Attributes, Record, group_name
from earshot.datasets.splits import apply_split_file, assign_default_split, train_test

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
