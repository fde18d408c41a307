"""Train/test splits: a default split for data without one, a split file, and grouping.

The default split (per group, for clips whose split is None): every abnormal clip goes to test
with as many normal clips, drawn at random but capped at half the group's normal clips so that
some are left to train on; the other normal clips and every unlabelled clip go to train
(unlabelled clips with no split are taken as normal training clips).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from earshot.datasets.csvfiles import parse_label, read_csv
from earshot.datasets.records import SPLITS, Record, group_name
from earshot.errors import DatasetError, ParameterError

__all__ = ["assign_default_split", "apply_split_file", "train_test"]

logger = logging.getLogger(__name__)


def assign_default_split(
    records: Iterable[Record], *, group_by: str = "id", seed: int = 0
) -> list[Record]:
    """Give a split to every record whose split is None.

    Parameters
    ----------
    records : iterable of Record
    group_by : {"id", "machine", "none"}
        Groups within which the split is made (see :func:`earshot.datasets.group_name`).
    seed : int
        Seed of the draw of test normals. Each group draws from its own
        ``numpy.random.default_rng([seed, crc32(group name)])`` over its clips sorted by path,
        so the result depends on neither the input order nor the other groups.

    Returns
    -------
    list of Record
        In the input order; records that had a split are returned unchanged.

    Examples
    --------
    A group with 10 normal and 3 abnormal clips, none split: 3 abnormal + 3 normal go to test,
    7 normal to train. With 4 normal and 3 abnormal: 3 abnormal + 2 normal (half) to test.
    """
    records = list(records)
    unsplit: dict[str, list[Record]] = {}
    for record in records:
        if record.split is None:
            unsplit.setdefault(group_name(record, group_by), []).append(record)
    chosen: dict[Record, str] = {}
    for name, members in unsplit.items():
        chosen.update(_split_group(name, members, seed))
    if chosen:
        n_test = sum(split == "test" for split in chosen.values())
        logger.info(
            "default split (group_by=%s, seed=%d): %d clips to train, %d to test",
            group_by, seed, len(chosen) - n_test, n_test,
        )
    return [replace(r, split=chosen[r]) if r.split is None else r for r in records]


def _split_group(name: str, members: Sequence[Record], seed: int) -> dict[Record, str]:
    """Split of each record of one group (all with split None)."""
    members = sorted(members, key=_sort_key)
    normals = [r for r in members if r.label == 0]
    n_abnormal = sum(r.label == 1 for r in members)
    n_test_normal = min(n_abnormal, len(normals) // 2)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    test_normals = {normals[i] for i in rng.choice(len(normals), size=n_test_normal, replace=False)}
    return {r: "test" if r.label == 1 or r in test_normals else "train" for r in members}


def _sort_key(record: Record) -> tuple:
    """A total order on records (path first) so that draws do not depend on the input order."""
    attributes = sorted(record.attributes.items())
    return (record.path, record.machine, record.id or "", record.domain, attributes)


def apply_split_file(records: Iterable[Record], csv_path: str | os.PathLike) -> list[Record]:
    """Set splits (and optionally labels) from a CSV file ``path,split[,label]``.

    Parameters
    ----------
    records : iterable of Record
    csv_path : str or path-like
        CSV with columns ``path`` and ``split`` (``train``/``test``) and optionally ``label``
        (``0``/``1``/``normal``/``anomaly``/``abnormal``; empty keeps the record's label).
        Paths are absolute or relative to the CSV's folder; they are matched against the
        records' paths after resolving both (symbolic links, ``..``).

    Returns
    -------
    list of Record
        In the input order. Records not listed keep their split (None stays None).

    Raises
    ------
    ParameterError
        If the file does not exist, or a row has a bad split or label, or a path is listed twice.
    DatasetError
        If the file lacks a ``path`` or ``split`` column, or a listed path matches no record.
    """
    csv_path = Path(os.path.abspath(csv_path))
    if not csv_path.is_file():
        raise ParameterError(f"split_file {str(csv_path)!r} does not exist")
    overrides = _read_split_file(csv_path)
    records = list(records)
    by_path: dict[Path, list[int]] = {}
    for i, record in enumerate(records):
        by_path.setdefault(record.path.resolve(), []).append(i)
    for path, (where, split, label) in overrides.items():
        if path not in by_path:
            raise DatasetError(f"{where}: path {str(path)!r} matches no clip of the data set")
        for i in by_path[path]:
            new_label = records[i].label if label is None else label
            records[i] = replace(records[i], split=split, label=new_label)
    logger.info("split file %s set the split of %d clips", csv_path, len(overrides))
    return records


def _read_split_file(csv_path: Path) -> dict[Path, tuple[str, str, int | None]]:
    """``{resolved path: (where, split, label)}`` from a split file."""
    overrides: dict[Path, tuple[str, str, int | None]] = {}
    for where, row in read_csv(csv_path, required=("path", "split"), what="split file"):
        split = row["split"].lower()
        if split not in SPLITS:
            raise ParameterError(f"{where}: split must be train or test; got {row['split']!r}")
        if not row["path"]:
            raise ParameterError(f"{where}: the path is empty")
        path = (csv_path.parent / row["path"]).resolve()
        if path in overrides:
            first = overrides[path][0]
            raise ParameterError(f"{where}: path {row['path']!r} is listed twice (first: {first})")
        overrides[path] = (where, split, parse_label(row.get("label", ""), where=where))
    return overrides


def train_test(
    records: Iterable[Record], *, group_by: str = "id", seed: int = 0
) -> dict[str, tuple[list[Record], list[Record]]]:
    """Training and test records per group.

    Records without a split first get the default one (:func:`assign_default_split` with
    ``group_by`` and ``seed``).

    Returns
    -------
    dict
        ``{group name: (train records, test records)}``, groups sorted by name, records
        sorted by path. A group may have an empty train or test list.
    """
    records = assign_default_split(records, group_by=group_by, seed=seed)
    groups: dict[str, tuple[list[Record], list[Record]]] = {}
    for record in sorted(records, key=lambda r: r.path):
        train, test = groups.setdefault(group_name(record, group_by), ([], []))
        (train if record.split == "train" else test).append(record)
    return dict(sorted(groups.items()))
