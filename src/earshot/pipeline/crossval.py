"""Cross-validation: leave one machine id (or machine type) out, and stratified k-fold.

A random split of clips lets a model hear, in training, the very machines it is tested on; a
model that has learned "this fan" rather than "a fan with a fault" scores well there and fails
on the next fan. :func:`cross_validate` measures both on the same clips, side by side:

- **leave-one-group-out** (``by="id"``): within each machine type with two or more ids,
  each id in turn is held out; the model is trained on the other ids of that machine type and
  tested on every labelled clip of the held-out id. ``by="machine"``: each machine type in
  turn is held out and the model trained on all the other types.
- **stratified k-fold** (the random split): within the same scope (one machine type, or all
  clips for ``by="machine"``) the clips are dealt into ``k`` folds stratified by machine id and
  label; each fold is tested once by a model trained on the other ``k - 1``.

Unsupervised detectors are fitted on the NORMAL clips of the training part only; supervised
ones (``uses_labels``) on its labelled normal and abnormal clips, and draw their validation
split from those clips only. Every labelled clip is tested exactly once per scheme. The data's
own train/test split is ignored (cross-validation makes its own); unlabelled clips are left out.

This module sits beside :mod:`earshot.pipeline` (it joins datasets, features, detectors and
metrics); nothing below it imports it.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot.datasets import Record, discover, group_name
from earshot.detection import SHARED_OPTIONS, detector_class, frames_needed
from earshot.detection import detector_params as accepted_params
from earshot.errors import DatasetError, ParameterError
from earshot.evaluation.metrics import auc_and_decisions, summarize
from earshot.features.cache import map_with_frames
from earshot.features.config import FeatureConfig
from earshot.pipeline.extract import extract_store
from earshot.pipeline.train import record_metadata

__all__ = ["BYS", "Fold", "leave_one_group_out", "stratified_kfold", "cv_plan", "cross_validate", "detector_params"]

log = logging.getLogger(__name__)

#: Accepted values of ``by``.
BYS = ("id", "machine", "fold")
#: Options shared by the command line that a detector may or may not accept.
COMMON_PARAMS = SHARED_OPTIONS


@dataclass
class Fold:
    """One train/test split of a cross-validation scheme.

    Attributes
    ----------
    scheme : str
        ``leave-one-out`` or ``random``.
    name : str
        ``fan/id_00`` (the held-out group) or ``fan fold 2/4``.
    scope : str
        The machine type the fold belongs to, or ``all``.
    held_out : str or None
        The held-out group (leave-one-out only).
    train, test : list of Record
    """

    scheme: str
    name: str
    scope: str
    held_out: str | None
    train: list[Record] = field(default_factory=list)
    test: list[Record] = field(default_factory=list)


def _check_by(by: str) -> None:
    if by not in BYS:
        raise ParameterError(f"by: expected one of {', '.join(BYS)}, got {by!r}")


def _scope_of(record: Record, by: str) -> str:
    return "all" if by == "machine" else record.machine


def _unit_of(record: Record, by: str) -> str:
    """The group a clip belongs to for holding out: machine/id, or the machine type."""
    return record.machine if by == "machine" else group_name(record, "id")


def _scopes(records: Sequence[Record], by: str) -> dict[str, list[Record]]:
    scopes: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.path):
        scopes.setdefault(_scope_of(r, by), []).append(r)
    return dict(sorted(scopes.items()))


def leave_one_group_out(records: Sequence[Record], *, by: str = "id") -> tuple[list[Fold], list[str]]:
    """Leave-one-id-out (within each machine type) or leave-one-machine-out folds.

    Returns
    -------
    folds : list of Fold
        One per held-out group; ``train`` holds every clip of the scope except the held-out
        group's, ``test`` every clip of the held-out group.
    notes : list of str
        Scopes that could not be cross-validated (a single group).
    """
    if by not in ("id", "machine"):
        raise ParameterError(f"by: leave-one-group-out needs 'id' or 'machine', got {by!r}")
    folds, notes = [], []
    for scope, members in _scopes(records, by).items():
        units = sorted({_unit_of(r, by) for r in members})
        if len(units) < 2:
            notes.append(f"{scope}: only one {'machine type' if by == 'machine' else 'id'} ({units[0]}), nothing to hold out")
            continue
        for unit in units:
            folds.append(Fold("leave-one-out", unit, scope, unit,
                              train=[r for r in members if _unit_of(r, by) != unit],
                              test=[r for r in members if _unit_of(r, by) == unit]))
    return folds, notes


def stratified_kfold(records: Sequence[Record], *, k: int | None = None, by: str = "id", seed: int = 0
                     ) -> list[Fold]:
    """Stratified k-fold within each scope (machine type, or all clips for ``by="machine"``).

    Clips are stratified by (machine id, label): each stratum is shuffled with
    ``numpy.random.default_rng([seed, crc32(scope)])`` and dealt round-robin into the folds,
    continuing where the previous stratum stopped so that fold sizes differ by at most one.

    Parameters
    ----------
    k : int or None
        Folds per scope; None takes the number of groups of the scope (ids, or machine types),
        at least 2, so that the training part is as large as in leave-one-group-out.
    """
    _check_by(by)
    if k is not None and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2):
        raise ParameterError(f"folds: expected an integer >= 2, got {k!r}")
    unit_by = "id" if by == "fold" else by
    folds = []
    for scope, members in _scopes(records, unit_by).items():
        k_s = int(k) if k is not None else max(2, len({_unit_of(r, unit_by) for r in members}))
        rng = np.random.default_rng([seed, zlib.crc32(scope.encode("utf-8"))])
        strata: dict[tuple, list[Record]] = {}
        for r in members:
            strata.setdefault((group_name(r, "id"), -1 if r.label is None else r.label), []).append(r)
        fold_of: dict[Path, int] = {}
        offset = 0
        for key in sorted(strata):
            stratum = strata[key]
            for i, j in enumerate(rng.permutation(len(stratum))):
                fold_of[stratum[j].path] = (offset + i) % k_s
            offset = (offset + len(stratum)) % k_s
        for f in range(k_s):
            folds.append(Fold("random", f"{scope} fold {f + 1}/{k_s}", scope, None,
                              train=[r for r in members if fold_of[r.path] != f],
                              test=[r for r in members if fold_of[r.path] == f]))
    return folds


def cv_plan(records: Sequence[Record], *, by: str = "id", folds: int | None = None, seed: int = 0
            ) -> tuple[dict[str, list[Fold]], list[str]]:
    """The folds of every scheme: ``{"leave-one-out": [...], "random": [...]}`` (``by="fold"``:
    the random scheme only, ``k = folds`` or 5), and notes on what could not be done."""
    _check_by(by)
    plan: dict[str, list[Fold]] = {}
    notes: list[str] = []
    if by == "fold":
        plan["random"] = stratified_kfold(records, k=folds or 5, by=by, seed=seed)
    else:
        plan["leave-one-out"], notes = leave_one_group_out(records, by=by)
        plan["random"] = stratified_kfold(records, k=folds, by=by, seed=seed)
    return plan, notes


def detector_params(kind: str, params: dict[str, Any] | None, *, seed: int = 0) -> dict[str, Any]:
    """Keyword parameters for a detector kind: shared options it does not take are dropped,
    None values mean "the detector's default", unknown extra parameters are an error
    (:func:`earshot.detection.detector_params`)."""
    return {"random_state": seed, **accepted_params(kind, params or {}, optional=COMMON_PARAMS)}


# ---------------------------------------------------------------------- running
def _metrics(y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, max_fpr: float) -> dict[str, Any]:
    """AUC, pAUC over the scores; decisions at each clip's own model threshold."""
    return auc_and_decisions(y, scores, thresholds, max_fpr=max_fpr)


def _run_fold(fold: Fold, kind: str, params: dict[str, Any], clips, index: dict[Path, int], *,
              max_fpr: float, progress, stage: str) -> dict[str, Any]:
    cls = detector_class(kind)
    train = [r for r in fold.train if (r.label in (0, 1) if cls.uses_labels else r.label == 0)]
    held_out_ids = {_unit_of(r, "id") for r in fold.test}
    row: dict[str, Any] = {
        "name": fold.name, "scope": fold.scope, "held_out": fold.held_out,
        "n_train": len(train), "n_train_normal": sum(r.label == 0 for r in train),
        "n_train_anomaly": sum(r.label == 1 for r in train),
        "n_test": len(fold.test), "n_test_normal": sum(r.label == 0 for r in fold.test),
        "n_test_anomaly": sum(r.label == 1 for r in fold.test),
        "train_groups": sorted({_unit_of(r, "id") for r in train}),
        "test_groups": sorted(held_out_ids),
    }
    if not train or (cls.uses_labels and len({r.label for r in train}) < 2):
        row["skipped"] = ("no normal clips to train on" if not cls.uses_labels else
                          "the training part lacks labelled normal or anomaly clips")
        return row
    started = time.perf_counter()
    det = cls(**params)

    def fit_progress(epoch, epochs, loss, val_loss):
        if progress:
            progress(f"{stage} training", epoch, epochs)

    X = clips.subset([index[r.path] for r in train])
    y = np.array([r.label for r in train]) if cls.uses_labels else None
    det.fit(X, y, metadata=[record_metadata(r) for r in train], progress=fit_progress)
    scores = np.asarray(det.score_samples(clips.subset([index[r.path] for r in fold.test])), dtype=np.float64)
    y_test = np.array([r.label for r in fold.test])
    threshold = float(det.threshold_)
    row.update(_metrics(y_test, scores, np.full(len(scores), threshold), max_fpr))
    val = getattr(det, "validation_indices_", None)
    row.update(
        threshold=threshold,
        threshold_source=getattr(det, "threshold_source_", None),
        fit_seconds=round(time.perf_counter() - started, 3),
        best_epoch=getattr(det, "history_", {}).get("best_epoch"),
        n_validation=None if val is None else int(len(val)),
        validation_paths=None if val is None else sorted(str(train[i].path) for i in val),
        train_paths=sorted(str(r.path) for r in train),
        clips=[{"path": str(r.path), "group": _unit_of(r, "id"), "label": int(r.label), "score": float(s),
                "threshold": threshold} for r, s in zip(fold.test, scores)],
    )
    return row


def _pool(rows: list[dict[str, Any]], max_fpr: float, key=None) -> dict[str, Any] | None:
    """Metrics over the test clips of several folds (each clip at its own fold's threshold)."""
    per_fold = [[c for c in r.get("clips", []) if key is None or key(c)] for r in rows]
    clips = [c for fold in per_fold for c in fold]
    if not clips:
        return None
    y = np.array([c["label"] for c in clips])
    s = np.array([c["score"] for c in clips])
    t = np.array([c["threshold"] for c in clips])
    return {**_metrics(y, s, t, max_fpr), "n_folds": sum(1 for fold in per_fold if fold)}


def cross_validate(
    data: str | os.PathLike,
    *,
    by: str = "id",
    model: str = "dense-ae",
    folds: int | None = None,
    model_params: dict[str, Any] | None = None,
    features: FeatureConfig | None = None,
    channel: int | None = None,
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
    max_fpr: float = 0.1,
    progress=None,
    executor=None,
) -> dict[str, Any]:
    """Cross-validate a detector kind on a labelled data set; see the module docstring.

    Parameters
    ----------
    data : path-like
        Any layout of :mod:`earshot.datasets` with labelled clips.
    by : {"id", "machine", "fold"}
        Hold out each machine id / each machine type (and compare with a stratified k-fold
        random split of the same clips), or run the stratified k-fold only.
    model : str
        Any registered detector kind.
    folds : int or None
        ``k`` of the k-fold (default: the number of groups per scope; 5 with ``by="fold"``).
    model_params : dict, optional
        Detector parameters (None values take the detector's default).
    features : FeatureConfig, optional
    seed : int
        Seeds the k-fold deal and the detectors.
    executor : str, Executor or None
        Where files are decoded and folds trained (:mod:`earshot._util.executors`; None:
        ``$EARSHOT_EXECUTOR``, else one after the other in this process).

    Returns
    -------
    dict
        ``schemes: {"leave-one-out"|"random": {"title", "folds": [...], "pooled", "mean",
        "hmean"}}``, ``by_group: {group: {scheme: metrics}}``, ``gap`` (random minus
        leave-one-out, pooled), ``notes``, ``definitions`` and the settings used.
    """
    _check_by(by)
    features = features or FeatureConfig()
    params = detector_params(model, model_params, seed=seed)
    cls = detector_class(model)
    n_frames = frames_needed(model, params)
    min_frames = int(n_frames) if n_frames is not None else 1
    all_records = discover(Path(data), split_file=split_file)
    records = [r for r in all_records if r.label is not None]
    if not records:
        raise DatasetError(f"{data}: no labelled clips to cross-validate (found {len(all_records)} clips)")
    plan, notes = cv_plan(records, by=by, folds=folds, seed=seed)
    if not any(plan.values()):
        raise DatasetError(f"{data}: nothing to cross-validate ({'; '.join(notes) or 'no folds'})")

    def feat_progress(_stage, done, total):
        if progress:
            progress("features", done, total)

    clips = extract_store([r.path for r in records], features, channel=channel, min_frames=min_frames,
                          progress=feat_progress, executor=executor)
    index = {r.path: i for i, r in enumerate(records)}
    unit = "machine" if by == "machine" else "id"
    titles = {"leave-one-out": f"leave-one-{unit}-out", "random": "stratified k-fold (random split)"}
    schemes = _run_schemes(plan, titles, model, params, clips, index, max_fpr=max_fpr, progress=progress,
                           executor=executor)
    groups = sorted({_unit_of(r, unit if by != "fold" else "id") for r in records})
    by_group = {g: {s: _pool(v["folds"], max_fpr, key=lambda c, g=g: _group_key(c, by) == g)
                    for s, v in schemes.items()} for g in groups}
    gap = None
    if "leave-one-out" in schemes and schemes["leave-one-out"]["pooled"] and schemes["random"]["pooled"]:
        lo, rs = schemes["leave-one-out"]["pooled"], schemes["random"]["pooled"]
        gap = {k: _diff(rs.get(k), lo.get(k)) for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")}
    return {
        "data": str(Path(data).resolve()), "by": by, "model": model, "params": params,
        "features": {**features.to_dict(), "channel": channel}, "seed": seed,
        "n_clips": len(records), "n_unlabelled_left_out": len(all_records) - len(records),
        "schemes": schemes, "by_group": by_group, "gap": gap, "notes": notes,
        "definitions": _definitions(unit, cls.uses_labels, max_fpr),
    }



def _run_schemes(plan: dict[str, list[Fold]], titles: dict[str, str], model: str, params: dict[str, Any], clips,
                 index: dict[Path, int], *, max_fpr: float, progress, executor) -> dict[str, Any]:
    """Run every fold of the plan (in parallel when ``executor`` allows); per scheme its title,
    fold rows, pooled metrics and mean/hmean over the fitted folds."""
    n_total = sum(len(f) for f in plan.values())
    schemes: dict[str, Any] = {}
    done = 0
    # parallel folds (None: serial, the loop below runs them)
    parallel = map_with_frames(executor, _run_fold, [f for fs in plan.values() for f in fs], frames=clips,
                               kind=model, params=params, index=index, max_fpr=max_fpr, progress=None, stage="")
    for scheme, fold_list in plan.items():
        rows = []
        for fold in fold_list:
            done += 1
            stage = f"{titles[scheme]} {fold.name} ({done}/{n_total})"
            rows.append(next(parallel) if parallel is not None else
                        _run_fold(fold, model, params, clips, index, max_fpr=max_fpr, progress=progress, stage=stage))
            if progress:
                progress("folds", done, n_total)
        fitted = {r["name"]: r for r in rows if "skipped" not in r}
        summary = summarize({name: {k: r[k] for k in ("auc", "pauc", "precision", "recall", "f1", "accuracy")}
                             for name, r in fitted.items()}) if fitted else {"mean": {}, "hmean": {}}
        k_values = sorted({int(r["name"].rsplit("/", 1)[1]) for r in rows}) if scheme == "random" else []
        title = titles[scheme] if scheme != "random" else f"stratified {'/'.join(map(str, k_values))}-fold (random split)"
        schemes[scheme] = {"title": title, "folds": rows, "pooled": _pool(list(fitted.values()), max_fpr),
                           "mean": summary["mean"], "hmean": summary["hmean"]}
    return schemes


def _definitions(unit: str, uses_labels: bool, max_fpr: float) -> dict[str, str]:
    """The ``definitions`` block of a cross-validation result."""
    return {
        "leave-one-out": (f"each {unit} in turn is held out; the model is trained on the other "
                          + ("ids of the same machine type" if unit == "id" else "machine types")
                          + " and tested on every labelled clip of the held-out one"),
        "random": ("stratified k-fold over the same clips (strata: machine id x label); each fold tested "
                   "once by a model trained on the other folds, which includes clips of the same machines"),
        "training clips": ("normal clips of the training part only" if not uses_labels else
                           "labelled normal and abnormal clips of the training part; the validation split "
                           "(early stopping, threshold) is drawn from them only"),
        "pooled": "metrics over every test clip of the scheme, each decided at its own fold model's threshold; "
                  "AUC and pAUC over scores of different fold models",
        "mean": "arithmetic mean over folds (hmean: harmonic), as DCASE reports",
        "auc": "ROC AUC (scikit-learn roc_auc_score)",
        "pauc": f"standardised partial AUC, roc_auc_score(max_fpr={max_fpr}) (McClish correction)",
        "threshold": "each fold model's own threshold, fitted on its training clips only "
                     "(never on test labels)",
        "gap": "random split minus leave-one-out (pooled): how much a random split flatters the model",
    }


def _group_key(clip: dict[str, Any], by: str) -> str:
    return clip["group"].split("/", 1)[0] if by == "machine" else clip["group"]


def _diff(a: Any, b: Any) -> float | None:
    try:
        value = float(a) - float(b)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
