"""Features: log-mel spectrograms and context frames (numpy/scipy only; librosa-compatible).

See :mod:`earshot.features.mel` for the definitions and :mod:`earshot.features.context` for
the DCASE-style context vectors.
"""

from __future__ import annotations

from earshot.features.config import FeatureConfig
from earshot.features.context import context_frames
from earshot.features.mel import log_mel, log_mel_batch, mel_filterbank, power_spectrogram

__all__ = [
    "FeatureConfig",
    "context_frames",
    "log_mel",
    "log_mel_batch",
    "mel_filterbank",
    "power_spectrogram",
]
