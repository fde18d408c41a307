"""From a folder of recordings to a model set, scores and an evaluation.

This module joins the layers (datasets -> io/features -> detection -> bundle -> evaluation)
for the command line and the service; it holds no algorithm of its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot._fs import atomic_dir
from earshot.datasets import Record, assign_default_split, discover, group_name
from earshot.errors import DatasetError, EarshotError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.store import FrameStore

__all__ = [
    "Progress",
    "TrainResult",
    "extract_store",
    "train",
    "score_files",
    "evaluate",
]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``; ``stage`` is a short description of the work.
Progress = Callable[[str, int, int], None]

GROUP_BYS = ("id", "machine", "none")


def _n_time(n_samples: int, config: FeatureConfig) -> int:
    return 1 + n_samples // config.hop_length


def _expected_samples(path: Path, sr: int) -> int:
    """Samples after decoding and resampling, from the header (resample_poly's length rule)."""
    from earshot.io.audio import info

    meta = info(path)
    if meta.sr == sr:
        return int(meta.frames)
    g = math.gcd(int(sr), int(meta.sr))
    up, down = sr // g, meta.sr // g
    return int(math.ceil(meta.frames * up / down))


def extract_store(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig,
    *,
    channel: int | None = None,
    min_frames: int = 1,
    progress: Progress | None = None,
    cache=None,
    executor=None,
) -> FrameStore:
    """Decode and turn audio files into log-mel frames held in one buffer.

    The buffer is allocated once from the file headers, so training on thousands of clips
    holds each frame once.

    Parameters
    ----------
    paths : sequence of path-like or (path, start, stop)
        Whole files, or sample ranges ``[start, stop)`` of a file at ``config.sr`` (windows of a
        long recording, :func:`long_recording_windows`; a range takes the frames centred in it).
    config : FeatureConfig
    channel : int or None
        Channel to read (None: mean of all channels).
    min_frames : int
        Fewest frames a clip must give (the model's context); a shorter clip is an error
        naming the file.
    cache : path-like, FeatureCache, False or None
        On-disk feature cache (:mod:`earshot.cache`; None: ``$EARSHOT_CACHE`` if set).
    executor : str, Executor or None
        Where files are decoded (:mod:`earshot.executors`; None: ``$EARSHOT_EXECUTOR``, else
        in this process); parallel workers write features to disk, read back here in order.

    Returns
    -------
    FrameStore
        ``len(paths)`` clips of shape ``(n_mels, n_time_i)``.
    """
    from earshot.cache import feature_reader
    from earshot.timeline import frame_span

    items = [(Path(p[0]), p[1], p[2]) if isinstance(p, tuple) else (Path(p), None, None) for p in paths]
    lengths = [_n_time(_expected_samples(p, config.sr), config) if a is None else int(np.diff(frame_span(a, b, config.hop_length))[0])
               for p, a, b in items]
    store = FrameStore.allocate(lengths, config.n_mels)
    file_log_mel = feature_reader(items, config, channel=channel, min_frames=min_frames, cache=cache,
                                  executor=executor, progress=progress)
    whole: tuple[Path | None, np.ndarray | None] = (None, None)  # a long recording's log-mel, for its windows
    for i, (path, start, stop) in enumerate(items):
        if start is None:
            logmel = file_log_mel(path, config, channel=channel, min_frames=min_frames)
        else:
            if whole[0] != path:
                whole = (path, file_log_mel(path, config, channel=channel))
            logmel = whole[1][:, slice(*frame_span(start, stop, config.hop_length))]
            if lengths[i] < min_frames:
                raise ParameterError(f"window_s: {path} is cut into windows of {lengths[i]} frames; the model needs {min_frames}")
        if logmel.shape[1] != lengths[i]:
            raise EarshotError(f"{path}: decoded length differs from its header ({logmel.shape[1]} vs {lengths[i]} frames)")
        store.frames[store.offsets[i] : store.offsets[i + 1]] = logmel.T
        if progress is not None:
            progress("features", i + 1, len(paths))
    return store


# ---------------------------------------------------------------------- long recordings
#: Training recordings longer than this many seconds are cut into windows (train on one long
#: normal recording, the AMULET workflow).
LONG_RECORDING_S = 30.0


def long_recording_windows(paths: Sequence[str | os.PathLike], config: FeatureConfig, *, window_s: float = 1.0,
                           long_s: float = LONG_RECORDING_S) -> list[tuple[Path, int | None, int | None]]:
    """Training items: ``(path, None, None)`` for a clip; for a recording longer than ``long_s``
    seconds, ``(path, start, stop)`` for each of its consecutive ``window_s`` windows (samples at
    ``config.sr``; a last partial window is dropped).

    These are the windows ``earshot detect --window-s`` scores (the same frames), so a model
    trained on a long recording has its threshold calibrated on windows like the timeline's.
    A group of one file (one recording, AMULET's way) is cut when longer than two windows:
    one clip cannot calibrate a threshold.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ParameterError(f"window_s: expected a positive number of seconds, got {window_s!r}")
    width = int(round(window_s * config.sr))
    if len(paths) == 1:
        long_s = min(long_s, 2 * window_s)
    items: list[tuple[Path, int | None, int | None]] = []
    for p in paths:
        n = _expected_samples(Path(p), config.sr)
        if n <= long_s * config.sr or n < width:
            items.append((Path(p), None, None))
        else:
            items.extend((Path(p), a, a + width) for a in range(0, n - width + 1, width))
    return items


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


def apply_labels(records: list[Record], csv_path: str | os.PathLike) -> list[Record]:
    """Make the clips listed in a labels CSV (``path,label``) training clips with those labels.

    Paths are absolute or relative to the CSV's folder. A listed path that matches no clip,
    or a row without a label, is an error naming the row.
    """
    from dataclasses import replace

    from earshot.datasets.discover import parse_label, read_csv

    csv_path = Path(os.path.abspath(csv_path))
    if not csv_path.is_file():
        raise ParameterError(f"labels {str(csv_path)!r} does not exist")
    by_path = {r.path.resolve(): i for i, r in enumerate(records)}
    records = list(records)
    for where, row in read_csv(csv_path, required=("path", "label"), what="labels file"):
        label = parse_label(row["label"], where=where)
        if label is None:
            raise ParameterError(f"{where}: the label is empty (expected 0/1/normal/anomaly)")
        i = by_path.get((csv_path.parent / row["path"]).resolve())
        if i is None:
            raise DatasetError(f"{where}: path {row['path']!r} matches no clip of the data set")
        records[i] = replace(records[i], split="train", label=label)
    return records


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
        CSV ``path,label`` (e.g. confirmed or rejected alarms): those clips become training
        clips with those labels (see :func:`apply_labels`); supervised models need some.
    window_s : float
        Recordings longer than :data:`LONG_RECORDING_S` are cut into windows of this length
        (:func:`long_recording_windows`); use the ``window_s`` of ``earshot detect``.

    Returns
    -------
    TrainResult
    """
    from earshot.bundle import group_dirname, write_index
    from earshot.bundle.save import write_bundle
    from earshot.detection import detector_class

    if group_by not in GROUP_BYS:
        raise ParameterError(f"group_by: expected one of {', '.join(GROUP_BYS)}, got {group_by!r}")
    features = features or FeatureConfig()
    params = {"random_state": seed, **(model_params or {})}
    cls = detector_class(model)
    import inspect

    accepted = [n for n in inspect.signature(cls).parameters]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ParameterError(f"--param: {model} has no parameter {', '.join(unknown)} (accepted: {', '.join(accepted)})")
    detector_probe = cls(**params)
    min_frames = int(detector_probe.get_params().get("n_frames", 1))

    data = Path(data)
    records = assign_default_split(discover(data, split_file=split_file), group_by=group_by, seed=seed)
    if labels is not None:
        records = apply_labels(records, labels)
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
            started = time.perf_counter()
            paths = [r.path for r in recs]
            stage = f"{group} ({n}/{len(groups)})"

            def feat_progress(_s, done, total, stage=stage):
                if progress:
                    progress(f"{stage} features", done, total)

            items = long_recording_windows(paths, features, window_s=window_s)
            if len(items) > len(paths):  # long recordings were cut into windows: one record per window
                by_path = {r.path: r for r in recs}
                recs = [by_path[p] for p, _, _ in items]
            store = extract_store(items, features, channel=channel, min_frames=min_frames, progress=feat_progress)
            detector = cls(**params)

            def fit_progress(epoch, epochs, loss, val_loss, stage=stage):
                if progress:
                    progress(f"{stage} training", epoch, epochs)

            y = np.array([r.label for r in recs]) if cls.uses_labels else None
            detector.fit(store, y, metadata=[record_metadata(r) for r in recs], progress=fit_progress)
            calib = np.asarray(detector.calibration_scores_)
            training = {
                "group": group,
                "group_by": group_by,
                "data_root": str(data.resolve()),
                "n_clips": len(paths),
                "n_frames_total": int(len(store.frames)),
                "n_windows": len(items),
                "window_s": window_s if len(items) > len(paths) else None,
                "clip_s": round(float(np.median(store.lengths)) * features.hop_length / features.sr, 3),
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
            sub = tmp if single else tmp / group_dirname(group)
            sub.mkdir(exist_ok=True)
            write_bundle(sub, detector, features=features, channel=channel, training=training, validation=validation)
            dirs[group] = sub.name
            result.groups[group] = {
                "n_clips": len(paths),
                "threshold": detector.threshold_,
                "threshold_method": str(detector.threshold),
                "threshold_source": detector.threshold_source_,
                "false_alarm_rate": validation["false_alarm_rate"],
                "fit_seconds": training["fit_seconds"],
            }
            del store
        if not single:
            write_index(tmp, dirs, group_by=group_by, extra={"skipped": skipped})
    return result


# ---------------------------------------------------------------------- scoring
def score_files(model, paths: Sequence[str | os.PathLike], *, group: str | None = None,
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """Score audio files with a model set; one row per file, in the order given.

    Returns
    -------
    list of dict
        ``path, group, score, threshold, is_anomalous``.
    """
    routed: dict[str, list[int]] = {}
    bundles = {}
    for i, p in enumerate(paths):
        name, bundle = model.bundle_for(p, group)
        routed.setdefault(name, []).append(i)
        bundles[name] = bundle
    rows: list[dict[str, Any] | None] = [None] * len(paths)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("scoring", done, len(paths))

    for name, idx in routed.items():
        bundle = bundles[name]
        scores = bundle.score_files([paths[i] for i in idx], on_file=tick)
        for i, s in zip(idx, scores):
            rows[i] = {
                "path": str(paths[i]),
                "group": name,
                "score": float(s),
                "threshold": bundle.threshold_,
                "is_anomalous": bool(s > bundle.threshold_),
            }
    return rows  # type: ignore[return-value]


# ---------------------------------------------------------------------- evaluation
def evaluation_records(model, records: list[Record]) -> tuple[dict[str, list[Record]], dict[str, int]]:
    """Labelled clips per model group, leaving out every clip the model trained on.

    A clip is left out when its split is ``train`` or when its path is in the bundle's
    training file list (so evaluating on the training folder itself is honest).
    """
    trained = {name: set(b.manifest.get("training", {}).get("files", [])) for name, b in model.bundles.items()}
    out: dict[str, list[Record]] = {}
    dropped = {"unlabelled": 0, "train split": 0, "used in training": 0, "no model for group": 0}
    single = len(model.bundles) == 1
    for r in records:
        if r.label is None:
            dropped["unlabelled"] += 1
            continue
        if r.split == "train":
            dropped["train split"] += 1
            continue
        name = next(iter(model.bundles)) if single else group_name(r, model.group_by)
        if name not in model.bundles:
            dropped["no model for group"] += 1
            continue
        if str(r.path.resolve()) in trained[name]:
            dropped["used in training"] += 1
            continue
        out.setdefault(name, []).append(r)
    return out, dropped


def evaluate(model, data: str | os.PathLike, *, split_file: str | os.PathLike | None = None,
             max_fpr: float = 0.1, progress: Progress | None = None) -> dict[str, Any]:
    """Score the labelled, unseen clips of ``data`` and compute anomaly-class metrics per group.

    Returns
    -------
    dict
        ``{"groups": {name: {auc, pauc, precision, recall, f1, accuracy, tp, fp, tn, fn,
        n_normal, n_anomaly, threshold, threshold_method, threshold_source}}, "mean": {...},
        "hmean": {...}, "definitions": {...}, "excluded": {...}}``; with source and target clips
        (DCASE 2021+, ``earshot synth --domain-shift``) each group also holds ``domains: {domain:
        {...}}`` and the report ``domains: {domain: {"mean", "hmean"}}``
        (:mod:`earshot.evaluation.domains`).
    """
    from earshot.evaluation.domains import DOMAIN_DEFINITIONS, domain_summary, group_metrics
    from earshot.evaluation.metrics import summarize

    records = discover(Path(data), split_file=split_file)
    per_group, dropped = evaluation_records(model, records)
    if not per_group:
        raise DatasetError(
            f"{data}: no labelled clips to evaluate that the model did not train on "
            f"(excluded: {', '.join(f'{k} {v}' for k, v in dropped.items() if v) or 'none found'})"
        )
    total = sum(len(v) for v in per_group.values())
    done = 0
    groups: dict[str, dict[str, Any]] = {}

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("evaluating", done, total)

    for name, recs in sorted(per_group.items()):
        bundle = model.bundles[name]
        scores = bundle.score_files([r.path for r in recs], on_file=tick)
        y = np.array([r.label for r in recs])
        metrics = group_metrics(y, scores, [r.domain for r in recs], bundle.threshold_, max_fpr=max_fpr)
        metrics.update(
            threshold_method=bundle.manifest["threshold"].get("method"),
            threshold_source=bundle.manifest["threshold"].get("source"),
        )
        selection = bundle.manifest.get("fitted", {}).get("selection")
        if selection:  # --model auto: which detector this group got, and why
            metrics["auto_choice"] = {"chosen": selection.get("chosen"), "reason": selection.get("reason")}
        metrics["clips"] = [
            {"path": str(r.path), "label": int(r.label), "score": float(s), "domain": r.domain}
            for r, s in zip(recs, scores)
        ]
        groups[name] = metrics
    report = summarize({k: {m: v for m, v in g.items()} for k, g in groups.items()})
    report["excluded"] = dropped
    by_domain = domain_summary(groups)
    if by_domain:
        report["domains"] = by_domain
    report["definitions"] = {
        "positive_class": "anomaly (label 1); precision, recall and F1 are for the anomaly class",
        "auc": "ROC AUC (scikit-learn roc_auc_score)",
        "pauc": f"standardised partial AUC, scikit-learn roc_auc_score(max_fpr={max_fpr}) (McClish correction)",
        "threshold": "fitted on normal training clips only and stored in the model; a clip is anomalous when score > threshold",
        "hmean": "harmonic mean over groups, as DCASE reports",
    }
    if by_domain:
        report["definitions"].update(DOMAIN_DEFINITIONS)
    return report
