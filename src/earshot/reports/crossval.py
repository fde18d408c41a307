"""The cross-validation report: one self-contained HTML page and the same numbers as JSON.

:func:`write_cv_report` turns what :func:`earshot.pipeline.crossval.cross_validate` returns into
``cv.html`` — the random split and leave-one-out results side by side (pooled, mean over
folds, and per held-out group, with the gap), a bar chart of AUC per group under both schemes,
the per-fold tables (training, validation and test clip counts, metrics, thresholds) and the
definitions — plus ``cv.json``. Images are inline PNG data URIs (no network needed).

An edge module (matplotlib through :mod:`earshot.plots` helpers); nothing in the core imports it.
The comparison page of ``earshot evaluate MODEL MODEL... DATA`` (:func:`write_compare_report`)
lives here too.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from earshot import __version__
from earshot.errors import ParameterError
from earshot.evaluation.metrics import roc_points, to_jsonable
from earshot.plots import COLORS, agg_figure, png_bytes
from earshot.reports.domain_tables import domain_section
from earshot.reports.format import fmt_metric, fmt_signed, fmt_threshold
from earshot.reports.html import CSS, b64_png, report_folder, write_page

__all__ = ["write_cv_report", "render_cv_html", "cv_json", "auc_by_group_figure", "write_compare_report",
           "render_compare_html", "compare_roc_figure"]

METRICS = (("auc", "AUC"), ("pauc", "pAUC"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
           ("accuracy", "accuracy"))
_SCHEME_ORDER = ("random", "leave-one-out")


def cv_json(result: dict[str, Any]) -> str:
    """The cross-validation result as JSON text (NaN as null)."""
    return json.dumps(to_jsonable(result), indent=2)


def auc_by_group_figure(result: dict[str, Any]) -> bytes:
    """Grouped bars: AUC of each group under each scheme, with the chance level."""
    groups = list(result["by_group"])
    schemes = [s for s in _SCHEME_ORDER if s in result["schemes"]]
    colours = {"random": COLORS["extra"], "leave-one-out": COLORS["normal"]}
    fig = agg_figure(max(8.0, 3.5 + 0.9 * len(groups)), 4.2)
    ax = fig.subplots()
    width = 0.8 / max(1, len(schemes))
    x = np.arange(len(groups))
    for j, s in enumerate(schemes):
        values = [(result["by_group"][g].get(s) or {}).get("auc") for g in groups]
        heights = [v if v is not None and np.isfinite(v) else 0.0 for v in values]
        ax.bar(x + (j - (len(schemes) - 1) / 2) * width, heights, width, color=colours[s],
               label=result["schemes"][s]["title"])
    ax.axhline(0.5, color=COLORS["grey"], ls=":", label="chance")
    ax.set_xticks(x, groups, rotation=30 if len(groups) > 6 else 0, ha="right" if len(groups) > 6 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("ROC AUC (test clips of the group)")
    ax.set_xlabel("group (held out in leave-one-out)")
    ax.set_title(f"{result['model']}: AUC per group")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return png_bytes(fig)


def _cells(m: dict[str, Any] | None) -> str:
    m = m or {}
    return "".join(f"<td data-key='{k}'>{fmt_metric(m.get(k))}</td>" for k, _ in METRICS)


def _side_by_side(result: dict[str, Any]) -> str:
    e = html.escape
    schemes = [s for s in _SCHEME_ORDER if s in result["schemes"]]
    head = "<tr><th class='name'>scheme</th><th class='name'>summary</th>" + "".join(f"<th>{h}</th>" for _, h in METRICS) + "</tr>"
    rows = []
    for s in schemes:
        sc = result["schemes"][s]
        for what, label in (("pooled", "pooled over folds"), ("mean", "mean over folds")):
            rows.append(f"<tr data-scheme='{s}' data-summary='{what}'><td class='name'>{e(sc['title'])}</td>"
                        f"<td class='name'>{label}</td>{_cells(sc.get(what))}</tr>")
    if result.get("gap"):
        rows.append("<tr class='summary' data-scheme='gap'><td class='name'>gap</td><td class='name'>random minus "
                    "leave-one-out (pooled)</td>"
                    + "".join(f"<td data-key='{k}'>{fmt_signed(result['gap'].get(k))}</td>" for k, _ in METRICS) + "</tr>")
    return f"<table id='side-by-side'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _by_group(result: dict[str, Any]) -> str:
    e = html.escape
    schemes = [s for s in _SCHEME_ORDER if s in result["schemes"]]
    keys = (("auc", "AUC"), ("pauc", "pAUC"), ("f1", "F1"))
    head = ("<tr><th class='name'>group</th>"
            + "".join(f"<th>{h} {e(result['schemes'][s]['title'].split(' (')[0])}</th>" for _, h in keys for s in schemes)
            + "<th>normal clips</th><th>anomaly clips</th></tr>")
    rows = []
    for g, d in result["by_group"].items():
        any_m = next((m for m in d.values() if m), {}) or {}
        cells = "".join(f"<td data-scheme='{s}' data-key='{k}'>{fmt_metric((d.get(s) or {}).get(k))}</td>"
                        for k, _ in keys for s in schemes)
        rows.append(f"<tr data-group='{e(g)}'><td class='name'>{e(g)}</td>{cells}"
                    f"<td>{any_m.get('n_normal', '')}</td><td>{any_m.get('n_anomaly', '')}</td></tr>")
    return f"<table id='by-group'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _folds_table(scheme: str, sc: dict[str, Any]) -> str:
    e = html.escape
    head = ("<tr><th class='name'>fold</th><th>train normal</th><th>train anomaly</th><th>validation</th>"
            "<th>test normal</th><th>test anomaly</th>" + "".join(f"<th>{h}</th>" for _, h in METRICS)
            + "<th>threshold</th><th class='name'>fitted on</th><th>seconds</th></tr>")
    rows = []
    for f in sc["folds"]:
        if "skipped" in f:
            rows.append(f"<tr data-fold='{e(f['name'])}'><td class='name'>{e(f['name'])}</td>"
                        f"<td colspan='{11 + len(METRICS)}' class='missing'>skipped: {e(f['skipped'])}</td></tr>")
            continue
        val = "inside the detector" if f.get("n_validation") is None else str(f["n_validation"])
        rows.append(f"<tr data-fold='{e(f['name'])}'><td class='name'>{e(f['name'])}</td><td>{f['n_train_normal']}</td>"
                    f"<td>{f['n_train_anomaly']}</td><td>{e(val)}</td><td>{f['n_test_normal']}</td>"
                    f"<td>{f['n_test_anomaly']}</td>{_cells(f)}<td>{fmt_threshold(f.get('threshold'))}</td>"
                    f"<td class='name'>{e(str(f.get('threshold_source')))}</td><td>{f.get('fit_seconds', 0):.1f}</td></tr>")
    return f"<table class='folds' data-scheme='{scheme}'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def render_cv_html(result: dict[str, Any]) -> str:
    """The cross-validation page as one HTML string (images inline)."""
    e = html.escape
    if not result.get("schemes"):
        raise ParameterError("result: expected at least one cross-validation scheme, got none")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    schemes = [s for s in _SCHEME_ORDER if s in result["schemes"]]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>earshot cross-validation: {e(result['model'])}</title><style>{CSS}</style></head><body>",
        "<header id='top'><h1>earshot cross-validation report</h1>",
        f"<p class='meta'>model <code>{e(result['model'])}</code> on <code>{e(result['data'])}</code> · by "
        f"{e(result['by'])} · {result['n_clips']} labelled clips · seed {result['seed']} · written {created} by "
        f"earshot {e(__version__)}</p></header>",
        "<section id='summary'><h2>Random split and leave-one-out, side by side</h2>",
    ]
    if "leave-one-out" in result["schemes"]:
        lo, rs = result["schemes"]["leave-one-out"].get("pooled") or {}, result["schemes"]["random"].get("pooled") or {}
        parts.append(
            f"<p>On a random split of the same machines the model reaches AUC {fmt_metric(rs.get('auc'))}; on "
            f"{e(result['by'])}s it has never heard, AUC {fmt_metric(lo.get('auc'))} (pooled over folds). The gap "
            "(random minus leave-one-out) estimates how much a random split flatters the model on a machine it has "
            "never heard, which is what a deployment on a new machine meets.</p>")
    parts.append(_side_by_side(result))
    parts.append("<h3>Per group</h3>" + _by_group(result))
    try:
        parts.append(f"<figure><img src='{b64_png(auc_by_group_figure(result))}' alt='AUC per group'>"
                     "<figcaption>AUC on each group's clips: scored by models that heard other clips of the same "
                     "machine (random split) or never heard that machine (leave-one-out). The dotted line is "
                     "chance.</figcaption></figure>")
    except ImportError:  # matplotlib missing: the tables stay
        parts.append("<p class='missing'>no picture: matplotlib is not installed</p>")
    for note in result.get("notes") or []:
        parts.append(f"<p class='missing'>{e(note)}</p>")
    parts.append("</section>")
    for s in schemes:
        sc = result["schemes"][s]
        parts.append(f"<section id='folds-{s}'><h2>Folds: {e(sc['title'])}</h2>{_folds_table(s, sc)}</section>")
    parts.append("<section id='definitions'><h2>Definitions</h2><dl>")
    for key, text in (result.get("definitions") or {}).items():
        parts.append(f"<dt><b>{e(key)}</b></dt><dd>{e(str(text))}</dd>")
    params = json.dumps(result.get("params", {}))
    parts.append(f"<dt><b>detector parameters</b></dt><dd><code>{e(params)}</code></dd></dl></section>")
    parts.append("<footer><p class='meta'>The same numbers, with every fold's training, validation and test "
                 "clips, are in <code>cv.json</code>. <a href='#top'>back to top</a></p></footer></body></html>")
    return "\n".join(parts)


def write_cv_report(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/cv.html`` (self-contained) and ``out_dir/cv.json``; return the HTML path.

    Each file appears complete or not at all.
    """
    out = report_folder(out_dir)
    return write_page(out, "cv", render_cv_html(result), cv_json(result))


# ---------------------------------------------------------------------- model comparison
def compare_roc_figure(result: dict[str, Any]) -> bytes:
    """ROC curves of every compared model per group on the common clips (one panel per group, up to 6)."""
    palette = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
    groups = list(result["groups"])[:6]
    fig = agg_figure(4.0 * min(3, len(groups)), 3.8 * ((len(groups) + 2) // 3))
    axes = np.atleast_1d(fig.subplots((len(groups) + 2) // 3, min(3, len(groups)), squeeze=False)).ravel()
    for ax, g in zip(axes, groups):
        clips = [c for c in result["clips"] if c["group"] == g]
        y = np.array([c["label"] for c in clips])
        ax.plot([0, 1], [0, 1], color="#999999", ls=":", label="chance")
        for colour, name in zip(palette, result["models"]):
            auc = result["groups"][g][name].get("auc")
            if len(np.unique(y)) == 2:
                fpr, tpr = roc_points(y, [c["scores"][name] for c in clips], drop_intermediate=False)
                ax.plot(fpr, tpr, color=colour, lw=2, label=f"{name} (AUC {fmt_metric(auc)})")
        ax.set_title(g)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[len(groups):]:
        ax.set_axis_off()
    fig.tight_layout()
    return png_bytes(fig)


def render_compare_html(result: dict[str, Any]) -> str:
    """The comparison page (what :func:`earshot.pipeline.compare.compare_models` returns) as one HTML string."""
    e = html.escape
    names = result["models"]
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    head = ("<tr><th class='name'>group</th><th class='name'>model</th>" + "".join(f"<th>{h}</th>" for _, h in METRICS)
            + "<th>TP</th><th>FP</th><th>TN</th><th>FN</th><th>threshold</th></tr>")
    rows = []
    for g, per_model in result["groups"].items():
        for n in names:
            m = per_model[n]
            rows.append(f"<tr data-group='{e(g)}' data-model='{e(n)}'><td class='name'>{e(g)}</td><td class='name'>"
                        f"{e(n)}</td>{_cells(m)}" + "".join(f"<td>{m.get(k)}</td>" for k in ("tp", "fp", "tn", "fn"))
                        + f"<td>{fmt_threshold(m.get('threshold'))}</td></tr>")
    for label in ("mean", "hmean"):
        for n in names:
            rows.append(f"<tr class='summary' data-group='{label}' data-model='{e(n)}'><td class='name'>{label}</td>"
                        f"<td class='name'>{e(n)}</td>{_cells(result[label][n])}" + "<td></td>" * 5 + "</tr>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>earshot model comparison</title><style>{CSS}</style></head><body>",
        "<header id='top'><h1>earshot model comparison</h1>",
        f"<p class='meta'>{len(names)} models on <code>{e(result['data'])}</code> · the same {result['n_clips']} "
        f"clips ({result['n_normal']} normal, {result['n_anomaly']} anomaly) · written {created} by earshot "
        f"{e(__version__)}</p></header>",
        "<section id='metrics'><h2>Metrics on the common test set</h2>",
        f"<table id='compare-table'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    if result.get("domains"):
        parts.append(domain_section(result["groups"], result["domains"], names))
    try:
        parts.append(f"<figure><img src='{b64_png(compare_roc_figure(result))}' alt='ROC curves'><figcaption>ROC curves "
                     "of every model on the same clips, per group.</figcaption></figure>")
    except ImportError:
        parts.append("<p class='missing'>no picture: matplotlib is not installed</p>")
    parts.append("</section><section id='definitions'><h2>Definitions</h2><dl>")
    for key, text in (result.get("definitions") or {}).items():
        parts.append(f"<dt><b>{e(key)}</b></dt><dd>{e(str(text))}</dd>")
    for n, ex in result.get("excluded", {}).items():
        left = ", ".join(f"{k}: {v}" for k, v in ex.items() if v) or "none"
        parts.append(f"<dt><b>left out for {e(n)}</b></dt><dd>{e(left)}</dd>")
    parts.append("</dl></section><footer><p class='meta'>The same numbers are in <code>compare.json</code>.</p>"
                 "</footer></body></html>")
    return "\n".join(parts)


def write_compare_report(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/compare.html`` and ``out_dir/compare.json``; return the HTML path."""
    out = report_folder(out_dir)
    return write_page(out, "compare", render_compare_html(result), cv_json(result))
