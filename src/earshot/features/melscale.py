"""The Slaney mel scale and the dense mel weights (``librosa.filters.mel`` defaults), numpy only.

:func:`mel_weights` is what the log-mel kernels project onto (:mod:`earshot.features.stft_plan`)
and what the exported front end builds its mel product from; :func:`check_mel_bands` is
:class:`~earshot.features.config.FeatureConfig`'s check that every filter covers at least one
FFT bin. The sparse public form is :func:`earshot.features.filterbank.mel_filterbank`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from earshot.errors import ParameterError

__all__ = ["check_mel_bands", "hz_to_mel", "mel_to_hz", "mel_weights"]


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
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


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@functools.lru_cache(maxsize=64)
def mel_weights(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> np.ndarray:
    """Dense Slaney-normalised mel weights, shape (n_mels, 1 + n_fft // 2), float32, read-only.

    Same arithmetic (and float32 rounding points) as ``librosa.filters.mel``.
    """
    if fmax is None:
        fmax = sr / 2.0
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights = (weights * enorm[:, None]).astype(np.float32)
    weights.flags.writeable = False
    return weights


def check_mel_bands(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None):
    """Raise ParameterError when a mel filter covers no FFT bin (n_mels too many for n_fft)."""
    weights = mel_weights(sr, n_fft, n_mels, fmin, fmax)
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        raise ParameterError(
            f"n_mels={n_mels} is too many for n_fft={n_fft} at sr={sr} "
            f"(fmin={fmin:g}, fmax={fmax if fmax is not None else sr / 2:g}): "
            f"{empty.size} mel filter(s) cover no FFT bin (first: {int(empty[0])}); "
            f"use fewer mels, a larger n_fft or a wider fmin..fmax"
        )
