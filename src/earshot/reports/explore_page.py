"""The page of ``earshot explore``: ``index.html`` over the summary and the PNGs beside it.

Unlike the evaluation pages, its pictures are separate files (a data set's pictures can be many),
so the page is small and the PNGs can be used on their own.
"""

from __future__ import annotations

import html
from typing import Any

from earshot.reports.html import file_slug

__all__ = ["index_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:.8em 0}
.warn{color:#a04000}.ok{color:#2a6f2a}code{background:#f4f4f4;padding:0 .2em}
"""


def _fmt_counter(c: dict[str, int]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(c.items())) or "–"


def index_html(summary: dict[str, Any]) -> str:
    """The exploration page (``index.html``) of a :func:`earshot.reports.explore.explore` summary;
    the PNGs it shows sit beside it."""
    e = html.escape
    rows = []
    for name, g in summary["groups"].items():
        d = g["duration_s"]
        dur = f"{d['min']:.2f}–{d['max']:.2f}" if d else "–"
        rows.append(
            f"<tr><td><a href='#{e(file_slug(name))}'>{e(name)}</a></td><td>{g['labels']['normal']}</td>"
            f"<td>{g['labels']['anomaly']}</td><td>{g['labels']['unknown']}</td><td>{dur}</td>"
            f"<td>{e(_fmt_counter(g['sr']))}</td><td>{e(_fmt_counter(g['channels']))}</td>"
            f"<td>{g['checked']}</td><td class='{'warn' if g['silent'] else 'ok'}'>{len(g['silent'])}</td>"
            f"<td class='{'warn' if g['clipping'] else 'ok'}'>{len(g['clipping'])}</td>"
            f"<td class='{'warn' if g['unreadable'] else 'ok'}'>{len(g['unreadable'])}</td></tr>"
        )
    a = summary["analysis"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>earshot explore: {e(summary['data'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Data set: <code>{e(summary['data'])}</code></h1>",
        f"<section id='summary'><p>{summary['n_clips']} clips in {summary['n_groups']} machine/id group(s): "
        f"{summary['labels']['normal']} normal, {summary['labels']['anomaly']} anomaly, "
        f"{summary['labels']['unknown']} unlabelled. Headers of every clip were read; audio of at most "
        f"{a['max_clips']} clips per group and label was decoded for the level checks and the mean spectra "
        f"(column <em>checked</em>). Spectra at {a['sr']} Hz, n_fft {a['n_fft']}, hop {a['hop_length']}, "
        f"{a['n_mels']} mel bands, channel {'mean of all' if a['channel'] is None else a['channel']}.</p>",
        "<table><tr><th>machine/id</th><th>normal</th><th>anomaly</th><th>unlabelled</th><th>duration (s)</th>"
        "<th>sample rate (Hz)</th><th>channels</th><th>checked</th><th>silent</th><th>clipping</th>"
        "<th>unreadable</th></tr>",
        *rows,
        "</table>",
    ]
    if summary.get("images", {}).get("clip_counts"):
        parts.append(f"<img src='{summary['images']['clip_counts']}' alt='clips per group and label'>")
    parts.append(f"<p>Checks: <b>silent</b> = {e(summary['checks']['silent'])}; <b>clipping</b> = "
                 f"{e(summary['checks']['clipping'])}.</p></section>")
    probs = summary["problems"]
    parts.append("<section id='problems'><h2>Problems</h2>")
    if not any(probs.values()):
        parts.append("<p class='ok'>No silent, clipping or unreadable clip among those checked.</p>")
    for kind in ("silent", "clipping"):
        if probs[kind]:
            parts.append(f"<h3 class='warn'>{kind} ({len(probs[kind])})</h3><ul>"
                         + "".join(f"<li><code>{e(p)}</code></li>" for p in probs[kind]) + "</ul>")
    if probs["unreadable"]:
        parts.append(f"<h3 class='warn'>unreadable ({len(probs['unreadable'])})</h3><ul>"
                     + "".join(f"<li>{e(u['error'])}</li>" for u in probs["unreadable"]) + "</ul>")
    parts.append("</section>")
    captions = {
        "waveforms": "Example waveforms (envelope of the samples), normal against abnormal.",
        "spectrograms": "One clip per label: STFT power (linear frequency) and log-mel (mel frequency).",
        "mean_spectrum": "Mean log-mel spectrum per label; the band is ± one standard deviation across clips.",
        "channel_energy": "RMS level of each channel; bars are means over clips, whiskers one standard deviation.",
    }
    for name, g in summary["groups"].items():
        parts.append(f"<section id='{e(file_slug(name))}' class='group'><h2>{e(name)}</h2>")
        d = g["duration_s"]
        parts.append(
            f"<p>{g['n_clips']} clips — labels: {e(_fmt_counter({k: v for k, v in g['labels'].items() if v}))}; "
            f"splits: {e(_fmt_counter(g['splits']))}; domains: {e(_fmt_counter(g['domains']))}; "
            + (f"durations {d['min']:.2f}–{d['max']:.2f} s (median {d['median']:.2f}); " if d else ""))
        if g["peak_dbfs_max"] is not None:
            parts.append(f"loudest peak {g['peak_dbfs_max']:.1f} dBFS, median RMS {g['rms_dbfs_median']:.1f} dBFS "
                         f"over {g['checked']} decoded clips.</p>")
        else:
            parts.append("no clip decoded.</p>")
        for key, cap in captions.items():
            if key in g.get("images", {}):
                parts.append(f"<figure><img src='{e(g['images'][key])}' alt='{e(name)} {key}'>"
                             f"<figcaption>{e(cap)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("<footer><p>Written by <code>earshot explore</code>; numbers in <code>summary.json</code>."
                 "</p></footer></body></html>")
    return "\n".join(parts)
