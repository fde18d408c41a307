"""Throughput of log-mel extraction and decode + features, against librosa in the same run.

Usage: .venv/bin/python bench/features.py [--clips N] [--repeat R]

Makes N ten-second 16 kHz clips of noise + tones, times earshot's log_mel (one clip per call
and log_mel_batch) and librosa (melspectrogram + power_to_db, on the same clips), for 64 and
128 mels (n_fft 1024, hop 512) and scipy.fft.rfft alone on as many frames (the FFT ceiling of
one core); then writes the clips as PCM_16 wavs and times
earshot.io.load + log_mel per file. Prints a table and the peak RSS. No assertions: the
budgets (docs: DESIGN.md "Performance budgets") are read off the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import best_time, peak_rss_mb  # noqa: E402

from earshot.features import FeatureConfig, log_mel, log_mel_batch  # noqa: E402
from earshot.io import load, save  # noqa: E402

SR = 16000
DURATION_S = 10.0


def make_clips(n: int, seed: int = 0) -> np.ndarray:
    """(n, 160000) float32: pink-ish noise plus three random tones per clip."""
    rng = np.random.default_rng(seed)
    n_samples = int(SR * DURATION_S)
    t = np.arange(n_samples, dtype=np.float32) / SR
    clips = np.empty((n, n_samples), dtype=np.float32)
    for i in range(n):
        y = 0.05 * rng.standard_normal(n_samples).astype(np.float32)
        for _ in range(3):
            f = rng.uniform(50, 7000)
            y += np.float32(rng.uniform(0.02, 0.2)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
        clips[i] = np.clip(y, -1, 1)
    return clips


def librosa_log_mel(Y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=Y, sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=True,
        pad_mode="constant", power=cfg.power, n_mels=cfg.n_mels,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200, help="number of 10 s clips (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    args = ap.parse_args(argv)
    n, rep = args.clips, args.repeat
    warnings.simplefilter("ignore")
    import librosa  # noqa: F401  (imported before timing)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"earshot log-mel bench: {n} clips x {DURATION_S:g} s @ {SR} Hz, n_fft 1024, "
          f"hop 512, {cpus} CPUs, best of {rep}")
    Y = make_clips(n)
    rows: list[tuple[str, float, str]] = []

    for n_mels in (64, 128):
        cfg = FeatureConfig(n_mels=n_mels)
        t_clip = best_time(lambda: [log_mel(y, cfg) for y in Y], repeat=rep)
        t_batch = best_time(lambda: log_mel_batch(Y, cfg), repeat=rep)
        t_batch1 = best_time(lambda: log_mel_batch(Y, cfg, workers=1), repeat=rep)
        t_lib_batch = best_time(lambda: librosa_log_mel(Y, cfg), repeat=rep)
        t_lib_clip = best_time(lambda: [librosa_log_mel(y, cfg) for y in Y], repeat=1)
        err = float(np.abs(log_mel_batch(Y[:8], cfg) - librosa_log_mel(Y[:8], cfg)).max())
        lib_best = min(t_lib_batch, t_lib_clip)
        rows += [
            (f"{n_mels} mels  earshot log_mel_batch", n / t_batch,
             f"x{lib_best / t_batch:.1f} librosa"),
            (f"{n_mels} mels  earshot log_mel_batch workers=1", n / t_batch1,
             f"x{lib_best / t_batch1:.1f} librosa"),
            (f"{n_mels} mels  earshot log_mel per clip", n / t_clip,
             f"x{lib_best / t_clip:.1f} librosa"),
            (f"{n_mels} mels  librosa (2-D batch)", n / t_lib_batch, ""),
            (f"{n_mels} mels  librosa per clip", n / t_lib_clip, f"max |diff| {err:.1e} dB"),
        ]

    # The FFT alone, as log_mel runs it (float32, 313 frames x 1024 per clip, one thread): the
    # ceiling of log-mel on this machine's scipy.fft, one core.
    import scipy.fft as sp_fft

    block = np.resize(Y[0], (313, 1024))  # any audio: the FFT time does not depend on it
    frames = np.empty_like(block)

    def fft_only() -> None:
        for _ in range(n):
            np.copyto(frames, block)
            sp_fft.rfft(frames, axis=-1, overwrite_x=True)

    rows.append(("FFT alone (313 x 1024 rfft per clip), 1 thread", n / best_time(fft_only, repeat=rep),
                 "ceiling of one core"))

    cfg = FeatureConfig(n_mels=64)
    with tempfile.TemporaryDirectory(prefix="earshot-bench-") as tmp:
        paths = [Path(tmp) / f"clip_{i:04d}.wav" for i in range(n)]
        for p, y in zip(paths, Y):
            save(p, y, SR, subtype="PCM_16")

        def serial() -> None:
            for p in paths:
                log_mel(load(p)[0], cfg)

        def one(p: Path) -> np.ndarray:
            return log_mel(load(p)[0], cfg, workers=1)

        def pooled() -> None:
            with ThreadPoolExecutor(max_workers=cpus) as ex:
                list(ex.map(one, paths, chunksize=8))

        def decode_then_batch() -> None:
            with ThreadPoolExecutor(max_workers=cpus) as ex:
                clips = np.stack(list(ex.map(lambda p: load(p)[0], paths)))
            log_mel_batch(clips, cfg)

        t_load = best_time(lambda: [load(p) for p in paths], repeat=rep)
        rows += [
            ("decode only (io.load, serial)", n / t_load, ""),
            ("decode + 64-mel log_mel, serial loop", n / best_time(serial, repeat=rep), ""),
            (f"decode + log_mel, {cpus} threads", n / best_time(pooled, repeat=rep), ""),
            (f"decode ({cpus} threads) + log_mel_batch", n / best_time(decode_then_batch,
                                                                       repeat=rep), ""),
        ]

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'clips/s':>9}  note")
    for name, rate, note in rows:
        print(f"{name:<{width}}  {rate:9.0f}  {note}")
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
