"""The metrics of an evaluation (or a comparison of models) as one flat CSV table.

One row per model, group and domain: ``domain`` is ``all`` for the group's own metrics (every
test clip of the group), then one row per domain where the clips have source and target
domains (:mod:`earshot.evaluation.domains`); the ``mean`` and ``hmean`` rows follow, per
domain too. Undefined values (a group without anomalies has no AUC) are empty cells.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

from earshot._util.fs import atomic_file

__all__ = ["METRICS_CSV_COLUMNS", "metrics_rows", "write_metrics_csv"]

#: Columns of the metrics CSV, in order.
METRICS_CSV_COLUMNS = ("model", "group", "domain", "auc", "pauc", "precision", "recall", "f1", "accuracy",
                       "tp", "fp", "tn", "fn", "n_normal", "n_anomaly", "threshold")


def _row(model: str, group: str, domain: str, m: Mapping[str, Any], threshold: Any = None) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model, "group": group, "domain": domain}
    for key in METRICS_CSV_COLUMNS[3:]:
        value = m.get(key, threshold if key == "threshold" else None)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        row[key] = value
    return row


def metrics_rows(groups: Mapping[str, Mapping[str, Any]], summaries: Mapping[str, Any],
                 domain_summaries: Mapping[str, Any] | None, model: str) -> Iterator[dict[str, Any]]:
    """Rows for one model.

    Parameters
    ----------
    groups : mapping
        ``{group: metrics}`` (what :func:`earshot.pipeline.evaluate` returns under ``groups``).
    summaries : mapping
        ``{"mean": {...}, "hmean": {...}}`` over the groups.
    domain_summaries : mapping or None
        ``{domain: {"mean": {...}, "hmean": {...}}}``.
    model : str
        The model's name in the ``model`` column.
    """
    for name, g in groups.items():
        yield _row(model, name, "all", g)
        for domain, m in (g.get("domains") or {}).items():
            yield _row(model, name, domain, m, threshold=g.get("threshold"))
    for label in ("mean", "hmean"):
        yield _row(model, label, "all", summaries.get(label) or {})
        for domain, s in (domain_summaries or {}).items():
            yield _row(model, label, domain, s.get(label) or {})


def write_metrics_csv(rows, path: str | os.PathLike) -> None:
    """Write ``rows`` (dicts with :data:`METRICS_CSV_COLUMNS`) to ``path`` atomically."""
    with atomic_file(path, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRICS_CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
