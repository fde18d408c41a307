"""Decision thresholds learned from the anomaly scores of NORMAL training clips only.

A threshold is named by a spec string (the same in Python, config, CLI and bundle manifest):

=================  ============================================================================
``gamma:q``        DCASE baseline: ``scipy.stats.gamma.fit(scores)`` (shape, loc, scale), then
                   the fitted distribution's ``q`` quantile; ``q`` in (0, 1). ``gamma`` alone
                   means ``gamma:0.9``, the default of earshot and of the DCASE baseline.
``percentile:p``   ``numpy.percentile(scores, p)`` (linear interpolation); ``p`` in (0, 100].
``mean-std:k``     ``mean(scores) + k * std(scores)`` (population std, ``ddof=0``).
``max``            The largest training score (AMULET): no normal training clip is flagged.
``value:x``        The fixed value ``x``; no scores needed.
``f1``             Supervised detectors only (``ThresholdSpec.parse(spec, labelled=True)``):
                   the F1-optimal threshold on labelled scores (:func:`f1_optimal_threshold`),
                   used only when asked for.
=================  ============================================================================

A clip is anomalous when ``score > threshold`` (``decision_function = score - threshold``).
Everything here is deterministic: same scores, same threshold.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy  # noqa: F401 - the package only (light; tests reach scipy.stats through it); scipy.stats is imported when a gamma is fitted

from earshot.errors import ParameterError

__all__ = ["DEFAULT_THRESHOLD", "F1_SPEC", "THRESHOLD_FORMS", "ThresholdSpec", "f1_optimal_threshold",
           "fit_threshold", "spec_parts"]

logger = logging.getLogger(__name__)

#: The default threshold spec (the DCASE baseline's).
DEFAULT_THRESHOLD = "gamma:0.9"

#: The accepted spec forms, as error messages list them.
THRESHOLD_FORMS = (
    "gamma[:q] (0<q<1, default 0.9)",
    "percentile:p (0<p<=100)",
    "mean-std:k",
    "max",
    "value:x",
)

#: The spec that asks a supervised detector for the F1-optimal threshold on labelled scores.
F1_SPEC = "f1"

_METHODS = ("gamma", "percentile", "mean-std", "max", "value")
_MIN_SCORES = {"gamma": 2, "percentile": 1, "mean-std": 2, "max": 1, "value": 0}


def _bad_spec(received: Any, why: str) -> ParameterError:
    forms = ", ".join(THRESHOLD_FORMS)
    return ParameterError(f"threshold: {why}; expected one of {forms}; got {received!r}")


def _validated(method: Any, param: Any, received: Any) -> float | None:
    """Check a (method, param) pair; return the param as float (None for max and f1)."""
    if method not in _METHODS and method != F1_SPEC:
        raise _bad_spec(received, f"unknown method {method!r}")
    if method == F1_SPEC and param is not None:
        raise _bad_spec(received, "'f1' takes no parameter")
    if method in ("max", F1_SPEC):
        if param is not None:
            raise _bad_spec(received, "'max' takes no parameter")
        return None
    if param is None:
        if method != "gamma":
            raise _bad_spec(received, f"{method!r} needs a parameter")
        return 0.9
    if isinstance(param, bool) or not isinstance(param, (int, float, np.integer, np.floating)):
        raise _bad_spec(received, "the parameter must be a number")
    value = float(param)
    if not math.isfinite(value):
        raise _bad_spec(received, "the parameter must be finite")
    if method == "gamma" and not 0.0 < value < 1.0:
        raise _bad_spec(received, "the gamma quantile q must be in (0, 1)")
    if method == "percentile" and not 0.0 < value <= 100.0:
        raise _bad_spec(received, "the percentile p must be in (0, 100]")
    return value


def spec_parts(spec: Any) -> tuple[str, str | None]:
    """A spec string split at its first ``:``, exactly as written: the method text and the
    parameter text (None without a ``:``).

    >>> spec_parts("percentile:95"), spec_parts("max")
    (('percentile', '95'), ('max', None))
    """
    method, sep, raw = str(spec).partition(":")
    return method, (raw if sep else None)


def _format_number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class ThresholdSpec:
    """A threshold method and its parameter, e.g. ``ThresholdSpec("gamma", 0.9)``.

    Parameters
    ----------
    method : {"gamma", "percentile", "mean-std", "max", "value", "f1"}
        How the threshold is obtained from the normal training scores (``f1``: from labelled
        scores, see :func:`f1_optimal_threshold`).
    param : float or None
        ``q`` for gamma, ``p`` for percentile, ``k`` for mean-std, ``x`` for value; ``None``
        for max and f1. Validated on construction.

    Examples
    --------
    >>> spec = ThresholdSpec.parse("gamma")
    >>> spec, str(spec)
    (ThresholdSpec(method='gamma', param=0.9), 'gamma:0.9')
    """

    method: str
    param: float | None = None

    def __post_init__(self) -> None:
        received = f"ThresholdSpec({self.method!r}, {self.param!r})"
        object.__setattr__(self, "param", _validated(self.method, self.param, received))

    @classmethod
    def parse(cls, spec: str, *, labelled: bool = False) -> ThresholdSpec:
        """Read a spec string such as ``"gamma:0.9"``, ``"percentile:95"`` or ``"max"``.

        Surrounding blanks and the method's case are ignored; ``gamma`` alone is
        ``gamma:0.9``. ``f1`` is accepted only with ``labelled=True`` (a supervised detector).

        Raises
        ------
        ParameterError
            The string is not one of the accepted forms (the message lists them and the
            received value).
        """
        if isinstance(spec, ThresholdSpec):
            return spec
        if not isinstance(spec, str):
            raise _bad_spec(spec, "the spec must be a string")
        method, raw = spec_parts(spec.strip())
        method = method.strip().lower()
        if labelled and method == F1_SPEC and raw is None:
            return cls(F1_SPEC)
        if method not in _METHODS:
            raise _bad_spec(spec, f"unknown method {method!r}")
        param: float | None = None
        if raw is not None:
            raw = raw.strip()
            if method == "max":
                raise _bad_spec(spec, "'max' takes no parameter")
            try:
                param = float(raw)
            except ValueError:
                raise _bad_spec(spec, f"the parameter {raw!r} is not a number") from None
        return cls(method, _validated(method, param, spec))

    def __str__(self) -> str:
        if self.param is None:
            return self.method
        return f"{self.method}:{_format_number(self.param)}"


def _check_scores(scores: Any, spec: ThresholdSpec) -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"scores must be a 1-D array of real numbers ({exc})") from exc
    if arr.ndim != 1:
        raise ParameterError(f"scores must be a 1-D array, got shape {arr.shape}")
    needed = _MIN_SCORES[spec.method]
    if arr.size < needed:
        raise ParameterError(
            f"scores: threshold {str(spec)!r} needs at least {needed} normal training "
            f"score(s), got {arr.size}"
        )
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise ParameterError(
            f"scores must be finite, got {n_bad} NaN or infinite value(s) of {arr.size}"
        )
    return arr


def _gamma_quantile(scores: np.ndarray, q: float) -> float | None:
    """The DCASE gamma threshold, or None when the fit is impossible or not finite.

    ``scipy.stats.gamma.fit`` fits shape, loc and scale (as the DCASE baseline does), so the
    gamma's support starts at the fitted ``loc``, not at 0, and scores <= 0 are legitimate.
    Still, scipy's starting guesses assume positive data; when some score is <= 0 we fit
    ``scores + shift`` with ``shift = span - min(scores)`` (smallest shifted score = the
    span ``max - min``) and subtract ``shift`` from the quantile. The three-parameter fit is
    shift-equivariant, so this only keeps the optimiser on familiar ground. All-positive
    scores are fitted as they are (same threshold as the baseline).
    """
    lo, hi = float(scores.min()), float(scores.max())
    if hi == lo:
        return None  # no spread: the gamma fit is degenerate
    shift = (hi - lo) - lo if lo <= 0 else 0.0
    data = scores + shift if shift else scores
    import scipy.stats  # deferred: about 1 s to import, and scoring a clip never fits a threshold

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            a, loc, scale = scipy.stats.gamma.fit(data)
            if a < 1.0:
                # A shape below 1 with loc pinned at the smallest score is the degenerate
                # maximum of the three-parameter likelihood (it grows without bound as loc
                # approaches the minimum); it happens on small samples (a few held-out clips)
                # and puts the 0.9 quantile below half of the scores. Reconstruction errors
                # are positive: fit the two-parameter gamma with loc = 0 instead.
                a, loc, scale = scipy.stats.gamma.fit(data, floc=0.0)
            value = float(scipy.stats.gamma.ppf(q, a, loc=loc, scale=scale)) - shift
    except Exception as exc:  # scipy raises several kinds on degenerate data
        logger.debug("gamma fit failed: %r", exc)
        return None
    return value if math.isfinite(value) else None


def fit_threshold(scores: Any, spec: str | ThresholdSpec = DEFAULT_THRESHOLD) -> float:
    """Learn a decision threshold from the anomaly scores of normal training clips.

    Parameters
    ----------
    scores : array-like of shape (n_clips,)
        Scores of NORMAL clips only (never test labels), higher = more anomalous. Ignored
        (may be ``None``) for ``value:x``.
    spec : str or ThresholdSpec, default "gamma:0.9"
        The method, see the module docstring and :meth:`ThresholdSpec.parse`.

    Returns
    -------
    float
        The threshold; a clip is anomalous when ``score > threshold``.

    Raises
    ------
    ParameterError
        Bad spec; scores not a 1-D array of finite numbers; fewer than 2 scores for gamma
        and mean-std, or no score for percentile and max.

    Notes
    -----
    ``gamma:q`` falls back to ``percentile:100*q`` of the same scores, with a logged
    warning, when the fit is impossible (all scores equal), fails, or gives a non-finite
    quantile. The gamma fit is scipy's three-parameter fit (shape, loc, scale) like the
    DCASE baseline's, so scores <= 0 are legitimate; when there are any, the scores are
    shifted so that the smallest equals their span ``max - min``, fitted, and the quantile
    shifted back (the fit is shift-equivariant; the shift only keeps scipy's optimiser on
    positive data). Positive scores are fitted unshifted, exactly as the baseline does.
    When that fit is degenerate (shape < 1: loc pinned at the smallest score, as happens with
    a handful of held-out clips), the two-parameter gamma with loc = 0 is fitted instead.
    """
    parsed = ThresholdSpec.parse(spec)
    if parsed.method == F1_SPEC:
        raise ParameterError("threshold: 'f1' needs labelled scores; use f1_optimal_threshold(y, scores)")
    if parsed.method == "value":
        return float(parsed.param)
    arr = _check_scores(scores, parsed)
    if parsed.method == "max":
        return float(arr.max())
    if parsed.method == "percentile":
        return float(np.percentile(arr, parsed.param))
    if parsed.method == "mean-std":
        return float(arr.mean() + parsed.param * arr.std())
    q = parsed.param
    value = _gamma_quantile(arr, q)
    if value is None:
        logger.warning(
            "threshold %s: the gamma fit of %d normal scores failed or was degenerate; "
            "using percentile:%s of the same scores instead",
            parsed,
            arr.size,
            f"{100.0 * q:g}",
        )
        value = float(np.percentile(arr, 100.0 * q))
    return value


def f1_optimal_threshold(y: Any, scores: Any) -> float:
    """The threshold with the best anomaly-class F1 on labelled scores (``score > t``).

    Candidates are the midpoints between consecutive distinct scores (and just below the
    lowest); ties go to the higher threshold (fewer alarms). Used only when asked for
    (``threshold="f1"`` of a supervised detector), and the bundle says so.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    levels = np.unique(s)
    cands = np.concatenate([[levels[0] - 1e-6], (levels[:-1] + levels[1:]) / 2]) if levels.size > 1 else levels - 1e-6
    best_t, best_f1 = float(cands[0]), -1.0
    for t in cands:
        pred = s > t
        tp = int(np.sum(pred & (y == 1)))
        fp = int(np.sum(pred & (y == 0)))
        fn = int(np.sum(~pred & (y == 1)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 >= best_f1:
            best_t, best_f1 = float(t), f1
    return best_t
