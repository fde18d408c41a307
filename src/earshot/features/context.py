"""Context frames: the DCASE 2020 baseline's feature vectors, as a strided view."""

from __future__ import annotations

import numpy as np

from earshot.errors import ParameterError

__all__ = ["context_frames"]


def context_frames(logmel: np.ndarray, n_frames: int) -> np.ndarray:
    """Concatenate ``n_frames`` consecutive frames into one vector per time step (no copy).

    Row ``t`` is frames ``t, t+1, ..., t+n_frames-1`` concatenated time-major: frame ``t``'s
    ``n_mels`` values, then frame ``t+1``'s, ... (the DCASE 2020 baseline layout).

    Parameters
    ----------
    logmel : np.ndarray, shape (n_mels, n_time)
        A log-mel spectrogram (:func:`earshot.features.log_mel`).
    n_frames : int
        Frames per vector.

    Returns
    -------
    np.ndarray, shape (n_time - n_frames + 1, n_frames * n_mels)
        A read-only strided view of one C-contiguous ``(n_time, n_mels)`` transpose of
        ``logmel`` (no copy at all when ``logmel`` is already that transpose, e.g.
        ``x.T`` of a C-contiguous ``x``). The rows overlap in memory: copy a batch of rows
        (``np.array(v[i:j])``) before modifying it, and never stack the whole view for a data
        set.

    Raises
    ------
    ParameterError
        ``logmel`` not 2-D, ``n_frames`` not a positive int, or ``n_time < n_frames``.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ParameterError(f"n_frames must be a positive int, got {n_frames!r}")
    x = np.asarray(logmel)
    if x.ndim != 2:
        raise ParameterError(f"logmel must be 2-D (n_mels, n_time), got shape {x.shape}")
    n_mels, n_time = x.shape
    if n_time < n_frames:
        raise ParameterError(
            f"logmel has n_time={n_time} frames, fewer than n_frames={n_frames}"
        )
    frames = np.ascontiguousarray(x.T)  # (n_time, n_mels); a no-copy view if x.T already is
    n_rows = n_time - int(n_frames) + 1
    step = frames.strides[0]
    return np.lib.stride_tricks.as_strided(
        frames,
        shape=(n_rows, int(n_frames) * n_mels),
        strides=(step, frames.strides[1]),
        writeable=False,
    )
