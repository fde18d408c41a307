"""The decode budget: what an audio file's header may claim before any sample is decoded.

A compressed file can be small and still decode to gigabytes (a 476 KB FLAC of 8 channels at
96 kHz for 600 s of a constant decodes to 1.8 GB of float32), and a header can claim any
sample rate (1,000,003 Hz makes :func:`scipy.signal.resample_poly` build a filter of 20
million taps). :func:`check_header` refuses such files from the header alone, before
decoding, with one line that names the file and the limit.

The defaults are in one place, here: :data:`DEFAULT_LIMITS` for the library and the command
line (generous: long recordings are normal there), :data:`SERVICE_LIMITS` for uploads to
``earshot serve`` (each overridable with a ``serve`` option).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from earshot.errors import AudioError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_RESAMPLE_TERM",
    "SERVICE_LIMITS",
    "DecodeLimitError",
    "DecodeLimits",
    "check_header",
    "resample_terms",
]

#: The largest up or down factor (after dividing by the gcd of the two rates) that
#: resampling accepts: the polyphase filter has ``20 * max(up, down) + 1`` taps. Every pair of
#: the usual rates (8, 11.025, 16, 22.05, 24, 32, 44.1, 48, 88.2, 96, 176.4, 192 kHz) fits.
MAX_RESAMPLE_TERM = 1000


class DecodeLimitError(AudioError):
    """A file's header claims more than the decode budget allows.

    Attributes
    ----------
    too_large : bool
        True for size limits (duration, decoded bytes): the service answers 413; False for a
        shape it cannot use (channels, sample rate, resampling ratio): 422.
    """

    def __init__(self, message: str, *, too_large: bool):
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class DecodeLimits:
    """Limits checked from a header before decoding.

    Attributes
    ----------
    max_channels : int
        Most channels a file may have.
    min_sr, max_sr : int
        Accepted sample rates in Hz (inclusive).
    max_duration_s : float or None
        Longest file in seconds; None: no limit.
    max_decoded_bytes : int
        Largest ``channels x frames x 4`` (the float32 size of every channel decoded).
    """

    max_channels: int = 64
    min_sr: int = 8000
    max_sr: int = 192000
    max_duration_s: Optional[float] = None
    max_decoded_bytes: int = 4 * 1024**3


#: Library and command-line defaults (a 4 GiB decode is e.g. 8 channels of 16 kHz for 2.3 h).
DEFAULT_LIMITS = DecodeLimits()
#: Defaults of ``earshot serve`` (per upload): 600 s, 64 MiB decoded, 32 channels.
SERVICE_LIMITS = DecodeLimits(max_channels=32, max_duration_s=600.0, max_decoded_bytes=64 * 1024**2)


def resample_terms(orig_sr: int, target_sr: int) -> tuple[int, int]:
    """``(up, down)`` of resampling ``orig_sr`` to ``target_sr`` (the ratio reduced by the gcd)."""
    g = math.gcd(int(orig_sr), int(target_sr))
    return int(target_sr) // g, int(orig_sr) // g


def check_header(label: object, *, sr: int, channels: int, frames: int,
                 limits: DecodeLimits = DEFAULT_LIMITS, target_sr: Optional[int] = None) -> None:
    """Refuse a file whose header exceeds ``limits`` (nothing decoded yet).

    Parameters
    ----------
    label : object
        How the file is named in the message (a path, or ``upload 'x.wav'``).
    sr, channels, frames : int
        What the header says.
    limits : DecodeLimits
    target_sr : int or None
        The rate the file will be resampled to; its ratio must fit :data:`MAX_RESAMPLE_TERM`.

    Raises
    ------
    DecodeLimitError
        One line naming the file, the claimed value and the limit.
    """
    if channels > limits.max_channels:
        raise DecodeLimitError(f"{label}: {channels} channels; at most {limits.max_channels} are accepted",
                               too_large=False)
    if not limits.min_sr <= sr <= limits.max_sr:
        raise DecodeLimitError(f"{label}: sample rate {sr} Hz is outside the accepted {limits.min_sr}-"
                               f"{limits.max_sr} Hz", too_large=False)
    duration = frames / sr
    if limits.max_duration_s is not None and duration > limits.max_duration_s:
        raise DecodeLimitError(f"{label}: {duration:.1f} s of audio; at most {limits.max_duration_s:g} s is "
                               "accepted", too_large=True)
    decoded = channels * frames * 4
    if decoded > limits.max_decoded_bytes:
        raise DecodeLimitError(
            f"{label}: decodes to {decoded / 2**20:.0f} MiB ({channels} channels x {frames} samples x 4 bytes); "
            f"at most {limits.max_decoded_bytes / 2**20:.0f} MiB is accepted", too_large=True)
    if target_sr is not None and target_sr != sr:
        up, down = resample_terms(sr, target_sr)
        if max(up, down) > MAX_RESAMPLE_TERM:
            raise DecodeLimitError(
                f"{label}: cannot resample {sr} Hz to {target_sr} Hz with a bounded filter (ratio {up}/{down}); "
                "record at a usual rate (e.g. 16, 44.1 or 48 kHz)", too_large=False)
