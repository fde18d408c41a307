"""Find the clips of a data set: a folder in a known layout, or a manifest CSV.

:func:`discover` never opens audio: everything comes from paths (see
:mod:`earshot.datasets.layouts`) or from the manifest.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from earshot.datasets.layouts import (
    AUDIO_EXTENSIONS,
    ParsedPath,
    classify_path,
    is_audio_file,
    is_hidden,
    parse_path,
)
from earshot.datasets.csvfiles import parse_label, read_csv
from earshot.datasets.records import SPLITS, Record, group_name
from earshot.datasets.splits import apply_split_file
from earshot.errors import DatasetError, ParameterError

__all__ = ["MANIFEST_NAME", "MANIFEST_COLUMNS", "discover", "describe", "parse_label", "read_csv"]

logger = logging.getLogger(__name__)

#: A folder holding a file of this name at its top is read through it.
MANIFEST_NAME = "manifest.csv"
#: Columns of a manifest with a meaning; any other column becomes an attribute.
MANIFEST_COLUMNS = ("path", "label", "machine", "id", "domain", "split")

def discover(
    data: str | os.PathLike, *, split_file: str | os.PathLike | None = None
) -> list[Record]:
    """Find every clip of a data set.

    Parameters
    ----------
    data : str or path-like
        A folder (any layout of :mod:`earshot.datasets.layouts`, layouts may be mixed; a
        ``manifest.csv`` at its top is used instead of walking it), a manifest CSV file
        (columns ``path,label,machine,id,domain,split``, only ``path`` required), or one
        audio file.
    split_file : str or path-like, optional
        CSV ``path,split[,label]`` applied with :func:`earshot.datasets.apply_split_file`.

    Returns
    -------
    list of Record
        Sorted by path; paths are absolute. Clips whose split is not known keep ``split=None``
        (see :func:`earshot.datasets.assign_default_split`).

    Raises
    ------
    DatasetError
        If ``data`` does not exist, a folder holds no audio file, or a manifest is unusable
        (no ``path`` column, a row naming a missing file, no rows).
    ParameterError
        If a manifest holds a bad label or split value, or ``data`` is a file of another kind.
    """
    records = _read_data(Path(data))
    records.sort(key=lambda record: record.path)
    if split_file is not None:
        records = apply_split_file(records, split_file)
    return records


def _read_data(data: Path) -> list[Record]:
    if not data.exists():
        raise DatasetError(f"data path {str(data)!r} does not exist")
    if data.is_dir():
        manifest = data / MANIFEST_NAME
        if manifest.is_file():
            logger.info("using the manifest %s instead of walking the folder", manifest)
            return read_manifest(manifest)
        return read_folder(data)
    if data.suffix.lower() == ".csv":
        return read_manifest(data)
    if is_audio_file(data):
        parsed = parse_path(data)
        return [_record(Path(os.path.abspath(data)), parsed)]
    raise ParameterError(
        f"data must be a folder, a manifest .csv or an audio file ({', '.join(AUDIO_EXTENSIONS)}); "
        f"got {str(data)!r}"
    )


# ----------------------------------------------------------------------------- folders


def read_folder(folder: str | os.PathLike) -> list[Record]:
    """Records of every audio file below ``folder`` (hidden files and folders skipped)."""
    root = Path(os.path.abspath(folder))
    parsed = [(path, parse_path(path, root)) for path in _audio_files(root)]
    if not parsed:
        raise DatasetError(
            f"no audio files ({', '.join(AUDIO_EXTENSIONS)}, any case) found in folder "
            f"{str(root)!r}"
        )
    layouts = Counter(info.layout for _, info in parsed)
    logger.info(
        "found %d clips in %s (layouts: %s)", len(parsed), root, dict(sorted(layouts.items()))
    )
    return [_record(path, info) for path, info in parsed]


def _audio_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not is_hidden(name))
        for name in sorted(filenames):
            if is_audio_file(name):
                yield Path(dirpath) / name


def _record(path: Path, parsed: ParsedPath, **given) -> Record:
    fields = {
        "machine": parsed.machine,
        "id": parsed.id,
        "domain": parsed.domain,
        "split": parsed.split,
        "label": parsed.label,
    }
    fields.update({key: value for key, value in given.items() if value is not None})
    return Record(path=path, attributes=parsed.attributes, **fields)


# ----------------------------------------------------------------------------- manifests


def read_manifest(csv_path: str | os.PathLike) -> list[Record]:
    """Records of the rows of a manifest CSV (see :func:`discover`).

    Relative paths are taken relative to the CSV's folder. A missing column, or an empty cell,
    falls back to what the file's own path says (:func:`earshot.datasets.parse_path`). Columns
    other than ``path,label,machine,id,domain,split`` become attributes (empty cells skipped).
    """
    csv_path = Path(os.path.abspath(csv_path))
    rows = read_csv(csv_path, required=("path",), what="manifest")
    if not rows:
        raise DatasetError(f"manifest {str(csv_path)!r} has no rows")
    records = [_manifest_record(csv_path, where, row) for where, row in rows]
    logger.info("read %d clips from the manifest %s", len(records), csv_path)
    return records


def _manifest_record(csv_path: Path, where: str, row: dict[str, str]) -> Record:
    if not row.get("path"):
        raise DatasetError(f"{where}: the path is empty")
    path = Path(os.path.abspath(csv_path.parent / row["path"]))
    if not path.is_file():
        raise DatasetError(
            f"{where}: file {row['path']!r} does not exist (looked for {str(path)!r})"
        )
    split = row.get("split", "").lower() or None
    if split is not None and split not in SPLITS:
        raise ParameterError(f"{where}: split must be train, test or empty; got {row['split']!r}")
    parsed = classify_path(path)
    extra = {k: v for k, v in row.items() if k not in MANIFEST_COLUMNS and v != ""}
    record = _record(
        path,
        parsed,
        label=parse_label(row.get("label", ""), where=where),
        machine=row.get("machine") or None,
        id=row.get("id") or None,
        domain=row.get("domain") or None,
        split=split,
    )
    if extra:
        record = _with_attributes(record, extra)
    return record


def _with_attributes(record: Record, extra: dict[str, str]) -> Record:
    return replace(record, attributes={**record.attributes, **extra})


# ----------------------------------------------------------------------------- summary


def describe(records: Iterable[Record], *, group_by: str = "id") -> dict:
    """A small summary of records: counts overall and per group.

    Parameters
    ----------
    records : iterable of Record
    group_by : {"id", "machine", "none"}

    Returns
    -------
    dict
        ``{"n_records", "n_machines", "labels": {"normal", "anomaly", "unknown"},
        "splits": {"train", "test", "none"}, "domains": {...}, "groups": {name: {"n_records",
        "labels", "splits"}}}``; plain ints and strings (JSON-ready), groups sorted by name.
    """
    records = list(records)
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(group_name(record, group_by), []).append(record)
    summary = _counts(records)
    summary["n_machines"] = len({record.machine for record in records})
    summary["domains"] = dict(sorted(Counter(record.domain for record in records).items()))
    summary["groups"] = {name: _counts(groups[name]) for name in sorted(groups)}
    return summary


def _counts(records: list[Record]) -> dict:
    labels = Counter({0: "normal", 1: "anomaly", None: "unknown"}[r.label] for r in records)
    splits = Counter(r.split or "none" for r in records)
    return {
        "n_records": len(records),
        "labels": {name: labels[name] for name in ("normal", "anomaly", "unknown")},
        "splits": {name: splits[name] for name in ("train", "test", "none")},
    }
