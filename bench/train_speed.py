"""dense-ae training: CPU time and AUC, before and after the CPU training changes, same run.

    .venv/bin/python bench/train_speed.py [--variants before,now,batch-2048] [--only dcase2020]

On bench/real.py's sets (its groups, its seed-0 split: half the normals test, every anomaly
test; channel mean) and its small synthetic set, each variant trains ``dense-ae`` per group and
prints fit CPU seconds, fit wall seconds and the test AUC:

- ``before``: the training loop as it was (torch's own thread count: every core, however busy
  the machine; Adam's per-parameter for-loop);
- ``now``: the defaults as shipped (torch threads lowered to the idle usable cores for the fit,
  foreach Adam);
- ``batch-2048``: ``now`` with batch_size=2048 (a candidate default: 4x fewer optimiser steps).

Features are computed once and shared. No assertions: figures only; a default changes only
where AUC holds on every set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real  # noqa: E402  (bench/real.py: the sets, the split, the feature cache)

from earshot._util.cores import usable_cores  # noqa: E402
from earshot.detection import make_detector  # noqa: E402
from earshot.evaluation import roc_auc  # noqa: E402

VARIANTS = {"before": {}, "now": {}, "batch-2048": {"batch_size": 2048}}


@contextlib.contextmanager
def as_before():
    """The training loop before: all of torch's threads, for-loop Adam."""
    import torch

    from earshot.detection import _training, window_base

    saved = (_training.idle_cores, window_base.make_optimiser)
    _training.idle_cores = usable_cores
    window_base.make_optimiser = lambda params, device, *, lr, **kw: torch.optim.Adam(params, lr=lr)
    try:
        yield
    finally:
        _training.idle_cores, window_base.make_optimiser = saved


def run_variant(name: str, groups, cache) -> list[tuple[str, float, float, float]]:
    rows = []
    for g in groups:
        train, test = real.split(g, 0)
        n_mels = 128
        xtr = [cache.mel(g.clips[i].path, None, n_mels) for i in train]
        xte = [cache.mel(g.clips[i].path, None, n_mels) for i in test]
        y = np.array([g.clips[i].label for i in test])
        det = make_detector("dense-ae", device="cpu", **VARIANTS[name])
        with as_before() if name == "before" else contextlib.nullcontext():
            c0, t0 = time.process_time(), time.perf_counter()
            det.fit(xtr)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        rows.append((f"{g.name} ({len(train)} train clips)", cpu, wall, float(roc_auc(y, det.score_samples(xte)))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="before,now,batch-2048")
    ap.add_argument("--only", default="", help="only groups whose name contains this")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(usable_cores())  # bench/real.py sets OMP_NUM_THREADS=1; torch's default is every core
    groups, _ = real.real_groups(real.DEFAULT_DATA)
    if not args.no_synth:
        groups += real.synth_groups(Path(os.environ.get("TMPDIR", "/tmp")) / "earshot-bench-real")
    groups = [g for g in groups if real.skip_reason(g) is None and args.only in g.name]
    cache = real.Cache()
    print(f"dense-ae defaults; torch {torch.__version__}, {torch.get_num_threads()} torch threads by default, "
          f"{usable_cores()} usable cores, load {os.getloadavg()[0]:.1f}\n")
    print("| variant | group | fit CPU s | fit wall s | AUC |\n|---|---|---:|---:|---:|")
    for name in args.variants.split(","):
        for group, cpu, wall, auc in run_variant(name, groups, cache):
            print(f"| {name} | {group} | {cpu:.1f} | {wall:.1f} | {auc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
