"""The per-domain table (source / target) of an evaluation or a model comparison.

One layout for the terminal and both HTML pages: a row per (group, domain), then the mean and
harmonic-mean rows per domain, and per model the domain's AUC, pAUC (DCASE 2022+ counting, see
:mod:`earshot.evaluation.domains`), within-domain AUC, F1 and false-alarm rate.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from earshot.reports.format import fmt_metric

__all__ = ["DOMAIN_COLUMNS", "domain_rows", "domain_section", "domain_table_html"]

#: (key, heading) of the per-model columns.
DOMAIN_COLUMNS = (("auc", "AUC"), ("pauc", "pAUC"), ("auc_within", "AUC within"), ("f1", "F1"),
                  ("false_alarm_rate", "false alarms"))


def domain_rows(groups: Mapping[str, Mapping[str, Any]], summaries: Mapping[str, Mapping[str, Any]],
                models: list[str]) -> list[tuple[str, str, dict[str, Mapping[str, Any] | None]]]:
    """Rows ``(group, domain, {model: metrics or None})``, then ``("mean"|"hmean", domain, ...)``.

    Parameters
    ----------
    groups : mapping
        ``{group: {model: metrics}}``; a model's metrics may hold ``"domains"``.
    summaries : mapping
        ``{model: {domain: {"mean": {...}, "hmean": {...}}}}`` (:func:`earshot.evaluation.domains.domain_summary`).
    models : list of str
        Model names, in column order.

    Returns
    -------
    list of tuple
        Empty when no group has per-domain metrics.
    """
    rows = []
    domains = sorted({d for per_model in groups.values() for m in per_model.values() for d in (m.get("domains") or {})})
    for g, per_model in groups.items():
        for d in domains:
            cells = {n: ((per_model.get(n) or {}).get("domains") or {}).get(d) for n in models}
            if any(cells.values()):
                rows.append((g, d, cells))
    if rows:
        for label in ("mean", "hmean"):
            for d in domains:
                rows.append((label, d, {n: (summaries.get(n) or {}).get(d, {}).get(label) for n in models}))
    return rows


def _cell(m: Mapping[str, Any] | None, model: str, key: str) -> str:
    if m is None or key not in m:  # hmean rows have no auc_within / false-alarm mean
        return "<td></td>"
    return f"<td data-model='{html.escape(model)}' data-key='{key}'>{fmt_metric(m.get(key))}</td>"


def domain_table_html(rows, models: list[str], *, table_id: str = "domain-table") -> str:
    """An HTML table of :func:`domain_rows` (one column block per model when there are several)."""
    e = html.escape
    several = len(models) > 1
    head = "<tr><th class='name'>group</th><th class='name'>domain</th>"
    head += "".join(f"<th>{e(h)}{' ' + e(n) if several else ''}</th>" for n in models for _, h in DOMAIN_COLUMNS)
    head += "<th>normal clips</th><th>anomaly clips (all / in domain)</th></tr>"
    body = []
    for g, d, cells in rows:
        summary = g in ("mean", "hmean")
        first = next((m for m in cells.values() if m), {}) or {}
        counts = ("<td></td><td></td>" if summary else
                  f"<td>{first.get('n_normal', '')}</td><td>{first.get('n_anomaly', '')} / "
                  f"{first.get('n_anomaly_in_domain', '')}</td>")
        body.append(f"<tr{' class=summary' if summary else ''} data-group='{e(g)}' data-domain='{e(d)}'>"
                    f"<td class='name'>{e(g)}</td><td class='name'>{e(d)}</td>"
                    + "".join(_cell(cells.get(n), n, k) for n in models for k, _ in DOMAIN_COLUMNS) + counts + "</tr>")
    return (f"<div style='overflow-x:auto'><table id='{table_id}'><thead>{head}</thead><tbody>{''.join(body)}"
            "</tbody></table></div>")


def domain_section(groups, summaries, models: list[str]) -> str:
    """The "source and target domains" section (DCASE 2022+ per-domain AUC) of the evaluation and
    comparison pages; arguments as :func:`domain_rows`."""
    rows = domain_rows(groups, summaries, models)
    return ("<section id='domains'><h2>Source and target domains</h2><p>Per domain, as DCASE 2022-2024 count "
            "it: the AUC and pAUC of the domain's normal clips against every anomalous clip of the group (a "
            "detector whose scores rise for all target clips loses here); AUC within: against the domain's own "
            "anomalies only; F1 and false alarms at the model's one threshold on the domain's clips.</p>"
            + domain_table_html(rows, models) + "</section>")
