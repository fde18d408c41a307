"""Pictures for people: every figure earshot draws, returned as PNG bytes.

An edge module (nothing in the core imports it). matplotlib is imported inside the functions,
with the Agg backend and without pyplot (no global figure registry), so ``import
earshot.plots`` is cheap and memory stays flat however many figures are drawn.

Conventions: every figure has a title, axis labels with units and a legend when it shows more
than one series. Colours come from the Okabe–Ito palette (readable with the common forms of
colour blindness): normal clips blue, anomalous clips vermillion, unlabelled clips green;
spectrograms use viridis.

Layout: :mod:`earshot.plots._common` (palette, figure and PNG helpers shared by every picture;
:func:`agg_figure`, :func:`png_bytes` and :func:`hz_label` are public, for the pages of
:mod:`earshot.reports` that draw their own figures), :mod:`earshot.plots.exploration` (pictures of
the data), :mod:`earshot.plots.evaluation` (pictures of a model's results) and
:mod:`earshot.plots.timeline` (the timeline of a long recording).
"""

from __future__ import annotations

from earshot.plots._common import (
    CMAP,
    COLORS,
    DPI,
    LABEL_NAMES,
    PlotsUnavailable,
    agg_figure,
    hz_label,
    png_bytes,
)
from earshot.plots.evaluation import (
    confusion_matrix,
    loss_curves,
    roc_curve,
    score_histogram,
    sweep,
    threshold_sweep,
)
from earshot.plots.exploration import (
    channel_energy,
    clip_counts,
    mean_spectrum,
    mel_band_centres,
    spectrogram_grid,
    waveforms,
)

__all__ = [
    "CMAP",
    "COLORS",
    "DPI",
    "LABEL_NAMES",
    "PlotsUnavailable",
    "agg_figure",
    "channel_energy",
    "clip_counts",
    "confusion_matrix",
    "hz_label",
    "loss_curves",
    "mean_spectrum",
    "mel_band_centres",
    "png_bytes",
    "roc_curve",
    "score_histogram",
    "spectrogram_grid",
    "sweep",
    "threshold_sweep",
    "waveforms",
]
