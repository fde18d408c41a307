"""Signal-building blocks of the synthesiser: vectorised numpy/scipy, float32 throughout.

Nothing here loops over samples in Python. The pieces:

- spectral shapes on the rfft grid (:func:`psd`, :func:`amp`), cached per signal length;
- :class:`Canvas`, which sums stationary coloured noises (as one power spectrum, rendered
  with a single inverse FFT), filtered excitations (in the frequency domain) and time-domain
  parts;
- rotation: :func:`phase_from_speed` turns a control-rate speed curve into a per-sample
  phase, :func:`wavetable` / :func:`play` render harmonic series from it with one gather;
- events: :func:`impulses` (sparse impulse trains), :func:`place` (templates at positions),
  :func:`damped_modes` (click / impact templates), :func:`crossings` (times a rotating part
  passes a given order);
- :func:`fault_gate`, the 0..1 curve that confines a fault to a time range.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft as sfft

__all__ = [
    "Canvas",
    "amp",
    "crossings",
    "control_step",
    "damped_modes",
    "fault_gate",
    "impulses",
    "phase_from_speed",
    "place",
    "play",
    "psd",
    "resonance",
    "slow_wobble",
    "smooth_envelope",
    "steady_phase",
    "wavetable",
    "white_spectrum",
]

TWO_PI = 2.0 * np.pi
#: Samples in one period of a wavetable (a power of two: indices wrap with a bit mask).
TABLE_SIZE = 8192
#: Control rate (Hz) of speed curves and envelopes; per-sample values are interpolated.
CONTROL_RATE = 100.0


# ----------------------------------------------------------------------------- spectra


@lru_cache(maxsize=4)
def _freqs(n: int, sr: int) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f.flags.writeable = False
    return f


def _butter_power(f: np.ndarray, fc: float, order: int, high: bool) -> np.ndarray:
    r = (fc / np.maximum(f, 1e-3)) if high else (f / fc)
    return 1.0 / (1.0 + r ** (2 * order))


def _raw_psd(n: int, sr: int, spec: tuple) -> np.ndarray:
    """Unnormalised power shape for one spec tuple (see :func:`psd`)."""
    f = _freqs(n, sr)
    kind = spec[0]
    if kind == "white":
        return np.ones_like(f)
    if kind == "pink":  # 1/f above a corner, flat below
        return 1.0 / np.maximum(f, spec[1])
    if kind == "brown":  # 1/f^2 above a corner
        return 1.0 / np.maximum(f, spec[1]) ** 2
    if kind == "lowpass":
        return _butter_power(f, spec[1], int(spec[2]), high=False)
    if kind == "highpass":
        return _butter_power(f, spec[1], int(spec[2]), high=True)
    if kind == "band":  # ("band", lo, hi, order)
        order = int(spec[3])
        return _butter_power(f, spec[1], order, True) * _butter_power(f, spec[2], order, False)
    if kind == "peak":  # ("peak", f0, q): resonance power response (Lorentzian)
        f0, q = spec[1], spec[2]
        return 1.0 / (1.0 + ((f - f0) / (f0 / (2.0 * q))) ** 2)
    if kind == "*":
        out = _raw_psd(n, sr, spec[1])
        for part in spec[2:]:
            out = out * _raw_psd(n, sr, part)
        return out
    if kind == "+":  # ("+", (weight, spec), (weight, spec), ...): weights are power shares
        out = np.zeros_like(f)
        for weight, part in spec[1:]:
            out += weight * psd(n, sr, part)
        return out
    raise ValueError(f"unknown spectral shape {kind!r}")


#: Longest signal (samples) whose spectral shapes are cached (a long recording's are not:
#: they would pin megabytes each).
CACHE_MAX_N = 2**20


def _cached_for_short(func):
    """``lru_cache`` for calls whose first argument ``n`` is at most :data:`CACHE_MAX_N`."""
    cached = lru_cache(maxsize=128)(func)

    def wrapper(n, *args):
        return cached(n, *args) if n <= CACHE_MAX_N else func(n, *args)

    wrapper.__doc__, wrapper.__name__, wrapper.__wrapped__ = func.__doc__, func.__name__, func
    wrapper.cache_clear = cached.cache_clear
    return wrapper


@_cached_for_short
def psd(n: int, sr: int, spec: tuple) -> np.ndarray:
    """Power spectral shape on the rfft grid of an ``n``-sample signal, unit mean power.

    Parameters
    ----------
    n, sr : int
        Signal length and sample rate.
    spec : tuple
        ``("white",)``, ``("pink", f_corner)``, ``("brown", f_corner)``,
        ``("lowpass", fc, order)``, ``("highpass", fc, order)``, ``("band", lo, hi, order)``,
        ``("peak", f0, q)``, ``("*", spec, spec, ...)`` (product) or
        ``("+", (w, spec), (w, spec), ...)`` (sum, ``w`` the power share of each part).

    Returns
    -------
    numpy.ndarray
        float32, read-only, length ``n // 2 + 1``; white noise of unit variance shaped by
        ``sqrt(psd)`` has unit variance.
    """
    p = _raw_psd(n, sr, spec)
    p = p / max(float(np.mean(p)), 1e-30)
    p = p.astype(np.float32)
    p.flags.writeable = False
    return p


@_cached_for_short
def amp(n: int, sr: int, spec: tuple) -> np.ndarray:
    """Amplitude response ``sqrt(psd(n, sr, spec))`` (float32, read-only)."""
    a = np.sqrt(psd(n, sr, spec))
    a.flags.writeable = False
    return a


@_cached_for_short
def resonance(n: int, sr: int, f0: float, decay_s: float) -> np.ndarray:
    """Complex response of a causal damped sinusoid ``exp(-t/decay) sin(2 pi f0 t)``.

    Normalised so that an impulse train of unit impulses at rate ``r`` through it has an
    RMS close to ``sqrt(r * decay_s / 4)`` times the impulse amplitude. float32 complex,
    read-only, length ``n // 2 + 1``.
    """
    s = 2j * np.pi * _freqs(n, sr)
    w0 = TWO_PI * f0
    h = w0 / ((s + 1.0 / decay_s) ** 2 + w0**2)  # Laplace transform at s = j 2 pi f
    h = (h * sr).astype(np.complex64)  # a unit sample -> a waveform of peak ~1
    h.flags.writeable = False
    return h


def white_spectrum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random rfft spectrum whose inverse is white noise of unit variance (complex64).

    Uniform real and imaginary parts (four times cheaper than normal draws); after any
    spectral shaping the time signal is Gaussian to a very good approximation.
    """
    nf = n // 2 + 1
    u = rng.random(2 * nf, dtype=np.float32)
    u -= np.float32(0.5)
    u *= np.float32(np.sqrt(6.0 * n))  # var of each part n/2 -> E|X|^2 = n
    return u.view(np.complex64)


class Canvas:
    """Accumulates the parts of one signal and renders them with a single inverse FFT.

    Parameters
    ----------
    n : int
        Signal length in samples.
    sr : int
        Sample rate.

    Notes
    -----
    Stationary noises are summed as power spectra (independent noises add in power), so any
    number of them costs one random spectrum and one inverse FFT at :meth:`render`.
    """

    def __init__(self, n: int, sr: int) -> None:
        self.n = n
        self.sr = sr
        self._psd: np.ndarray | None = None
        self._spec: np.ndarray | None = None
        self.time = np.zeros(n, np.float32)

    def add_noise(self, spec: tuple, rms: float) -> None:
        """Add stationary noise of spectral shape ``spec`` (see :func:`psd`) and RMS ``rms``."""
        if rms <= 0.0:
            return
        p = psd(self.n, self.sr, spec) * np.float32(rms * rms)
        if self._psd is None:
            self._psd = p
        else:
            self._psd += p

    def add_spectrum(self, x: np.ndarray) -> None:
        """Add a complex rfft spectrum (e.g. a filtered excitation)."""
        if self._spec is None:
            self._spec = x.astype(np.complex64, copy=True)
        else:
            self._spec += x

    def add_tones(self, freqs, amps, phases) -> None:
        """Add steady sinusoids ``amps * sin(2 pi f t + phases)`` directly as spectrum lines.

        Each frequency is rounded to the nearest FFT bin (``sr / n`` Hz apart: 0.1 Hz for a
        10-s clip), so this costs nothing per sample.
        """
        freqs = np.atleast_1d(np.asarray(freqs, float))
        k = np.rint(freqs * self.n / self.sr).astype(np.int64)
        keep = (k > 0) & (k < self.n // 2)
        if not np.any(keep):
            return
        if self._spec is None:
            self._spec = np.zeros(self.n // 2 + 1, np.complex64)
        vals = np.broadcast_to(np.asarray(amps, float), freqs.shape)[keep] * (-0.5j * self.n) \
            * np.exp(1j * np.broadcast_to(np.asarray(phases, float), freqs.shape)[keep])
        np.add.at(self._spec, k[keep], vals.astype(np.complex64))

    def add_filtered(self, x: np.ndarray, response: np.ndarray) -> None:
        """Add the time signal ``x`` filtered (circularly) by the rfft ``response``."""
        X = sfft.rfft(x)
        X *= response
        self.add_spectrum(X)

    def noise(self, rng: np.random.Generator, spec: tuple, rms: float = 1.0) -> np.ndarray:
        """A fresh time-domain noise of shape ``spec`` and RMS ``rms`` (to be modulated)."""
        X = white_spectrum(rng, self.n)
        X *= amp(self.n, self.sr, spec) * np.float32(rms)
        return sfft.irfft(X, n=self.n)

    def render(self, rng: np.random.Generator) -> np.ndarray:
        """The sum of everything added (float32); draws the stationary noise from ``rng``."""
        X = self._spec
        if self._psd is not None:
            W = white_spectrum(rng, self.n)
            W *= np.sqrt(self._psd)
            X = W if X is None else X + W
        if X is None:
            return self.time.copy()
        y = sfft.irfft(X, n=self.n)
        y += self.time
        return y


# ----------------------------------------------------------------------------- rotation


def control_step(sr: int) -> int:
    """Samples per control point (the control rate is about :data:`CONTROL_RATE`)."""
    return max(1, int(round(sr / CONTROL_RATE)))


def control_times(n: int, sr: int) -> np.ndarray:
    """Times (s) of the control points covering ``n`` samples (float64)."""
    step = control_step(sr)
    m = -(-n // step) + 1
    return np.arange(m) * (step / sr)


@_cached_for_short
def steady_phase(n: int, sr: int, freq: float) -> np.ndarray:
    """Per-sample phase (cycles, exact modulo 1) of a steady frequency; cached, read-only."""
    ph, _ = phase_from_speed(np.full(len(control_times(n, sr)), float(freq)), n, sr)
    ph.flags.writeable = False
    return ph


@lru_cache(maxsize=8)
def _local_index(step: int) -> np.ndarray:
    k = np.arange(step, dtype=np.float32)
    k.flags.writeable = False
    return k


def phase_from_speed(freq: np.ndarray, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample phase of a part rotating at a control-rate frequency curve.

    Parameters
    ----------
    freq : numpy.ndarray
        Rotation frequency (Hz) at the control points of :func:`control_times`; linear in
        between (so the phase is continuous and piecewise quadratic).
    n, sr : int
        Signal length and sample rate.

    Returns
    -------
    phase : numpy.ndarray
        float32 cycles, correct modulo 1 (values stay small, so float32 keeps full
        precision); use with integer orders only: ``sin(2 pi k phase)`` or :func:`play`.
    cycles : numpy.ndarray
        float64 cumulative cycles at the control points (for :func:`crossings`).
    """
    step = control_step(sr)
    m = len(freq)
    f = np.asarray(freq, np.float64)
    inc = (f[:-1] + f[1:]) * (0.5 * step / sr)
    cycles = np.concatenate([[0.0], np.cumsum(inc)])
    start = (cycles[:-1] % 1.0).astype(np.float32)
    f0 = (f[:-1] / sr).astype(np.float32)
    df = ((f[1:] - f[:-1]) / (2.0 * step * sr)).astype(np.float32)
    k = _local_index(step)
    reps = m - 1
    kk = np.broadcast_to(k, (reps, step))
    ph = (start[:, None] + kk * (f0[:, None] + kk * df[:, None])).reshape(-1)[:n]
    return np.ascontiguousarray(ph, dtype=np.float32), cycles


def crossings(cycles: np.ndarray, order: float, n: int, sr: int, offset: float = 0.0) -> np.ndarray:
    """Sample positions where ``order * cycles + offset`` passes an integer (float64).

    ``cycles`` are the control-point cycles of :func:`phase_from_speed`; positions are
    interpolated linearly inside each control step.
    """
    step = control_step(sr)
    c = cycles * order + offset
    ks = np.arange(np.ceil(c[0]), np.floor(c[-1]) + 1.0)
    j = np.searchsorted(c, ks, side="right")
    j = np.clip(j, 1, len(c) - 1)
    lo, hi = c[j - 1], c[j]
    frac = (ks - lo) / np.maximum(hi - lo, 1e-12)
    pos = (j - 1 + frac) * step
    return pos[pos < n]


def wavetable(orders, amps, phases=None) -> np.ndarray:
    """One period of ``sum_k amps[k] sin(2 pi orders[k] x + phases[k])`` as a lookup table.

    Returns a float32 array of :data:`TABLE_SIZE` ``+ 1`` samples (the last repeats the
    first, for interpolation).
    """
    orders = np.asarray(orders, int)
    amps = np.asarray(amps, float)
    phases = np.zeros(len(orders)) if phases is None else np.asarray(phases, float)
    X = np.zeros(TABLE_SIZE // 2 + 1, np.complex128)
    # sin(2 pi k x + p) = Im(exp(i(2 pi k x + p))): rfft coefficient -i/2 exp(ip) * N
    np.add.at(X, orders, amps * (-0.5j) * np.exp(1j * phases) * TABLE_SIZE)
    t = np.fft.irfft(X, n=TABLE_SIZE)
    # irfft gives Re(sum), i.e. the conjugate pair: 2 Re(-i/2 e^{i(2pi k x + p)}) = sin(...)
    return np.append(t, t[0]).astype(np.float32)


def play(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Read a :func:`wavetable` at a per-sample phase (cycles), linear interpolation."""
    p = phase * np.float32(TABLE_SIZE)
    w = np.floor(p)
    i = w.astype(np.int32)
    np.subtract(p, w, out=w)  # float32 interpolation weight
    i &= TABLE_SIZE - 1
    a = np.take(table, i)
    b = np.take(table, i + 1)
    b -= a
    b *= w
    b += a
    return b


def slow_wobble(rng: np.random.Generator, t: np.ndarray, rms: float, f_lo: float, f_hi: float,
                n_terms: int = 3) -> np.ndarray:
    """A smooth random curve (sum of sinusoids, random frequency and phase) of given RMS."""
    if rms == 0.0:
        return np.zeros_like(t)
    fr = rng.uniform(f_lo, f_hi, n_terms)
    ph = rng.uniform(0.0, TWO_PI, n_terms)
    a = rng.uniform(0.5, 1.0, n_terms)
    a *= rms * np.sqrt(2.0 / np.sum(a * a))
    return np.sum(a[:, None] * np.sin(TWO_PI * fr[:, None] * t[None, :] + ph[:, None]), axis=0)


def smooth_envelope(ctrl: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Per-sample float32 envelope from values at the control points (linear)."""
    step = control_step(sr)
    c = np.asarray(ctrl, np.float32)
    d = (c[1:] - c[:-1]) / np.float32(step)
    k = _local_index(step)
    out = (c[:-1, None] + d[:, None] * k[None, :]).reshape(-1)[:n]
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------- events


def impulses(n: int, positions: np.ndarray, gains: np.ndarray | float = 1.0) -> np.ndarray:
    """A float32 impulse train: ``gains`` at (rounded) ``positions``; out-of-range dropped."""
    pos = np.rint(np.asarray(positions)).astype(np.int64)
    g = np.broadcast_to(np.asarray(gains, np.float64), pos.shape)
    keep = (pos >= 0) & (pos < n)
    return np.bincount(pos[keep], weights=g[keep], minlength=n).astype(np.float32)


def damped_modes(sr: int, freqs, decays_s, amps, length_s: float | None = None) -> np.ndarray:
    """A click / impact template: a sum of exponentially decaying sinusoids (float32)."""
    freqs = np.asarray(freqs, np.float32)
    decays = np.asarray(decays_s, np.float32)
    amps = np.asarray(amps, np.float32)
    keep = freqs < 0.45 * sr  # no aliased modes at low sample rates
    freqs, decays, amps = freqs[keep], decays[keep], amps[keep]
    if length_s is None:
        if not len(decays):
            return np.zeros(1, np.float32)
        length_s = 5.0 * float(decays.max())
    t = np.arange(max(1, int(length_s * sr)), dtype=np.float32) / np.float32(sr)
    y = np.zeros_like(t)
    for f, d, a in zip(freqs, decays, amps):
        m = min(len(t), int(7.0 * d * sr) + 1)  # beyond 7 decays: below -60 dB
        tt = t[:m]
        y[:m] += a * np.exp(-tt / d) * np.sin(np.float32(TWO_PI) * f * tt)
    # a few-sample attack so the onset is not a step
    attack = min(len(y), max(1, int(0.0005 * sr)))
    y[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False, dtype=np.float32)
    return y


def place(out: np.ndarray, positions, template: np.ndarray, gains) -> None:
    """Add ``gains[i] * template`` at each ``positions[i]`` into ``out`` (in place, clipped)."""
    n = len(out)
    L = len(template)
    for p, g in zip(np.rint(np.asarray(positions)).astype(np.int64), np.broadcast_to(gains, np.shape(positions))):
        if p >= n or p + L <= 0:
            continue
        a, b = max(p, 0), min(p + L, n)
        out[a:b] += np.float32(g) * template[a - p : b - p]


def fault_gate(n: int, sr: int, start_s: float, end_s: float, fade_s: float) -> np.ndarray:
    """0 outside ``[start_s, end_s)``, 1 inside, raised-cosine fades *inside* the range."""
    g = np.zeros(n, np.float32)
    a = max(0, min(n, int(round(start_s * sr))))
    b = max(a, min(n, int(round(end_s * sr))))
    g[a:b] = 1.0
    nf = min(int(round(fade_s * sr)), (b - a) // 2)
    if nf > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(nf) + 0.5) / nf)).astype(np.float32)
        if a > 0:
            g[a : a + nf] = ramp
        if b < n:
            g[b - nf : b] = ramp[::-1]
    return g
