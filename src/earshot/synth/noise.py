"""Factory background: coloured noise, distant machinery hum and occasional impacts.

MIMII mixed each machine recording with background noise recorded in real factories, at
-6, 0 and 6 dB SNR. :class:`Background` is a small model of such a background: a mix of pink
and brown noise (ventilation, distant traffic, general rumble), the hum of distant rotating
machinery (a low fundamental with a few harmonics, slowly fluctuating), and now and then an
impact somewhere in the hall (a few decaying modes: a dropped part, a hammer, a door).

Each factory's parameters are drawn once from its own seeded generator
(:meth:`Background.from_seed`); each clip draws a fresh realisation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from earshot.synth._dsp import Canvas, damped_modes, place

__all__ = ["Background", "snr_gain"]


def snr_gain(snr_db: float) -> float:
    """Amplitude of the background relative to the machine for a signal-to-noise ratio."""
    return float(10.0 ** (-snr_db / 20.0))


@dataclass(frozen=True)
class Background:
    """One factory's background sound.

    Attributes
    ----------
    brown_share : float
        Power share of brown (1/f^2) noise in the broadband part; the rest is pink (1/f).
    corner_hz : float
        Below this frequency the broadband part is flat (no infinite rumble).
    lowpass_hz : float
        Gentle roll-off of the broadband part (air absorption, distance).
    hum_f0 : float
        Fundamental (Hz) of the distant machinery hum.
    hum_amps : tuple of float
        Relative amplitudes of its harmonics 1, 2, ...
    hum_share : float
        Power share of the hum in the background (the rest is broadband noise).
    impact_rate : float
        Mean number of impacts per second (Poisson).
    impact_db : float
        Mean peak level of an impact relative to the background RMS (dB).
    """

    brown_share: float
    corner_hz: float
    lowpass_hz: float
    hum_f0: float
    hum_amps: tuple
    hum_share: float
    impact_rate: float
    impact_db: float

    @classmethod
    def from_seed(cls, seed: int, place_name: str) -> "Background":
        """The background of the factory named ``place_name`` (e.g. the machine type) for a seed."""
        rng = np.random.default_rng([seed, zlib.crc32(place_name.encode()), 0xB6])
        n_h = int(rng.integers(3, 7))
        hum_amps = tuple(float(a) for a in 10 ** (-rng.uniform(2.0, 6.0) * np.arange(n_h) / 20.0
                                                    + rng.normal(0, 0.15, n_h)))
        return cls(
            brown_share=float(rng.uniform(0.2, 0.8)),
            corner_hz=float(rng.uniform(20.0, 60.0)),
            lowpass_hz=float(rng.uniform(3000.0, 7000.0)),
            hum_f0=float(rng.uniform(22.0, 65.0)),
            hum_amps=hum_amps,
            hum_share=float(rng.uniform(0.1, 0.35)),
            impact_rate=float(rng.uniform(0.1, 0.5)),
            impact_db=float(rng.uniform(6.0, 14.0)),
        )

    def broadband_spec(self) -> tuple:
        """The :func:`~earshot.synth._dsp.psd` spec of the broadband part."""
        lp = ("lowpass", self.lowpass_hz, 1)
        return ("+",
                (1.0 - self.brown_share, ("*", ("pink", self.corner_hz), lp)),
                (self.brown_share, ("*", ("brown", self.corner_hz), lp)))

    def render(self, canvas: Canvas, rng: np.random.Generator, rms: float) -> None:
        """Add one realisation of RMS about ``rms`` (impacts on top) to ``canvas``."""
        if rms <= 0.0:
            return
        n, sr = canvas.n, canvas.sr
        canvas.add_noise(self.broadband_spec(), rms * np.sqrt(1.0 - self.hum_share))
        # distant hum: steady harmonics (as spectrum lines) with a little slow level drift
        f0 = self.hum_f0 * (1.0 + rng.normal(0.0, 0.003))
        amps = np.asarray(self.hum_amps) * np.exp(rng.normal(0.0, 0.1, len(self.hum_amps)))
        amps *= rms * np.sqrt(self.hum_share) / np.sqrt(0.5 * np.sum(amps**2))
        h = np.arange(1, len(amps) + 1)
        canvas.add_tones(f0 * h, amps, rng.uniform(0, 2 * np.pi, len(amps)))
        side = np.arange(1, 4) * sr / n  # sidebands 1-3 bins away: slow beating
        for s in (-1.0, 1.0):
            canvas.add_tones((f0 * h)[:, None] + s * side[None, :],
                             amps[:, None] * rng.uniform(0.0, 0.08, (len(amps), 3)),
                             rng.uniform(0, 2 * np.pi, (len(amps), 3)))
        # impacts
        duration = n / sr
        k = int(rng.poisson(self.impact_rate * duration))
        for _ in range(k):
            modes = int(rng.integers(2, 5))
            tmpl = damped_modes(
                sr,
                rng.uniform(150.0, 3500.0, modes),
                rng.uniform(0.01, 0.08, modes),
                rng.uniform(0.3, 1.0, modes),
            )
            tmpl /= max(float(np.max(np.abs(tmpl))), 1e-9)
            level = rms * 10 ** ((self.impact_db + rng.normal(0.0, 4.0)) / 20.0)
            place(canvas.time, [rng.uniform(0.0, n)], tmpl, [level])
