"""Drift statistics: has a machine's recent sound moved away from what its model was trained on?

Pure numpy. A drift check compares a recent window of clip scores with the model's reference
normal scores (the held-out / cross-fit calibration scores a bundle keeps), and optionally
counts the team's rejected false alarms in that window:

- **Score distribution**: the two-sample Kolmogorov-Smirnov statistic ``D`` between the recent
  scores and the reference scores. Its threshold is the ``1 - alpha`` quantile of ``D`` between
  a reference-sized and a window-sized sample of one and the same distribution, drawn
  :data:`N_NULL_DRAWS` times with a fixed seed (``D`` is rank-based, so that null does not depend
  on the distribution: no labels and no recent data enter the threshold).
- **Rejected false alarms**: under no drift, a normal clip exceeds the model threshold with the
  reference exceedance rate ``p0``; ``k`` rejected alarms out of ``n`` window clips is evidence
  of drift when the binomial upper tail ``P(K >= k | n, p0)`` is below ``alpha``.

With both, each is tested at ``alpha / 2`` (Bonferroni), so the false drift alarm rate stays at
most ``alpha`` for a steady machine whose scores are exchangeable with the reference ones.

Per-mel-band level shifts (:func:`band_shifts`) say *what* moved; they are descriptive and do
not enter the decision.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from earshot.errors import ParameterError

__all__ = ["N_NULL_DRAWS", "DriftResult", "band_shifts", "binomial_tail", "check_alpha", "drift_test", "ks_statistic", "ks_threshold"]

#: Monte-Carlo draws behind a KS threshold.
N_NULL_DRAWS = 2000

#: Fewest recent clips a drift check accepts.
MIN_WINDOW = 5


def check_alpha(alpha: float) -> float:
    """Raise :class:`ParameterError` unless ``0 < alpha < 1``; return it as a float."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ParameterError(f"alpha: expected a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < value < 1.0:
        raise ParameterError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    return value


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    Parameters
    ----------
    a, b : array-like, shape (n,) and (m,)
        Samples (non-empty, finite).

    Returns
    -------
    float
        ``D`` in [0, 1].
    """
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


@functools.lru_cache(maxsize=256)
def _null_quantiles(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n, m])
    values = np.empty(N_NULL_DRAWS)
    for i in range(N_NULL_DRAWS):
        values[i] = ks_statistic(rng.random(n), rng.random(m))
    values.sort()
    values.flags.writeable = False
    return values


def ks_threshold(n: int, m: int, alpha: float, *, seed: int = 0) -> float:
    """The ``1 - alpha`` quantile of the KS statistic between samples of sizes ``n`` and ``m``
    of one distribution (Monte Carlo, :data:`N_NULL_DRAWS` seeded draws; cached)."""
    alpha = check_alpha(alpha)
    if n < 1 or m < 1:
        raise ParameterError(f"sample sizes must be >= 1, got n={n}, m={m}")
    return float(np.quantile(_null_quantiles(int(n), int(m), int(seed)), 1.0 - alpha, method="higher"))


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(K >= k)`` for ``K ~ Binomial(n, p)`` (exact, summed in log space)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * math.log(p) + (n - j) * math.log1p(-p)
            for j in range(k, n + 1)]
    top = max(logs)
    return float(min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs)))


@dataclass
class DriftResult:
    """The outcome of :func:`drift_test` (JSON-safe through :meth:`to_dict`).

    Attributes
    ----------
    score, threshold : float
        The KS statistic ``D`` of recent vs reference scores, and its calibrated threshold.
    drifted : bool
        ``score > threshold``, or the rejected false alarms are significantly too many.
    alpha : float
        The false drift alarm rate the thresholds are set for.
    n_recent, n_reference : int
    mean_shift : float
        (mean of recent scores - mean of reference scores) / std of reference scores; positive:
        scores crept up (more false alarms), negative: the model is going deaf.
    exceed_rate_recent, exceed_rate_reference : float
        Share of clips above the model threshold, recent and reference.
    n_rejected : int or None
        Rejected false alarms in the window (None: not known).
    rejected_p_value : float or None
        ``P(K >= n_rejected)`` under no drift.
    reasons : list of str
        Why it is drifted (empty when not).
    """

    score: float
    threshold: float
    drifted: bool
    alpha: float
    n_recent: int
    n_reference: int
    mean_shift: float
    exceed_rate_recent: float
    exceed_rate_reference: float
    n_rejected: Optional[int] = None
    rejected_p_value: Optional[float] = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(values, name: str, least: int) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) < least:
        raise ParameterError(f"{name}: expected at least {least} scores, got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"{name}: scores must be finite")
    return x


def drift_test(recent: np.ndarray, reference: np.ndarray, *, model_threshold: float, alpha: float = 0.01,
               n_rejected: Optional[int] = None) -> DriftResult:
    """Test whether recent clip scores drifted from the reference normal scores.

    Parameters
    ----------
    recent : array-like, shape (n,)
        Clip scores of the recent window (confirmed anomalies left out: a fault is not drift).
    reference : array-like, shape (m,)
        The model's reference normal scores (held-out or cross-fit, never in-sample).
    model_threshold : float
        The model's anomaly threshold (for exceedance rates and the false-alarm test).
    alpha : float
        False drift alarm rate of a steady machine (0 < alpha < 1).
    n_rejected : int, optional
        How many clips of the window the team rejected as false alarms.

    Returns
    -------
    DriftResult
    """
    alpha = check_alpha(alpha)
    recent = _finite(recent, "recent", MIN_WINDOW)
    reference = _finite(reference, "reference", 2)
    if n_rejected is not None and not 0 <= int(n_rejected) <= len(recent):
        raise ParameterError(f"n_rejected: expected 0..{len(recent)}, got {n_rejected}")
    level = alpha / 2 if n_rejected is not None else alpha
    d = ks_statistic(recent, reference)
    d_max = ks_threshold(len(recent), len(reference), level)
    reasons = []
    if d > d_max:
        reasons.append(f"score distribution moved (KS D={d:.3f} > {d_max:.3f})")
    sd = float(np.std(reference, ddof=1)) or 1e-12
    p0 = float(np.mean(reference > model_threshold))
    # a reference with no exceedance at all still allows the model's nominal rate of one clip in m + 1
    p0_test = max(p0, 1.0 / (len(reference) + 1))
    p_rej = None
    if n_rejected is not None:
        p_rej = binomial_tail(int(n_rejected), len(recent), p0_test)
        if p_rej < level:
            reasons.append(f"{n_rejected} rejected false alarms in {len(recent)} clips, "
                           f"{p0_test * len(recent):.1f} expected (p={p_rej:.2g})")
    return DriftResult(
        score=d, threshold=d_max, drifted=bool(reasons), alpha=float(alpha), n_recent=len(recent),
        n_reference=len(reference), mean_shift=float((recent.mean() - reference.mean()) / sd),
        exceed_rate_recent=float(np.mean(recent > model_threshold)), exceed_rate_reference=p0,
        n_rejected=None if n_rejected is None else int(n_rejected), rejected_p_value=p_rej, reasons=reasons)


def band_shifts(recent: np.ndarray, reference_mean: np.ndarray, reference_sd: Optional[np.ndarray] = None, *,
                edges_hz: Optional[np.ndarray] = None, top: int = 5) -> list[dict[str, Any]]:
    """The mel bands whose level moved most, recent vs training.

    Parameters
    ----------
    recent : array-like, shape (n_clips, n_mels)
        Per-clip mean log-mel level (dB) of each band, recent clips.
    reference_mean : array-like, shape (n_mels,)
        Training mean level of each band (dB).
    reference_sd : array-like, shape (n_mels,), optional
        Clip-to-clip standard deviation of the band levels in training; when given the bands
        are ranked by the shift in those units (``z``), else by the shift in dB.
    edges_hz : array-like, shape (n_mels + 2,), optional
        Mel band edges: band ``i`` spans ``edges_hz[i]`` to ``edges_hz[i + 2]``.
    top : int
        How many bands to return.

    Returns
    -------
    list of dict
        ``band, lo_hz, hi_hz, shift_db`` (and ``z``), largest move first.
    """
    recent = np.asarray(recent, dtype=np.float64)
    mean = np.asarray(reference_mean, dtype=np.float64)
    if recent.ndim != 2 or recent.shape[1] != len(mean):
        raise ParameterError(f"recent: expected (n_clips, {len(mean)}) band levels, got shape {recent.shape}")
    shift = recent.mean(axis=0) - mean
    z = None if reference_sd is None else shift / np.maximum(np.asarray(reference_sd, dtype=np.float64), 1e-3)
    order = np.argsort(-np.abs(z if z is not None else shift), kind="stable")[:top]
    out = []
    for i in order:
        row: dict[str, Any] = {"band": int(i), "shift_db": round(float(shift[i]), 2)}
        if edges_hz is not None:
            row["lo_hz"], row["hi_hz"] = round(float(edges_hz[i])), round(float(edges_hz[i + 2]))
        if z is not None:
            row["z"] = round(float(z[i]), 2)
        out.append(row)
    return out
