"""Fault signatures stored by ``train --labels`` and named by ``score``, end to end on synthetic data.

    python bench/train_faults.py [--seeds 2] [--normal 40] [--abnormal 40] [--model gauss]

For each seed: ``earshot.synth.synthesize`` writes the five machine types (one id each, source
domain, one-second clips at 16 kHz, fault severity uniform in [0.1, 1], abnormal clips cycling
through each machine's fault types). Half of each fault type's anomalies (the first by path) go
into a labels CSV with their fault (``path,label,fault``); ``pipeline.train`` trains one model per
machine id with it (64 mels), storing the fault signatures; the other half are scored with
``pipeline.batch.iter_scores`` (serial), the path of ``earshot score``.

Prints per machine type and overall, for the new (never labelled) anomalies:

- *flagged*: share the model flags (only flagged clips get a fault);
- *right*: share of the flagged ones whose ``fault`` column is their true fault (the headline);
- *unlike*: share of the flagged ones answered "unlike any confirmed fault" (empty ``fault``);
- *wrong*: share named another fault; *chance*: 1 / number of fault types.

No assertions: figures only.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from earshot.features.config import FeatureConfig
from earshot.pipeline.batch import iter_scores
from earshot.pipeline.train import train
from earshot.synth import synthesize


def run_seed(seed: int, args, tally: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data, model = Path(tmp) / "data", Path(tmp) / "model"
        synthesize(data, n_ids=1, n_normal=args.normal, n_abnormal=args.abnormal, duration_s=1.0, seed=seed, n_jobs=1)
        with open(data / "manifest.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["label"] == "1"]
        by_type = defaultdict(list)
        for r in sorted(rows, key=lambda r: r["path"]):
            by_type[(r["machine"], r["fault"])].append(r)
        labelled, new = [], {}
        for (machine, fault), rs in by_type.items():
            half = len(rs) // 2
            labelled += [{"path": r["path"], "label": "1", "fault": fault} for r in rs[:half]]
            new.update({str((data / r["path"]).resolve()): (machine, fault) for r in rs[half:]})
        with open(data / "labels.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "label", "fault"])
            w.writeheader()
            w.writerows(labelled)
        train(data, model, model=args.model, features=FeatureConfig(n_mels=64), seed=seed, labels=data / "labels.csv")
        n_types = defaultdict(set)
        for machine, fault in by_type:
            n_types[machine].add(fault)
        for batch in iter_scores(model, sorted(new), executor="serial", absolute=True):
            for r in batch:
                machine, fault = new[str(Path(r["path"]).resolve())]
                t = tally[machine]
                t["n"] += 1
                t["types"] = len(n_types[machine])
                if r["is_anomalous"]:
                    t["flagged"] += 1
                    t["right"] += r["fault"] == fault
                    t["unlike"] += r["fault_known"] is False
                    t["wrong"] += bool(r["fault"]) and r["fault"] != fault


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--normal", type=int, default=40, help="normal clips per machine")
    ap.add_argument("--abnormal", type=int, default=40, help="anomalies per machine (half labelled, half new)")
    ap.add_argument("--model", default="gauss")
    args = ap.parse_args()
    tally: dict = defaultdict(lambda: defaultdict(int))
    started = time.perf_counter()
    for seed in range(args.seeds):
        run_seed(seed, args, tally)
    print(f"{args.seeds} seeds, {args.model}, {args.normal} normal and {args.abnormal} abnormal clips per machine "
          f"(half of each fault type labelled); {time.perf_counter() - started:.0f} s")
    print(f"{'machine':10s} {'new':>5s} {'flagged':>8s} {'right':>7s} {'unlike':>7s} {'wrong':>7s} {'chance':>7s}")
    total = defaultdict(int)
    for machine, t in sorted(tally.items()):
        for k in ("n", "flagged", "right", "unlike", "wrong"):
            total[k] += t[k]
        f = max(t["flagged"], 1)
        print(f"{machine:10s} {t['n']:5d} {t['flagged'] / t['n']:8.1%} {t['right'] / f:7.1%} {t['unlike'] / f:7.1%} "
              f"{t['wrong'] / f:7.1%} {1 / t['types']:7.1%}")
    f = max(total["flagged"], 1)
    print(f"{'all':10s} {total['n']:5d} {total['flagged'] / total['n']:8.1%} {total['right'] / f:7.1%} "
          f"{total['unlike'] / f:7.1%} {total['wrong'] / f:7.1%}")


if __name__ == "__main__":
    main()
