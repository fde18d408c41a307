"""Decode, mix down, resample, window and write audio clips.

Everything here returns ``float32`` numpy arrays scaled to ``[-1, 1)``; shapes are given as
``(n_samples,)`` for a mono signal and ``(n_windows, frame_length)`` for windows. Only numpy,
scipy and soundfile are imported.

Bad files raise :class:`~earshot.errors.AudioError` whose one-line message starts with the
file path; bad parameters raise :class:`~earshot.errors.ParameterError`. No exception from
soundfile/libsndfile escapes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot._util.fs import PendingFile
from earshot.errors import AudioError, ParameterError, ResampleWarning
from earshot.io.limits import DEFAULT_LIMITS, MAX_RESAMPLE_TERM, DecodeLimits, check_header, resample_terms

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

log = logging.getLogger(__name__)

_INT16_SCALE = np.float32(1.0 / 32768.0)
# Exceptions soundfile/libsndfile raise for unreadable input (LibsndfileError is a RuntimeError).
_SF_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError, EOFError)
# libsndfile's log line for a WAV whose data chunk is longer than what is left of the file.
_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Frames read at once from a multichannel file: only the channel(s) kept outlive a block.
_READ_BLOCK = 65536
#: libsndfile subtypes whose samples are integers (decoded samples are finite by construction).
_INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})

_warned_rates: set[tuple[int, int]] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says.

    Attributes
    ----------
    sr : int
        Sample rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Number of samples per channel.
    duration_s : float
        ``frames / sr``.
    subtype : str
        soundfile subtype, e.g. ``"PCM_16"``, ``"FLOAT"``.
    format : str
        soundfile container format, e.g. ``"WAV"``, ``"WAVEX"``, ``"FLAC"``.
    """

    sr: int
    channels: int
    frames: int
    duration_s: float
    subtype: str
    format: str


def _open(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(os.fspath(path))
    except _SF_ERRORS as exc:
        # Look at the file system only on failure: the common path costs no extra stat call.
        if not path.exists():
            raise AudioError(f"{path}: no such file") from None
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file") from None
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty (0 bytes)") from None
        raise AudioError(f"{path}: not a readable audio file ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    """One line from a soundfile error, without the 'Error opening <path>:' prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error opening .*?:\s*", "", text)
    return text.rstrip(".")


def _check_truncated(path: Path, f: sf.SoundFile) -> None:
    """Raise AudioError when libsndfile reports a WAV data chunk cut short."""
    if f.format not in ("WAV", "WAVEX", "RF64"):
        return
    try:
        extra = f.extra_info
    except _SF_ERRORS:  # pragma: no cover - the log is informational only
        return
    match = _TRUNCATED_DATA.search(extra)
    if match is None:
        return
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared in (0, 0xFFFFFFFF) or declared <= actual:  # streamed/unknown-size writers
        return
    raise AudioError(
        f"{path}: truncated audio file (data chunk declares {declared} bytes, "
        f"only {actual} present)"
    )


def info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read an audio file's header.

    Parameters
    ----------
    path : str or path-like
        A wav or flac file (anything libsndfile reads).

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        Missing file, or not a readable audio file.
    """
    p = Path(path)
    with _open(p) as f:
        _check_truncated(p, f)
        return AudioInfo(
            sr=int(f.samplerate),
            channels=int(f.channels),
            frames=int(f.frames),
            duration_s=float(f.frames) / float(f.samplerate),
            subtype=str(f.subtype),
            format=str(f.format),
        )


def _check_rate(name: str, value: object, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ParameterError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def _warn_resample(path: Path, orig_sr: int, target_sr: int) -> None:
    key = (orig_sr, target_sr)
    with _warned_lock:
        first = key not in _warned_rates
        _warned_rates.add(key)
    if first:
        msg = (
            f"resampling {orig_sr} Hz audio to {target_sr} Hz (first file: {path}); "
            f"further {orig_sr} Hz files are resampled without warning"
        )
        log.warning(msg)
        warnings.warn(msg, ResampleWarning, stacklevel=3)
    else:
        log.debug("resampling %s from %d Hz to %d Hz", path, orig_sr, target_sr)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal with :func:`scipy.signal.resample_poly` (ratio reduced by gcd).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray, shape (ceil(n_samples * target_sr / orig_sr),), float32

    Raises
    ------
    ParameterError
        A ratio whose reduced terms exceed :data:`~earshot.io.limits.MAX_RESAMPLE_TERM` (the
        filter would grow with them).
    """
    from scipy.signal import resample_poly  # scipy.signal is slow to import; only when needed

    orig_sr = _check_rate("orig_sr", orig_sr, allow_none=False)
    target_sr = _check_rate("target_sr", target_sr, allow_none=False)
    if orig_sr == target_sr:
        return np.asarray(y, dtype=np.float32)
    up, down = resample_terms(orig_sr, target_sr)
    if max(up, down) > MAX_RESAMPLE_TERM:
        raise ParameterError(f"cannot resample {orig_sr} Hz to {target_sr} Hz with a bounded filter "
                             f"(ratio {up}/{down}, terms above {MAX_RESAMPLE_TERM})")
    out = resample_poly(np.asarray(y, dtype=np.float32), up, down)
    return np.asarray(out, dtype=np.float32)


def load(
    path: str | os.PathLike[str],
    *,
    sr: int | None = 16000,
    channel: int | None = None,
    limits: DecodeLimits | None = DEFAULT_LIMITS,
) -> tuple[np.ndarray, int]:
    """Decode an audio file to a mono float32 signal.

    Parameters
    ----------
    path : str or path-like
        A wav (including 8-channel WAVE_FORMAT_EXTENSIBLE MIMII files) or flac file.
    sr : int or None, default 16000
        Target sample rate in Hz. A file at another rate is resampled with
        :func:`scipy.signal.resample_poly`; a :class:`ResampleWarning` is issued once per
        ``(file rate, sr)`` pair per process. ``None`` keeps the file's rate.
    channel : int or None, default None
        ``None`` averages all channels; ``N`` picks channel ``N`` (0-based). A multichannel
        file is read in blocks, so only the kept signal is held in full.
    limits : DecodeLimits or None, default DEFAULT_LIMITS
        Checked from the header before decoding (channels, sample rate, duration, decoded
        bytes, resampling ratio); None checks nothing.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32
        Samples in ``[-1, 1)``. A clip of all zeros is returned as is.
    sr : int
        The sample rate of ``y``.

    Raises
    ------
    AudioError
        Missing file, not a readable audio file, truncated file, or zero samples;
        :class:`~earshot.io.limits.DecodeLimitError` when the header exceeds ``limits``.
    ParameterError
        ``sr`` not a positive int, or ``channel`` out of range for the file.
    """
    target_sr = _check_rate("sr", sr, allow_none=True)
    if channel is not None and (
        isinstance(channel, bool) or not isinstance(channel, (int, np.integer))
    ):
        raise ParameterError(f"channel must be an int >= 0 or None, got {channel!r}")
    p = Path(path)
    with _open(p) as f:
        n_channels, file_sr, frames = int(f.channels), int(f.samplerate), int(f.frames)
        subtype = f.subtype
        if channel is not None and not 0 <= channel < n_channels:
            raise ParameterError(
                f"{p}: channel={channel} is out of range: the file has {n_channels} "
                f"channel{'s' if n_channels != 1 else ''} (valid: 0..{n_channels - 1})"
            )
        _check_truncated(p, f)
        if frames == 0:
            raise AudioError(f"{p}: contains zero samples")
        if limits is not None:
            check_header(p, sr=file_sr, channels=n_channels, frames=frames, limits=limits, target_sr=target_sr)
        try:
            y = _read_mono(f, channel)
        except _SF_ERRORS as exc:
            raise AudioError(f"{p}: could not decode audio ({_describe(exc)})") from None
    if y.shape[0] == 0:
        raise AudioError(f"{p}: contains zero samples")
    if y.shape[0] < frames:
        raise AudioError(f"{p}: truncated audio file ({y.shape[0]} of {frames} samples read)")
    check_finite(p, y, subtype=subtype)
    if target_sr is not None and target_sr != file_sr:
        _warn_resample(p, file_sr, target_sr)
        y = resample(y, file_sr, target_sr)
        return y, target_sr
    return y, file_sr


def check_finite(path: object, y: np.ndarray, *, subtype: str | None = None) -> None:
    """Raise AudioError naming ``path`` when decoded samples hold NaN or infinity (float files).

    ``subtype`` is the file's libsndfile subtype: an integer one (PCM, u-law, A-law) decodes to
    finite samples by construction, so its samples are not scanned (about 50 us per 10 s clip).
    """
    if subtype in _INTEGER_SUBTYPES:
        return
    if y.dtype.kind == "f" and not np.isfinite(np.sum(y, dtype=np.float64)) and not np.isfinite(y).all():
        raise AudioError(f"{path}: contains NaN or infinite samples (a corrupt float file)")


def _read_mono(f: sf.SoundFile, channel: int | None) -> np.ndarray:
    """One float32 signal: the file itself, one channel, or the mean, read block by block.

    PCM_16 is read as int16 and scaled (about 3x faster than libsndfile's float decoding);
    a multichannel file never exists in full: each block is reduced to the kept signal.
    """
    pcm16 = f.subtype == "PCM_16"
    dtype = "int16" if pcm16 else "float32"
    scale = 1.0 / 32768.0 if pcm16 else 1.0
    if f.channels == 1:
        data = f.read(dtype=dtype)
        return np.multiply(data, _INT16_SCALE, dtype=np.float32) if pcm16 else data
    parts = []
    for block in f.blocks(blocksize=_READ_BLOCK, dtype=dtype, always_2d=True):
        if channel is not None:
            parts.append(np.multiply(block[:, channel], np.float32(scale), dtype=np.float32))
        else:
            parts.append(_mix_down(block, scale))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


_MIX_BLOCK = 16384  # frames converted at once: keeps the float32 temporary in cache


def _mix_down(data: np.ndarray, scale: float) -> np.ndarray:
    """Average the channels of (n, channels) samples (times ``scale``) into float32 (n,).

    A matrix-vector product per block of frames: ~5x faster than ``sum(axis=1)`` on (n, 8)
    int16, and without a full-size float32 copy of all channels.
    """
    n, channels = data.shape
    weights = np.full(channels, scale / channels, dtype=np.float32)
    y = np.empty(n, dtype=np.float32)
    block = np.empty((min(n, _MIX_BLOCK), channels), dtype=np.float32)
    for s in range(0, n, _MIX_BLOCK):
        chunk = data[s : s + _MIX_BLOCK]
        tmp = block[: chunk.shape[0]]
        np.copyto(tmp, chunk, casting="unsafe")
        np.matmul(tmp, weights, out=y[s : s + chunk.shape[0]])
    return y


def save(
    path: str | os.PathLike[str],
    y: np.ndarray,
    sr: int,
    *,
    subtype: str = "PCM_16",
) -> None:
    """Write a clip atomically (a temporary file in the same folder, renamed when complete).

    Parameters
    ----------
    path : str or path-like
        Destination; the container format follows the extension (``.wav``, ``.flac``).
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
        Float samples in ``[-1, 1]``; integer subtypes clip values outside that range.
    sr : int
        Sample rate in Hz.
    subtype : str, default "PCM_16"
        A soundfile subtype.

    Raises
    ------
    ParameterError
        Bad ``y``, ``sr`` or ``subtype``.
    AudioError
        The file could not be written (missing folder, permissions, ...). No partial file is
        left behind.
    """
    sr_int = _check_rate("sr", sr, allow_none=False)
    p = Path(path)
    arr = np.asarray(y)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise ParameterError(
            f"y must have shape (n_samples,) or (n_samples, n_channels) with n_samples > 0, "
            f"got shape {arr.shape}"
        )
    fmt = p.suffix[1:].upper()
    if fmt not in sf.available_formats():
        raise ParameterError(
            f"{p}: unknown audio file extension {p.suffix!r} (expected e.g. .wav or .flac)"
        )
    if not sf.check_format(fmt, subtype):
        raise ParameterError(f"subtype {subtype!r} cannot be written to a {fmt} file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise AudioError(f"{p}: cannot write: folder {parent} does not exist")
    try:
        pending = PendingFile(p)
    except OSError as exc:
        raise AudioError(f"{p}: cannot write ({exc.strerror or exc})") from None
    try:
        sf.write(str(pending.tmp), arr, sr_int, subtype=subtype, format=fmt)
        pending.commit()
    except _SF_ERRORS as exc:
        raise AudioError(f"{p}: cannot write ({_describe(exc)})") from None
    finally:
        pending.discard()


def frame_signal(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Cut a signal into overlapping windows without copying.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    frame_length : int
        Samples per window.
    hop_length : int
        Samples between window starts.

    Returns
    -------
    np.ndarray, shape (1 + (n_samples - frame_length) // hop_length, frame_length)
        A read-only strided view of ``y``; the tail that does not fill a window is dropped.

    Raises
    ------
    ParameterError
        ``y`` not 1-D, lengths not positive ints, or ``y`` shorter than one window.
    """
    for name, value in (("frame_length", frame_length), ("hop_length", hop_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ParameterError(f"{name} must be a positive int, got {value!r}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if y.shape[0] < frame_length:
        raise ParameterError(
            f"signal of {y.shape[0]} samples is shorter than frame_length={frame_length}"
        )
    return np.lib.stride_tricks.sliding_window_view(y, int(frame_length))[:: int(hop_length)]


def segment(
    y: np.ndarray, sr: int, *, window_s: float, hop_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a long recording into fixed-length windows (views, no copy).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    sr : int
        Sample rate in Hz.
    window_s : float
        Window length in seconds (rounded to whole samples).
    hop_s : float
        Time between window starts in seconds (rounded to whole samples).

    Returns
    -------
    windows : np.ndarray, shape (n_windows, round(window_s * sr))
        Read-only strided view of ``y``.
    starts_s : np.ndarray, shape (n_windows,), float64
        Start time of each window in seconds.

    Raises
    ------
    ParameterError
        Non-positive durations, or a signal shorter than one window.
    """
    sr_int = _check_rate("sr", sr, allow_none=False)
    for name, value in (("window_s", window_s), ("hop_s", hop_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            math.isfinite(value) and value > 0
        ):
            raise ParameterError(f"{name} must be a positive number of seconds, got {value!r}")
    frame_length = round(window_s * sr_int)
    hop_length = round(hop_s * sr_int)
    if frame_length < 1 or hop_length < 1:
        raise ParameterError(
            f"window_s={window_s} and hop_s={hop_s} must each last at least one sample "
            f"at sr={sr_int}"
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if y.shape[0] < frame_length:
        raise ParameterError(
            f"signal of {y.shape[0] / sr_int:.3f} s ({y.shape[0]} samples) is shorter than "
            f"window_s={window_s} ({frame_length} samples)"
        )
    windows = frame_signal(y, frame_length=frame_length, hop_length=hop_length)
    starts_s = np.arange(windows.shape[0], dtype=np.float64) * (hop_length / sr_int)
    return windows, starts_s
