"""The channel rule: which microphones of a recording a model listens to, and reading them all.

A rule is one of

- ``None`` (written ``mean``): the average of every channel's waveform (one signal);
- ``N`` (an int >= 0): channel ``N`` only (0-based);
- ``"all"`` (:data:`ALL_CHANNELS`): every channel, fused in the features (the log-mel of each
  channel is computed and their mel power averaged before the dB conversion, see
  :func:`earshot.features.extract.fused_log_mel`): no phase cancellation between microphones,
  unlike the waveform mean, and the same log-mel shape as one channel.

The rule is stored in a bundle's manifest as ``features.channel`` (``null``, an int or
``"all"``), so scoring reads the audio the way training did.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from earshot.errors import AudioError, ParameterError
from earshot.io.audio import (_INT16_SCALE, _SF_ERRORS, _check_rate, _check_truncated, _describe, _open,
                              _warn_resample, check_finite, resample)
from earshot.io.limits import DEFAULT_LIMITS, DecodeLimits, check_header

__all__ = ["ALL_CHANNELS", "ChannelRule", "channel_rule", "describe_channels", "load_channels",
           "refuse_fused_stream"]

#: The rule that fuses every channel.
ALL_CHANNELS = "all"
#: ``None`` (mean), a channel number, or :data:`ALL_CHANNELS`.
ChannelRule = Union[int, str, None]


def channel_rule(value: object, *, name: str = "channels") -> ChannelRule:
    """Parse a channel rule: ``None``/``"mean"`` -> None, ``"all"`` -> ``"all"``, ``N``/``"N"`` -> N.

    Raises
    ------
    ParameterError
        Anything else, as one line naming ``name``.
    """
    if value is None or value == "mean":
        return None
    if value == ALL_CHANNELS:
        return ALL_CHANNELS
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ParameterError(f"{name}: expected 'mean', 'all' or a channel number >= 0, got {value!r}")


def describe_channels(rule: ChannelRule) -> str:
    """The rule as written on the command line: ``mean``, ``all`` or the channel number."""
    return "mean" if rule is None else str(rule)


def refuse_fused_stream(rule: ChannelRule, what: str,
                        advice: str = "score whole files with `earshot score`") -> None:
    """Raise a one-line ParameterError when ``what`` (one mono signal in) meets the ``all`` rule.

    Streaming readers (``detect``'s timeline, ``listen``) and the waveform export take one
    signal; fusing channels there is not supported.
    """
    if rule == ALL_CHANNELS:
        raise ParameterError(f"{what}: the model fuses all channels (channels=all), which {what} does not "
                             f"support; {advice}, or train with --channels mean or N")


def load_channels(path: str | os.PathLike[str], *, sr: int | None = 16000,
                  limits: DecodeLimits | None = DEFAULT_LIMITS) -> tuple[np.ndarray, int]:
    """Decode every channel of an audio file.

    Parameters
    ----------
    path : str or path-like
        A wav or flac file, mono or multichannel.
    sr : int or None, default 16000
        Target sample rate (each channel resampled as :func:`earshot.io.audio.load` does);
        ``None`` keeps the file's rate.
    limits : DecodeLimits or None, default DEFAULT_LIMITS
        Checked from the header before decoding (see :func:`earshot.io.limits.check_header`).

    Returns
    -------
    Y : np.ndarray, shape (n_channels, n_samples), float32
        Samples in ``[-1, 1)``; a mono file gives one row.
    sr : int

    Raises
    ------
    AudioError
        Missing, unreadable, truncated or empty file.
    """
    target_sr = _check_rate("sr", sr, allow_none=True)
    p = Path(path)
    with _open(p) as f:
        file_sr, frames, subtype = int(f.samplerate), int(f.frames), f.subtype
        _check_truncated(p, f)
        if frames == 0:
            raise AudioError(f"{p}: contains zero samples")
        if limits is not None:
            check_header(p, sr=file_sr, channels=int(f.channels), frames=frames, limits=limits, target_sr=target_sr)
        try:
            if subtype == "PCM_16":
                data = np.multiply(f.read(dtype="int16", always_2d=True), _INT16_SCALE, dtype=np.float32)
            else:
                data = f.read(dtype="float32", always_2d=True)
        except _SF_ERRORS as exc:
            raise AudioError(f"{p}: could not decode audio ({_describe(exc)})") from None
    if data.shape[0] < frames or data.shape[0] == 0:
        raise AudioError(f"{p}: truncated audio file ({data.shape[0]} of {frames} samples read)")
    check_finite(p, data, subtype=subtype)
    Y = np.ascontiguousarray(data.T)
    if target_sr is not None and target_sr != file_sr:
        _warn_resample(p, file_sr, target_sr)
        Y = np.stack([resample(y, file_sr, target_sr) for y in Y])
        return Y, target_sr
    return Y, file_sr
