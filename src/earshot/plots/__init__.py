"""Pictures for people: every figure earshot draws, returned as PNG bytes.

An edge module (nothing in the core imports it). matplotlib is imported inside the functions,
with the Agg backend and without pyplot (no global figure registry), so ``import
earshot.plots`` is cheap and memory stays flat however many figures are drawn.

Conventions: every figure has a title, axis labels with units and a legend when it shows more
than one series. Colours come from the Okabe–Ito palette (readable with the common forms of
colour blindness): normal clips blue, anomalous clips vermillion, unlabelled clips green;
spectrograms use viridis.

Layout: :mod:`earshot.plots._common` (palette, figure and PNG helpers shared by every picture,
and by :mod:`earshot.reports.crossval` and :mod:`earshot.plots.timeline`),
:mod:`earshot.plots.exploration` (pictures of the data) and :mod:`earshot.plots.evaluation`
(pictures of a model's results). Every name is importable from ``earshot.plots`` as before,
the private helpers other modules use included.
"""

from __future__ import annotations

from earshot.plots._common import (
    CMAP,
    COLORS,
    DPI,
    LABEL_NAMES,
    PlotsUnavailable,
    _figure,
    _hz_label,
    _integer_y,
    _n,
    _note,
    _png,
)
from earshot.plots.evaluation import (
    _log_scale,
    _plain_log_axis,
    _roc_points,
    _score_grid,
    _split,
    confusion_matrix,
    loss_curves,
    roc_curve,
    score_histogram,
    sweep,
    threshold_sweep,
)
from earshot.plots.exploration import (
    _envelope,
    channel_energy,
    clip_counts,
    mean_spectrum,
    mel_band_centres,
    spectrogram_grid,
    waveforms,
)

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
