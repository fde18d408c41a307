"""Cached STFT / log-mel plans: everything precomputed for one parameter set.

A :class:`_Plan` holds the periodic Hann window, the frame geometry and, for log-mel, the
mel filterbank cut into bands: groups of consecutive filters projected with small dense
products over their non-zero columns (:func:`_bands`), each small enough that OpenBLAS does
not start its own threads. :func:`_plan` caches plans; :func:`_n_time` is the frame count of
``center=True`` framing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from earshot.features.config import FeatureConfig
from earshot.features.melscale import mel_weights

__all__ = ["hann_window"]

log = logging.getLogger(__name__)

_MAX_BLOCK = 320  # STFT frames per block: a whole 10 s clip at hop 512 (313 frames)
# Mel projection: consecutive filters are grouped into dense products over their non-zero
# columns, with (filters x columns) <= _BAND_BUDGET so that (rows x filters x columns) stays
# <= 2**18 for a block. Above that OpenBLAS starts its own threads, which fight the clip
# threads (measured here: batch throughput halved).
_BAND_BUDGET = (1 << 18) // _MAX_BLOCK


@functools.lru_cache(maxsize=32)
def hann_window(n_fft: int, win_length: int | None) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` zeros (as librosa), float32."""
    wl = n_fft if win_length is None else win_length
    n = np.arange(wl, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / wl)
    win = np.zeros(n_fft, dtype=np.float64)
    lpad = (n_fft - wl) // 2
    win[lpad : lpad + wl] = hann
    win32 = win.astype(np.float32)
    win32.flags.writeable = False
    return win32


@dataclass(frozen=True, eq=False)  # compared by identity: it holds arrays; _plan caches it
class _Plan:
    """Everything precomputed for one parameter set (cached)."""

    n_fft: int
    hop_length: int
    n_bins: int
    power: float
    window: np.ndarray
    n_mels: int  # 0 for a power spectrogram
    # (i0, i1, lo, hi, W of shape (hi - lo, i1 - i0)): mel[:, i0:i1] = X[:, lo:hi] @ W, where
    # X is the power (n, n_bins) or, when ``interleaved``, the squared re/im pairs
    # (n, 2 * n_bins) and W holds each bin's weight twice (saves a pass adding re**2 + im**2).
    bands: tuple[tuple[int, int, int, int, np.ndarray], ...]
    interleaved: bool


def _band_span(weights: np.ndarray, i0: int, i1: int) -> tuple[int, int]:
    cols = np.flatnonzero(weights[i0:i1].any(axis=0))
    return (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)


def _bands(weights: np.ndarray) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """Group consecutive filters greedily while (filters x columns) <= _BAND_BUDGET."""
    bands = []
    n_mels = weights.shape[0]
    i0 = 0
    while i0 < n_mels:
        i1 = i0 + 1
        lo, hi = _band_span(weights, i0, i1)
        while i1 < n_mels:
            lo2, hi2 = _band_span(weights, i0, i1 + 1)
            if (i1 + 1 - i0) * (hi2 - lo2) > _BAND_BUDGET:
                break
            i1, lo, hi = i1 + 1, lo2, hi2
        w = np.ascontiguousarray(weights[i0:i1, lo:hi].T)
        w.flags.writeable = False
        bands.append((i0, i1, lo, hi, w))
        i0 = i1
    return tuple(bands)


@functools.lru_cache(maxsize=32)
def _plan(
    cfg: FeatureConfig | None, n_fft: int, hop_length: int, win_length: int | None, power: float
) -> _Plan:
    """A log-mel plan for ``cfg``, or a power-spectrogram plan when ``cfg`` is None."""
    bands: tuple[tuple[int, int, int, int, np.ndarray], ...] = ()
    n_mels = 0
    interleaved = False
    if cfg is not None:
        weights = mel_weights(cfg.sr, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        interleaved = float(power) == 2.0
        if interleaved:
            weights = np.repeat(weights, 2, axis=1)
        n_mels = cfg.n_mels
        bands = _bands(weights)
        log.debug("log-mel plan for %s: %d dense mel products", cfg, len(bands))
    return _Plan(
        n_fft=n_fft,
        hop_length=hop_length,
        n_bins=1 + n_fft // 2,
        power=float(power),
        window=hann_window(n_fft, win_length),
        n_mels=n_mels,
        bands=bands,
        interleaved=interleaved,
    )


def _n_time(n_samples: int, n_fft: int, hop_length: int) -> int:
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length
