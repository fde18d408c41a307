"""Metrics for the anomaly class: ROC AUC, pAUC, precision/recall/F1 and per-group means.

Conventions (shared by all of earshot):

- label ``1`` = anomaly, ``0`` = normal;
- higher score = more anomalous;
- a clip is predicted anomalous when ``score > threshold`` (strictly), i.e. when
  ``decision_function = score - threshold`` is positive;
- precision, recall, F1 are those of the **anomaly** class.

``roc_auc`` and ``pauc`` reproduce :func:`sklearn.metrics.roc_auc_score` (without and with
``max_fpr``) to floating-point precision, ties included, using numpy only. When ``y_true``
holds a single class the ROC curve is undefined and both return ``float("nan")`` instead of
raising; reports show such a value as "undefined: no anomaly clips" (or "no normal clips").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from earshot.errors import ParameterError

__all__ = [
    "SUMMARY_KEYS",
    "auc_and_decisions",
    "binary_metrics",
    "evaluate_scores",
    "pauc",
    "roc_auc",
    "roc_points",
    "summarize",
    "to_jsonable",
]

#: The per-group metrics that :func:`summarize` averages.
SUMMARY_KEYS = ("auc", "pauc", "precision", "recall", "f1", "accuracy")


# --------------------------------------------------------------------------- validation


def _as_1d(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged nested sequences and the like
        raise ParameterError(f"{name} must be a 1-D array; could not convert it ({exc})") from exc
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ParameterError(f"{name} must hold at least one value, got an empty array")
    return arr


def _as_labels(values: Any, name: str) -> np.ndarray:
    """Validate 0/1 labels (ints, floats equal to 0/1, or bools) and return them as int64."""
    arr = _as_1d(values, name)
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise ParameterError(
            f"{name} must hold labels 0 (normal) or 1 (anomaly), got values of dtype {arr.dtype}"
        )
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        shown = ", ".join(repr(v) for v in np.unique(arr[bad])[:5].tolist())
        raise ParameterError(
            f"{name} must hold labels 0 (normal) or 1 (anomaly) only, got {shown}"
        )
    return arr.astype(np.int64)


def _as_scores(values: Any, name: str) -> np.ndarray:
    arr = _as_1d(values, name)
    if arr.dtype.kind not in "biuf":
        raise ParameterError(f"{name} must hold real numbers, got values of dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int((~finite).sum())
        first = int(np.flatnonzero(~finite)[0])
        raise ParameterError(
            f"{name} must hold finite numbers, got {n_bad} NaN or infinite value(s) "
            f"(first at index {first}: {arr[first]!r})"
        )
    return arr


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ParameterError(
            f"{name_a} and {name_b} must have the same length, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def _check_max_fpr(max_fpr: Any) -> float:
    try:
        value = float(max_fpr)
    except (TypeError, ValueError):
        raise ParameterError(f"max_fpr must be a number in (0, 1], got {max_fpr!r}") from None
    if not 0.0 < value <= 1.0:
        raise ParameterError(f"max_fpr must be a number in (0, 1], got {max_fpr!r}")
    return value


def _labels_and_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_labels(y_true, "y_true")
    s = _as_scores(y_score, "y_score")
    _check_same_length(y, s, "y_true", "y_score")
    return y, s


# --------------------------------------------------------------------------- ROC


def _roc_curve(y: np.ndarray, s: np.ndarray, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates, computed as sklearn's ``roc_curve`` does.

    Both classes must be present. Tied scores form one ROC point (so ties are counted
    half, as average ranks do), collinear intermediate points are dropped as with
    ``drop_intermediate=True`` (when asked), and the curve starts at (0, 0).
    """
    order = np.argsort(s, kind="mergesort")[::-1]
    s = s[order]
    y = y[order].astype(np.float64)
    distinct = np.flatnonzero(np.diff(s))
    idx = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[idx]
    fps = 1.0 + idx.astype(np.float64) - tps
    if drop_intermediate and fps.shape[0] > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[keep], fps[keep]
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    return fps / fps[-1], tps / tps[-1]


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float((np.diff(x) * (y[1:] + y[:-1]) / 2.0).sum())


def _both_classes(y: np.ndarray) -> bool:
    n_anomaly = int(y.sum())
    return 0 < n_anomaly < y.size


def roc_points(y_true: Any, y_score: Any, *, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of the anomaly class: false and true positive rates, from (0, 0) to (1, 1).

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal; both classes must be present.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous. Must be finite.
    drop_intermediate : bool, default True
        Drop collinear points, as ``sklearn.metrics.roc_curve`` does by default (the curve
        :func:`roc_auc` and :func:`pauc` integrate); False keeps one point per distinct score.

    Returns
    -------
    fpr, tpr : np.ndarray
        One point per distinct score (tied scores form one point), in order of decreasing
        score, after the starting point (0, 0).

    Raises
    ------
    ParameterError
        As :func:`roc_auc`, or ``y_true`` holds only one class (the curve is undefined).
    """
    y, s = _labels_and_scores(y_true, y_score)
    if not _both_classes(y):
        raise ParameterError("y_true must hold both classes (0 and 1) to draw a ROC curve, got one class only")
    return _roc_curve(y, s, drop_intermediate)


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve of the anomaly class.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous. Must be finite.

    Returns
    -------
    float
        The probability that a random anomalous clip scores higher than a random normal one,
        ties counted one half (trapezoidal ROC area), equal to
        ``sklearn.metrics.roc_auc_score(y_true, y_score)``. ``nan`` when ``y_true`` holds
        only one class (the AUC is undefined then; reports say "undefined").

    Raises
    ------
    ParameterError
        Lengths differ, a label is not 0/1, a score is NaN or infinite, or an input is empty
        or not 1-D.
    """
    y, s = _labels_and_scores(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr = _roc_curve(y, s)
    return _trapezoid(fpr, tpr)


def pauc(y_true: Any, y_score: Any, *, max_fpr: float = 0.1) -> float:
    """Standardised partial ROC AUC over false positive rates in ``[0, max_fpr]``.

    Definition (scikit-learn's ``roc_auc_score(y_true, y_score, max_fpr=max_fpr)``, which we
    reproduce exactly): the ROC curve is linearly interpolated at ``FPR = max_fpr``, its area
    ``A`` over ``[0, max_fpr]`` is taken with the trapezoidal rule, and the McClish (1989)
    correction maps it to ``[0.5, 1]`` for curves at or above the diagonal::

        pauc = 0.5 * (1 + (A - max_fpr**2 / 2) / (max_fpr - max_fpr**2 / 2))

    so a random detector scores 0.5 and a perfect one 1.0 (values slightly below 0.5 mean a
    curve under the diagonal). With ``max_fpr=1`` this is the plain AUC.

    Note that the formula on the DCASE task pages is the *unstandardised* partial area
    divided by ``max_fpr``, ``u = A / max_fpr`` (random detector: ``max_fpr / 2``), while
    the DCASE baseline and evaluator scripts call scikit-learn and so report the
    standardised value. earshot reports the standardised one (see DESIGN.md); convert with
    ``u = (2 * pauc - 1) * (1 - max_fpr / 2) + max_fpr / 2``.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous. Must be finite.
    max_fpr : float, default 0.1
        Upper end of the false positive rate range, in ``(0, 1]``.

    Returns
    -------
    float
        The standardised pAUC; ``nan`` when ``y_true`` holds only one class.

    Raises
    ------
    ParameterError
        As :func:`roc_auc`, or ``max_fpr`` outside ``(0, 1]``.
    """
    max_fpr = _check_max_fpr(max_fpr)
    y, s = _labels_and_scores(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr = _roc_curve(y, s)
    if max_fpr == 1.0:
        return _trapezoid(fpr, tpr)
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    tpr_at = np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]])
    partial = _trapezoid(np.r_[fpr[:stop], max_fpr], np.r_[tpr[:stop], tpr_at])
    min_area = 0.5 * max_fpr**2
    max_area = max_fpr
    return float(0.5 * (1.0 + (partial - min_area) / (max_area - min_area)))


# --------------------------------------------------------------------------- decisions


def binary_metrics(y_true: Any, y_pred: Any) -> dict[str, float | int]:
    """Confusion counts and precision, recall, F1, accuracy of the anomaly class.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal.
    y_pred : array-like of shape (n_clips,)
        Predictions, 1 = anomaly, 0 = normal.

    Returns
    -------
    dict
        ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
        ``f1 = 2 tp / (2 tp + fp + fn)``, ``accuracy = (tp + tn) / n`` (floats) and the
        counts ``tp, fp, tn, fn, n_normal, n_anomaly`` (ints). A ratio whose denominator is
        zero is reported as 0.0, like scikit-learn with ``zero_division=0``: precision is 0.0
        when nothing is predicted anomalous, recall (and F1) 0.0 when there is no anomaly
        clip. Read such zeros together with the counts.

    Raises
    ------
    ParameterError
        Lengths differ, a value is not 0/1, or an input is empty or not 1-D.
    """
    y = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    _check_same_length(y, p, "y_true", "y_pred")
    tp = int(np.sum((y == 1) & (p == 1)))
    fp = int(np.sum((y == 0) & (p == 1)))
    tn = int(np.sum((y == 0) & (p == 0)))
    fn = int(np.sum((y == 1) & (p == 0)))

    def ratio(num: int, den: int) -> float:
        return num / den if den > 0 else 0.0

    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, y.size),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n_normal": tn + fp,
        "n_anomaly": tp + fn,
    }


def evaluate_scores(
    y_true: Any, y_score: Any, threshold: float, *, max_fpr: float = 0.1
) -> dict[str, float | int]:
    """All metrics of one group of clips: AUC, pAUC, and the decisions at ``threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        Decision threshold; a clip is predicted anomalous when ``score > threshold``
        (``decision_function = score - threshold > 0``).
    max_fpr : float, default 0.1
        FPR range of the pAUC (see :func:`pauc`).

    Returns
    -------
    dict
        ``threshold``, ``max_fpr``, ``auc``, ``pauc`` (``nan`` with one class only) and every
        key of :func:`binary_metrics`.

    Raises
    ------
    ParameterError
        As :func:`pauc`, or ``threshold`` not a finite number.
    """
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise ParameterError(f"threshold must be a finite number, got {threshold!r}") from None
    if not math.isfinite(thr):
        raise ParameterError(f"threshold must be a finite number, got {threshold!r}")
    max_fpr = _check_max_fpr(max_fpr)
    return {"threshold": thr, "max_fpr": max_fpr, **auc_and_decisions(y_true, y_score, thr, max_fpr=max_fpr)}


def auc_and_decisions(y_true: Any, y_score: Any, threshold: Any, *, max_fpr: float = 0.1) -> dict[str, float | int]:
    """AUC and pAUC of the scores, and the decisions at ``threshold`` (one, or one per clip).

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        Labels, 1 = anomaly, 0 = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous.
    threshold : float or array-like of shape (n_clips,)
        A clip is predicted anomalous when ``score > threshold``; an array gives each clip its
        own threshold (clips pooled from several models, each at its model's threshold).
    max_fpr : float, default 0.1
        FPR range of the pAUC (see :func:`pauc`).

    Returns
    -------
    dict
        ``auc``, ``pauc`` (``nan`` with one class only) and every key of :func:`binary_metrics`.

    Raises
    ------
    ParameterError
        As :func:`pauc`, or an array of thresholds whose length is not the number of clips.
    """
    y, s = _labels_and_scores(y_true, y_score)
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 1 and thr.shape[0] != s.shape[0]:
        raise ParameterError(f"threshold must be one number or one per clip ({s.shape[0]}), got {thr.shape[0]}")
    result: dict[str, float | int] = {"auc": roc_auc(y, s), "pauc": pauc(y, s, max_fpr=max_fpr)}
    result.update(binary_metrics(y, (s > thr).astype(np.int64)))
    return result


# --------------------------------------------------------------------------- summaries


def _finite_values(groups: Mapping[str, Mapping[str, Any]], key: str) -> list[float]:
    values = []
    for name, metrics in groups.items():
        value = metrics.get(key)
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"groups[{name!r}][{key!r}] must be a number, got {value!r}"
            ) from None
        if math.isnan(value):
            continue
        if value < 0:
            raise ParameterError(
                f"groups[{name!r}][{key!r}] must be >= 0 to be averaged, got {value!r}"
            )
        values.append(value)
    return values


def _hmean(values: list[float]) -> float:
    """Harmonic mean with scipy.stats.hmean semantics (0 if any value is 0)."""
    if not values:
        return float("nan")
    arr = np.asarray(values, dtype=np.float64)
    if np.any(arr == 0):
        return 0.0
    return float(1.0 / np.mean(1.0 / arr))


def summarize(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Arithmetic and harmonic means of per-group metrics, as DCASE reports them.

    Parameters
    ----------
    groups : mapping of str to dict
        One metrics dict per group (machine, id/section, domain), e.g. from
        :func:`evaluate_scores`.

    Returns
    -------
    dict
        ``{"groups": groups, "mean": {...}, "hmean": {...}}`` where ``mean`` and ``hmean``
        hold, for each of ``auc, pauc, precision, recall, f1, accuracy``, the arithmetic and
        harmonic mean over the groups. Missing, ``None`` and NaN values (a group without
        anomaly clips has no AUC) are left out of both means; a mean over nothing is NaN.
        The harmonic mean is 0.0 as soon as one value is 0 (``scipy.stats.hmean``).

    Raises
    ------
    ParameterError
        ``groups`` is not a mapping of mappings, or a value is not a number or is negative.
    """
    if not isinstance(groups, Mapping):
        raise ParameterError(
            f"groups must be a mapping of group name to metrics dict, got {type(groups).__name__}"
        )
    for name, metrics in groups.items():
        if not isinstance(metrics, Mapping):
            raise ParameterError(
                f"groups[{name!r}] must be a metrics dict, got {type(metrics).__name__}"
            )
    mean: dict[str, float] = {}
    hmean: dict[str, float] = {}
    for key in SUMMARY_KEYS:
        values = _finite_values(groups, key)
        mean[key] = float(np.mean(values)) if values else float("nan")
        hmean[key] = _hmean(values)
    return {"groups": dict(groups), "mean": mean, "hmean": hmean}


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` with numpy types made plain Python and NaN/infinity made ``None``.

    Mappings become dicts with ``str`` keys, tuples/lists/arrays become lists, numpy scalars
    become ``int``/``float``/``bool``; any other object is returned unchanged. The result can
    be written with ``json.dump(..., allow_nan=False)``.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj
