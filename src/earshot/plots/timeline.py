"""The timeline picture of a long recording: spectrogram on top, score against threshold below.

An edge module, like :mod:`earshot.plots` (whose figure helpers it uses): matplotlib is
imported only when the figure is drawn.
The spectrogram comes from :class:`earshot.timeline.SpectrogramSink`, so a file of hours is
drawn with flat memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earshot.plots._common import agg_figure, hz_label, png_bytes
from earshot.timeline.events import Event
from earshot.timeline.windows import WindowScore

__all__ = ["timeline_figure"]

EVENT_COLOR = "#D55E00"  # vermillion (Okabe-Ito), as anomalies elsewhere
TRUTH_COLOR = "#009E73"  # bluish green


def _spans(ax, events: Sequence[Event], color: str, alpha: float) -> None:
    for e in events:
        ax.axvspan(e.start_s, e.end_s, color=color, alpha=alpha, lw=0)


def _spectrogram_panel(fig, ax_s, cax, spectrogram, seconds_per_column, mel_hz, dynamic_range_db: float) -> None:
    """The spectrogram (top panel) with its dB colour bar, or a note that there is none."""
    if spectrogram is not None and spectrogram.size and seconds_per_column:
        S = np.asarray(spectrogram, dtype=np.float32)
        vmax = float(np.max(S))
        im = ax_s.imshow(S, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                         extent=(0.0, S.shape[1] * seconds_per_column, 0.0, float(S.shape[0])),
                         vmin=vmax - dynamic_range_db, vmax=vmax)
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("dB", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        if mel_hz is not None:
            ticks = np.linspace(0, S.shape[0] - 1, 5).round().astype(int)
            ax_s.set_yticks(ticks + 0.5)
            ax_s.set_yticklabels([hz_label(float(mel_hz[i])) for i in ticks])
            ax_s.set_ylabel("frequency (Hz)", fontsize=9)
        else:
            ax_s.set_ylabel("mel band", fontsize=9)
    else:
        cax.set_axis_off()
        ax_s.text(0.5, 0.5, "no spectrogram", ha="center", va="center", transform=ax_s.transAxes)


def timeline_figure(
    windows: Sequence[WindowScore],
    events: Sequence[Event],
    *,
    threshold: float,
    release: float | None = None,
    spectrogram: np.ndarray | None = None,
    seconds_per_column: float | None = None,
    mel_hz: np.ndarray | None = None,
    duration_s: float | None = None,
    verdict: dict[str, Any] | None = None,
    truth: Sequence[tuple[float, float]] | None = None,
    title: str = "",
    dynamic_range_db: float = 80.0,
) -> bytes:
    """Spectrogram (top) and window scores against the threshold (bottom), events shaded; PNG bytes.

    Parameters
    ----------
    windows : sequence of WindowScore
        The timeline; each score is drawn at its window's centre.
    events : sequence of Event
        Shaded in vermillion on both panels and numbered.
    threshold, release : float
        The event threshold (dashed) and the hysteresis level that closes events (dotted).
    spectrogram : np.ndarray, optional
        ``(n_mels, n_columns)`` in dB (:class:`SpectrogramSink`), ``seconds_per_column`` apart.
    mel_hz : np.ndarray, optional
        Centre frequency of each mel band, to label the spectrogram's axis in Hz.
    verdict : dict, optional
        :func:`earshot.timeline.verdict`'s result, shown in the title.
    truth : sequence of (start_s, end_s), optional
        Known fault times (synthetic data), drawn as a green bar above the scores.
    """
    fig = agg_figure(11.0, 6.6)
    gs = fig.add_gridspec(2, 2, height_ratios=[1.0, 1.15], width_ratios=[1.0, 0.018], hspace=0.08, wspace=0.02)
    ax_s = fig.add_subplot(gs[0, 0])
    ax_t = fig.add_subplot(gs[1, 0], sharex=ax_s)
    cax = fig.add_subplot(gs[0, 1])
    end = duration_s if duration_s is not None else (windows[-1].end_s if windows else 1.0)

    _spectrogram_panel(fig, ax_s, cax, spectrogram, seconds_per_column, mel_hz, dynamic_range_db)
    for e in events:
        ax_s.axvline(e.start_s, color=EVENT_COLOR, lw=1.2)
        ax_s.axvline(e.end_s, color=EVENT_COLOR, lw=1.2, ls="--")
    ax_s.tick_params(labelbottom=False, labelsize=8)
    ax_s.set_title("log-mel spectrogram; event start (solid) and end (dashed) lines", fontsize=9, loc="left")

    t = np.array([w.centre_s for w in windows])
    s = np.array([w.score for w in windows])
    _spans(ax_t, events, EVENT_COLOR, 0.18)
    if len(t):
        ax_t.plot(t, s, color="#0072B2", lw=0.9, label="window score")
        above = s > threshold
        if above.any():
            ax_t.plot(t[above], s[above], ".", color=EVENT_COLOR, ms=2.5, label="window above threshold")
    ax_t.axhline(threshold, color="black", ls="--", lw=1.1, label=f"threshold {threshold:.3f}")
    if release is not None and release < threshold:
        ax_t.axhline(release, color="#999999", ls=":", lw=1.1, label=f"event ends below {release:.3f}")
    top = max(float(s.max()) if s.size else threshold, threshold)
    bottom = min(float(s.min()) if s.size else threshold, release if release is not None else threshold)
    pad = 0.08 * (top - bottom if top > bottom else 1.0)
    ax_t.set_ylim(bottom - pad, top + 4 * pad)
    for n, e in enumerate(events, start=1):
        ax_t.text(0.5 * (e.start_s + e.end_s), top + 1.2 * pad, f"event {n}: {e.start_s:.1f}-{e.end_s:.1f} s",
                  ha="center", va="bottom", fontsize=8, color=EVENT_COLOR)
    if truth:
        for i, (a, b) in enumerate(truth):
            ax_t.plot([a, b], [top + 3.2 * pad] * 2, color=TRUTH_COLOR, lw=4, solid_capstyle="butt",
                      label="true fault (ground truth)" if i == 0 else None)
    ax_t.set_xlim(0.0, end)
    ax_t.set_xlabel("time (s)", fontsize=9)
    ax_t.set_ylabel("anomaly score", fontsize=9)
    ax_t.tick_params(labelsize=8)
    ax_t.legend(loc="upper left", bbox_to_anchor=(0.0, -0.17), fontsize=8, ncol=5, frameon=False)
    head = title
    if verdict is not None:
        found = "; ".join(f"event {n}: {e.start_s:.1f}-{e.end_s:.1f} s" for n, e in enumerate(events[:3], start=1))
        head = f"{title}: {verdict['verdict'].upper()}" if title else verdict["verdict"].upper()
        head += f" ({found}{'; ...' if len(events) > 3 else ''})" if events else ""
        fig.text(0.07, 0.012, "verdict: " + verdict["reason"], fontsize=8, ha="left", va="bottom", wrap=True)
    fig.suptitle(head, fontsize=11, x=0.01, ha="left")
    fig.subplots_adjust(left=0.07, right=0.95, top=0.91, bottom=0.17)
    return png_bytes(fig)
