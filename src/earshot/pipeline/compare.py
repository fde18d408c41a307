"""Compare several models on the same test clips, in one table.

Each model leaves out the clips it trained on (see :func:`earshot.pipeline.evaluation_records`);
a fair comparison scores every model on the clips NONE of them trained on: the intersection of
their evaluation sets. Metrics are reported per machine/id group (the finest grouping, so a
group is always scored by a single bundle of each model) with arithmetic and harmonic means.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.datasets import discover, group_name
from earshot.errors import DatasetError, ParameterError
from earshot.evaluation.domains import DOMAIN_DEFINITIONS, domain_summary, group_metrics
from earshot.evaluation.metrics import summarize
from earshot.pipeline.evaluate import evaluation_records

__all__ = ["compare_models"]


def compare_models(models: Sequence[tuple[str, Any]], data: str | os.PathLike, *,
                   split_file: str | os.PathLike | None = None, max_fpr: float = 0.1,
                   progress=None) -> dict[str, Any]:
    """Score every model on the labelled clips of ``data`` that no model trained on.

    Parameters
    ----------
    models : sequence of (name, ModelSet)
        Two or more loaded models (:func:`earshot.bundle.load_model`), with display names.
    data : path-like
        Labelled data (any layout).

    Returns
    -------
    dict
        ``models`` (names), ``n_clips`` (the common test set), ``excluded`` (per model: why
        clips were left out, and ``trained on by another model``), ``groups: {group: {model:
        metrics}}``, ``mean`` / ``hmean: {model: {...}}``, ``clips`` (path, group, label and
        each model's score) and ``definitions``; with source and target clips, each group's
        model metrics hold ``domains`` and the result ``domains: {model: {domain: {"mean",
        "hmean"}}}`` (:mod:`earshot.evaluation.domains`).
    """
    if len(models) < 2:
        raise ParameterError(f"models: expected two or more models to compare, got {len(models)}")
    names = [n for n, _ in models]
    if len(set(names)) != len(names):
        raise ParameterError(f"models: names must differ, got {', '.join(names)}")
    records = discover(Path(data), split_file=split_file)
    usable: list[dict[str, tuple[str, Any]]] = []  # per model: path -> (bundle group, record)
    excluded: dict[str, dict[str, int]] = {}
    for name, model in models:
        per_group, dropped = evaluation_records(model, records)
        usable.append({str(r.path.resolve()): (g, r) for g, rs in per_group.items() for r in rs})
        excluded[name] = dict(dropped)
    common = sorted(set.intersection(*(set(u) for u in usable)))
    for name, u in zip(names, usable):
        excluded[name]["trained on by another model"] = len(set(u) - set(common))
    if not common:
        raise DatasetError(f"{data}: no labelled clip that none of the {len(models)} models trained on "
                           f"(each model's evaluation set: {', '.join(f'{n} {len(u)}' for n, u in zip(names, usable))})")
    recs = [usable[0][p][1] for p in common]
    labels = np.array([r.label for r in recs])
    table_groups = [group_name(r, "id") for r in recs]
    scores, thresholds = _score_common(models, usable, common, recs, progress)
    groups = _group_table(names, table_groups, labels, scores, thresholds, recs, max_fpr)
    means = {name: summarize({g: groups[g][name] for g in groups}) for name in names}
    by_domain = {name: domain_summary({g: groups[g][name] for g in groups}) for name in names}
    return {
        "models": names,
        "data": str(Path(data).resolve()),
        "n_clips": len(common),
        "n_normal": int(np.sum(labels == 0)),
        "n_anomaly": int(np.sum(labels == 1)),
        "excluded": excluded,
        "groups": groups,
        "mean": {n: means[n]["mean"] for n in names},
        "hmean": {n: means[n]["hmean"] for n in names},
        **({"domains": by_domain} if any(by_domain.values()) else {}),
        "clips": [{"path": str(r.path), "group": g, "label": int(r.label), "domain": r.domain,
                   "scores": {n: float(scores[n][i]) for n in names}}
                  for i, (r, g) in enumerate(zip(recs, table_groups))],
        "definitions": {
            "test set": ("the labelled clips that NONE of the models trained on (the intersection of their "
                         "evaluation sets): every model is scored on exactly the same clips"),
            "positive_class": "anomaly (label 1); precision, recall and F1 are for the anomaly class",
            "threshold": "each model's own stored threshold; a clip is anomalous when score > threshold",
            "auc": "ROC AUC (scikit-learn roc_auc_score)",
            "pauc": f"standardised partial AUC, roc_auc_score(max_fpr={max_fpr}) (McClish correction)",
            "groups": "machine/id groups; mean and hmean over groups, as DCASE reports",
            **(DOMAIN_DEFINITIONS if any(by_domain.values()) else {}),
        },
    }


def _score_common(models: Sequence[tuple[str, Any]], usable: list[dict[str, tuple[str, Any]]], common: list[str],
                  recs: list[Any], progress) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every model's scores and thresholds on the common clips (in ``common`` order)."""
    scores: dict[str, np.ndarray] = {}
    thresholds: dict[str, np.ndarray] = {}
    total, done = len(common) * len(models), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("scoring", done, total)

    for (name, model), u in zip(models, usable):
        s = np.empty(len(common))
        t = np.empty(len(common))
        by_bundle: dict[str, list[int]] = {}
        for i, p in enumerate(common):
            by_bundle.setdefault(u[p][0], []).append(i)
        for g, idx in by_bundle.items():
            bundle = model.bundles[g]
            s[idx] = bundle.score_files([recs[i].path for i in idx], on_file=tick)
            t[idx] = bundle.threshold_
        scores[name], thresholds[name] = s, t
    return scores, thresholds


def _group_table(names: list[str], table_groups: list[str], labels: np.ndarray, scores: dict[str, np.ndarray],
                 thresholds: dict[str, np.ndarray], recs: list[Any], max_fpr: float) -> dict[str, dict[str, Any]]:
    """``{group: {model: metrics}}`` over the machine/id groups of the common clips."""
    groups: dict[str, dict[str, Any]] = {}
    for g in sorted(set(table_groups)):
        idx = np.array([i for i, tg in enumerate(table_groups) if tg == g])
        groups[g] = {}
        for name in names:
            thr = np.unique(thresholds[name][idx])
            if len(thr) != 1:  # pragma: no cover - a machine/id group is always one bundle
                raise DatasetError(f"{name}: group {g} is scored by several bundles")
            groups[g][name] = group_metrics(labels[idx], scores[name][idx], [recs[i].domain for i in idx],
                                            float(thr[0]), max_fpr=max_fpr)
    return groups
