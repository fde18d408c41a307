"""Slaney mel scale and mel filterbank (``librosa.filters.mel`` defaults, numpy/scipy only).

The dense weights (:func:`_mel_weights`) are what the log-mel kernels project onto (see
:mod:`earshot.features.stft_plan`); :func:`mel_filterbank` is the public sparse form and
:func:`_check_mel_bands` is :class:`~earshot.features.config.FeatureConfig`'s check that
every filter covers at least one FFT bin.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.sparse as sp_sparse

from earshot.errors import ParameterError
from earshot.features.config import FeatureConfig

__all__ = ["mel_filterbank"]


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa with htk=False."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_t = hz >= min_log_hz
    mels = np.where(
        log_t, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mels
    )
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@functools.lru_cache(maxsize=64)
def _mel_weights(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> np.ndarray:
    """Dense Slaney-normalised mel weights, shape (n_mels, 1 + n_fft // 2), float32, read-only.

    Same arithmetic (and float32 rounding points) as ``librosa.filters.mel``.
    """
    if fmax is None:
        fmax = sr / 2.0
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights = (weights * enorm[:, None]).astype(np.float32)
    weights.flags.writeable = False
    return weights


def _check_mel_bands(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None):
    """Raise ParameterError when a mel filter covers no FFT bin (n_mels too many for n_fft)."""
    weights = _mel_weights(sr, n_fft, n_mels, fmin, fmax)
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        raise ParameterError(
            f"n_mels={n_mels} is too many for n_fft={n_fft} at sr={sr} "
            f"(fmin={fmin:g}, fmax={fmax if fmax is not None else sr / 2:g}): "
            f"{empty.size} mel filter(s) cover no FFT bin (first: {int(empty[0])}); "
            f"use fewer mels, a larger n_fft or a wider fmin..fmax"
        )


@functools.lru_cache(maxsize=64)
def _mel_filterbank_cached(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> sp_sparse.csr_matrix:
    fb = sp_sparse.csr_matrix(_mel_weights(sr, n_fft, n_mels, fmin, fmax))
    for arr in (fb.data, fb.indices, fb.indptr):
        arr.flags.writeable = False
    return fb


def mel_filterbank(
    *, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> sp_sparse.csr_matrix:
    """Slaney mel filterbank with Slaney area norm (``librosa.filters.mel`` defaults).

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    n_fft : int
        FFT length.
    n_mels : int
        Number of mel filters.
    fmin, fmax : float
        Band edges in Hz; ``fmax=None`` means ``sr / 2``.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_mels, 1 + n_fft // 2), float32
        Cached and shared between calls: its arrays are read-only (``.copy()`` to modify).

    Raises
    ------
    ParameterError
        Invalid parameters, or a filter that covers no FFT bin.
    """
    cfg = FeatureConfig(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return _mel_filterbank_cached(cfg.sr, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
