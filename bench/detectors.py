"""Fit time and scoring speed of every unsupervised detector.

    .venv/bin/python bench/detectors.py [--models dense-ae,gauss,knn,embed,auto] [--fit-clips 10,50]
        [--score-clips 200]

On synthetic fan clips (``earshot.synth``, 10 s, 16 kHz, 128 mels, the default features):

- fit seconds on 10 and 50 normal clips (log-mel already computed; each model's defaults);
- bundle scoring clips/s through onnxruntime from log-mel (the model alone) and from wav files
  (decode + log-mel + model, what ``earshot score`` does), one process.

Prints a table; no assertions. Timings are noisy on a shared machine: take the best of
``--repeat`` runs for scoring.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import best_time, peak_rss_mb  # noqa: E402

from earshot.bundle import Bundle, save_bundle  # noqa: E402
from earshot.detection import make_detector  # noqa: E402
from earshot.features.config import FeatureConfig  # noqa: E402
from earshot.features.extract import file_log_mel  # noqa: E402
from earshot.synth import synthesize  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="dense-ae,gauss,knn,embed,auto")
    ap.add_argument("--fit-clips", default="10,50")
    ap.add_argument("--score-clips", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    sizes = [int(n) for n in args.fit_clips.split(",") if n]
    config = FeatureConfig()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_total = max(sizes) + args.score_clips
        synthesize(tmp / "data", machines=["fan"], n_ids=1, n_normal=n_total, n_abnormal=0, seed=0)
        wavs = sorted((tmp / "data" / "fan" / "id_00" / "normal").glob("*.wav"))
        clips = [file_log_mel(p, config) for p in wavs]
        train, test, test_wavs = clips[: max(sizes)], clips[max(sizes):], wavs[max(sizes):]
        print(f"{len(clips)} clips of {clips[0].shape[1]} frames x {clips[0].shape[0]} mels", flush=True)
        rows = []
        for kind in models:
            fit_s = {}
            det = None
            for n in sizes:
                t0 = time.perf_counter()
                det = make_detector(kind).fit(train[:n])
                fit_s[n] = time.perf_counter() - t0
            path = save_bundle(tmp / f"m-{kind}", det, features=config)
            bundle = Bundle(path)
            t_mel = best_time(lambda: bundle.score_samples(test), repeat=args.repeat)
            t_wav = best_time(lambda: bundle.score_files(test_wavs), repeat=args.repeat)
            rows.append((kind, fit_s, len(test) / t_mel, len(test) / t_wav, getattr(det, "selection_", {}).get("chosen")))
            print(f"{kind}: fit {', '.join(f'{n} clips {s:.2f} s' for n, s in fit_s.items())}; "
                  f"scoring {len(test) / t_mel:.0f} clips/s from log-mel, {len(test) / t_wav:.0f} files/s from wav",
                  flush=True)
    print()
    print("| model | " + " | ".join(f"fit {n} clips (s)" for n in sizes) + " | scoring clips/s (log-mel) | scoring files/s (wav) |")
    print("|---|" + "---|" * (len(sizes) + 2))
    for kind, fit_s, mel, wav, chosen in rows:
        name = f"{kind} (chose {chosen})" if chosen else kind
        print(f"| {name} | " + " | ".join(f"{fit_s[n]:.2f}" for n in sizes) + f" | {mel:.0f} | {wav:.0f} |")
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
