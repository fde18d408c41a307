"""Audio input/output: decode, channel selection, resampling, windows, atomic writes.

numpy, scipy and soundfile only. See :mod:`earshot.io.audio`.
"""

from __future__ import annotations

from earshot.io.audio import (
    AudioInfo,
    ResampleWarning,
    frame_signal,
    info,
    load,
    resample,
    save,
    segment,
)

__all__ = [
    "AudioInfo",
    "ResampleWarning",
    "frame_signal",
    "info",
    "load",
    "resample",
    "save",
    "segment",
]
