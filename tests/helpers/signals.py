"""Synthetic waveforms for the tests (float32, values within [-1, 1] unless said otherwise)."""

from __future__ import annotations

import numpy as np

SR = 16000


def hum(rng: np.random.Generator, seconds: float = 2.0, sr: int = SR, fault: bool | str = False) -> np.ndarray:
    """A machine hum (100 + 200 Hz and a little noise), halved; ``(n,)`` float32.

    Parameters
    ----------
    rng : numpy.random.Generator
        The noise (and, for ``"resonance"``, the fault's strength) come from it.
    seconds, sr : float, int
        Length and sample rate.
    fault : bool or str
        ``False``: plain hum. ``True`` or ``"clicks"``: bearing-like clicks (37 a second)
        ringing a 3 kHz resonance. ``"resonance"``: a 3 kHz tone of random strength
        (0 to 0.15, so some faulty clips overlap the normal ones). ``"whine"``: a 2.3 kHz tone
        switched on and off three times a second.
    """
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.1 * np.sin(2 * np.pi * 200 * t) + 0.02 * rng.normal(size=t.size)
    if fault is True or fault == "clicks":
        clicks = np.zeros_like(t)
        clicks[:: sr // 37] = 1.0
        ring = np.exp(-np.arange(200) / 30) * np.sin(2 * np.pi * 3000 * np.arange(200) / sr)
        y = y + 0.3 * np.convolve(clicks, ring)[: t.size]
    elif fault == "resonance":
        y = y + rng.uniform(0.0, 0.15) * np.sin(2 * np.pi * 3000 * t)
    elif fault == "whine":
        y = y + 0.15 * np.sin(2 * np.pi * 2300 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    elif fault:
        raise ValueError(f"unknown fault {fault!r}")
    return (y / 2).astype(np.float32)


def tone(rng: np.random.Generator, freq: float = 200.0, amp: float = 0.3, seconds: float = 0.5, sr: int = SR,
         channels: int = 1) -> np.ndarray:
    """A sine of ``freq`` Hz with faint noise; ``(n,)``, or ``(n, channels)`` with channel ``c``
    at ``1 - 0.2 c`` of the first one's level. float32 (``amp`` > 1 clips nothing)."""
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    if channels > 1:
        y = np.stack([y * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return y.astype(np.float32)


def machine_sound(seconds: float, channels: int, seed: int = 0, sr: int = SR) -> np.ndarray:
    """A hum (50 Hz and harmonics, a little noise) with a loud 2.5 kHz fault tone in the middle
    third; each channel hears it differently (its own gain, phase and noise). (n, channels) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.empty((n, channels), np.float32)
    fault = np.zeros(n)
    fault[n // 3 : 2 * n // 3] = 0.5 * np.sin(2 * np.pi * 2500 * t[n // 3 : 2 * n // 3])
    for k in range(channels):
        machine = 0.2 * np.sin(2 * np.pi * 50 * t + k) + 0.1 * np.sin(2 * np.pi * 100 * t + 0.3 * k)
        out[:, k] = (1.0 - 0.2 * k) * (machine + fault) + 0.02 * rng.standard_normal(n)
    return out
