"""Scores of files under a model set, and the evaluation of a model set on a labelled folder.

Clips a model trained on are left out (:func:`evaluation_records`); the metrics come from
:mod:`earshot.evaluation`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.datasets import Record, discover, group_name
from earshot.datasets.csvfiles import read_csv
from earshot.errors import DatasetError
from earshot.evaluation.domains import DOMAIN_DEFINITIONS, domain_summary, group_metrics
from earshot.evaluation.metrics import summarize
from earshot.pipeline.extract import Progress
from earshot.pipeline.faults import leave_one_out_faults, read_fault_labels

__all__ = ["score_files", "evaluation_records", "evaluate", "fault_labels"]

log = logging.getLogger(__name__)


def score_files(model, paths: Sequence[str | os.PathLike], *, group: str | None = None,
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """Score audio files with a model set; one row per file, in the order given
    (:meth:`~earshot.bundle.ModelSet.score_files` with progress).

    Returns
    -------
    list of dict
        ``path, group, score, threshold, is_anomalous``.
    """
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("scoring", done, len(paths))

    return model.score_files(paths, group=group, on_file=tick)


# ---------------------------------------------------------------------- evaluation
def fault_labels(records: list[Record], split_file: str | os.PathLike | None = None) -> dict[Path, str]:
    """``{resolved path: fault type}`` of the clips whose fault is known.

    From a ``fault`` column of the data's manifest (``earshot synth`` writes one) and of the
    split file (``path,split[,label][,fault]``; it wins where both give one); empty cells are no fault.
    """
    out = {r.path.resolve(): r.attributes["fault"] for r in records if r.attributes.get("fault")}
    if split_file is not None:
        rows = read_csv(Path(os.path.abspath(split_file)), required=("path",), what="split file")
        if rows and "fault" in rows[0][1]:
            out.update(read_fault_labels(split_file))
    return out


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
        (:mod:`earshot.evaluation.domains`). Where at least three anomalies of a group carry a
        fault type (:func:`fault_labels`), the group also holds ``faults``
        (:func:`earshot.pipeline.faults.leave_one_out_faults`: a confusion matrix of fault types).
    """
    records = discover(Path(data), split_file=split_file)
    fault_of = fault_labels(records, split_file)
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
        faulted = [r for r in recs if r.label == 1 and r.path.resolve() in fault_of]
        if len(faulted) >= 3 and bundle.input != "waveform":  # fault types: a confusion matrix (leave-one-out)
            metrics["faults"] = leave_one_out_faults(bundle, [r.path for r in faulted],
                                                     [fault_of[r.path.resolve()] for r in faulted])
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
