"""Where ``earshot score`` writes its rows: a CSV file appended batch by batch (resumable), or
a Parquet file journaled as CSV and rewritten atomically at the end (pyarrow, the optional
``parquet`` extra)."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earshot._util.fs import atomic_file
from earshot.bundle.faults import FAULT_FIELDS
from earshot.errors import ParameterError

__all__ = ["FAULT_FIELDS", "FAULT_FILE_FIELDS", "FIELDS", "FILE_FIELDS", "CsvSink", "ParquetSink", "csv_text",
           "journal_path", "pyarrow_parquet"]

#: Row fields of a verdict (the ``earshot score`` columns).
FIELDS = ("path", "group", "score", "threshold", "is_anomalous")
#: Columns of an output file.
FILE_FIELDS = (*FIELDS, "error")
#: Columns of an output file of a model with stored fault signatures (the fault columns last, so
#: the first six keep their places).
FAULT_FILE_FIELDS = (*FILE_FIELDS, *FAULT_FIELDS)
#: Parquet types of the columns.
_PARQUET_TYPES = {"path": "string", "group": "string", "score": "float64", "threshold": "float64",
                  "is_anomalous": "bool_", "error": "string", "fault": "string", "fault_distance": "float64",
                  "fault_known": "bool_"}


def pyarrow_parquet():
    """``pyarrow.parquet``, or one clear line when the optional extra is missing."""
    try:
        import pyarrow.parquet as pq  # deferred: pyarrow is the optional `parquet` extra
    except ImportError:
        raise ParameterError("--out *.parquet needs pyarrow: pip install 'earshot[parquet]' (or write .csv)") from None
    return pq


def csv_text(rows: Sequence[dict[str, Any]], header: bool = False, fields: Sequence[str] = FILE_FIELDS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(fields)
    for r in rows:
        writer.writerow(["" if r.get(k) is None else r[k] for k in fields])
    return buf.getvalue()


class CsvSink:
    """Appends rows to a CSV file, one write per batch, flushed; fsynced every few seconds."""

    def __init__(self, path: Path, fields: Sequence[str] = FILE_FIELDS):
        self.path = path
        self.fields = tuple(fields)
        new = not path.exists() or path.stat().st_size == 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", newline="", encoding="utf-8")
        if new:
            self.fh.write(csv_text([], header=True, fields=self.fields))
            self._sync()
        self.synced = time.monotonic()

    def _sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.synced = time.monotonic()

    def write(self, rows) -> None:
        self.fh.write(csv_text(rows, fields=self.fields))
        self.fh.flush()
        if time.monotonic() - self.synced > 5.0:
            self._sync()

    def close(self, complete: bool) -> None:
        if not self.fh.closed:
            self._sync()
            self.fh.close()


class ParquetSink(CsvSink):
    """Rows go to a CSV journal beside the target (resumable); on completion, the target is
    rewritten atomically as Parquet holding its previous rows and the journal's."""

    def __init__(self, target: Path, fields: Sequence[str] = FILE_FIELDS):
        self.target = target
        self.pq = pyarrow_parquet()
        super().__init__(journal_path(target), fields)

    def close(self, complete: bool) -> None:
        super().close(complete)
        if complete:
            self._finish()

    def _finish(self) -> None:
        import pyarrow as pa  # deferred: pyarrow is the optional `parquet` extra
        import pyarrow.csv as pacsv  # deferred: as above

        schema = pa.schema([(name, getattr(pa, _PARQUET_TYPES[name])()) for name in self.fields])
        convert = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True, null_values=[""],
                                       true_values=["True"], false_values=["False"])
        with atomic_file(self.target, "wb") as fh:
            with self.pq.ParquetWriter(fh, schema) as writer:
                if self.target.exists():
                    for batch in self.pq.ParquetFile(self.target).iter_batches(batch_size=65536):
                        writer.write_batch(batch)
                if self.path.stat().st_size:
                    reader = pacsv.open_csv(self.path, convert_options=convert,
                                            read_options=pacsv.ReadOptions(block_size=1 << 22))
                    for batch in reader:
                        writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
        self.path.unlink()


def journal_path(target: Path) -> Path:
    """The CSV journal of a Parquet output (``.NAME.partial.csv`` beside it)."""
    return target.with_name(f".{target.name}.partial.csv")
