"""Clip-level statistics of log-mel spectrograms: the features of the frugal detectors.

One clip ``(n_mels, n_time)`` in dB becomes one vector of

============  ==========  ==============================================================
block         length      definition (``x[m, t]`` the log-mel, ``bands`` an averaging
                          of consecutive mel bands into ``n_bands`` groups)
============  ==========  ==============================================================
``mean``      n_mean      ``bands_mean(mean_t x[m, t])``: the long-term spectrum (tones, tilt,
                          level), averaged into ``n_mean_bands`` groups (``n_mels``: none)
``spread``    n_bands     ``bands(std_t x[m, t])``: how much each band fluctuates
``delta``     n_bands     ``bands(mean_t |x[m, t+1] - x[m, t]|)``: fast temporal change
``envelope``  1 + lags    ``e[t] = mean_m x[m, t]``: ``std_t e`` and, per lag ``L`` in
                          :data:`LAGS`, ``sqrt(mean_t (e[t+L] - e[t])**2)`` (modulation of
                          the loudness at ~ ``sr / hop_length / (2 L)`` Hz)
``peak``      0 or 1      the clip's level in dB (with ``peak=True``): ``level="leq"``,
                          ``10 log10 mean_{m, t} 10 ** (x[m, t] / 10)``, its mean power (the
                          equivalent continuous level of a sound level meter, on the mel
                          grid), or ``level="max"``, ``max_{m, t} x[m, t]``, its loudest cell
                          (the first two-head bundles). A level rise, e.g. of a fan's
                          lowest band, moves both; the maximum of ~40,000 cells is a single
                          extreme value that one background click sets, the mean power is not
============  ==========  ==============================================================

The layout of the first detectors (every mel band's mean, no peak) is the default of
:func:`clip_stats`, so that their bundles keep scoring; the detectors now ask for
``n_mean_bands=32`` and the level ``leq`` (see :mod:`earshot.detection.clipstats_base`).

Standard deviations are population ones (``ddof=0``). The torch twin used in exported
scoring graphs is :class:`earshot.models.frugal.ClipStats`; a test pins the two together.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from earshot.errors import ParameterError

__all__ = ["LAGS", "LEVELS", "MIN_FRAMES", "band_matrix", "clip_stats", "n_clip_stats", "n_mean_groups", "stat_names"]

#: Frame lags of the loudness-modulation features.
LAGS = (1, 2, 4)
#: How the clip's level (the ``peak`` statistic) is measured: mean power in dB, or the loudest cell.
LEVELS = ("leq", "max")
#: Fewest frames a clip must have for every statistic to be defined (the longest lag + 1).
MIN_FRAMES = max(LAGS) + 1


def band_matrix(n_mels: int, n_bands: int) -> np.ndarray:
    """Averaging matrix from mel bands to ``n_bands`` groups of consecutive bands.

    Parameters
    ----------
    n_mels : int
    n_bands : int
        ``1 <= n_bands <= n_mels``; groups differ in size by at most one band
        (``numpy.array_split``).

    Returns
    -------
    np.ndarray
        Shape ``(n_mels, n_bands)``, float32; column ``b`` holds ``1 / size_b`` on its bands.
    """
    if not isinstance(n_bands, (int, np.integer)) or isinstance(n_bands, bool) or not 1 <= n_bands <= n_mels:
        raise ParameterError(f"n_bands: expected an integer in [1, n_mels={n_mels}], got {n_bands!r}")
    out = np.zeros((n_mels, int(n_bands)), dtype=np.float32)
    for b, idx in enumerate(np.array_split(np.arange(n_mels), int(n_bands))):
        out[idx, b] = 1.0 / len(idx)
    return out


def n_mean_groups(n_mels: int, n_mean_bands: int | None) -> int:
    """Groups of the ``mean`` block: ``min(n_mean_bands, n_mels)``, ``n_mels`` for None."""
    return n_mels if n_mean_bands is None else min(int(n_mean_bands), n_mels)


def n_clip_stats(n_mels: int, n_bands: int, n_mean_bands: int | None = None, peak: bool = False) -> int:
    """Length of the statistics vector: ``n_mean + 2 * n_bands + 1 + len(LAGS) + peak``."""
    return n_mean_groups(n_mels, n_mean_bands) + 2 * n_bands + 1 + len(LAGS) + int(bool(peak))


def stat_names(n_mels: int, n_bands: int, n_mean_bands: int | None = None, peak: bool = False,
               level: str = "max") -> list[str]:
    """A name per statistic (``mean[0]``, ..., ``spread[0]``, ..., ``envelope_lag4``, ``peak`` or
    ``leq``)."""
    return ([f"mean[{m}]" for m in range(n_mean_groups(n_mels, n_mean_bands))]
            + [f"spread[{b}]" for b in range(n_bands)] + [f"delta[{b}]" for b in range(n_bands)]
            + ["envelope_std"] + [f"envelope_lag{lag}" for lag in LAGS]
            + ([("peak" if level == "max" else "leq")] if peak else []))


def level_db(x: np.ndarray, level: str) -> float:
    """The level of one log-mel clip in dB: its mean power (``leq``) or its loudest cell (``max``)."""
    top = float(x.max())
    if level == "max":
        return top
    return top + 10.0 * float(np.log10(np.mean(10.0 ** ((x - top) / 10.0))))


def clip_stats(X: Sequence[np.ndarray], *, n_bands: int = 8, n_mean_bands: int | None = None,
               peak: bool = False, level: str = "max") -> np.ndarray:
    """Statistics of each log-mel clip (see the module docstring).

    Parameters
    ----------
    X : sequence of np.ndarray
        Clips of shape ``(n_mels, n_time_i)`` in dB with ``n_time_i >= MIN_FRAMES``, all with
        the same ``n_mels`` (e.g. a :class:`~earshot.features.store.FrameStore`).
    n_bands : int
        Groups of mel bands of the spread and delta statistics.
    n_mean_bands : int or None
        Groups of mel bands of the mean statistics (None: every band on its own).
    peak : bool
        Append the clip's level.
    level : {"max", "leq"}
        How that level is measured (see the module docstring).

    Returns
    -------
    np.ndarray
        Shape ``(n_clips, n_clip_stats(n_mels, n_bands, n_mean_bands, peak))``, float64.
    """
    clips = list(X)
    if level not in LEVELS:
        raise ParameterError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if not clips:
        raise ParameterError("X: expected at least one clip, got none")
    n_mels = int(np.shape(clips[0])[0])
    bands = band_matrix(n_mels, n_bands).astype(np.float64)
    pooled = n_mean_groups(n_mels, n_mean_bands) != n_mels
    mean_bands = band_matrix(n_mels, n_mean_groups(n_mels, n_mean_bands)).astype(np.float64) if pooled else None
    out = np.empty((len(clips), n_clip_stats(n_mels, n_bands, n_mean_bands, peak)))
    for i, clip in enumerate(clips):
        x = np.asarray(clip, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n_mels:
            raise ParameterError(f"X[{i}]: expected shape ({n_mels}, n_time), got {x.shape}")
        if x.shape[1] < MIN_FRAMES:
            raise ParameterError(f"X[{i}]: expected at least {MIN_FRAMES} frames, got {x.shape[1]}")
        mean = x.mean(axis=1)
        spread = np.sqrt(np.mean((x - mean[:, None]) ** 2, axis=1))
        delta = np.abs(np.diff(x, axis=1)).mean(axis=1)
        e = x.mean(axis=0)
        env = [np.sqrt(np.mean((e - e.mean()) ** 2))]
        env += [np.sqrt(np.mean((e[lag:] - e[:-lag]) ** 2)) for lag in LAGS]
        extra = [level_db(x, level)] if peak else []
        out[i] = np.concatenate([mean @ mean_bands if pooled else mean, spread @ bands, delta @ bands, env, extra])
    return out
