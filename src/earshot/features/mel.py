"""Log-mel features (numpy/scipy only): the entry point, :func:`log_mel` and :func:`log_mel_batch`.

The definitions follow librosa (Slaney mel scale and area norm, periodic Hann window,
``center=True`` with zero padding) so that :func:`log_mel` equals::

    librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
            win_length=win_length, window="hann", center=True, pad_mode="constant",
            power=power, n_mels=n_mels, fmin=fmin, fmax=fmax),
        ref=1.0, amin=1e-10, top_db=None)

without importing librosa. Everything is computed in float32: the result is within 1e-3 dB
of librosa for every band within ~60 dB (power) of the clip's loudest band, which is every
band of noise-like and real recordings. Far below that (deep spectral valleys of pure
synthetic tones) float32 FFT round-off, ~120 dB under the peak, shows; librosa's own STFT
runs in float64 there because numpy 2 promotes its float64 window.

How it is fast (one clip, one thread, 10 s at 16 kHz: ~0.65 ms, 60% of it the FFT):

- frames are a read-only strided view of one zero-padded copy of the clip, windowed into a
  reused buffer (with ``einsum``: ``np.multiply`` on the overlapping view copies every frame
  through numpy's buffered iterator first) and transformed with ``scipy.fft.rfft``;
- the complex spectrum is squared in place as a float32 view (re**2, im**2 interleaved) and
  the mel weights are stored twice per bin, so the mel product adds re**2 + im**2 itself;
- the filterbank is banded: groups of consecutive filters are projected with small dense
  products over their non-zero columns, each small enough that OpenBLAS does not start its
  own threads (which fight ours);
- the finite check is one ``max``; the ``amin`` floor is ``np.maximum`` against a
  preallocated array (against a scalar numpy takes a buffered loop 4x slower); ``log10`` runs
  in place; the transposition to (n_mels, n_time) is fused into the final ``* 10``;
- :func:`log_mel_batch` runs runs of clips on a thread pool (numpy ufuncs, scipy.fft and BLAS
  release the GIL), with one set of buffers per task.

Where the pieces live (all re-exported here, so ``earshot.features.mel`` keeps every name it
has always had):

- :mod:`earshot.features.melscale`: Slaney mel scale, dense mel weights and the empty-band
  check used by ``FeatureConfig``; :mod:`earshot.features.filterbank`: :func:`mel_filterbank`
  (sparse);
- :mod:`earshot.features.stft_plan`: cached plans (Hann window, banded mel projection,
  frame counts);
- :mod:`earshot.features.stft_kernels`: framing, per-thread buffers and the fused per-block
  kernel (window, FFT, power, mel, dB);
- :mod:`earshot.features.stft`: :func:`power_spectrogram` and the thread-pool drivers.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from earshot.errors import ParameterError
from earshot.features.config import FeatureConfig

# Re-exported: these names were defined here before the split (the public ones are imported
# from here by earshot.features).
from earshot.features.filterbank import (  # noqa: F401
    _mel_filterbank_cached,
    mel_filterbank,
)
from earshot.features.melscale import (  # noqa: F401
    check_mel_bands,
    hz_to_mel,
    mel_to_hz,
    mel_weights,
)
from earshot.features.stft import (  # noqa: F401
    _MIN_SPLIT,
    _as_audio,
    _dispatch,
    _n_workers,
    _run,
    power_spectrogram,
)
from earshot.features.stft_kernels import (  # noqa: F401
    _AMIN32,
    _CACHE_MAX_SAMPLES,
    _TEN32,
    AMIN,
    _Scratch,
    _Signal,
    _buffers,
    _check_finite,
    _local,
    _process_block,
    _process_clip,
)
from earshot.features.stft_plan import (  # noqa: F401
    _BAND_BUDGET,
    _MAX_BLOCK,
    _Plan,
    _band_span,
    _bands,
    _n_time,
    _plan,
    hann_window,
)

__all__ = ["log_mel", "log_mel_batch", "mel_filterbank", "power_spectrogram"]

log = logging.getLogger(__name__)


def _resolve(config: FeatureConfig | None, overrides: dict[str, Any]) -> FeatureConfig:
    if config is None:
        config = FeatureConfig()
    elif not isinstance(config, FeatureConfig):
        raise ParameterError(
            f"config must be a FeatureConfig or None, got {type(config).__name__}"
        )
    return config.replace(**overrides) if overrides else config


def log_mel(
    y: np.ndarray,
    config: FeatureConfig | None = None,
    *,
    workers: int | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Log-mel spectrogram in dB: ``10 * log10(max(1e-10, mel_power))``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (..., n_samples), float
        Audio at ``config.sr``. Any length >= 1 sample (a clip shorter than ``n_fft`` is
        zero-padded at both ends, as librosa's ``center=True``).
    config : FeatureConfig or None
        Feature parameters; ``None`` = ``FeatureConfig()``.
    workers : int or None
        Threads to use; ``None`` = the CPUs this process may run on.
    **overrides
        Fields of :class:`FeatureConfig` to change, e.g. ``n_mels=64``.

    Returns
    -------
    np.ndarray, shape (..., n_mels, n_time), float32
        ``n_time = 1 + n_samples // hop_length`` (even ``n_fft``). No ``top_db`` clipping;
        an all-zero clip gives -100 dB everywhere.

    Raises
    ------
    ParameterError
        Bad configuration, non-float or empty ``y``, or NaN/inf samples.

    Examples
    --------
    >>> import numpy as np
    >>> log_mel(np.zeros(16000, np.float32), n_mels=64).shape
    (64, 32)
    """
    cfg = _resolve(config, overrides)
    plan = _plan(cfg, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.power)
    return _dispatch(y, plan, workers, "y")


def log_mel_batch(
    Y: np.ndarray,
    config: FeatureConfig | None = None,
    *,
    workers: int | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Log-mel of many equal-length clips at once (the fast path for throughput).

    Parameters
    ----------
    Y : np.ndarray, shape (n_clips, n_samples), float32 (float64 is cast clip by clip)
    config : FeatureConfig or None
        Feature parameters; ``None`` = ``FeatureConfig()``.
    workers : int or None
        Threads running clips in parallel; ``None`` = the CPUs this process may run on.
    **overrides
        Fields of :class:`FeatureConfig` to change.

    Returns
    -------
    np.ndarray, shape (n_clips, n_mels, n_time), float32
        ``out[i]`` equals ``log_mel(Y[i], config)``.
    """
    cfg = _resolve(config, overrides)
    arr = _as_audio(Y, "Y")
    if arr.ndim != 2:
        raise ParameterError(f"Y must be 2-D (n_clips, n_samples), got shape {arr.shape}")
    if arr.shape[0] == 0:
        return np.empty(
            (0, cfg.n_mels, _n_time(arr.shape[1], cfg.n_fft, cfg.hop_length)), np.float32
        )
    plan = _plan(cfg, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.power)
    return _run(arr, plan, _n_workers(workers))
