"""Fault signatures on synthetic machines: is the closest confirmed fault the right one?

    python bench/faults.py [--seeds 3] [--labelled 5] [--new 20] [--normal 30] [--quantile 0.95]

For each seed and machine type (fan, pump, valve, slider, bearing; machine id 0, source
domain, one-second clips at 16 kHz, 64 mels, fault severity uniform in [0.1, 1] as in
``earshot synth``), and for each of the machine's fault types in turn held out as "never
labelled": ``--labelled`` confirmed clips of every other fault type fit
:class:`earshot.evaluation.faults.FaultSignatures` on the clip-statistics embedding of
:mod:`earshot.pipeline.faults`; then ``--new`` fresh anomalies of each labelled type and of the
held-out type are matched. The statistics are standardised by ``--normal`` normal clips of the
machine (as :mod:`earshot.pipeline.faults` does with a model's training clips); ``--normal 0``
uses the labelled set's own scale.

Prints per machine and overall:

- *right*: share of new anomalies of a labelled type whose answer is their fault ("unlike"
  counts as wrong), beside the *nearest* share ignoring the threshold and the chance rate
  (1 / number of labelled types);
- *false unlike*: share of those called "unlike any confirmed fault";
- *unlike (never labelled)*: share of the held-out type's anomalies called unlike (the answer
  wanted for a fault nobody has confirmed yet).

No assertions: figures only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from earshot.evaluation.faults import UNLIKE, FaultSignatures
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel
from earshot.pipeline.faults import fault_embeddings
from earshot.synth import FAULTS, render_clip
from earshot.synth.writer import draw_severity

SR = 16000
CONFIG = FeatureConfig(sr=SR, n_mels=64)


def clips(machine: str, fault: str, n: int, rng: np.random.Generator, seed: int) -> np.ndarray:
    """Fault embeddings of ``n`` fresh anomalous clips of one fault type."""
    logmels = [log_mel(render_clip(machine, machine_id=0, fault=fault, severity=draw_severity(rng), duration_s=1.0,
                                   sr=SR, snr_db=0.0, rng=rng, seed=seed), CONFIG) for _ in range(n)]
    return fault_embeddings(logmels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--labelled", type=int, default=5, help="confirmed clips per labelled fault type")
    ap.add_argument("--new", type=int, default=20, help="new anomalies per fault type")
    ap.add_argument("--quantile", type=float, default=0.95)
    ap.add_argument("--normal", type=int, default=30,
                    help="normal clips standardising the statistics (0: the labelled set's own scale)")
    args = ap.parse_args()
    started = time.perf_counter()
    total = {"right": 0, "nearest": 0, "unlike_known": 0, "known": 0, "unlike_new": 0, "new": 0, "chance": []}
    print(f"{'seed':>4} {'machine':<8} {'held out':<14} {'right':>7} {'nearest':>8} {'chance':>7} "
          f"{'false unlike':>13} {'unlike (held out)':>18}")
    for seed in range(args.seeds):
        rng = np.random.default_rng(100 + seed)
        for machine, types in FAULTS.items():
            normal = None
            if args.normal:
                normal = fault_embeddings([log_mel(render_clip(machine, machine_id=0, duration_s=1.0, sr=SR, snr_db=0.0,
                                                               rng=rng, seed=seed), CONFIG) for _ in range(args.normal)])
            labelled = {f: clips(machine, f, args.labelled, rng, seed) for f in types}
            new = {f: clips(machine, f, args.new, rng, seed) for f in types}
            for held in types:
                known = [f for f in types if f != held]
                sig = FaultSignatures(quantile=args.quantile).fit(
                    np.vstack([labelled[f] for f in known]), [f for f in known for _ in range(args.labelled)], normal)
                m_known = [(f, m) for f in known for m in sig.match(new[f])]
                m_held = sig.match(new[held])
                right = sum(m.answer == f for f, m in m_known)
                nearest = sum(m.fault == f for f, m in m_known)
                unlike_known = sum(m.answer == UNLIKE for _, m in m_known)
                unlike_new = sum(m.answer == UNLIKE for m in m_held)
                n = len(m_known)
                print(f"{seed:>4} {machine:<8} {held:<14} {right / n:>7.1%} {nearest / n:>8.1%} {1 / len(known):>7.1%} "
                      f"{unlike_known / n:>13.1%} {unlike_new / len(m_held):>18.1%}", flush=True)
                for key, value in (("right", right), ("nearest", nearest), ("unlike_known", unlike_known),
                                   ("known", n), ("unlike_new", unlike_new), ("new", len(m_held))):
                    total[key] += value
                total["chance"].append(1 / len(known))
    k, u = total["known"], total["new"]
    print(f"\n{args.seeds} seeds x 5 machine types x each fault held out once; {args.labelled} labelled clips per "
          f"type, {args.new} new per type; {args.normal or 'no'} normal clips for the scale; quantile {args.quantile}; {time.perf_counter() - started:.0f} s")
    print(f"closest known fault right:   {total['right']}/{k} = {total['right'] / k:.1%}   "
          f"(nearest ignoring the threshold {total['nearest'] / k:.1%}; chance {np.mean(total['chance']):.1%})")
    print(f"false 'unlike' (known type): {total['unlike_known']}/{k} = {total['unlike_known'] / k:.1%}")
    print(f"'unlike' for a never-labelled type: {total['unlike_new']}/{u} = {total['unlike_new'] / u:.1%}")


if __name__ == "__main__":
    main()
