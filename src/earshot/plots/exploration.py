"""Pictures of the data: example waveforms, spectrograms, mean spectra, channel levels, clip counts.

Each function returns PNG bytes; matplotlib is imported lazily (see :mod:`earshot.plots._common`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earshot.features.mel import mel_filterbank
from earshot.plots._common import CMAP, COLORS, LABEL_NAMES, _n, _note, agg_figure, hz_label, png_bytes

__all__ = [
    "channel_energy",
    "clip_counts",
    "mean_spectrum",
    "mel_band_centres",
    "spectrogram_grid",
    "waveforms",
]


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
    fig = agg_figure(9, 0.5 + 1.25 * n)
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
    return png_bytes(fig)


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
    fig = agg_figure(panel_size[0] * ncols + 0.6, 0.6 + panel_size[1] * nrows)
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
            ax.set_yticklabels([hz_label(hz[i]) for i in ticks])
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
    return png_bytes(fig)


def mel_band_centres(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Centre frequency (Hz) of each band of earshot's mel filterbank, to label mel axes."""
    W = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).toarray()
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return (W * freqs).sum(axis=1) / np.maximum(W.sum(axis=1), 1e-12)


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
    fig = agg_figure(8, 4)
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
    ax.set_xticklabels([hz_label(mel_hz[i]) for i in ticks])
    ax.set_xlabel("frequency (Hz, mel scale)")
    ax.set_ylabel("log-mel power (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if not spectra:
        _note(ax, "no clips")
    else:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return png_bytes(fig)


def channel_energy(energies: Mapping[str, np.ndarray], *, title: str) -> bytes:
    """Mean RMS level per channel (dBFS) per label, whiskers one standard deviation across clips.

    Parameters
    ----------
    energies : mapping
        Label name -> array ``(n_clips, n_channels)`` of RMS levels in dBFS.
    """
    fig = agg_figure(8, 3.8)
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
    return png_bytes(fig)


def clip_counts(counts: Mapping[str, Mapping[str, int]], *, title: str) -> bytes:
    """Horizontal stacked bars: clips per group and label.

    Parameters
    ----------
    counts : mapping
        Group name -> ``{"normal": n, "anomaly": n, "unknown": n}``.
    """
    groups = list(counts)
    fig = agg_figure(9, 1.6 + 0.35 * max(1, len(groups)))
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
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib is optional (see agg_figure)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)
