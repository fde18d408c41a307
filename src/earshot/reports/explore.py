"""Look at a data set before training on it: a summary, quality checks and pictures.

:func:`explore` counts the clips per machine/id and label, reads every header (durations,
sample rates, channels) and, for a bounded sample of clips per group and label, decodes the
audio to check for digital silence and clipping and to draw waveforms, spectrograms, the mean
log-mel spectrum of normal against abnormal clips and the per-channel level of multichannel
files. It writes PNGs, ``summary.json`` and an ``index.html`` that shows them all.

An edge module: it uses :mod:`earshot.plots` (matplotlib) and nothing in the core imports it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from earshot import plots
from earshot._util.fs import atomic_file
from earshot.datasets import Record, discover, group_name
from earshot.errors import AudioError, EarshotError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel, power_spectrogram
from earshot.io.audio import info, resample
from earshot.reports.explore_page import index_html
from earshot.reports.html import file_slug

__all__ = ["explore", "check_clip", "CLIP_LEVEL", "SILENCE_PEAK"]

log = logging.getLogger(__name__)

#: A sample at or above this magnitude (full scale = 1) counts as clipped.
CLIP_LEVEL = 0.999
#: A clip is flagged "clipping" when at least this share of its samples is clipped...
CLIP_SHARE = 1e-4
#: ... and at least this many samples are.
CLIP_MIN_SAMPLES = 3
#: A clip whose peak is at most this (one 16-bit step) is flagged "silent" (digital silence).
SILENCE_PEAK = 2.0**-15

LABELS = {0: "normal", 1: "anomaly", None: "unknown"}
_DB_FLOOR = -120.0


def _dbfs(x: float) -> float:
    return float(20.0 * math.log10(x)) if x > 0 else _DB_FLOOR


def _pick(items: Sequence, n: int) -> list:
    """At most ``n`` items spread evenly over ``items`` (deterministic)."""
    if len(items) <= n:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in idx]


def _read_raw(path: Path) -> tuple[np.ndarray, int]:
    """All channels as float32 ``(n_samples, n_channels)`` in full-scale units, and the rate."""
    meta = info(path)  # missing / unreadable / truncated files raise AudioError here
    if meta.frames == 0:
        raise AudioError(f"{path}: contains zero samples")
    try:
        data, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for undecodable data
        raise AudioError(f"{path}: could not decode audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return data, int(sr)


def check_clip(data: np.ndarray) -> dict[str, Any]:
    """Level checks of one clip.

    Parameters
    ----------
    data : np.ndarray, shape (n_samples, n_channels), float
        Samples in full-scale units (``[-1, 1]``).

    Returns
    -------
    dict
        ``peak_dbfs`` and ``rms_dbfs`` (whole clip), ``rms_dbfs_per_channel`` (list),
        ``clipped_samples`` (samples at or above :data:`CLIP_LEVEL` in any channel),
        ``silent`` (peak at most one 16-bit step: a dead or unplugged microphone) and
        ``clipping`` (at least :data:`CLIP_MIN_SAMPLES` and a :data:`CLIP_SHARE` share of
        the samples clipped).
    """
    a = np.abs(data)
    peak = float(a.max()) if a.size else 0.0
    rms_ch = np.sqrt(np.mean(np.square(data, dtype=np.float64), axis=0)) if a.size else np.zeros(1)
    rms = float(np.sqrt(np.mean(np.square(rms_ch))))
    clipped = int(np.count_nonzero(a >= CLIP_LEVEL))
    return {
        "peak_dbfs": round(_dbfs(peak), 2),
        "rms_dbfs": round(_dbfs(rms), 2),
        "rms_dbfs_per_channel": [round(_dbfs(float(v)), 2) for v in rms_ch],
        "clipped_samples": clipped,
        "silent": peak <= SILENCE_PEAK,
        "clipping": clipped >= max(CLIP_MIN_SAMPLES, CLIP_SHARE * a.size),
    }


def _mono(data: np.ndarray, channel: int | None, path: Path) -> np.ndarray:
    if channel is None:
        return data.mean(axis=1, dtype=np.float32)
    if not 0 <= channel < data.shape[1]:
        raise ParameterError(
            f"{path}: channel={channel} is out of range: the file has {data.shape[1]} channel(s)"
        )
    return np.ascontiguousarray(data[:, channel])


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, dtype=float)
    return {"min": round(float(v.min()), 3), "median": round(float(np.median(v)), 3),
            "max": round(float(v.max()), 3), "total": round(float(v.sum()), 3)}


class _Group:
    """What is gathered for one machine/id while reading its clips."""

    def __init__(self, name: str, records: list[Record]):
        self.name = name
        self.records = records
        self.unreadable: list[dict[str, str]] = []
        self.durations: list[float] = []
        self.rates: Counter = Counter()
        self.channels: Counter = Counter()
        self.subtypes: Counter = Counter()
        self.checks: dict[str, dict[str, Any]] = {}
        self.spectra: dict[str, list[np.ndarray]] = {}
        self.energies: dict[str, list[list[float]]] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}


def explore(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_clips: int = 50,
    n_examples: int = 3,
    sr: int = 16000,
    n_mels: int = 128,
    channel: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Summarise a data set and draw its pictures into ``out_dir``.

    Parameters
    ----------
    data : path-like
        A data folder in any layout of :mod:`earshot.datasets`, a manifest CSV or a wav.
    out_dir : path-like
        Folder to write ``index.html``, ``summary.json`` and the PNGs into (created if
        needed; files of earlier runs with other names are left alone).
    max_clips : int, default 50
        Clips decoded per group and label (spread evenly over the sorted list): the level
        checks and the mean spectrum use these; headers are read for every clip.
    n_examples : int, default 3
        Example clips per group and label in the waveform picture.
    sr : int, default 16000
        Sample rate (Hz) the spectra are computed at (other rates are resampled). n_fft is
        1024 at 16 kHz and scaled by a power of two for higher rates; the hop is n_fft / 2.
    n_mels : int, default 128
        Mel bands of the log-mel pictures.
    channel : int or None
        Channel drawn and analysed (0-based); None averages the channels. Level checks and
        the per-channel energy always look at every channel.

    Returns
    -------
    dict
        The summary also written to ``summary.json``: ``n_clips``, ``labels``, ``problems``
        (``silent``, ``clipping``, ``unreadable``), ``groups`` (per machine/id: label, split
        and domain counts, durations, sample rates, channels, checks and image file names).

    Raises
    ------
    DatasetError
        ``data`` is missing or holds no audio.
    ParameterError
        A bad option, or ``out_dir`` is a file.
    """
    config = _analysis_config(max_clips=max_clips, n_examples=n_examples, sr=sr, n_mels=n_mels, channel=channel)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: expected a folder, got a file")

    records = discover(Path(data))
    by_group: dict[str, list[Record]] = {}
    for r in records:
        by_group.setdefault(group_name(r, "id"), []).append(r)

    total_decode = sum(
        len(_pick([r for r in rs if r.label == lab], max_clips))
        for rs in by_group.values() for lab in (0, 1, None)
    )
    done = 0
    groups: list[_Group] = []
    for name in sorted(by_group):
        g = _Group(name, by_group[name])
        groups.append(g)
        _read_headers(g)
        bad = {u["path"] for u in g.unreadable}
        for lab in (0, 1, None):
            chosen = _pick([r for r in g.records if r.label == lab and str(r.path) not in bad], max_clips)
            picked_examples = {str(r.path) for r in _pick(chosen, n_examples)}
            for r in chosen:
                _analyse_clip(g, r, LABELS[lab], config, channel, keep=str(r.path) in picked_examples)
                done += 1
                if progress:
                    progress("reading clips", done, total_decode)

    out.mkdir(parents=True, exist_ok=True)
    summary = _summary(Path(data), records, groups, config, max_clips=max_clips, n_examples=n_examples,
                       channel=channel)
    for n, g in enumerate(groups, start=1):
        summary["groups"][g.name]["images"] = _draw_group(g, config, out, channel)
        if progress:
            progress("drawing", n, len(groups))
    if groups:
        counts = {g: s["labels"] for g, s in summary["groups"].items()}
        _write_png(out / "clip-counts.png",
                   plots.clip_counts(counts, title=f"clips per machine/id and label ({len(records)} clips)"))
        summary["images"] = {"clip_counts": "clip-counts.png"}
    with atomic_file(out / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
    with atomic_file(out / "index.html", encoding="utf-8") as fh:
        fh.write(index_html(summary))
    return summary


def _analysis_config(*, max_clips: int, n_examples: int, sr: int, n_mels: int, channel: int | None) -> FeatureConfig:
    """The options of :func:`explore` checked (one line per bad one), and the log-mel settings of its pictures."""
    for name, value, low in (("max_clips", max_clips, 1), ("n_examples", n_examples, 1), ("n_mels", n_mels, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ParameterError(f"{name}: expected an integer >= {low}, got {value!r}")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0):
        raise ParameterError(f"channel: expected an integer >= 0 or None, got {channel!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 1000:
        raise ParameterError(f"sr: expected a sample rate in Hz >= 1000, got {sr!r}")
    # 64 ms frames at any rate: n_fft 1024 at 16 kHz, scaled by a power of two above it
    n_fft = 1024 * 2 ** max(0, round(math.log2(sr / 16000)))
    return FeatureConfig(sr=int(sr), n_fft=n_fft, hop_length=n_fft // 2, n_mels=n_mels)


def _read_headers(g: _Group) -> None:
    for r in g.records:
        try:
            meta = info(r.path)
        except EarshotError as exc:
            log.info("%s", exc)
            g.unreadable.append({"path": str(r.path), "error": str(exc)})
            continue
        if meta.frames == 0:
            g.unreadable.append({"path": str(r.path), "error": f"{r.path}: contains zero samples"})
            continue
        g.durations.append(meta.duration_s)
        g.rates[str(meta.sr)] += 1
        g.channels[str(meta.channels)] += 1
        g.subtypes[meta.subtype] += 1


def _analyse_clip(g: _Group, r: Record, label: str, config, channel: int | None, *, keep: bool) -> None:
    try:
        data, file_sr = _read_raw(r.path)
    except EarshotError as exc:
        g.unreadable.append({"path": str(r.path), "error": str(exc)})
        return
    check = check_clip(data)
    g.checks[str(r.path)] = {"label": label, **check}
    if data.shape[1] > 1:
        g.energies.setdefault(label, []).append(check["rms_dbfs_per_channel"])
    y = resample(_mono(data, channel, r.path), file_sr, config.sr)
    del data
    if check["silent"]:
        return  # -100 dB everywhere would drag the mean spectrum down; it is flagged instead
    S = log_mel(y, config)
    g.spectra.setdefault(label, []).append(S.mean(axis=1))
    if keep:
        g.examples.setdefault(label, []).append({"y": y, "label": {"normal": 0, "anomaly": 1}.get(label),
                                                 "name": r.path.name, "path": str(r.path)})


def _summary(data: Path, records: list[Record], groups: list[_Group], config, *, max_clips: int,
             n_examples: int, channel: int | None) -> dict[str, Any]:
    labels = Counter(LABELS[r.label] for r in records)
    out: dict[str, Any] = {
        "data": str(data.resolve()),
        "n_clips": len(records),
        "n_groups": len(groups),
        "labels": {k: labels.get(k, 0) for k in ("normal", "anomaly", "unknown")},
        "analysis": {"sr": config.sr, "n_fft": config.n_fft, "hop_length": config.hop_length,
                     "n_mels": config.n_mels, "channel": channel, "max_clips": max_clips,
                     "n_examples": n_examples},
        "checks": {"silent": f"peak at most {SILENCE_PEAK:.2g} of full scale (digital silence)",
                   "clipping": f"at least {CLIP_MIN_SAMPLES} samples and {CLIP_SHARE:.2%} of the samples "
                               f"at or above {CLIP_LEVEL} of full scale"},
        "problems": {"silent": [], "clipping": [], "unreadable": []},
        "groups": {},
    }
    for g in groups:
        lab = Counter(LABELS[r.label] for r in g.records)
        silent = sorted(p for p, c in g.checks.items() if c["silent"])
        clipping = sorted(p for p, c in g.checks.items() if c["clipping"])
        peaks = [c["peak_dbfs"] for c in g.checks.values()]
        first = g.records[0]
        out["groups"][g.name] = {
            "machine": first.machine,
            "id": first.id,
            "n_clips": len(g.records),
            "labels": {k: lab.get(k, 0) for k in ("normal", "anomaly", "unknown")},
            "splits": dict(sorted(Counter(r.split or "none" for r in g.records).items())),
            "domains": dict(sorted(Counter(r.domain for r in g.records).items())),
            "duration_s": _stats(g.durations),
            "sr": dict(g.rates),
            "channels": dict(g.channels),
            "subtypes": dict(g.subtypes),
            "checked": len(g.checks),
            "peak_dbfs_max": max(peaks) if peaks else None,
            "rms_dbfs_median": float(np.median([c["rms_dbfs"] for c in g.checks.values()])) if g.checks else None,
            "silent": silent,
            "clipping": clipping,
            "unreadable": g.unreadable,
        }
        out["problems"]["silent"] += silent
        out["problems"]["clipping"] += clipping
        out["problems"]["unreadable"] += g.unreadable
    return out


def _write_png(path: Path, png: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(png)


def _mel_centres(config) -> np.ndarray:
    return plots.mel_band_centres(sr=config.sr, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
                            fmax=config.fmax)


def _draw_group(g: _Group, config, out: Path, channel: int | None) -> dict[str, str]:
    slug = file_slug(g.name)
    images: dict[str, str] = {}
    order = [lab for lab in ("normal", "anomaly", "unknown") if g.examples.get(lab)]
    examples = [ex for lab in order for ex in g.examples[lab]]
    if examples:
        name = f"{slug}-waveforms.png"
        _write_png(out / name, plots.waveforms(
            examples, sr=config.sr,
            title=f"{g.name}: example waveforms ({'mean of the channels' if channel is None else f'channel {channel}'}, "
                  f"at {config.sr} Hz)"))
        images["waveforms"] = name

        panels = []
        mel_hz = _mel_centres(config)
        for lab in order:
            ex = g.examples[lab][0]
            P = power_spectrogram(ex["y"], n_fft=config.n_fft, hop_length=config.hop_length)
            panels.append({"S_db": 10 * np.log10(np.maximum(P, 1e-10)), "kind": "stft",
                           "title": f"{lab}: {ex['name']} — STFT power"})
            panels.append({"S_db": log_mel(ex["y"], config), "kind": "mel", "mel_hz": mel_hz,
                           "title": f"{lab}: {ex['name']} — log-mel ({config.n_mels} bands)"})
        name = f"{slug}-spectrograms.png"
        _write_png(out / name, plots.spectrogram_grid(
            panels, sr=config.sr, hop_length=config.hop_length, ncols=2,
            title=f"{g.name}: spectrograms (n_fft {config.n_fft}, hop {config.hop_length}, sr {config.sr} Hz)"))
        images["spectrograms"] = name

    if g.spectra:
        spectra = {}
        for lab in ("normal", "anomaly", "unknown"):
            if g.spectra.get(lab):
                arr = np.stack(g.spectra[lab])
                spectra[lab] = (arr.mean(axis=0), arr.std(axis=0), arr.shape[0])
        name = f"{slug}-mean-spectrum.png"
        _write_png(out / name, plots.mean_spectrum(
            _mel_centres(config), spectra,
            title=f"{g.name}: mean log-mel spectrum per label (time-averaged per clip)"))
        images["mean_spectrum"] = name

    if g.energies:
        n_ch = Counter(len(v) for vs in g.energies.values() for v in vs).most_common(1)[0][0]
        energies = {lab: np.array([v for v in g.energies[lab] if len(v) == n_ch])
                    for lab in ("normal", "anomaly", "unknown") if g.energies.get(lab)}
        name = f"{slug}-channel-energy.png"
        _write_png(out / name, plots.channel_energy(
            energies, title=f"{g.name}: RMS level per channel ({n_ch} channels)"))
        images["channel_energy"] = name
    g.examples.clear()
    return images
