"""One audio file to its log-mel features, with the checks every caller needs."""

from __future__ import annotations

import os

import numpy as np

from earshot.errors import AudioError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel
from earshot.io.audio import load

__all__ = ["file_log_mel"]


def file_log_mel(path: str | os.PathLike, config: FeatureConfig, *, channel: int | None = None,
                 min_frames: int = 1) -> np.ndarray:
    """Decode ``path`` at ``config.sr`` and return its log-mel spectrogram.

    Parameters
    ----------
    path : path-like
    config : FeatureConfig
    channel : int or None
        Channel to read; None averages all channels.
    min_frames : int
        Fewest frames the clip must give (a model's context window).

    Returns
    -------
    np.ndarray
        Shape ``(n_mels, n_time)``, float32, dB.

    Raises
    ------
    AudioError
        Unreadable file, digital silence (every sample zero: a dead or unplugged microphone
        is a fault of the recording, not of the machine), or a clip too short for the model.
    """
    y, _ = load(path, sr=config.sr, channel=channel)
    if not np.any(y):
        raise AudioError(f"{path}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    logmel = log_mel(y, config)
    if logmel.shape[1] < min_frames:
        raise AudioError(
            f"{path}: too short ({len(y) / config.sr:.3f} s gives {logmel.shape[1]} frames; "
            f"at least {min_frames} are needed)"
        )
    return logmel
