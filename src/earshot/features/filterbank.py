"""The mel filterbank (``librosa.filters.mel`` defaults, numpy/scipy only): :func:`mel_filterbank`,
the sparse public form of :func:`earshot.features.melscale.mel_weights`.

Nothing on the scoring path needs the sparse matrix (log-mel projects with the banded dense
weights of :mod:`earshot.features.stft_plan`), so ``scipy.sparse`` (about 0.1 s to import) is
imported when :func:`mel_filterbank` is first called, not with this module.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from earshot.features.config import FeatureConfig
from earshot.features.melscale import mel_weights

if TYPE_CHECKING:
    # the type only: scipy.sparse is imported when a filterbank is built (start-up speed)
    import scipy.sparse as sp_sparse

__all__ = ["mel_filterbank"]


@functools.lru_cache(maxsize=64)
def _mel_filterbank_cached(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> sp_sparse.csr_matrix:
    import scipy.sparse as sp_sparse  # deferred: start-up speed (scoring never builds the sparse form)

    fb = sp_sparse.csr_matrix(mel_weights(sr, n_fft, n_mels, fmin, fmax))
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
