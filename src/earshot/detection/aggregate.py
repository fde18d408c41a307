"""From per-window scores to one clip score (numpy only, shared by training and scoring)."""

from __future__ import annotations

import numpy as np

from earshot.errors import ParameterError

__all__ = ["parse_aggregate", "aggregate"]

_FORMS = "'mean', 'max' or 'quantile:q' with 0 < q <= 1"


def parse_aggregate(spec: str) -> tuple[str, float | None]:
    """Parse an aggregation spec (``mean``, ``max``, ``quantile:0.9``) into (method, q)."""
    text = str(spec).strip().lower()
    if text in ("mean", "max"):
        return text, None
    if text.startswith("quantile:"):
        try:
            q = float(text.split(":", 1)[1])
        except ValueError:
            q = float("nan")
        if 0.0 < q <= 1.0:
            return "quantile", q
    raise ParameterError(f"aggregate: expected {_FORMS}, got {spec!r}")


def aggregate(window_scores: np.ndarray, spec: str = "mean") -> float:
    """One clip score from its window scores.

    Parameters
    ----------
    window_scores : np.ndarray
        Shape ``(n_windows,)``, higher = more anomalous.
    spec : str
        ``mean`` (the DCASE baseline), ``max`` or ``quantile:q``.

    Returns
    -------
    float
    """
    method, q = parse_aggregate(spec)
    w = np.asarray(window_scores, dtype=np.float64)
    if w.size == 0:
        raise ParameterError("window_scores: expected at least one window, got none")
    if method == "mean":
        return float(w.mean())
    if method == "max":
        return float(w.max())
    return float(np.quantile(w, q))
