"""From a folder of recordings to a model set: one bundle per group, thresholds fitted on normal clips.

This module joins the layers (datasets -> io/features -> detection -> bundle) for the command
line and the service; it holds no algorithm of its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from earshot._util.fs import atomic_dir
from earshot.bundle import group_dirname, write_index
from earshot.bundle.quantize import check_subset
from earshot.bundle.save import write_bundle
from earshot.datasets import Record, assign_default_split, discover, group_name
from earshot.datasets.discover import parse_label, read_csv
from earshot.detection import detector_class, detector_params, frames_needed
from earshot.errors import DatasetError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.extract import file_waveform
from earshot.pipeline.extract import (
    GROUP_BYS,
    Progress,
    extract_store,
    long_recording_windows,
)
from earshot.pipeline.faults import store_fault_signatures

__all__ = ["MAX_FAULT_CHARS", "TrainResult", "apply_labels", "label_records", "progress_note", "record_metadata",
           "train"]

log = logging.getLogger(__name__)



def progress_note(progress: Progress | None, stage: str, text: str) -> None:
    """Give a progress callback a detail for ``stage`` (an epoch's loss) when it takes one:
    a callback with a ``note(stage, text)`` method (the command line's); others get nothing."""
    note = getattr(progress, "note", None)
    if callable(note):
        note(stage, text)


def _file_list_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(p.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class TrainResult:
    """What :func:`train` wrote."""

    path: Path
    group_by: str
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _training_groups(records: list[Record], group_by: str, *, uses_labels: bool = False
                     ) -> tuple[dict[str, list[Record]], dict[str, str]]:
    """Training clips per group: normal (and unlabelled) clips of the train split; with
    ``uses_labels``, the labelled normal and abnormal clips of the train split."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        members = groups.setdefault(group_name(r, group_by), [])
        if r.split != "train":
            continue
        if (uses_labels and r.label in (0, 1)) or (not uses_labels and r.label in (0, None)):
            members.append(r)
    why = "no labelled clips to train on" if uses_labels else "no normal clips to train on"
    skipped = {g: why for g, rs in groups.items() if not rs}
    if uses_labels:  # a supervised model needs both classes
        skipped.update({g: NEED_LABELS for g, rs in groups.items() if rs and len({r.label for r in rs}) < 2})
    return {g: rs for g, rs in groups.items() if g not in skipped}, skipped


#: Why a supervised model cannot train on a group, and what to do about it.
NEED_LABELS = ("a supervised model needs labelled normal AND anomaly clips in the training split (the default "
               "split sends every abnormal clip to test): pass --labels CSV (path,label) or --split-file CSV "
               "(path,split,label) to put labelled clips in training")


#: The longest fault name a labels CSV may give.
MAX_FAULT_CHARS = 64


def apply_labels(records: list[Record], csv_path: str | os.PathLike) -> list[Record]:
    """Make the clips listed in a labels CSV (``path,label``) training clips with those labels.

    Paths are absolute or relative to the CSV's folder. A listed path that matches no clip,
    or a row without a label, is an error naming the row. See :func:`label_records` for the
    optional ``fault`` column.
    """
    return label_records(records, csv_path)[0]


def _check_fault(fault: str, label: int, where: str) -> None:
    if label != 1:
        raise ParameterError(f"{where}: fault {fault!r} on a clip labelled {label} (a fault goes on anomalies, "
                             "label 1, only)")
    if len(fault) > MAX_FAULT_CHARS:
        raise ParameterError(f"{where}: fault {fault[:24]!r}...: expected at most {MAX_FAULT_CHARS} characters, "
                             f"got {len(fault)}")
    if not fault.isprintable():
        raise ParameterError(f"{where}: fault {fault!r}: expected printable text on one line")


def label_records(records: list[Record], csv_path: str | os.PathLike) -> tuple[list[Record], dict[Path, str]]:
    """:func:`apply_labels`, and the faults of an optional ``fault`` column.

    The ``fault`` column (``path,label,fault``) names the fault type of a confirmed anomaly:
    free text of at most :data:`MAX_FAULT_CHARS` printable characters, on label-1 rows only
    (empty elsewhere); anything else is an error naming the file and row.

    Returns
    -------
    records : list of Record
    faults : dict
        ``{resolved path: fault}`` of the rows with a fault.
    """
    csv_path = Path(os.path.abspath(csv_path))
    if not csv_path.is_file():
        raise ParameterError(f"labels {str(csv_path)!r} does not exist")
    by_path = {r.path.resolve(): i for i, r in enumerate(records)}
    records = list(records)
    faults: dict[Path, str] = {}
    for where, row in read_csv(csv_path, required=("path", "label"), what="labels file"):
        label = parse_label(row["label"], where=where)
        if label is None:
            raise ParameterError(f"{where}: the label is empty (expected 0/1/normal/anomaly)")
        i = by_path.get((csv_path.parent / row["path"]).resolve())
        if i is None:
            raise DatasetError(f"{where}: path {row['path']!r} matches no clip of the data set")
        records[i] = replace(records[i], split="train", label=label)
        fault = row.get("fault", "")
        if fault:
            _check_fault(fault, label, where)
            faults[records[i].path.resolve()] = fault
        else:
            faults.pop(records[i].path.resolve(), None)
    if len(faults) == 1:
        raise ParameterError(f"labels file {str(csv_path)!r}: expected at least two anomalies with a fault "
                             "(fault signatures need two to calibrate), got 1")
    return records, faults


def record_metadata(record: Record) -> dict[str, Any]:
    """What is known about a clip, for detectors that learn from it (JSON-safe)."""
    return {"machine": record.machine, "id": record.id, "domain": record.domain,
            "label": record.label, "attributes": dict(record.attributes)}


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "dense-ae",
    model_params: dict[str, Any] | None = None,
    features: FeatureConfig | None = None,
    channel: int | None = None,
    group_by: str = "id",
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    labels: str | os.PathLike | None = None,
    window_s: float = 1.0,
) -> TrainResult:
    """Train one detector per group of ``data`` and write a model set (or one bundle).

    Each group is trained on its normal training clips only (explicit split, split file, or
    the default split); its threshold is fitted on normal scores only. The output directory
    appears only when every group is written.

    Parameters
    ----------
    data : path-like
        A data folder (any layout of :mod:`earshot.datasets`) or a manifest CSV.
    out : path-like
        The model directory to write.
    model : str
        Detector kind (``dense-ae``).
    model_params : dict, optional
        Detector keyword parameters (``epochs``, ``threshold``, ...); ``random_state`` defaults
        to ``seed``.
    group_by : {"id", "machine", "none"}
    seed : int
        Seeds the default split and the detector.
    labels : path-like, optional
        CSV ``path,label[,fault]`` (e.g. confirmed or rejected alarms): those clips become training
        clips with those labels (see :func:`apply_labels`); supervised models need some. Faults
        (:func:`label_records`) give the bundle fault signatures (:func:`_store_faults`).
    window_s : float
        Recordings longer than :data:`LONG_RECORDING_S` are cut into windows of this length
        (:func:`long_recording_windows`); use the ``window_s`` of ``earshot detect``.

    Returns
    -------
    TrainResult
    """
    if group_by not in GROUP_BYS:
        raise ParameterError(f"group_by: expected one of {', '.join(GROUP_BYS)}, got {group_by!r}")
    features = features or FeatureConfig()
    params = detector_params(model, {"random_state": seed, **(model_params or {})}, drop_none=False)
    cls = detector_class(model)
    n_frames = frames_needed(model, params)
    min_frames = int(n_frames) if n_frames is not None else 1

    data = Path(data)
    if progress:
        progress(f"discovering {data}", 0, 1)
    records = assign_default_split(discover(data, split_file=split_file), group_by=group_by, seed=seed)
    if progress:
        progress_note(progress, f"discovering {data}", f"{len(records)} clips")
        progress(f"discovering {data}", 1, 1)
    records, fault_of = label_records(records, labels) if labels is not None else (records, {})
    groups, skipped = _training_groups(records, group_by, uses_labels=cls.uses_labels)
    if not groups and cls.uses_labels:
        raise DatasetError(f"{data}: nothing to train {model} on: {NEED_LABELS}")
    if not groups:
        what = "labelled clips" if cls.uses_labels else "normal clips"
        raise DatasetError(f"{data}: no {what} to train on (found {len(records)} clips, none in a training split)")
    for g, why in skipped.items():
        log.warning("group %s skipped: %s", g, why)

    result = TrainResult(path=Path(out), group_by=group_by, skipped=skipped)
    single = len(groups) == 1
    with atomic_dir(out) as tmp:
        dirs: dict[str, str] = {}
        for n, (group, recs) in enumerate(sorted(groups.items()), start=1):
            stage = f"{group} ({n}/{len(groups)})"
            detector, training, validation, check = _fit_group(
                group, recs, stage, cls=cls, params=params, features=features, channel=channel,
                min_frames=min_frames, window_s=window_s, data=data, group_by=group_by, seed=seed, progress=progress)
            sub = tmp if single else tmp / group_dirname(group)
            sub.mkdir(exist_ok=True)
            write_bundle(sub, detector, features=features, channel=channel, training=training, validation=validation,
                         check_clips=check)
            faults = _store_faults(sub, group, records, recs, fault_of, group_by) if fault_of else None
            dirs[group] = sub.name
            result.groups[group] = {
                "n_clips": training["n_clips"],
                "threshold": detector.threshold_,
                "threshold_method": str(detector.threshold),
                "threshold_source": detector.threshold_source_,
                "false_alarm_rate": validation["false_alarm_rate"],
                "fit_seconds": training["fit_seconds"],
                "faults": faults,
            }
        if not single:
            write_index(tmp, dirs, group_by=group_by, extra={"skipped": skipped})
    return result



def _store_faults(sub: Path, group: str, records: list[Record], recs: list[Record], fault_of: dict[Path, str],
                  group_by: str) -> dict[str, Any] | None:
    """Store the fault signatures of ``group``'s fault-labelled anomalies in its bundle ``sub``
    (the manifest entry; None, with a warning, when the group has fewer than two). The scale is
    that of the group's normal training clips (``recs`` without the anomalies of a supervised model)."""
    faulted = sorted(r.path.resolve() for r in records
                     if r.label == 1 and r.path.resolve() in fault_of and group_name(r, group_by) == group)
    if len(faulted) < 2:
        if faulted:
            log.warning("group %s: one anomaly with a fault label; fault signatures need two (none stored)", group)
        return None
    normal = list(dict.fromkeys(r.path for r in recs if r.label != 1))
    return store_fault_signatures(sub, faulted, [fault_of[p] for p in faulted], normal)


def waveform_clips(items: Sequence[tuple[Path, int | None, int | None]], sr: int, *, channel: int | None,
                   progress: Progress | None = None) -> list[np.ndarray]:
    """Decoded mono signals at ``sr`` of training items (:func:`long_recording_windows`), for a
    detector whose ``input`` is ``"waveform"`` (a waveform-input encoder); the channel rule of
    :func:`~earshot.features.extract.file_waveform`, the one the bundle scores with."""
    out = []
    for i, (path, start, stop) in enumerate(items):
        y = file_waveform(path, sr, channel=channel)
        out.append(y if start is None else y[start:stop])
        if progress:
            progress(None, i + 1, len(items))
    return out


def _fit_group(group: str, recs: list[Record], stage: str, *, cls: type, params: dict[str, Any],
               features: FeatureConfig, channel: int | None, min_frames: int, window_s: float, data: Path,
               group_by: str, seed: int, progress: Progress | None
               ) -> tuple[Any, dict[str, Any], dict[str, Any], list[np.ndarray] | None]:
    """Extract one group's features and fit its detector.

    Returns
    -------
    tuple
        ``(detector, training, validation, check)``: the fitted detector, the manifest's
        ``training`` and ``validation`` records, and a few of the group's log-mel clips to check
        an int8 scoring graph on (None for a waveform model).
    """
    started = time.perf_counter()
    paths = [r.path for r in recs]

    def feat_progress(_s, done, total, stage=stage):
        if progress:
            progress(f"{stage} features", done, total)

    items = long_recording_windows(paths, features, window_s=window_s)
    if len(items) > len(paths):  # long recordings were cut into windows: one record per window
        by_path = {r.path: r for r in recs}
        recs = [by_path[p] for p, _, _ in items]
    detector = cls(**params)
    if getattr(detector, "input", "logmel") == "waveform":  # a waveform encoder is fed signals, not log-mel
        store = waveform_clips(items, features.sr, channel=channel, progress=feat_progress)
        lengths = np.array([len(x) for x in store])
        totals, clip_s = {"n_samples_total": int(lengths.sum())}, float(np.median(lengths)) / features.sr
    else:
        store = extract_store(items, features, channel=channel, min_frames=min_frames, progress=feat_progress)
        totals = {"n_frames_total": int(len(store.frames))}
        clip_s = float(np.median(store.lengths)) * features.hop_length / features.sr

    has_epochs = isinstance(getattr(detector, "epochs", None), int)  # gauss, knn...: one report, no loss

    def fit_progress(epoch, epochs, loss, val_loss, stage=stage):
        if progress:
            if has_epochs:
                progress_note(progress, f"{stage} training", f"epoch {epoch} loss {loss:.4g}"
                              + (f" val_loss {val_loss:.4g}" if val_loss is not None else ""))
            progress(f"{stage} training", epoch, epochs)

    if progress:  # the start line: the first epoch (or a model without epochs) may take a while
        progress(f"{stage} training", 0, detector.epochs if has_epochs else 1)

    y = np.array([r.label for r in recs]) if cls.uses_labels else None
    detector.fit(store, y, metadata=[record_metadata(r) for r in recs], progress=fit_progress)
    calib = np.asarray(detector.calibration_scores_)
    training = {
        "group": group,
        "group_by": group_by,
        "data_root": str(data.resolve()),
        "n_clips": len(paths),
        **totals,
        "n_windows": len(items),
        "window_s": window_s if len(items) > len(paths) else None,
        "clip_s": round(clip_s, 3),
        "files": sorted(str(p.resolve()) for p in paths),
        "file_list_sha256": _file_list_hash([p.resolve() for p in paths]),
        "seed": seed,
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    validation = {
        "kind": {"validation": "held-out normal clips",
                 "validation-f1": "held-out labelled clips (F1-optimal, asked for)",
                 "cross-fit": "training clips, each scored by a model fitted without it"}.get(
                     detector.threshold_source_, "training clips (in-sample)"),
        "n_normal": int(calib.size),
        "false_alarm_rate": float(np.mean(calib > detector.threshold_)) if calib.size else None,
    }
    check = None if getattr(detector, "input", "logmel") == "waveform" else check_subset(store)
    return detector, training, validation, check


# ---------------------------------------------------------------------- scoring
