"""Metrics per domain (source / target), the way DCASE 2022-2024 Task 2 count them.

Under a domain shift the test clips of one machine come from a *source* domain (the conditions
most training clips were recorded in) and a *target* domain (another speed, load or
background, with only a handful of training clips). The DCASE 2022-2024 evaluators compute,
per machine section and domain ``d``:

- ``auc``: ROC AUC of the **normal clips of domain d against every anomalous clip of the
  section** (both domains). A detector whose scores rise for every target clip, normal or not,
  ranks target normals above source anomalies and loses target AUC: that is what domain
  generalisation is judged on, and why one threshold for both domains must work.
- ``pauc`` here: the partial AUC (``max_fpr``) on the same clips as ``auc``. The DCASE
  official pAUC is over the whole section (both domains at once): that is the group's own
  ``pauc`` in earshot's reports.
- ``auc_within``: normals of d against the anomalies of d only (the DCASE 2021 per-domain
  view, which does not see a domain-wide offset); NaN where d has no anomalies.
- precision, recall, F1, accuracy and the false-alarm rate on the clips of domain d at the
  model's one stored threshold.

numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earshot.errors import ParameterError
from earshot.evaluation.metrics import _labels_and_scores, binary_metrics, evaluate_scores, pauc, roc_auc, summarize

__all__ = ["DOMAIN_DEFINITIONS", "domain_metrics", "domain_summary", "group_metrics"]

#: What the per-domain numbers mean, for a report's definitions section.
DOMAIN_DEFINITIONS = {
    "domain auc": ("AUC (source) / AUC (target) as DCASE 2022-2024 Task 2 count them: the normal clips of that "
                   "domain against every anomalous clip of the group (both domains)"),
    "domain pauc": "partial AUC on the same clips as the domain AUC (the group's pAUC mixes both domains, as DCASE's)",
    "domain auc_within": "normal clips of the domain against the anomalous clips of the same domain only",
    "domain false_alarm_rate": "share of the domain's normal test clips above the model's one stored threshold",
}


def domain_metrics(y_true: Any, y_score: Any, domains: Sequence[str | None], threshold: float, *,
                   max_fpr: float = 0.1) -> dict[str, dict[str, Any]]:
    """Metrics of each domain among the clips of one group.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 = anomaly, 0 = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous.
    domains : sequence of str or None, length n_clips
        Each clip's domain (``"source"``, ``"target"``, ...); ``None`` where unknown.
    threshold : float
        The model's decision threshold (``score > threshold`` is anomalous).
    max_fpr : float, default 0.1
        FPR range of the partial AUC.

    Returns
    -------
    dict
        ``{domain: {auc, pauc, auc_within, precision, recall, f1, accuracy, tp, fp, tn, fn,
        false_alarm_rate, n_normal, n_anomaly, n_anomaly_in_domain}}`` for each domain that
        has normal clips (``n_anomaly`` counts the anomalies of every domain that ``auc`` uses).
        Empty when fewer than two domains are known among the clips: then the group's own
        metrics say it all.

    Raises
    ------
    ParameterError
        Lengths differ, or a label or score is invalid (as :func:`earshot.evaluation.metrics.roc_auc`).
    """
    y, s = _labels_and_scores(y_true, y_score)
    if len(domains) != len(y):
        raise ParameterError(f"domains must have one entry per clip ({len(y)}), got {len(domains)}")
    dom = np.array(["" if d is None else str(d) for d in domains], dtype=object)
    known = sorted({d for d in dom if d})
    if len(known) < 2 or np.any(dom == ""):
        return {}
    thr = float(threshold)
    out: dict[str, dict[str, Any]] = {}
    anomaly = y == 1
    for d in known:
        here = dom == d
        if not np.any(here & ~anomaly):
            continue
        pick = (here & ~anomaly) | anomaly
        m: dict[str, Any] = {
            "auc": roc_auc(y[pick], s[pick]),
            "pauc": pauc(y[pick], s[pick], max_fpr=max_fpr),
            "auc_within": roc_auc(y[here], s[here]),
        }
        m.update(binary_metrics(y[here], (s[here] > thr).astype(np.int64)))
        normals = s[here & ~anomaly]
        m.update(false_alarm_rate=float(np.mean(normals > thr)), n_normal=int(normals.size),
                 n_anomaly=int(anomaly.sum()), n_anomaly_in_domain=int((here & anomaly).sum()))
        out[d] = m
    return out


def group_metrics(y_true: Any, y_score: Any, domains: Sequence[str | None], threshold: float, *,
                  max_fpr: float = 0.1) -> dict[str, Any]:
    """A group's metrics (:func:`earshot.evaluation.metrics.evaluate_scores`), with ``domains``
    (:func:`domain_metrics`) added when its clips come from two or more known domains."""
    metrics = evaluate_scores(y_true, y_score, threshold, max_fpr=max_fpr)
    by_domain = domain_metrics(y_true, y_score, domains, threshold, max_fpr=max_fpr)
    if by_domain:  # source and target clips: DCASE 2022+ per-domain AUC
        metrics["domains"] = by_domain
    return metrics


def domain_summary(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Means over groups of each domain's metrics.

    Parameters
    ----------
    groups : mapping of str to dict
        Per group, a metrics dict that may hold ``"domains"`` (from :func:`domain_metrics`).

    Returns
    -------
    dict
        ``{domain: {"mean": {...}, "hmean": {...}}}`` over the groups that have that domain,
        with :func:`earshot.evaluation.metrics.summarize`'s keys plus ``false_alarm_rate`` and
        ``auc_within`` (arithmetic means); empty when no group has domains.
    """
    per_domain: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, g in groups.items():
        for d, m in (g.get("domains") or {}).items():
            per_domain.setdefault(d, {})[name] = m
    out: dict[str, dict[str, dict[str, float]]] = {}
    for d, gs in sorted(per_domain.items()):
        summary = summarize(gs)
        mean = dict(summary["mean"])
        for key in ("auc_within", "false_alarm_rate"):
            vals = [float(m[key]) for m in gs.values() if m.get(key) is not None and np.isfinite(m[key])]
            mean[key] = float(np.mean(vals)) if vals else float("nan")
        out[d] = {"mean": mean, "hmean": summary["hmean"]}
    return out
