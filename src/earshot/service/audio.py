"""Uploads: checked as audio by decoding (never by name), scored, drawn.

An upload is copied to ``<data>/tmp`` and read with soundfile: a file libsndfile cannot
decode, an empty, truncated or all-zero one, a clip too short for the model, one sampled
below the model's rate, or one whose header exceeds the decode budget
(:class:`~earshot.io.limits.DecodeLimits`: channels, sample rate, duration, decoded bytes,
resampling ratio; checked before any sample is decoded) is refused with a 4xx message.
Audio sampled *above* the model's rate is resampled (downsampling loses nothing the model
uses); below it, the bands the model learned are missing, so it is refused rather than
scored wrongly.
"""

from __future__ import annotations

import base64
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from earshot.detection.aggregate import aggregate
from earshot.errors import AudioError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.extract import fused_log_mel
from earshot.io.audio import info, load, resample
from earshot.io.channels import ALL_CHANNELS, load_channels
from earshot.io.limits import MAX_RESAMPLE_TERM, SERVICE_LIMITS, DecodeLimitError, DecodeLimits, check_header, resample_terms
from earshot.service.alerts import events
from earshot.timeline.windows import model_window_hop

__all__ = ["ApiError", "AudioFacts", "check_audio", "score_audio", "spectrogram_png", "png_bytes", "data_url"]

log = logging.getLogger(__name__)

#: soundfile container formats accepted, and the extension a stored file gets.
FORMATS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "FLAC": "flac", "OGG": "ogg", "AIFF": "aiff", "MP3": "mp3"}
#: The accepted formats as a client names them (for messages).
FORMAT_NAMES = "wav, flac, mp3, ogg (Vorbis/Opus) or aiff"
#: Sample rate of spectrogram pictures and of checks on machines that have no model yet.
DISPLAY_SR = 16000


class ApiError(Exception):
    """An error the service answers with ``status`` and a one-line ``detail``."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class AudioFacts:
    """What decoding an upload told."""

    format: str
    ext: str
    sr: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sr


def _clean(message: str, tmp: Path, label: str) -> str:
    return message.replace(str(tmp), label)


def _limit_error(exc: DecodeLimitError, tmp: Path, label: str) -> ApiError:
    return ApiError(413 if exc.too_large else 422, _clean(str(exc), tmp, label))


def check_audio(tmp: Path, *, label: str, min_sr: int, limits: DecodeLimits = SERVICE_LIMITS) -> AudioFacts:
    """Read an upload's header and refuse what cannot be scored (see the module docstring).

    ``min_sr`` is the model's rate: lower rates are refused, higher ones must resample to it
    with a bounded filter.

    Raises
    ------
    ApiError
        422 (not audio, empty, truncated, sample rate too low or outside the accepted range,
        too many channels) or 413 (too long, too many decoded bytes).
    """
    if tmp.stat().st_size == 0:
        raise ApiError(422, f"{label}: empty (0 bytes)")
    try:
        meta = info(tmp)
    except AudioError as exc:
        raise ApiError(422, _clean(str(exc), tmp, label)) from None
    ext = FORMATS.get(meta.format)
    if ext is None:
        raise ApiError(422, f"{label}: {meta.format} audio is not accepted (send {FORMAT_NAMES})")
    if meta.frames == 0:
        raise ApiError(422, f"{label}: contains zero samples")
    try:
        check_header(label, sr=meta.sr, channels=meta.channels, frames=meta.frames, limits=limits)
    except DecodeLimitError as exc:
        raise _limit_error(exc, tmp, label) from None
    if meta.sr < min_sr:
        raise ApiError(422, f"{label}: sampled at {meta.sr} Hz, below the model's {min_sr} Hz (the bands above "
                            f"{meta.sr // 2} Hz it listens to are missing); record at {min_sr} Hz or more")
    up, down = resample_terms(meta.sr, min_sr)
    if max(up, down) > MAX_RESAMPLE_TERM:
        raise ApiError(422, f"{label}: cannot resample {meta.sr} Hz to the model's {min_sr} Hz with a bounded filter "
                            f"(ratio {up}/{down}); record at a usual rate (e.g. 16, 44.1 or 48 kHz)")
    return AudioFacts(format=meta.format, ext=ext, sr=meta.sr, channels=meta.channels, frames=meta.frames)


def decode(tmp: Path, *, label: str, sr: int, channel: Optional[int | str] = None,
           limits: Optional[DecodeLimits] = SERVICE_LIMITS) -> np.ndarray:
    """Decode the upload at ``sr``; refuse undecodable or silent audio, or a header beyond ``limits``.

    Only the channel(s) the model reads are kept (a multichannel file is read block by block).
    Mono float32 ``(n_samples,)``, or ``(n_channels, n_samples)`` for the channel rule ``"all"``.
    """
    try:
        if channel == ALL_CHANNELS:
            y, file_sr = load_channels(tmp, sr=None, limits=limits)
        else:
            y, file_sr = load(tmp, sr=None, channel=channel, limits=limits)
        if file_sr != sr:  # documented behaviour here: no warning per upload
            y = np.stack([resample(c, file_sr, sr) for c in y]) if y.ndim == 2 else resample(y, file_sr, sr)
    except DecodeLimitError as exc:
        raise _limit_error(exc, tmp, label) from None
    except (AudioError, ParameterError) as exc:
        raise ApiError(422, _clean(str(exc), tmp, label)) from None
    if not np.any(y):
        raise ApiError(422, f"{label}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    return y


def score_audio(y: np.ndarray, entry, *, label: str, timeline_window_s: Optional[float] = None) -> dict[str, Any]:
    """Score a decoded clip (at the model's rate) with a registry entry.

    Returns
    -------
    dict
        ``score, threshold, is_anomalous, model`` and, with ``timeline_window_s``, a
        ``timeline`` of bins (the model's aggregate of the windows starting in each bin) and
        its ``events`` (hysteresis: open on one anomalous bin, close after one normal bin).
    """
    bundle = entry.bundle
    if timeline_window_s:  # a clip-level model (gauss, knn, embed) has one score per clip: no timeline
        bundle.check_streams("timeline=true", f"model {entry.name}")
    logmel = fused_log_mel(y, bundle.features)  # the plain log-mel of a mono clip
    if logmel.shape[1] < bundle.min_frames:
        raise ApiError(422, f"{label}: too short ({y.shape[-1] / bundle.features.sr:.3f} s gives {logmel.shape[1]} frames; "
                            f"the model needs at least {bundle.min_frames})")
    score, windows = bundle.score_clip(logmel)
    out: dict[str, Any] = {"model": entry.name, **bundle.verdict(score)}
    if timeline_window_s:
        out["timeline"] = _timeline(windows, bundle, timeline_window_s)
    return out


def _timeline(windows: np.ndarray, bundle, window_s: float) -> dict[str, Any]:
    f = bundle.features
    hop_s = f.hop_length / f.sr
    span_s = bundle.min_frames * hop_s
    starts = np.arange(len(windows)) * (model_window_hop(bundle) * hop_s)  # window i starts at frame i * hop
    n_bins = max(1, int(np.ceil((starts[-1] + 1e-9) / window_s)) if len(windows) else 1)
    bins = np.minimum((starts / window_s).astype(int), n_bins - 1)
    points = []
    scores = []
    for b in range(n_bins):
        w = windows[bins == b]
        if not w.size:
            continue
        s = float(aggregate(w, bundle.aggregate))
        scores.append(s)
        points.append({"start_s": round(b * window_s, 4), "end_s": round(min((b + 1) * window_s, starts[-1] + span_s), 4),
                       "score": s, "is_anomalous": bool(s > bundle.threshold_)})
    evs = [{"start_s": points[a]["start_s"], "end_s": points[e - 1]["end_s"], "peak_s": points[p]["start_s"],
            "peak_score": points[p]["score"]} for a, e, p in events(scores, bundle.threshold_)]
    return {"window_s": window_s, "threshold": bundle.threshold_, "points": points, "events": evs}


# ---------------------------------------------------------------------- pictures
_MAGMA = np.array([(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122), (229, 80, 100),
                   (251, 135, 97), (254, 194, 135), (252, 253, 191)], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, len(_MAGMA) - 1, 256), np.arange(len(_MAGMA)), _MAGMA[:, c])
                 for c in range(3)], axis=1).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB image ``(height, width, 3)`` uint8 as PNG (zlib only)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def spectrogram_png(y: np.ndarray, sr: int, *, n_mels: int = 64, hop_length: Optional[int] = None,
                    top_db: float = 80.0, max_width: int = 1200) -> bytes:
    """A log-mel spectrogram picture (low frequencies at the bottom, magma colours) as PNG.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_channels, n_samples)
        Several channels are drawn fused (:func:`~earshot.features.extract.fused_log_mel`).
    sr : int
    hop_length : int or None
        None: 256, or longer for a clip of more than ``2 * max_width`` such frames, so that the
        STFT of any clip has at most ``2 * max_width`` frames (bounded memory and time).
    top_db : float
        Dynamic range shown below the loudest bin.
    max_width : int
        Longer clips are averaged down to this many columns.
    """
    if hop_length is None:
        hop_length = max(256, int(np.ceil(y.shape[-1] / (2 * max_width))))
    S = fused_log_mel(y, FeatureConfig(sr=sr, n_fft=1024, hop_length=hop_length, n_mels=n_mels))
    if S.shape[1] > max_width:
        step = int(np.ceil(S.shape[1] / max_width))
        n = S.shape[1] // step * step
        S = S[:, :n].reshape(n_mels, -1, step).mean(axis=2)
    level = np.clip((S - S.max() + top_db) / top_db, 0.0, 1.0)
    idx = (level[::-1] * 255).astype(np.uint8)
    return png_bytes(_LUT[idx])


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
