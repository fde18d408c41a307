"""Batch scoring at scale: walk folders of any size, score in batches on an executor, stream
the verdicts to CSV or Parquet, and resume a run that was stopped.

:func:`iter_scores` is the engine: a generator over the folder walk feeds batches of files to
an executor (:mod:`earshot._util.executors`); each worker loads the model once (ONNX, no torch),
scores its batch and returns the rows; the rows come back in walk order. Memory is bounded by
the batches in flight, whatever the number of files. :func:`score_to_file` writes the rows as
they come and skips, on a re-run with the same output, the files already in it.

Row fields: ``path, group, score, threshold, is_anomalous`` and, in files, ``error`` (why a
file could not be scored; its score and verdict are then empty). A model with stored fault
signatures (:mod:`earshot.bundle.faults`) adds ``fault, fault_distance, fault_known`` for each
clip it flags (:func:`score_fields`); other models' rows and files are unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot._util.executors import batched, executor_scope
from earshot.bundle import load_model
from earshot.datasets.layouts import is_audio_file, is_hidden
from earshot.errors import EarshotError, ParameterError
from earshot.features.cache import FeatureCache, resolve_cache
from earshot.pipeline.sinks import (
    FAULT_FIELDS,
    FAULT_FILE_FIELDS,
    FIELDS,
    FILE_FIELDS,
    CsvSink,
    ParquetSink,
    journal_path,
    pyarrow_parquet,
)

__all__ = ["FIELDS", "FILE_FIELDS", "BatchResult", "walk_audio", "iter_scores", "score_to_file", "read_done",
           "score_fields"]

log = logging.getLogger(__name__)

#: Files per task.
DEFAULT_BATCH = 128


# ---------------------------------------------------------------------- the walk
def walk_audio(inputs: Iterable[str | os.PathLike], *, absolute: bool = False) -> Iterator[Path]:
    """Audio files of files and folders, lazily, in a stable order.

    A file argument is yielded as given (whatever its extension: decoding decides); a folder is
    walked (sorted, hidden files and folders skipped, ``.wav``/``.flac`` only). An argument
    inside a folder argument is skipped, so no file is yielded twice.

    Raises
    ------
    ParameterError
        An argument that does not exist.
    """
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise ParameterError(f"{p}: no such file or folder")
    folders = [Path(os.path.abspath(p)) for p in inputs if p.is_dir()]
    seen: set[str] = set()
    for p in inputs:
        full = Path(os.path.abspath(p))
        if any(f != full and f in full.parents for f in folders) or str(full) in seen:
            log.warning("%s is inside another argument; scored once", p)
            continue
        seen.add(str(full))
        base = full if absolute else p
        if not p.is_dir():
            yield base
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
            for name in sorted(filenames):
                if is_audio_file(name):
                    yield Path(dirpath) / name


# ---------------------------------------------------------------------- worker side
_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def _model_key(model_path: str) -> tuple:
    p = Path(model_path)
    stamps = []
    for name in ("index.json", "manifest.json"):
        with_stat = p / name
        if with_stat.exists():
            stamps.append(with_stat.stat().st_mtime_ns)
    return (model_path, *stamps)


def load_worker_model(model_path: str):
    """The model set at ``model_path``, loaded once per process, scoring with one ONNX thread.

    One thread per session: the executor runs one task per core, so onnxruntime's own pool
    would only compete with the other workers.
    """
    key = _model_key(model_path)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = load_model(model_path, threads=1)  # the one session each bundle builds
            _MODELS.clear()
            _MODELS[key] = model
    return model


def score_batch(task: tuple) -> list[dict[str, Any]]:
    """Worker task: score a batch of files with a model set.

    Parameters
    ----------
    task : tuple
        ``(model_path, paths, group, errors, cache_root)``; ``errors`` is ``"raise"`` (the first
        bad file raises its error) or ``"record"`` (its row carries the message in ``error``).

    Returns
    -------
    list of dict
        One row per path, in order.
    """
    model_path, paths, group, errors, cache_root = task
    model = load_worker_model(model_path)
    cache = None
    if cache_root:
        cache = FeatureCache(cache_root)
    rows: list[dict[str, Any]] = []
    for p in paths:
        row = {"path": p, "group": None, "score": None, "threshold": None, "is_anomalous": None, "error": None}
        rows.append(row)
        try:
            name, bundle = model.bundle_for(p, group)
            row["group"], row["threshold"] = name, bundle.threshold_
            if cache is not None:
                logmel = cache.log_mel(p, bundle.features, channel=bundle.channel, min_frames=bundle.min_frames)
            else:
                logmel = bundle.extract(p)
            # one ONNX call per clip: a verdict depends on its file only, never on which files
            # share its batch
            score, _ = bundle.score_clip(logmel)
        except EarshotError as exc:
            if errors == "raise":
                raise
            row["error"] = str(exc)
            continue
        row.update(bundle.verdict(score))
        if bundle.faults is not None:  # the closest confirmed fault of a flagged clip
            row.update(bundle.faults.fields(logmel, row["is_anomalous"]))
    return rows


def _has_faults(model) -> bool:
    return any(b.faults is not None for b in model.bundles.values())


def score_fields(model_path: str | os.PathLike) -> tuple[str, ...]:
    """The verdict fields of a model: :data:`FIELDS`, plus the fault columns when one of its
    bundles stores fault signatures."""
    return (*FIELDS, *FAULT_FIELDS) if _has_faults(load_worker_model(os.path.abspath(model_path))) else FIELDS


# ---------------------------------------------------------------------- parent side
def iter_scores(model_path: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, group: str | None = None,
                executor=None, workers: int | None = None, batch_size: int = DEFAULT_BATCH,
                errors: str = "raise", cache=None, skip=None, absolute: bool = False,
                progress=None) -> Iterator[list[dict[str, Any]]]:
    """Score files and folders with a model directory; yield the rows batch by batch, in order.

    Parameters
    ----------
    model_path : path-like
        A model set or bundle directory (loaded by each worker).
    inputs : iterable of path-like
        Files and folders (walked by :func:`walk_audio`).
    group : str, optional
        Score every file with this group's model instead of routing by the layout.
    executor : str, Executor or None
        ``serial``, ``processes``, ``dask``, ``dask=tcp://host:8786`` (None:
        ``$EARSHOT_EXECUTOR``, else ``processes``). A single batch runs in this process.
    workers : int, optional
        Worker processes of ``processes`` and of an embedded Dask cluster (default: the cores).
    batch_size : int
        Files per task.
    errors : {"raise", "record"}
        What a bad file does: raise its error, or give a row with the message in ``error``.
    cache : path-like, FeatureCache, False or None
        Feature cache (:mod:`earshot.features.cache`; None: ``$EARSHOT_CACHE`` if set).
    skip : callable, optional
        ``skip(path_string) -> bool``: files to leave out (already scored).
    absolute : bool
        Report absolute paths (what :func:`score_to_file` writes) rather than paths as given.

    Yields
    ------
    list of dict
        The rows of one batch (``FIELDS`` plus ``error``).
    """
    if errors not in ("raise", "record"):
        raise ParameterError(f"errors: expected raise or record, got {errors!r}")
    model_path = os.path.abspath(model_path)
    model = load_worker_model(model_path)  # fails here, once, for a bad model directory
    if group is not None and group not in model.bundles:
        raise ParameterError(f"group: expected one of {', '.join(model.groups)}, got {group!r}")
    cache = resolve_cache(cache)
    cache_root = str(cache.root) if cache is not None else None
    paths = (str(p) for p in walk_audio(inputs, absolute=absolute))
    if skip is not None:
        paths = (p for p in paths if not skip(p))
    tasks = ((model_path, batch, group, errors, cache_root) for batch in batched(_checked(paths), batch_size))
    done = 0
    with executor_scope(executor, workers=workers, default="processes") as ex:
        for rows in ex.map(score_batch, tasks):
            done += len(rows)
            if progress is not None:
                progress("scoring", done, None)
            yield rows


def _checked(paths: Iterator[str]) -> Iterator[str]:
    for p in paths:
        if "\n" in p or "\r" in p:
            log.warning("skipped %r: a line break in a file name cannot be written to the results", p)
            continue
        yield p


# ---------------------------------------------------------------------- resume
def _key(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


class _Done:
    """Paths already in an output file, as 8-byte hashes in a sorted array (flat memory)."""

    def __init__(self, keys: array):
        self.keys = np.unique(np.frombuffer(keys, dtype=np.uint64)) if len(keys) else np.empty(0, np.uint64)

    def __len__(self) -> int:
        return int(self.keys.size)

    def __contains__(self, path: str) -> bool:
        if not self.keys.size:
            return False
        k = np.uint64(_key(path))
        i = int(np.searchsorted(self.keys, k))
        return i < self.keys.size and self.keys[i] == k


def _repair_tail(path: Path) -> int:
    """Cut a partial last line (a run killed mid-write); return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        pos = size
        block = 65536
        while pos > 0:  # find the last newline, reading backwards
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            j = chunk.rfind(b"\n")
            if j >= 0:
                fh.truncate(start + j + 1)
                return size - (start + j + 1)
            pos = start
        fh.truncate(0)
        return size


def _check_thresholds(where: str, group: str, threshold: str, model, seen: set) -> None:
    if group in seen or not group or not threshold:
        return
    seen.add(group)
    bundle = model.bundles.get(group)
    if bundle is None or float(threshold) != bundle.threshold_:
        raise ParameterError(f"{where}: was written by another model (group {group!r}, threshold {threshold}); "
                             "use another --out or delete it")


def read_done(path: str | os.PathLike, model=None) -> _Done:
    """The paths already present in a results file (CSV or Parquet), for resuming.

    A CSV's partial last line is cut off first. With ``model``, rows written by another model
    (another group threshold) are an error, and so are columns other than the model's (the
    fault columns where it stores fault signatures).

    Raises
    ------
    ParameterError
        The file has another header (not an earshot results file), or another model wrote it.
    """
    path = Path(path)
    keys = array("Q")
    seen: set = set()
    fields = FAULT_FILE_FIELDS if model is not None and _has_faults(model) else FILE_FIELDS
    if path.suffix.lower() == ".parquet":
        pq = pyarrow_parquet()
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow's own error types
            raise ParameterError(f"{path}: not a readable Parquet file ({exc}); use another --out or delete it") from None
        if tuple(pf.schema_arrow.names) != fields:
            raise ParameterError(f"{path}: columns {pf.schema_arrow.names} are not earshot's {list(fields)}")
        for batch in pf.iter_batches(columns=["path", "group", "threshold"], batch_size=65536):
            d = batch.to_pydict()
            for p, g, t in zip(d["path"], d["group"], d["threshold"]):
                keys.append(_key(p))
                if model is not None and g is not None and t is not None:
                    _check_thresholds(str(path), g, repr(t), model, seen)
        return _Done(keys)
    cut = _repair_tail(path)
    if cut:
        log.warning("%s: cut a partial last line (%d bytes) left by an interrupted run", path, cut)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return _Done(keys)
        if tuple(header) != fields:
            raise ParameterError(f"{path}: header {header} is not earshot's {list(fields)}; "
                                 "use another --out or delete it")
        for n, row in enumerate(reader, start=2):
            if len(row) != len(fields):
                raise ParameterError(f"{path}:{n}: expected {len(fields)} fields, got {len(row)}")
            keys.append(_key(row[0]))
            if model is not None:
                _check_thresholds(f"{path}:{n}", row[1], row[3], model, seen)
    return _Done(keys)


@dataclass
class BatchResult:
    """What :func:`score_to_file` did."""

    out: Path
    scored: int = 0
    skipped: int = 0
    errors: int = 0
    anomalous: int = 0
    seconds: float = 0.0
    executor: str = ""
    first_errors: list[str] = field(default_factory=list)

    @property
    def files_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else float("nan")


def score_to_file(model_path: str | os.PathLike, inputs: Iterable[str | os.PathLike], out: str | os.PathLike, *,
                  group: str | None = None, executor=None, workers: int | None = None,
                  batch_size: int = DEFAULT_BATCH, cache=None, progress=None) -> BatchResult:
    """Score files and folders into a CSV (or ``.parquet``) file, resuming a previous run.

    Rows are appended batch by batch (paths absolute, walk order). When ``out`` exists, its
    header is checked, a partial last line is cut off, and the files already in it are skipped,
    so a killed run re-run with the same arguments finishes the work without duplicating or
    losing rows. A file that cannot be scored gets a row with the reason in ``error`` (it is
    not retried by a re-run: delete its row to retry it).

    ``.parquet`` (needs pyarrow): rows are journaled to ``.NAME.partial.csv`` beside it and the
    Parquet file is (re)written atomically at the end, with the rows it already held.

    Returns
    -------
    BatchResult
    """
    out = Path(out)
    if out.exists() and out.is_dir():
        raise ParameterError(f"--out {out}: expected a file, got a folder")
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ParameterError(f"--out {out}: expected a .csv or .parquet file name")
    model = load_worker_model(os.path.abspath(model_path))
    parquet = suffix == ".parquet"
    if parquet:
        pyarrow_parquet()
    done_files = [out] if out.exists() else []
    if parquet and journal_path(out).exists():
        done_files.append(journal_path(out))
    dones = [read_done(f, model) for f in done_files]
    skipped = 0

    def skip(p: str) -> bool:
        nonlocal skipped
        if any(p in d for d in dones):
            skipped += 1
            return True
        return False

    result = BatchResult(out=out)
    fields = FAULT_FILE_FIELDS if _has_faults(model) else FILE_FIELDS
    sink = ParquetSink(out, fields) if parquet else CsvSink(out, fields)
    complete = False
    started = time.perf_counter()
    try:
        for rows in iter_scores(model_path, inputs, group=group, executor=executor, workers=workers,
                                batch_size=batch_size, errors="record", cache=cache,
                                skip=skip if dones else None, absolute=True, progress=progress):
            sink.write(rows)
            result.scored += len(rows)
            for r in rows:
                if r["error"] is not None:
                    result.errors += 1
                    if len(result.first_errors) < 3:
                        result.first_errors.append(r["error"])
                elif r["is_anomalous"]:
                    result.anomalous += 1
        complete = True
    finally:
        sink.close(complete)
        result.seconds = time.perf_counter() - started
        result.skipped = skipped
    return result
