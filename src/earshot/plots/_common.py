"""Shared figure machinery of :mod:`earshot.plots`: palette, Agg figures, PNG bytes, axis helpers.

matplotlib is imported inside the functions, with the Agg backend and without pyplot (no global
figure registry), so importing this module is cheap and memory stays flat however many figures
are drawn. The public helpers (:func:`agg_figure`, :func:`png_bytes`, :func:`hz_label`) are also
what the pages of :mod:`earshot.reports` draw their own figures with, through :mod:`earshot.plots`.
"""

from __future__ import annotations

import io

from earshot.errors import EarshotError

__all__ = [
    "CMAP",
    "COLORS",
    "DPI",
    "LABEL_NAMES",
    "PlotsUnavailable",
    "agg_figure",
    "hz_label",
    "png_bytes",
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


def agg_figure(width: float, height: float, **kwargs):
    """A new matplotlib Figure on an Agg canvas (no pyplot state), ``width`` x ``height`` inches."""
    try:
        # deferred: matplotlib is an optional extra, loaded only when a picture is drawn
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred with matplotlib
        from matplotlib.figure import Figure  # deferred with matplotlib
    except ImportError as exc:  # pragma: no cover - the dev install has matplotlib
        raise PlotsUnavailable(
            f"pictures need matplotlib, which is not installed ({exc}); pip install 'earshot[plots]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
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
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib is optional (see agg_figure)

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _note(ax, text: str) -> None:
    """Write a centred message on an empty axis (what is missing, and why)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def hz_label(hz: float) -> str:
    """A frequency as an axis label: ``440``, ``1.5k``."""
    return f"{hz / 1000:.1f}k" if hz >= 1000 else f"{hz:.0f}"
