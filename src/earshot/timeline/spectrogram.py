"""A picture-sized spectrogram of a stream, kept with flat memory (numpy only).

``detect`` draws it above the score timeline (:func:`earshot.plots.timeline.timeline_figure`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SpectrogramSink"]


class SpectrogramSink:
    """Collect log-mel frames as they stream by, averaged down to at most ``max_columns`` columns.

    Parameters
    ----------
    n_frames_total : int
        Frames the whole recording will give (to choose the pooling once).
    n_mels : int
    max_columns : int
        Columns of the picture.

    Use ``sink.add`` as the ``on_frames`` callback of :class:`earshot.timeline.StreamScorer`;
    :attr:`image` is ``(n_mels, n_columns)`` in dB and :attr:`frames_per_column` its time step.
    """

    def __init__(self, n_frames_total: int, n_mels: int, *, max_columns: int = 2400):
        self.frames_per_column = max(1, -(-int(n_frames_total) // max_columns))
        self._cols: list[np.ndarray] = []
        self._pending = np.empty((0, n_mels), np.float32)

    def add(self, frames: np.ndarray) -> None:
        """Take new frames ``(n_new, n_mels)``."""
        buf = np.concatenate([self._pending, frames]) if len(self._pending) else frames
        k = self.frames_per_column
        whole = (len(buf) // k) * k
        if whole:
            self._cols.append(buf[:whole].reshape(-1, k, buf.shape[1]).mean(axis=1))
        self._pending = buf[whole:]

    @property
    def image(self) -> np.ndarray:
        cols = self._cols + ([self._pending.mean(axis=0, keepdims=True)] if len(self._pending) else [])
        if not cols:
            return np.zeros((self._pending.shape[1], 0), np.float32)
        return np.concatenate(cols).T
