"""CSV files a data set may come with (manifests, split files): rows with their place for
error messages, and the label cell."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from earshot.errors import DatasetError, ParameterError

__all__ = ["parse_label", "read_csv"]

_LABEL_WORDS = {"0": 0, "1": 1, "normal": 0, "anomaly": 1, "abnormal": 1}


def read_csv(
    csv_path: str | os.PathLike, *, required: Iterable[str], what: str
) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV file as ``(where, {column: value})``; column names stripped and lowercased.

    ``where`` names the file and the row (data rows counted from 1, header not counted) and its
    line, for error messages. Cells are stripped; blank rows are skipped.

    Raises
    ------
    DatasetError
        If the file cannot be read or lacks a required column.
    """
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows = [(number, reader.line_num, row) for number, row in enumerate(reader, start=1)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read {what} {str(csv_path)!r}: {error}") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(
            f"{what} {str(csv_path)!r} has no {', '.join(repr(m) for m in missing)} column "
            f"(columns found: {', '.join(header) or 'none'})"
        )
    return [
        (
            f"{what} {str(csv_path)!r} row {number} (line {line})",
            dict(zip(header, map(str.strip, row))),
        )
        for number, line, row in rows
        if any(cell.strip() for cell in row)
    ]


def parse_label(value: str, *, where: str) -> int | None:
    """Parse a label cell: 0/1/normal/anomaly/abnormal (any case); an empty cell gives None."""
    if value == "":
        return None
    label = _LABEL_WORDS.get(value.lower())
    if label is None:
        raise ParameterError(
            f"{where}: label must be 0, 1, normal, anomaly, abnormal or empty; got {value!r}"
        )
    return label
