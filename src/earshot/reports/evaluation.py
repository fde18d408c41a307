"""The evaluation report: one self-contained HTML file (and the same numbers as JSON).

:func:`write_report` turns the dict returned by :func:`earshot.pipeline.evaluate` into
``report.html`` — the per-group metrics table with mean and harmonic-mean rows, and per group
the score histograms with the threshold, the threshold sweep, the ROC curve with the pAUC
region, the confusion matrix, the most anomalous clips with their log-mel spectrograms and the
training loss curves — plus ``report.json``, byte for byte what ``earshot evaluate --json``
writes. Images are embedded as base64 PNG data URIs; the page needs no network, no external
CSS and no JavaScript, so it can be mailed.

An edge module: it uses :mod:`earshot.plots` (matplotlib); nothing in the core imports it.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

from earshot import __version__, plots
from earshot.detection.thresholds import spec_parts
from earshot.errors import EarshotError, ParameterError
from earshot.evaluation.metrics import to_jsonable
from earshot.features.extract import file_log_mel
from earshot.reports.domain_tables import domain_section
from earshot.reports.format import fmt_metric, fmt_threshold, is_finite_number
from earshot.reports.html import CSS, b64_png, report_folder, slug, write_page

__all__ = ["write_report", "report_json", "render_html", "METRIC_COLUMNS", "fmt_metric", "fmt_threshold"]

#: (key, heading) of the metric columns of the table, in order.
METRIC_COLUMNS = (
    ("auc", "AUC"), ("pauc", "pAUC"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
    ("accuracy", "accuracy"),
)
COUNT_COLUMNS = (("tp", "TP"), ("fp", "FP"), ("tn", "TN"), ("fn", "FN"), ("n_normal", "normal clips"),
                 ("n_anomaly", "anomaly clips"))
#: Clips shown in the "most anomalous" section of each group.
TOP_K = 5

_SOURCES = {
    "validation": "fitted on held-out normal clips",
    "train": "fitted on training clips, in-sample",
    "validation-f1": "F1-optimal on the labelled validation split (asked for with --threshold f1)",
    "train-f1": "F1-optimal on the labelled training clips (asked for with --threshold f1)",
}


def describe_method(method: str | None) -> str:
    """A plain-words description of a threshold method string (``gamma:0.9`` ...)."""
    if not method:
        return "unknown method"
    name, arg = spec_parts(method)
    arg = arg or ""
    return {
        "gamma": f"gamma distribution fitted to normal scores, quantile {arg}",
        "percentile": f"{arg}th percentile of normal scores",
        "mean-std": f"mean + {arg} standard deviations of normal scores",
        "max": "highest normal score",
        "value": f"fixed value {arg}",
    }.get(name, str(method))


def describe_source(source: str | None, n_clips: int | None = None) -> str:
    """``validation`` -> "fitted on held-out normal clips (n)"; ``train`` -> "... training clips"."""
    text = _SOURCES.get(str(source), f"fitted on {source}" if source else "fitted on normal clips")
    return f"{text} ({n_clips} clips)" if n_clips else text


def missing_classes(group: dict[str, Any]) -> list[str]:
    """What a group lacks, in words: ``["no anomaly clips: AUC undefined", ...]``."""
    notes = []
    if not group.get("n_anomaly"):
        notes.append("no anomaly clips: AUC undefined, pAUC undefined; recall and F1 are 0 by convention "
                     "(nothing to catch)")
    if not group.get("n_normal"):
        notes.append("no normal clips: AUC undefined, pAUC undefined; no false positive is possible")
    return notes


def report_json(report: dict[str, Any]) -> str:
    """The report as JSON text, exactly as ``earshot evaluate --json`` writes it."""
    return json.dumps(to_jsonable(report), indent=2)


# ---------------------------------------------------------------------- pictures of one group
def _top_clips(name: str, group: dict[str, Any], bundle, k: int, rel) -> tuple[list[dict], bytes | None, list[str]]:
    """The ``k`` highest-scoring clips and one figure of their log-mel spectrograms."""
    clips = sorted(group.get("clips", []), key=lambda c: c["score"], reverse=True)[:k]
    f = bundle.features
    mel_hz = plots.mel_band_centres(sr=f.sr, n_fft=f.n_fft, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    thr = float(group["threshold"])
    panels, errors = [], []
    for rank, c in enumerate(clips, start=1):
        verdict = "> threshold, flagged" if c["score"] > thr else "<= threshold, not flagged"
        label = {0: "normal", 1: "anomaly"}.get(c.get("label"), "unknown")
        try:
            S = file_log_mel(c["path"], f, channel=bundle.channel)
        except EarshotError as exc:
            errors.append(str(exc))
            continue
        panels.append({"S_db": S, "kind": "mel", "mel_hz": mel_hz,
                       "title": f"#{rank}  {rel(c['path'])}  —  true label: {label};  score {c['score']:.4g} {verdict}"})
    png = None
    if panels:
        png = plots.spectrogram_grid(panels, sr=f.sr, hop_length=f.hop_length, ncols=1, panel_size=(10.0, 2.0),
                                     title=f"{name}: the {len(panels)} most anomalous clips — log-mel "
                                           f"({f.n_mels} bands, as the model sees them)")
    return clips, png, errors


def _group_figures(name: str, g: dict[str, Any], bundle) -> dict[str, bytes]:
    clips = g.get("clips", [])
    labels = [c["label"] for c in clips]
    scores = [c["score"] for c in clips]
    thr = float(g["threshold"])
    fitted = bundle.manifest.get("fitted", {}) if bundle is not None else {}
    source = g.get("threshold_source")
    ref = fitted.get("calibration_scores") or None
    ref_label = ("held-out normal clips the threshold was fitted on" if source == "validation"
                 else "training clips the threshold was fitted on")
    figs = {
        "hist": plots.score_histogram(labels, scores, thr, reference=ref, reference_label=ref_label,
                                      title=f"{name}: anomaly scores of the evaluation clips"),
        "sweep": plots.threshold_sweep(labels, scores, thr, title=f"{name}: errors and metrics against the threshold"),
        "roc": plots.roc_curve(labels, scores, thr, auc=g.get("auc") if is_finite_number(g.get("auc")) else None,
                               pauc=g.get("pauc") if is_finite_number(g.get("pauc")) else None,
                               max_fpr=float(g.get("max_fpr") or 0.1), title=f"{name}: ROC curve"),
        "confusion": plots.confusion_matrix(int(g["tp"]), int(g["fp"]), int(g["tn"]), int(g["fn"]),
                                            title=f"{name}: confusion matrix at threshold {thr:.4g}"),
    }
    history = fitted.get("history")
    if history and history.get("loss"):
        figs["training"] = plots.loss_curves(history, title=f"{name}: training loss per epoch")
    return figs


# ---------------------------------------------------------------------- HTML
def _img(png: bytes, alt: str, caption: str) -> str:
    return (f"<figure><img src='{b64_png(png)}' alt='{html.escape(alt)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _metrics_table(report: dict[str, Any], sources: dict[str, str]) -> str:
    e = html.escape
    head = ("<tr><th class='name'>group</th>" + "".join(f"<th>{h}</th>" for _, h in METRIC_COLUMNS)
            + "".join(f"<th>{h}</th>" for _, h in COUNT_COLUMNS)
            + "<th>threshold</th><th class='name'>how the threshold was chosen</th></tr>")
    rows = []
    for name, g in report["groups"].items():
        cells = []
        for key, _ in METRIC_COLUMNS:
            v = g.get(key)
            why = "" if is_finite_number(v) else f" title='{e('; '.join(missing_classes(g)) or 'undefined')}'"
            cells.append(f"<td data-key='{key}'{why}>{fmt_metric(v)}</td>")
        cells += [f"<td data-key='{key}'>{int(g.get(key, 0))}</td>" for key, _ in COUNT_COLUMNS]
        cells.append(f"<td data-key='threshold'>{fmt_threshold(g.get('threshold'))}</td>")
        cells.append(f"<td class='text' data-key='threshold_how'>{e(str(g.get('threshold_method')))}: "
                     f"{e(describe_method(g.get('threshold_method')))}; {e(sources[name])}</td>")
        rows.append(f"<tr data-group='{e(name)}'><td class='name'><a href='#group-{slug(name)}'>{e(name)}</a></td>"
                    + "".join(cells) + "</tr>")
    n_blank = len(COUNT_COLUMNS) + 2
    for key, label in (("mean", "mean (arithmetic)"), ("hmean", "harmonic mean")):
        m = report.get(key, {})
        rows.append(f"<tr class='summary' data-group='{key}'><td class='name'>{label}</td>"
                    + "".join(f"<td data-key='{k}'>{fmt_metric(m.get(k))}</td>" for k, _ in METRIC_COLUMNS)
                    + "<td></td>" * n_blank + "</tr>")
    return f"<table id='metrics-table'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(report: dict[str, Any], model, *, data: str | os.PathLike | None = None,
                top_k: int = TOP_K) -> str:
    """The report page as one HTML string (images inline)."""
    e = html.escape
    groups = report.get("groups") or {}
    if not groups:
        raise ParameterError("report: expected at least one group in report['groups'], got none")
    bundles = getattr(model, "bundles", {}) or {}
    root = Path(data).resolve() if data is not None else None

    def rel(path: str) -> str:
        if root is not None:
            try:
                return str(Path(path).resolve().relative_to(root if root.is_dir() else root.parent))
            except ValueError:
                pass
        return str(path)

    sources = {}
    for name, g in groups.items():
        b = bundles.get(name)
        n = b.manifest.get("threshold", {}).get("n_clips") if b is not None else None
        sources[name] = describe_source(g.get("threshold_source"), n)

    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    model_path = getattr(model, "path", "")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>earshot evaluation: {e(str(model_path))}</title><style>{CSS}</style></head><body>",
        "<header id='top'><h1>earshot evaluation report</h1>",
        f"<p class='meta'>model <code>{e(str(model_path))}</code>"
        + (f" on data <code>{e(str(root))}</code>" if root is not None else "")
        + f" · {len(groups)} group(s) · written {created} by earshot {e(__version__)}</p></header>",
    ]
    # table of contents
    toc = ["<nav id='contents'><h2>Contents</h2><ul>", "<li><a href='#metrics'>Metrics per group</a></li>"]
    if report.get("domains"):
        toc.append("<li><a href='#domains'>Source and target domains</a></li>")
    toc.append("<li><a href='#definitions'>Definitions</a></li>")
    toc += [f"<li><a href='#group-{slug(n)}'>{e(n)}</a></li>" for n in groups]
    parts += toc + ["</ul></nav>"]

    # metrics
    m = report.get("mean", {})
    parts.append("<section id='metrics'><h2>Metrics per group</h2>")
    parts.append(
        f"<p>Anomaly-class precision, recall and F1 at each model's own threshold (a clip is flagged when its "
        f"score is above it), ROC AUC and pAUC (FPR ≤ {groups[next(iter(groups))].get('max_fpr', 0.1):g}). "
        f"Mean AUC {fmt_metric(m.get('auc'))}, mean pAUC {fmt_metric(m.get('pauc'))}, "
        f"mean F1 {fmt_metric(m.get('f1'))}. Means leave out undefined values.</p>")
    parts.append(_metrics_table(report, sources))
    notes = [f"<li><b>{e(n)}</b>: {e(t)}</li>" for n, g in groups.items() for t in missing_classes(g)]
    if notes:
        parts.append("<ul id='notes' class='missing'>" + "".join(notes) + "</ul>")
    parts.append("</section>")
    if report.get("domains"):
        parts.append(domain_section({n: {"model": g} for n, g in groups.items()}, {"model": report["domains"]},
                                     ["model"]))

    # definitions
    parts.append("<section id='definitions'><h2>Definitions</h2><dl>")
    for key, text in (report.get("definitions") or {}).items():
        parts.append(f"<dt><b>{e(key)}</b></dt><dd>{e(str(text))}</dd>")
    excluded = report.get("excluded") or {}
    left_out = ", ".join(f"{k}: {v}" for k, v in excluded.items() if v) or "none"
    parts.append(f"<dt><b>clips left out</b></dt><dd>{e(left_out)} (never scored: evaluation uses only "
                 f"labelled clips the model did not train on)</dd></dl></section>")

    # groups
    for name, g in groups.items():
        parts += _group_section(name, g, bundles.get(name), sources[name], top_k, rel)
    parts.append("<footer><p class='meta'>The same numbers are in <code>report.json</code>. "
                 "<a href='#top'>back to top</a></p></footer></body></html>")
    return "\n".join(parts)


def _group_section(name: str, g: dict[str, Any], bundle, source: str, top_k: int, rel) -> list[str]:
    """The parts of one group's section: numbers, pictures, most anomalous clips, training."""
    e = html.escape
    anchor = slug(name)
    parts: list[str] = []
    parts.append(f"<section id='group-{anchor}' class='group'><h2>{e(name)}</h2>")
    parts.append(
        f"<p>{int(g.get('n_normal', 0))} normal and {int(g.get('n_anomaly', 0))} anomaly clips. "
        f"Threshold {fmt_threshold(g.get('threshold'))} — {e(str(g.get('threshold_method')))} "
        f"({e(describe_method(g.get('threshold_method')))}), {e(source)}. "
        f"AUC {fmt_metric(g.get('auc'))}, pAUC {fmt_metric(g.get('pauc'))}, precision "
        f"{fmt_metric(g.get('precision'))}, recall {fmt_metric(g.get('recall'))}, F1 {fmt_metric(g.get('f1'))}.</p>")
    for t in missing_classes(g):
        parts.append(f"<p class='missing'>{e(t)}</p>")
    choice = g.get("auto_choice")
    if choice:  # --model auto: which detector this group got, and why (chosen on training normals only)
        parts.append(f"<p class='auto-choice'><b>auto chose {e(str(choice.get('chosen')))}</b>: "
                     f"{e(str(choice.get('reason') or ''))}</p>")
    figs = _group_figures(name, g, bundle)
    fitted_on = bool(bundle is not None and bundle.manifest.get("fitted", {}).get("calibration_scores"))
    parts.append(f"<section id='hist-{anchor}'><h3>Score histograms</h3>"
                 + _img(figs["hist"], f"{name} score histogram",
                        "Anomaly scores of normal and anomalous evaluation clips; the dashed line is the model's "
                        "threshold" + (", the grey outline the normal scores it was fitted on." if fitted_on else "."))
                 + "</section>")
    parts.append(f"<section id='sweep-{anchor}'><h3>Threshold sweep</h3>"
                 + _img(figs["sweep"], f"{name} threshold sweep",
                        "What another threshold would have given on these clips: false positives and false "
                        "negatives (top), precision, recall and F1 of the anomaly class (bottom). The model's "
                        "threshold was not chosen from these labels.") + "</section>")
    parts.append(f"<div class='pair'><section id='roc-{anchor}'><h3>ROC curve</h3>"
                 + _img(figs["roc"], f"{name} ROC",
                        "True against false positive rate over every threshold; the shaded area is the pAUC "
                        "region, the dot the model's operating point.") + "</section>")
    parts.append(f"<section id='confusion-{anchor}'><h3>Confusion matrix</h3>"
                 + _img(figs["confusion"], f"{name} confusion matrix",
                        "Counts at the model's threshold; the percentage is the share of the true class.")
                 + "</section></div>")
    parts.append(_top_section(name, anchor, g, bundle, top_k, rel))
    if "faults" in g:
        parts.append(_fault_section(anchor, g["faults"]))
    parts.append(f"<section id='training-{anchor}'><h3>Training</h3>")
    if "training" in figs:
        hist = bundle.manifest["fitted"]["history"]
        has_val = any(v is not None for v in hist.get("val_loss", []))
        held_out = "a held-out validation split" if bundle.manifest["model"]["kind"] == "cnn" else "held-out normal clips"
        caption = (f"Loss on the training clips and val_loss on {held_out} per epoch; the weights of "
                   f"epoch {hist.get('best_epoch')} (lowest val_loss) were kept." if has_val else
                   "Loss on the training clips per epoch (too few clips to hold any out: no val_loss); the "
                   "weights of the last epoch were kept.")
        parts.append(_img(figs["training"], f"{name} loss curves", caption))
    else:
        parts.append("<p class='missing'>no training history in the model.</p>")
    parts.append("</section></section>")
    return parts


def _fault_section(anchor: str, faults: dict[str, Any]) -> str:
    """Confusion matrix of fault types (:func:`earshot.pipeline.faults.leave_one_out_faults`)."""
    e = html.escape
    names, counts = faults["confusion"]["names"], faults["confusion"]["counts"]
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = "".join(f"<tr><td class='name'>{e(n)}</td>{''.join(f'<td>{int(v)}</td>' for v in row)}</tr>"
                   for n, row in zip(names, counts))
    return (f"<section id='faults-{anchor}'><h3>Fault types</h3><p>{faults['n_labelled']} anomalies with a fault type, "
            f"each answered by the signatures of the others (leave-one-out; nearest labelled clip on clip statistics, "
            f"'unlike any confirmed fault' beyond the threshold calibrated on the others): "
            f"{faults['accuracy']:.1%} right.</p><table class='fault-confusion'><thead><tr><th class='name'>labelled / "
            f"answer</th>{head}</tr></thead><tbody>{rows}</tbody></table></section>")


def _top_section(name: str, anchor: str, g: dict[str, Any], bundle, top_k: int, rel) -> str:
    e = html.escape
    out = [f"<section id='top-{anchor}'><h3>Most anomalous clips</h3>"]
    if bundle is None or not g.get("clips"):
        out.append("<p class='missing'>no clips to show.</p></section>")
        return "".join(out)
    clips, png, errors = _top_clips(name, g, bundle, top_k, rel)
    rows = "".join(
        f"<tr><td>{i}</td><td class='name'><code>{e(rel(c['path']))}</code></td>"
        f"<td class='name'>{ {0: 'normal', 1: 'anomaly'}.get(c.get('label'), 'unknown')}</td>"
        f"<td>{c['score']:.4g}</td><td class='name'>{'flagged' if c['score'] > g['threshold'] else 'not flagged'}</td></tr>"
        for i, c in enumerate(clips, start=1))
    out.append("<table><thead><tr><th>#</th><th class='name'>clip</th><th class='name'>true label</th>"
               f"<th>score</th><th class='name'>at threshold {fmt_threshold(g['threshold'])}</th></tr></thead>"
               f"<tbody>{rows}</tbody></table>")
    if png is not None:
        out.append(_img(png, f"{name} most anomalous clips", "Log-mel spectrograms of the clips above, as the model "
                                                              "sees them (same colour scale)."))
    for msg in errors:
        out.append(f"<p class='missing'>{e(msg)}</p>")
    out.append("</section>")
    return "".join(out)


def write_report(report: dict[str, Any], model, out_dir: str | os.PathLike, *,
                 data: str | os.PathLike | None = None, top_k: int = TOP_K) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/report.json``.

    Parameters
    ----------
    report : dict
        What :func:`earshot.pipeline.evaluate` returns.
    model : ModelSet
        The evaluated model set (its manifests give the threshold source, the normal scores
        the threshold was fitted on, the training history and the feature configuration).
    out_dir : path-like
        Folder to write into (created if needed). Each file appears complete or not at all.
    data : path-like, optional
        The evaluated data; clip paths are shown relative to it.
    top_k : int
        Most anomalous clips shown per group.

    Returns
    -------
    Path
        The HTML file.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ParameterError(f"top_k: expected an integer >= 1, got {top_k!r}")
    out = report_folder(out_dir)
    return write_page(out, "report", render_html(report, model, data=data, top_k=top_k), report_json(report))
