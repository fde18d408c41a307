"""Pictures of a model's results: score histograms, threshold sweep, ROC, confusion matrix, loss curves.

Each function returns PNG bytes; matplotlib is imported lazily (see :mod:`earshot.plots._common`).
A clip is anomalous when its ``score > threshold``, as in :mod:`earshot.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earshot.evaluation.metrics import roc_points
from earshot.plots._common import COLORS, _integer_y, _n, _note, agg_figure, png_bytes

__all__ = [
    "confusion_matrix",
    "loss_curves",
    "roc_curve",
    "score_histogram",
    "sweep",
    "threshold_sweep",
]


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
    from matplotlib.ticker import FuncFormatter, LogLocator  # deferred: matplotlib is optional (see agg_figure)

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
    fig = agg_figure(8, 3.8)
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
    return png_bytes(fig)


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
    fig = agg_figure(10, 6)
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
    return png_bytes(fig)


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
    fig = agg_figure(5.2, 5)
    ax = fig.subplots()
    if not normal.size or not anomaly.size:
        missing = "no anomaly clips" if not anomaly.size else "no normal clips"
        _note(ax, f"{missing}: ROC, AUC and pAUC undefined")
        ax.set_title(title)
        ax.set_xlabel("false positive rate (normal clips flagged)")
        ax.set_ylabel("true positive rate (anomalies caught)")
        fig.tight_layout()
        return png_bytes(fig)
    fpr, tpr = roc_points(labels, scores, drop_intermediate=False)
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
    return png_bytes(fig)


def confusion_matrix(tp: int, fp: int, tn: int, fn: int, *, title: str) -> bytes:
    """The 2 x 2 confusion matrix at the model threshold: counts and share of each true class."""
    m = np.array([[tn, fp], [fn, tp]], dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = agg_figure(5.6, 4.4)
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
    return png_bytes(fig)


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
    fig = agg_figure(7, 3.6)
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
    return png_bytes(fig)
