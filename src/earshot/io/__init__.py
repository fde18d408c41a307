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
from earshot.io.limits import DEFAULT_LIMITS, SERVICE_LIMITS, DecodeLimitError, DecodeLimits, check_header

__all__ = [
    "DEFAULT_LIMITS",
    "SERVICE_LIMITS",
    "AudioInfo",
    "DecodeLimitError",
    "DecodeLimits",
    "check_header",
    "ResampleWarning",
    "frame_signal",
    "info",
    "load",
    "resample",
    "save",
    "segment",
]
