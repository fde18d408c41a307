"""Streamed log-mel: :class:`FrameStream` turns samples into log-mel frames as they arrive.

The frames equal :func:`earshot.features.log_mel` of the whole signal (``center=True``: zeros
before the first sample and after the last one, at :meth:`FrameStream.flush`). What is kept
between calls is bounded by ``n_fft``, ``hop_length`` and the largest batch asked for, never by
the stream's length.

Samples are appended into one preallocated buffer (:meth:`FrameStream.append`: a copy, no
allocation once the buffer has grown to the largest block seen) and frames are computed only
when asked for (:meth:`FrameStream.compute`), only for frames whose samples are all there. A
few frames at a time (``listen``: the frames of one timeline hop) go through a small kernel
here (windowed frames as a strided view, one real FFT, power, the dense mel product, dB: the
same definitions as :func:`~earshot.features.log_mel`, equal to it within float32 round-off,
about 1e-5 dB), which skips ``log_mel``'s per-call set-up (about 25 us of the 50 us it costs
for three frames); batches of :data:`LOG_MEL_BATCH` (16) frames or more (``detect``'s 10 s blocks)
go through ``log_mel`` itself.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from earshot.errors import ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.mel import hann_window, log_mel, mel_weights

__all__ = ["FrameStream", "LOG_MEL_BATCH"]

#: Frames per batch from which :meth:`FrameStream.compute` calls ``log_mel`` (its banded mel
#: product and thread-free blocks win on long batches; the small kernel on a hop's few frames).
#: Below OpenBLAS's threading threshold for the dense mel product: (31 x 513) @ (513 x 64)
#: already starts its threads (measured: 12x the CPU of 24 rows on 2 cores).
LOG_MEL_BATCH = 16
_AMIN = np.float32(1e-10)


class FrameStream:
    """Log-mel frames of a signal that arrives in pieces.

    Frame ``t`` (centred on sample ``t * hop_length``) can be computed as soon as the samples
    it spans have arrived, i.e. ``n_fft - n_fft // 2`` samples after its centre. The frames
    equal those of :func:`earshot.features.log_mel` on the whole signal.

    Parameters
    ----------
    config : FeatureConfig
    capacity : int
        Samples the buffer holds before it first grows (it grows to the largest block seen).
    """

    def __init__(self, config: FeatureConfig, *, capacity: int = 0):
        self.config = config
        self.hop = config.hop_length
        self.n_fft = config.n_fft
        self.pad = config.n_fft // 2
        self.k = -(-self.pad // self.hop)  # frames of look-back so that no frame touches log_mel's own padding
        self._window = hann_window(config.n_fft, config.win_length)
        self._mel = np.ascontiguousarray(
            mel_weights(config.sr, config.n_fft, config.n_mels, config.fmin, config.fmax).T)  # (n_bins, n_mels)
        self._buf = np.zeros(max(int(capacity), 4 * self.n_fft, 2 * self.k * self.hop), np.float32)
        self._start = -self.k * self.hop  # the sample held at _buf[0] (the first k * hop are the leading zeros)
        self._len = self.k * self.hop  # samples held
        self.n_samples = 0
        self.n_frames = 0  # frames computed so far
        self._flushed = False

    # ------------------------------------------------------------------ samples in
    def append(self, samples: np.ndarray) -> None:
        """Add samples (copied into the buffer; no frame is computed)."""
        if self._flushed:
            raise ParameterError("FrameStream: push after flush")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size:
            self._put(x)
            self.n_samples += x.size

    def _put(self, x: np.ndarray) -> None:
        if self._len + x.size > self._buf.size:
            self._make_room(x.size)
        self._buf[self._len : self._len + x.size] = x
        self._len += x.size

    def _make_room(self, n: int) -> None:
        """Drop the samples no frame still needs; grow the buffer if that is not enough."""
        drop = min(self._len, max(0, (self.n_frames - self.k) * self.hop - self._start))
        keep = self._len - drop
        if keep + n > self._buf.size:
            grown = np.zeros(max(2 * self._buf.size, keep + n), np.float32)
            grown[:keep] = self._buf[drop : self._len]
            self._buf = grown
        elif drop:
            self._buf[:keep] = self._buf[drop : self._len]
        self._start += drop
        self._len = keep

    @property
    def ready(self) -> int:
        """Frames whose samples have all arrived (computed or not); after :meth:`flush`, all."""
        if self._flushed:
            return self.total
        return max(self.n_frames, (self.n_samples + self.pad - self.n_fft) // self.hop + 1)

    @property
    def total(self) -> int:
        """Frames of the whole signal once it has ended (``log_mel``'s count)."""
        return 1 + (self.n_samples + 2 * self.pad - self.n_fft) // self.hop

    # ------------------------------------------------------------------ frames out
    def _end(self, t: int) -> int:
        """One past the last sample frame ``t`` spans."""
        return t * self.hop - self.pad + self.n_fft

    def compute(self, t_stop: int) -> np.ndarray:
        """Frames ``[n_frames, t_stop)`` (``t_stop`` at most :attr:`ready`), ``(n_new, n_mels)`` float32."""
        t0 = self.n_frames
        if t_stop <= t0:
            return np.empty((0, self.config.n_mels), np.float32)
        if t_stop > self.ready:
            raise ParameterError(f"FrameStream: frame {t_stop - 1} asked for before its samples arrived")
        if t_stop - t0 >= LOG_MEL_BATCH:
            a = (t0 - self.k) * self.hop - self._start
            b = self._end(t_stop - 1) - self._start
            frames = np.ascontiguousarray(log_mel(self._buf[a:b], self.config, workers=1)[:, self.k : self.k + t_stop - t0].T)
        else:
            frames = self._small(t0, t_stop)
        self.n_frames = t_stop
        return frames

    def _small(self, t0: int, t_stop: int) -> np.ndarray:
        """Frames ``[t0, t_stop)`` through the small kernel (log_mel's arithmetic, in float32)."""
        a = t0 * self.hop - self.pad - self._start
        step = self._buf.strides[0]  # frames: a read-only strided view of the buffer (no copy)
        framed = np.ndarray((t_stop - t0, self.n_fft), np.float32, buffer=self._buf, offset=a * step,
                            strides=(self.hop * step, step))
        spec = scipy.fft.rfft(framed * self._window, axis=-1, workers=1)
        if self.config.power == 2.0:
            power = np.square(spec.real)
            power += np.square(spec.imag)
        else:
            power = np.abs(spec) ** np.float32(self.config.power)
        mel = power @ self._mel
        if not math.isfinite(float(mel.sum())):  # values >= 0: finite iff every one is (log_mel's check)
            raise ParameterError("audio must be finite: the signal contains NaN or inf values (or overflows float32)")
        np.maximum(mel, _AMIN, out=mel)
        np.log10(mel, out=mel)
        mel *= np.float32(10.0)
        return mel

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return every new frame whose samples are all there, ``(n_new, n_mels)``, float32."""
        self.append(samples)
        return self.compute(self.ready)

    def close(self) -> None:
        """End of the signal: zeros after the last sample, as ``log_mel`` pads (no frame computed)."""
        if self._flushed:
            return
        self._flushed = True
        need = self._end(self.total - 1) - (self._start + self._len)
        if need > 0:
            self._put(np.zeros(need, np.float32))

    def flush(self) -> np.ndarray:
        """End of the signal: the last frames, zero-padded as ``log_mel`` pads (``(n_new, n_mels)``)."""
        self.close()
        return self.compute(self.total)
