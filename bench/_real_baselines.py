"""The two reference detectors of ``bench/real.py``, outside earshot so nothing of earshot's is
shared with them but the log-mel front end of the Gaussian baseline.

- :class:`GaussBaseline`: a Ledoit-Wolf Mahalanobis distance on the per-mel mean and standard
  deviation over time of a 64-mel log-mel (earshot's ``log_mel``, librosa-compatible, 16 kHz,
  n_fft 1024, hop 512). No standardisation, no band grouping, no domain handling.
- :class:`PyodAudioAE`: PyOD's own ``pyod.models.audio_ae.AudioAE`` at its defaults (librosa
  log-mel at 22,050 Hz, 64 mels, 5 context frames, a 320-128-32-8 autoencoder with batch norm
  and dropout, 40 epochs, per-dimension standardisation, clip score = mean window
  reconstruction distance), given ``(waveform, sample_rate)`` tuples so that the bench picks
  the channel. Needs ``pip install -e '.[bench]'`` (pyod pinned there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_std(logmels: Sequence[np.ndarray]) -> np.ndarray:
    """``(n_clips, 2 * n_mels)``: per-mel mean and standard deviation over time."""
    return np.stack([np.concatenate([m.mean(axis=1), m.std(axis=1)]) for m in logmels]).astype(np.float64)


class GaussBaseline:
    """Ledoit-Wolf Mahalanobis distance of per-mel mean/std to the normal clips' mean."""

    def fit(self, logmels: Sequence[np.ndarray]) -> "GaussBaseline":
        from sklearn.covariance import LedoitWolf

        self.lw_ = LedoitWolf().fit(mean_std(logmels))
        return self

    def score_samples(self, logmels: Sequence[np.ndarray]) -> np.ndarray:
        return self.lw_.mahalanobis(mean_std(logmels))  # squared distance: same ranking


class PyodAudioAE:
    """PyOD's AudioAE at its defaults on ``(waveform, sr)`` clips."""

    def __init__(self, **params):
        self.params = params

    def fit(self, waves: Sequence[tuple[np.ndarray, int]]) -> "PyodAudioAE":
        from pyod.models.audio_ae import AudioAE

        self.model_ = AudioAE(**self.params).fit(list(waves))
        return self

    def score_samples(self, waves: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        return np.asarray(self.model_.decision_function(list(waves)), dtype=np.float64)


def pyod_version() -> str | None:
    try:
        import pyod

        return pyod.__version__
    except ImportError:
        return None
