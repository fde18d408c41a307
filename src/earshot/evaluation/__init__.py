"""Evaluation: metrics of the anomaly class and their per-group summaries.

See :mod:`earshot.evaluation.metrics`. numpy only.
"""

from __future__ import annotations

from earshot.evaluation.metrics import (
    SUMMARY_KEYS,
    auc_and_decisions,
    binary_metrics,
    evaluate_scores,
    pauc,
    roc_auc,
    roc_points,
    summarize,
    to_jsonable,
)

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
