"""False drift alarms and drift detections on synthetic machines, over several seeds.

    python bench/drift.py [--seeds 3] [--window 200] [--alpha 0.01] [--model gauss]

For each seed and each machine (fan, pump, valve, slider; id 0 and 1, each with its own
domain shift: speed, load or factory background, no fault): trains a model on 48 normal
one-second source clips, then runs :func:`earshot.pipeline.drift.drift_report` on

- a *steady* window: ``--window`` new source clips of the same machine (a drift alarm here is
  a false alarm);
- a *shifted* window: ``--window`` clips of the machine's target domain (a detection).

Prints one row per case and the false drift alarm rate beside the nominal ``alpha`` and the
detection rate. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.pipeline.drift import drift_report
from earshot.synth import render_clip
from earshot.synth.clip import get_model

SR = 16000
CASES = [("fan", 0), ("fan", 1), ("pump", 0), ("pump", 1), ("valve", 0), ("valve", 3), ("slider", 0), ("slider", 1)]


def write(folder: Path, machine: str, machine_id: int, n: int, *, domain: str, seed: int, data_seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        y = render_clip(machine, machine_id=machine_id, domain=domain, duration_s=1.0, sr=SR, snr_db=0.0, rng=rng,
                        seed=data_seed)
        sf.write(folder / f"{i:04d}.wav", y, SR)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--model", default="gauss")
    args = ap.parse_args()
    false_alarms, detections, n = 0, 0, 0
    started = time.perf_counter()
    print(f"{'seed':>4} {'machine':<10} {'shift':<18} {'steady D/thr':>14} {'shifted D/thr':>14}  top moved band")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for machine, machine_id in CASES:
                root = Path(tmp) / f"{seed}-{machine}-{machine_id}"
                write(root / "train" / "normal", machine, machine_id, 48, domain="source", seed=1000 + seed, data_seed=seed)
                train(root / "train", root / "model", model=args.model, group_by="none",
                      features=FeatureConfig(n_mels=32), seed=seed)
                steady = drift_report(root / "model", write(root / "steady", machine, machine_id, args.window,
                                      domain="source", seed=2000 + seed, data_seed=seed), alpha=args.alpha)
                shifted = drift_report(root / "model", write(root / "shifted", machine, machine_id, args.window,
                                       domain="target", seed=3000 + seed, data_seed=seed), alpha=args.alpha)
                kind, value = get_model(machine, machine_id, seed).shift_label()
                band = shifted["bands"][0] if shifted["bands"] else {}
                print(f"{seed:>4} {machine}/{machine_id:<4} {kind + ' ' + value:<18} "
                      f"{steady['score']:.2f}/{steady['threshold']:.2f}{' ALARM' if steady['drifted'] else '      '} "
                      f"{shifted['score']:.2f}/{shifted['threshold']:.2f}{' yes' if shifted['drifted'] else ' no '}  "
                      f"{band.get('lo_hz', '?')}-{band.get('hi_hz', '?')} Hz {band.get('shift_db', float('nan')):+.1f} dB",
                      flush=True)
                false_alarms += steady["drifted"]
                detections += shifted["drifted"]
                n += 1
    print(f"\nmodel {args.model}, window {args.window} clips, {n} machines x seeds, {time.perf_counter() - started:.0f} s")
    print(f"false drift alarms (steady machines): {false_alarms}/{n} = {false_alarms / n:.1%}   (nominal alpha {args.alpha:.1%})")
    print(f"drift detected (shifted machines):    {detections}/{n} = {detections / n:.1%}")


if __name__ == "__main__":
    main()
