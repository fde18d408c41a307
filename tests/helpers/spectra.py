"""Synthetic log-mel clips (``(n_mels, n_time)`` float32, in dB) for detector tests."""

from __future__ import annotations

import numpy as np


def flat_clips(rng: np.random.Generator, n: int, *, n_mels: int, n_time: int, sd: float) -> list[np.ndarray]:
    """``n`` clips of Gaussian noise around -40 dB with standard deviation ``sd``."""
    return [rng.normal(-40, sd, size=(n_mels, n_time)).astype(np.float32) for _ in range(n)]


def sloped_clips(rng: np.random.Generator, n: int, *, n_mels: int = 32, n_time: int = 60,
                 tone: int | slice | None = None, base: np.ndarray | None = None) -> list[np.ndarray]:
    """``n`` clips: a -60 to -20 dB slope over the bands (or ``base``, ``(n_mels, 1)``) plus unit
    noise; ``tone`` bands +12 dB."""
    if base is None:
        base = np.linspace(-60, -20, n_mels, dtype=np.float32)[:, None]
    clips = []
    for _ in range(n):
        x = base + rng.normal(0, 1.0, size=(n_mels, n_time)).astype(np.float32)
        if tone is not None:
            x[tone] += 12.0
        clips.append(x)
    return clips


def machine_clip(rng: np.random.Generator, *, n_mels: int = 32, n_time: int = 64, noise_sd: float = 1.0,
                 hum: int = 6, hum_db: float = 12.0, hum_jitter: float = 0.0, tone: int | slice | None = None,
                 tone_db: float = 10.0, tilt: float = 0.0, gain_db: float = 0.0) -> np.ndarray:
    """A noisy machine-like clip: a -50 to -30 dB slope, a hum in band ``hum``, optional extras.

    Parameters
    ----------
    noise_sd : float
        Standard deviation of the Gaussian noise over every bin.
    hum, hum_db, hum_jitter : int, float, float
        The hum's band, its level above the slope and, when non-zero, the standard deviation of
        a random offset of that level (drawn after the noise).
    tone, tone_db : int or slice or None, float
        Bands raised by ``tone_db`` (an anomaly).
    tilt, gain_db : float
        A change of the slope (``tilt`` dB at the top band, ``-tilt`` at the bottom) and of the
        overall level: a domain shift.
    """
    base = np.linspace(-50, -30, n_mels)[:, None] + tilt * np.linspace(-1, 1, n_mels)[:, None]
    x = base + gain_db + rng.normal(0, noise_sd, size=(n_mels, n_time))
    x[hum] += hum_db + rng.normal(0, hum_jitter) if hum_jitter else hum_db
    if tone is not None:
        x[tone] += tone_db
    return x.astype(np.float32)
