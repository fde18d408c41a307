"""One audio file to its log-mel features, with the checks every caller needs."""

from __future__ import annotations

import os

import numpy as np

from earshot.errors import AudioError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel
from earshot.features.stft_kernels import AMIN
from earshot.io.audio import load
from earshot.io.channels import ALL_CHANNELS, ChannelRule, load_channels

__all__ = ["file_log_mel", "file_waveform", "fused_log_mel"]


def fused_log_mel(Y: np.ndarray, config: FeatureConfig, *, workers: int | None = None) -> np.ndarray:
    """Log-mel of several channels fused into one: the mean of the channels' mel power, in dB.

    ``10 * log10(max(amin, mean_c(10 ** (log_mel(Y[c]) / 10))))``: power is averaged, not
    waveforms, so microphones whose signals are out of phase do not cancel; the result has the
    shape of one channel's log-mel, so every detector scores it as it is.

    Parameters
    ----------
    Y : np.ndarray, shape (n_channels, n_samples) or (n_samples,)
        Audio at ``config.sr``; a 1-D signal gives its plain log-mel.
    config : FeatureConfig
    workers : int or None
        Threads for :func:`~earshot.features.mel.log_mel`.

    Returns
    -------
    np.ndarray
        Shape ``(n_mels, n_time)``, float32, dB.
    """
    per_channel = log_mel(Y, config, workers=workers)
    if per_channel.ndim == 2:
        return per_channel
    power = np.power(10.0, per_channel.astype(np.float64) / 10.0).mean(axis=0)
    return (10.0 * np.log10(np.maximum(power, AMIN))).astype(np.float32)


def file_log_mel(path: str | os.PathLike, config: FeatureConfig, *, channel: ChannelRule = None,
                 min_frames: int = 1) -> np.ndarray:
    """Decode ``path`` at ``config.sr`` and return its log-mel spectrogram.

    Parameters
    ----------
    path : path-like
    config : FeatureConfig
    channel : int, "all" or None
        Channel to read; None averages all channels' waveforms; ``"all"`` fuses every channel
        (:func:`fused_log_mel`).
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
    if channel == ALL_CHANNELS:
        y, _ = load_channels(path, sr=config.sr)
    else:
        y, _ = load(path, sr=config.sr, channel=channel)
    if not np.any(y):
        raise AudioError(f"{path}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    logmel = fused_log_mel(y, config) if y.ndim == 2 else log_mel(y, config)
    if logmel.shape[1] < min_frames:
        raise AudioError(
            f"{path}: too short ({y.shape[-1] / config.sr:.3f} s gives {logmel.shape[1]} frames; "
            f"at least {min_frames} are needed)"
        )
    return logmel


def file_waveform(path: str | os.PathLike, sr: int, *, channel: ChannelRule = None,
                  min_samples: int = 1) -> np.ndarray:
    """Decode ``path`` at ``sr`` and return its mono waveform (for a waveform-input encoder).

    The channel rule is :func:`file_log_mel`'s, except ``"all"``: a waveform model takes one
    signal, so ``"all"`` averages the channels' waveforms like ``None``.

    Returns
    -------
    np.ndarray
        Shape ``(n_samples,)``, float32.

    Raises
    ------
    AudioError
        Unreadable file, digital silence, or fewer than ``min_samples`` samples.
    """
    y, _ = load(path, sr=sr, channel=None if channel == ALL_CHANNELS else channel)
    if not np.any(y):
        raise AudioError(f"{path}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    if y.shape[-1] < min_samples:
        raise AudioError(f"{path}: too short ({y.shape[-1]} samples at {sr} Hz; at least {min_samples} are needed)")
    return np.ascontiguousarray(y, dtype=np.float32)
