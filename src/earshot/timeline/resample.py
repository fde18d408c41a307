"""Streaming sample-rate conversion: :class:`StreamResampler`, a polyphase resampler that takes
a signal block by block and gives what :func:`scipy.signal.resample_poly` gives for the whole
signal (``listen`` uses it for a sound card that cannot be opened at the model's rate).

scipy.signal is imported when a resampler is made, not with this module.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["StreamResampler"]


class StreamResampler:
    """Resample a stream from ``orig_sr`` to ``target_sr``, block by block, with bounded state.

    The ratio is reduced by the gcd (48000 -> 16000: up 1, down 3; 44100 -> 16000: up 160,
    down 441) and the filter is :func:`scipy.signal.resample_poly`'s own: a linear-phase
    low-pass FIR designed by ``firwin(2 * half_len + 1, 1 / max(up, down), window=("kaiser",
    5.0))`` with ``half_len = 10 * max(up, down)``, times ``up``, run as ``up`` polyphase
    branches (only the products that are not with inserted zeros, only for kept outputs).

    Output sample ``m`` stands at input time ``m * down / up`` (no shift: like resample_poly, the
    filter is centred and the signal is taken as zeros before its first sample), so the samples
    from :meth:`process`, then :meth:`flush`, are ``resample_poly(x, up, down)`` of everything
    pushed: the same for any cut into blocks (bit for bit: each output is summed in one fixed
    order whatever the blocks), and equal to resample_poly to float rounding (summed in float64,
    returned as float32), from the very first sample.

    **Latency.** An output is given once the last input sample its filter reaches has arrived:
    :attr:`delay` = ``half_len / up`` input samples after its own time (at most; 30 input samples
    for 48000 -> 16000, 27.6 for 44100 -> 16000: 0.625 ms either way, i.e. ten output samples
    when downsampling), on top of the block the sample came in. :meth:`flush` gives the last
    outputs, those waiting for input that will not come (zeros, as resample_poly pads).

    State kept between blocks: the FIR history (under ``2 * half_len / up + 1`` input samples,
    plus the part of the last block not consumed yet) and the output count (the phase).
    """

    def __init__(self, orig_sr: int, target_sr: int):
        orig_sr, target_sr = int(orig_sr), int(target_sr)
        if orig_sr <= 0 or target_sr <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self.up, self.down = target_sr // g, orig_sr // g
        self.passthrough = self.up == self.down == 1
        if self.passthrough:
            self.half_len, self.n_taps = 0, 1
            self._hr = np.ones((1, 1))
        else:
            from scipy.signal import firwin  # slow to import: only when a resampler is needed

            max_rate = max(self.up, self.down)
            self.half_len = 10 * max_rate
            h = firwin(2 * self.half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
            # polyphase branch p: taps h[p], h[p + up], h[p + 2 up], ... (zero past the filter's end)
            self.n_taps = (len(h) - 1) // self.up + 1
            padded = np.zeros(self.n_taps * self.up)
            padded[: len(h)] = h
            branches = padded.reshape(self.n_taps, self.up).T  # [p, i] = h[p + i * up]
            self._hr = np.ascontiguousarray(branches[:, ::-1])  # reversed: against inputs in time order
        self._offsets = np.arange(self.n_taps)
        self.reset()

    @property
    def delay(self) -> float:
        """Input samples an output waits for beyond its own time (``half_len / up``)."""
        return self.half_len / self.up

    def reset(self) -> None:
        """Forget the stream: the next block starts a new signal."""
        self.n_in = 0  # input samples taken
        self.n_out = 0  # output samples given (the next output's index: its phase)
        self._buf = np.zeros(self.n_taps)  # inputs from global index self._buf_start on (zeros: before the signal)
        self._buf_start = -self.n_taps

    def _ready(self, n_in: int) -> int:
        """How many outputs can be computed from the first ``n_in`` inputs."""
        # output m reaches input (m * down + half_len) // up, which must be < n_in
        return max(0, (n_in * self.up - 1 - self.half_len) // self.down + 1)

    def _compute(self, m_end: int) -> np.ndarray:
        ms = np.arange(self.n_out, m_end, dtype=np.int64)
        r = ms * self.down + self.half_len
        last = r // self.up  # the newest input each output reaches
        rows = (last - (self.n_taps - 1) - self._buf_start)[:, None] + self._offsets
        window, taps = self._buf[rows], self._hr[r % self.up]
        y = np.zeros(len(ms))
        for i in range(self.n_taps):  # one fixed summation order per output, whatever the blocks
            y += window[:, i] * taps[:, i]
        self.n_out = m_end
        first = (m_end * self.down + self.half_len) // self.up - (self.n_taps - 1)  # the next output's oldest input
        drop = min(max(0, first - self._buf_start), len(self._buf))
        self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
        return y.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Take the next block (1-D, any length); return the outputs now complete (float32)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.passthrough:
            self.n_in += x.size
            self.n_out += x.size
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self.n_in += x.size
        out, m_end = [], self._ready(self.n_in)
        for m in range(self.n_out, m_end, 8192):  # bounded temporaries for a long block
            out.append(self._compute(min(m + 8192, m_end)))
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def flush(self) -> np.ndarray:
        """The outputs still owed at the end of the signal (its tail filtered against zeros, as
        resample_poly pads it); the resampler is then reset for a new signal."""
        total = -(-self.n_in * self.up // self.down)  # resample_poly's length: ceil(n_in * up / down)
        out = np.empty(0, np.float32)
        if not self.passthrough and total > self.n_out:
            newest = ((total - 1) * self.down + self.half_len) // self.up
            pad = newest + 1 - (self._buf_start + len(self._buf))
            self._buf = np.concatenate([self._buf, np.zeros(max(0, pad))])
            out = self._compute(total)
        self.reset()
        return out
