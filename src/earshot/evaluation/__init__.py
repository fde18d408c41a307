"""Evaluation: metrics of the anomaly class and their per-group summaries.

See :mod:`earshot.evaluation.metrics`. numpy only.
"""

from __future__ import annotations

from earshot.evaluation.metrics import (
    SUMMARY_KEYS,
    binary_metrics,
    evaluate_scores,
    pauc,
    roc_auc,
    summarize,
    to_jsonable,
)

__all__ = [
    "SUMMARY_KEYS",
    "binary_metrics",
    "evaluate_scores",
    "pauc",
    "roc_auc",
    "summarize",
    "to_jsonable",
]
