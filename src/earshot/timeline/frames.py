"""Streamed log-mel: :class:`FrameStream` turns samples into log-mel frames as they arrive.

The frames equal :func:`earshot.features.log_mel` of the whole signal (``center=True``: zeros
before the first sample and after the last one, at :meth:`FrameStream.flush`). What is kept
between calls is bounded by ``n_fft`` and ``hop_length``, never by the stream's length.
"""

from __future__ import annotations

import numpy as np

from earshot.errors import ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel

__all__ = ["FrameStream"]


class FrameStream:
    """Log-mel frames of a signal that arrives in pieces.

    Frame ``t`` (centred on sample ``t * hop_length``) is produced as soon as the samples it
    spans have arrived, i.e. ``n_fft - n_fft // 2`` samples after its centre. The frames equal
    those of :func:`earshot.features.log_mel` on the whole signal.

    Parameters
    ----------
    config : FeatureConfig
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.hop = config.hop_length
        self.pad = config.n_fft // 2
        self.k = -(-self.pad // self.hop)  # frames of look-back so that no frame touches log_mel's own padding
        self._tail = np.zeros(self.k * self.hop, np.float32)  # samples [self._tail_start, self.n_samples)
        self._tail_start = -self.k * self.hop
        self.n_samples = 0
        self.n_frames = 0  # frames produced so far
        self._flushed = False

    def _end(self, t: int) -> int:
        """One past the last sample frame ``t`` spans."""
        return t * self.hop - self.pad + self.config.n_fft

    def _frames_until(self, t_stop: int) -> np.ndarray:
        """Frames ``[n_frames, t_stop)`` from the tail (which must hold their samples)."""
        t0 = self.n_frames
        if t_stop <= t0:
            return np.empty((0, self.config.n_mels), np.float32)
        a = (t0 - self.k) * self.hop - self._tail_start
        b = self._end(t_stop - 1) - self._tail_start
        seg = self._tail[a:b]
        frames = log_mel(seg, self.config, workers=1)[:, self.k : self.k + t_stop - t0]
        self.n_frames = t_stop
        drop = (t_stop - self.k) * self.hop - self._tail_start
        if drop > 0:
            self._tail = self._tail[drop:]
            self._tail_start += drop
        return np.ascontiguousarray(frames.T)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the new frames, shape ``(n_new, n_mels)``, float32."""
        if self._flushed:
            raise ParameterError("FrameStream: push after flush")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size:
            self._tail = np.concatenate([self._tail, x])
            self.n_samples += x.size
        ready = (self.n_samples + self.pad - self.config.n_fft) // self.hop + 1
        return self._frames_until(max(ready, self.n_frames))

    def flush(self) -> np.ndarray:
        """End of the signal: the last frames, zero-padded as ``log_mel`` pads (``(n_new, n_mels)``)."""
        self._flushed = True
        total = 1 + (self.n_samples + 2 * self.pad - self.config.n_fft) // self.hop
        if total <= self.n_frames:
            return np.empty((0, self.config.n_mels), np.float32)
        need = self._end(total - 1) - (self._tail_start + self._tail.size)
        if need > 0:
            self._tail = np.concatenate([self._tail, np.zeros(need, np.float32)])
        return self._frames_until(total)
