"""Pictures for people: every figure earshot draws, returned as PNG bytes.

An edge module (nothing in the core imports it). matplotlib is imported inside the functions,
with the Agg backend and without pyplot (no global figure registry), so ``import
earshot.plots`` is cheap and memory stays flat however many figures are drawn.

Conventions: every figure has a title, axis labels with units and a legend when it shows more
than one series. Colours come from the Okabe–Ito palette (readable with the common forms of
colour blindness): normal clips blue, anomalous clips vermillion, unlabelled clips green;
spectrograms use viridis.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earshot.errors import EarshotError

__all__ = [
    "COLORS",
    "PlotsUnavailable",
    "channel_energy",
    "clip_counts",
    "confusion_matrix",
    "loss_curves",
    "mean_spectrum",
    "mel_band_centres",
    "roc_curve",
    "score_histogram",
    "spectrogram_grid",
    "threshold_sweep",
    "waveforms",
]

#: Okabe–Ito colours by label name.
COLORS = {
    "normal": "#0072B2",  # blue
    "anomaly": "#D55E00",  # vermillion
    "unknown": "#009E73",  # bluish green
    "threshold": "#000000",
    "extra": "#E69F00",  # orange
    "grey": "#999999",
}
LABEL_NAMES = {0: "normal", 1: "anomaly", None: "unknown"}
DPI = 100
CMAP = "viridis"


class PlotsUnavailable(EarshotError, ImportError):
    """matplotlib is not installed (``pip install 'earshot[plots]'``)."""


def _figure(width: float, height: float, **kwargs):
    """A new matplotlib Figure on an Agg canvas (no pyplot state)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - the dev install has matplotlib
        raise PlotsUnavailable(
            f"pictures need matplotlib, which is not installed ({exc}); pip install 'earshot[plots]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    """Render ``fig`` to PNG bytes and free it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        fig.clear()
    return buf.getvalue()


def _n(count: int, noun: str) -> str:
    """``1 clip``, ``3 clips``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _integer_y(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _note(ax, text: str) -> None:
    """Write a centred message on an empty axis (what is missing, and why)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _envelope(y: np.ndarray, sr: int, n_bins: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time (s), min and max per bin: a faithful picture of a long signal in few points."""
    n = y.size
    if n <= 2 * n_bins:
        t = np.arange(n) / sr
        return t, y, y
    edges = np.linspace(0, n, n_bins + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    t = edges[:-1] / sr
    return t, lo, hi


# ---------------------------------------------------------------------- data pictures
def waveforms(examples: Sequence[Mapping[str, Any]], *, sr: int, title: str) -> bytes:
    """Example waveforms stacked one per row, coloured by label.

    Parameters
    ----------
    examples : sequence of mapping
        Each ``{"y": np.ndarray (n_samples,), "label": 0 | 1 | None, "name": str}``.
    sr : int
        Sample rate of every ``y`` in Hz.
    title : str
    """
    n = max(1, len(examples))
    fig = _figure(9, 0.5 + 1.25 * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    seen: set[str] = set()
    # one amplitude scale for every row, so loudness compares at a glance
    peak = max((float(np.max(np.abs(ex["y"]))) for ex in examples if len(ex["y"])), default=0.0)
    lim = max(peak * 1.1, 1e-3)
    for ax, ex in zip(axes, examples):
        label = LABEL_NAMES.get(ex.get("label"), "unknown")
        t, lo, hi = _envelope(np.asarray(ex["y"], dtype=np.float32), sr)
        legend = label if label not in seen else None
        seen.add(label)
        if lo is hi:
            ax.plot(t, lo, color=COLORS[label], lw=0.6, label=legend)
        else:
            ax.fill_between(t, lo, hi, color=COLORS[label], lw=0.3, label=legend)
        ax.set_ylabel("amplitude\n(full scale)", fontsize=8)
        ax.set_title(f"{label}: {ex.get('name', '')}", fontsize=9, loc="left")
        ax.set_ylim(-lim, lim)
        ax.tick_params(labelsize=8)
    if not examples:
        _note(axes[0], "no clips")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title)
    if len(seen) > 1:
        fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def spectrogram_grid(
    panels: Sequence[Mapping[str, Any]],
    *,
    sr: int,
    hop_length: int,
    title: str,
    ncols: int = 1,
    dynamic_range_db: float = 80.0,
    panel_size: tuple[float, float] = (4.8, 2.5),
) -> bytes:
    """Spectrograms (STFT or log-mel, in dB) in a grid; one colour bar per panel.

    Parameters
    ----------
    panels : sequence of mapping
        Each ``{"S_db": np.ndarray (n_bins, n_time), "kind": "stft" | "mel", "title": str}``;
        ``"mel"`` panels may give ``"mel_hz"`` (centre frequency of each band, Hz) to label
        the axis in Hz.
    sr, hop_length : int
        Sample rate (Hz) and hop (samples) of the frames: the time axis.
    title : str
    ncols : int
        Columns of the grid.
    panel_size : (float, float)
        Width and height of one panel in inches.
    dynamic_range_db : float
        Colour range below each panel's maximum.
    """
    n = max(1, len(panels))
    nrows = int(np.ceil(n / ncols))
    fig = _figure(panel_size[0] * ncols + 0.6, 0.6 + panel_size[1] * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    top: dict[str, float] = {}  # one colour scale per kind, so panels compare
    for p in panels:
        kind = p.get("kind", "mel")
        top[kind] = max(top.get(kind, -np.inf), float(np.max(p["S_db"])))
    for ax, p in zip(axes, panels):
        S = np.asarray(p["S_db"], dtype=np.float32)
        duration = S.shape[1] * hop_length / sr
        vmax = top[p.get("kind", "mel")]
        if p.get("kind") == "stft":
            extent = (0.0, duration, 0.0, sr / 2 / 1000.0)
            ylabel = "frequency (kHz)"
        else:
            extent = (0.0, duration, 0.0, float(S.shape[0]))
            ylabel = "mel band"
        im = ax.imshow(S, origin="lower", aspect="auto", cmap=CMAP, extent=extent,
                       vmin=vmax - dynamic_range_db, vmax=vmax, interpolation="nearest")
        if p.get("kind") != "stft" and p.get("mel_hz") is not None:
            hz = np.asarray(p["mel_hz"], dtype=float)
            ticks = np.linspace(0, S.shape[0] - 1, 5).round().astype(int)
            ax.set_yticks(ticks + 0.5)
            ax.set_yticklabels([_hz_label(hz[i]) for i in ticks])
            ylabel = "frequency (Hz, mel scale)"
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_title(p.get("title", ""), fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        cb = fig.colorbar(im, ax=ax, pad=0.01)
        cb.set_label("power (dB)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if not panels:
        _note(axes[0], "no clips")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def mel_band_centres(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Centre frequency (Hz) of each band of earshot's mel filterbank, to label mel axes."""
    from earshot.features.mel import mel_filterbank

    W = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).toarray()
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return (W * freqs).sum(axis=1) / np.maximum(W.sum(axis=1), 1e-12)


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:.1f}k" if hz >= 1000 else f"{hz:.0f}"


def mean_spectrum(
    mel_hz: np.ndarray,
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray, int]],
    *,
    title: str,
) -> bytes:
    """Mean log-mel spectrum per label with a band of ± one standard deviation across clips.

    Parameters
    ----------
    mel_hz : np.ndarray (n_mels,)
        Centre frequency of each mel band in Hz (the x axis, drawn on the mel scale).
    spectra : mapping
        Label name (``normal``, ``anomaly``, ``unknown``) -> ``(mean_db, std_db, n_clips)``.
    """
    fig = _figure(8, 4)
    ax = fig.subplots()
    x = np.arange(len(mel_hz))
    styles = {"normal": "-", "anomaly": "--", "unknown": ":"}
    for label, (mean, std, n) in spectra.items():
        color = COLORS.get(label, COLORS["extra"])
        ax.plot(x, mean, color=color, lw=1.5, ls=styles.get(label, "-"), label=f"{label} mean ({_n(n, 'clip')})")
        if n >= 2:  # one clip has no spread
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0,
                            label=f"{label} ± 1 std")
    ticks = np.linspace(0, len(mel_hz) - 1, 8).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([_hz_label(mel_hz[i]) for i in ticks])
    ax.set_xlabel("frequency (Hz, mel scale)")
    ax.set_ylabel("log-mel power (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if not spectra:
        _note(ax, "no clips")
    else:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def channel_energy(energies: Mapping[str, np.ndarray], *, title: str) -> bytes:
    """Mean RMS level per channel (dBFS) per label, whiskers one standard deviation across clips.

    Parameters
    ----------
    energies : mapping
        Label name -> array ``(n_clips, n_channels)`` of RMS levels in dBFS.
    """
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    labels = [k for k, v in energies.items() if len(v)]
    n_ch = max((np.asarray(energies[k]).shape[1] for k in labels), default=0)
    offset = 0.25 / max(1, len(labels))
    markers = {"normal": "o", "anomaly": "s", "unknown": "D"}
    for i, label in enumerate(labels):
        e = np.asarray(energies[label], dtype=float)
        x = np.arange(e.shape[1]) + (i - (len(labels) - 1) / 2) * offset
        ax.errorbar(x, e.mean(axis=0), yerr=e.std(axis=0), capsize=3, ls="-", lw=1, ms=6,
                    marker=markers.get(label, "o"), color=COLORS.get(label, COLORS["extra"]),
                    label=f"{label} ({_n(e.shape[0], 'clip')})")
    ax.set_xticks(np.arange(n_ch))
    ax.set_xticklabels([str(c) for c in range(n_ch)])
    ax.set_xlabel("channel (0-based)")
    ax.set_ylabel("RMS level (dBFS)")
    ax.margins(y=0.2)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if labels:
        ax.legend(fontsize=8, loc="best")
    else:
        _note(ax, "no multichannel clips")
    fig.tight_layout()
    return _png(fig)


def clip_counts(counts: Mapping[str, Mapping[str, int]], *, title: str) -> bytes:
    """Horizontal stacked bars: clips per group and label.

    Parameters
    ----------
    counts : mapping
        Group name -> ``{"normal": n, "anomaly": n, "unknown": n}``.
    """
    groups = list(counts)
    fig = _figure(9, 1.6 + 0.35 * max(1, len(groups)))
    ax = fig.subplots()
    y = np.arange(len(groups))
    left = np.zeros(len(groups))
    for label in ("normal", "anomaly", "unknown"):
        vals = np.array([counts[g].get(label, 0) for g in groups], dtype=float)
        if not vals.any():
            continue
        ax.barh(y, vals, left=left, color=COLORS[label], label=label)
        left += vals
    ax.set_yticks(y)
    ax.set_yticklabels(groups, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("clips (count)")
    ax.set_ylabel("machine / id")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------- evaluation pictures
def _split(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    return s[y == 0], s[y == 1]


def _log_scale(values: np.ndarray) -> bool:
    """Scores spread over more than a decade, all positive: draw them on a log axis."""
    v = values[np.isfinite(values)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > 10)


def _plain_log_axis(ax) -> None:
    """Log x axis with plain numbers (0.5, 1, 2, 5, 10) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _score_grid(values: np.ndarray, n: int, log: bool, pad: float = 0.05) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if log:
        span = np.log10(hi) - np.log10(lo)
        return np.logspace(np.log10(lo) - pad * span, np.log10(hi) + pad * span, n)
    if hi <= lo:
        return np.linspace(lo - 0.5, hi + 0.5, n)
    return np.linspace(lo - pad * (hi - lo), hi + pad * (hi - lo), n)


def score_histogram(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    *,
    title: str,
    reference: Sequence[float] | None = None,
    reference_label: str = "normal clips the threshold was fitted on",
) -> bytes:
    """Histograms of the anomaly score of normal and anomalous clips, threshold marked.

    ``reference`` (optional) adds the normal scores the threshold was fitted on, as an outline.
    """
    normal, anomaly = _split(labels, scores)
    ref = np.asarray(reference if reference is not None else [], dtype=float)
    every = np.concatenate([normal, anomaly, ref, [threshold]])
    log = _log_scale(every)
    bins = _score_grid(every, 41, log, pad=0.01)
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    if normal.size:
        ax.hist(normal, bins=bins, color=COLORS["normal"], alpha=0.6, label=f"normal ({_n(normal.size, 'clip')})")
    if anomaly.size:
        ax.hist(anomaly, bins=bins, color=COLORS["anomaly"], alpha=0.6, label=f"anomaly ({_n(anomaly.size, 'clip')})")
    if ref.size:
        ax.hist(ref, bins=bins, histtype="step", color=COLORS["grey"], lw=1.5, ls="-",
                label=f"{reference_label} ({ref.size})")
    ax.axvline(threshold, color=COLORS["threshold"], ls="--", lw=1.5, label=f"threshold = {threshold:.4g}")
    if log:
        _plain_log_axis(ax)
    ax.set_xlabel("anomaly score (higher = more anomalous)" + (", log scale" if log else ""))
    ax.set_ylabel("clips (count)")
    _integer_y(ax)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def sweep(labels: Sequence[int], scores: Sequence[float], thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """False positives, false negatives, precision, recall and F1 at each threshold
    (a clip is anomalous when ``score > threshold``; a ratio over zero is 0, as the metrics)."""
    y = np.asarray(labels)
    s = np.sort(np.asarray(scores, dtype=float)[y == 0]), np.sort(np.asarray(scores, dtype=float)[y == 1])
    normal, anomaly = s
    t = np.asarray(thresholds, dtype=float)
    fp = normal.size - np.searchsorted(normal, t, side="right")
    tp = anomaly.size - np.searchsorted(anomaly, t, side="right")
    fn = anomaly.size - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(anomaly.size > 0, tp / max(anomaly.size, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return {"threshold": t, "fp": fp, "fn": fn, "tp": tp, "precision": precision, "recall": recall, "f1": f1}


def threshold_sweep(labels: Sequence[int], scores: Sequence[float], threshold: float, *, title: str) -> bytes:
    """Two panels against the threshold: false positive and false negative counts; precision,
    recall and F1 of the anomaly class. The model's threshold is marked."""
    s = np.asarray(scores, dtype=float)
    every = np.r_[s, threshold]
    log = _log_scale(every)
    grid = np.unique(np.r_[_score_grid(every, 600, log), s, threshold])
    r = sweep(labels, s, grid)
    normal, anomaly = _split(labels, s)
    fig = _figure(10, 6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.step(grid, r["fp"], where="post", color=COLORS["normal"], lw=1.5,
             label=f"false positives\n(of {normal.size} normal)")
    ax1.step(grid, r["fn"], where="post", color=COLORS["anomaly"], ls="--", lw=1.5,
             label=f"false negatives\n(of {anomaly.size} anomalous)")
    ax1.set_ylabel("clips (count)")
    _integer_y(ax1)
    ax1.set_title(title)
    if anomaly.size:
        ax2.step(grid, r["precision"], where="post", color=COLORS["normal"], lw=1.5, label="precision")
        ax2.step(grid, r["recall"], where="post", color=COLORS["anomaly"], ls="--", lw=1.5, label="recall")
        ax2.step(grid, r["f1"], where="post", color=COLORS["unknown"], ls=":", lw=2, label="F1")
        ax2.set_ylim(-0.03, 1.03)
    else:
        ax2.text(0.5, 0.5, "no anomaly clips: recall and F1 undefined (nothing to catch)",
                 ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylabel("anomaly class (0–1)")
    ax2.set_xlabel("threshold on the anomaly score" + (" (log scale)" if log else ""))
    for ax in (ax1, ax2):
        ax.axvline(threshold, color=COLORS["threshold"], lw=1.2, ls="-.", label=f"model threshold\n= {threshold:.4g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if log:
            _plain_log_axis(ax)
    fig.tight_layout()
    return _png(fig)


def _roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    idx = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y == 1)[idx]
    fps = np.cumsum(y == 0)[idx]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    return fpr, tpr


def roc_curve(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    *,
    title: str,
    auc: float | None = None,
    pauc: float | None = None,
    max_fpr: float = 0.1,
) -> bytes:
    """ROC curve of the anomaly class with the pAUC region (FPR <= max_fpr) shaded and the
    operating point at the model threshold."""
    normal, anomaly = _split(labels, scores)
    fig = _figure(5.2, 5)
    ax = fig.subplots()
    if not normal.size or not anomaly.size:
        missing = "no anomaly clips" if not anomaly.size else "no normal clips"
        _note(ax, f"{missing}: ROC, AUC and pAUC undefined")
        ax.set_title(title)
        ax.set_xlabel("false positive rate (normal clips flagged)")
        ax.set_ylabel("true positive rate (anomalies caught)")
        fig.tight_layout()
        return _png(fig)
    fpr, tpr = _roc_points(labels, scores)
    ax.plot([0, 1], [0, 1], color=COLORS["grey"], ls=":", label="chance")
    auc_txt = "" if auc is None else f" (AUC = {auc:.3f})"
    ax.plot(fpr, tpr, color=COLORS["normal"], lw=2, drawstyle="default", label=f"ROC{auc_txt}")
    xs = np.r_[fpr[fpr < max_fpr], max_fpr]
    ys = np.interp(xs, fpr, tpr)
    pauc_txt = "" if pauc is None else f", pAUC = {pauc:.3f}"
    ax.fill_between(xs, 0, ys, color=COLORS["extra"], alpha=0.35, lw=0,
                    label=f"pAUC region, FPR ≤ {max_fpr:g}{pauc_txt}")
    ax.axvline(max_fpr, color=COLORS["extra"], lw=0.8)
    op_fpr = float(np.mean(normal > threshold))
    op_tpr = float(np.mean(anomaly > threshold))
    ax.plot([op_fpr], [op_tpr], "o", color=COLORS["anomaly"], ms=8,
            label=f"at the threshold: FPR {op_fpr:.2f}, TPR {op_tpr:.2f}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (normal clips flagged)")
    ax.set_ylabel("true positive rate (anomalies caught)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def confusion_matrix(tp: int, fp: int, tn: int, fn: int, *, title: str) -> bytes:
    """The 2 x 2 confusion matrix at the model threshold: counts and share of each true class."""
    m = np.array([[tn, fp], [fn, tp]], dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = _figure(5.6, 4.4)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    for i in range(2):
        for j in range(2):
            pct = f"{100 * share[i, j]:.0f} %" if rows[i, 0] > 0 else "–"
            ax.text(j, i, f"{int(m[i, j])}\n{pct}\n{names[i][j]}", ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["normal", "anomaly"])
    ax.set_yticks([0, 1])
    ax.set_yticklabels([f"normal\n{_n(int(rows[0, 0]), 'clip')}", f"anomaly\n{_n(int(rows[1, 0]), 'clip')}"])
    ax.set_xlabel("predicted (score > threshold)")
    ax.set_ylabel("true label")
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("share of the true class")
    fig.tight_layout()
    return _png(fig)


def loss_curves(history: Mapping[str, Any], *, title: str) -> bytes:
    """Training loss and validation loss per epoch, best epoch marked.

    Parameters
    ----------
    history : mapping
        ``{"loss": [...], "val_loss": [... or None], "best_epoch": int}`` (1-based epochs).
    """
    loss = [np.nan if v is None else float(v) for v in history.get("loss", [])]
    val = [np.nan if v is None else float(v) for v in history.get("val_loss", [])]
    best = history.get("best_epoch")
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    if not loss:
        _note(ax, "no training history in the model")
    else:
        epochs = np.arange(1, len(loss) + 1)
        marker = "o" if len(loss) <= 30 else None
        ax.plot(epochs, loss, color=COLORS["normal"], marker=marker, ms=3, label="loss (training clips)")
        if val and not np.all(np.isnan(val)):
            ax.plot(epochs[: len(val)], val, color=COLORS["anomaly"], ls="--", marker=marker, ms=3,
                    label="val_loss (held-out normal clips)")
        if best is not None and 1 <= int(best) <= len(loss):
            b = int(best)
            ax.axvline(b, color=COLORS["threshold"], ls=":", lw=1.2, label=f"best epoch = {b} (weights kept)")
            if b <= len(val) and np.isfinite(val[b - 1]):
                ax.plot([b], [val[b - 1]], "*", color=COLORS["threshold"], ms=12, zorder=5)
        finite = np.array([v for v in loss + val if np.isfinite(v)])
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        ax.legend(fontsize=8, loc="best")
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction loss (mean squared error)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
