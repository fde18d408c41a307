"""Benchmark the synthesiser: clips/s for rendering alone and for rendering + writing wavs.

Budget (issue 3): >= 200 ten-second 16 kHz clips/s on the 2-core reference machine,
including writing the wavs. Run from the repository root::

    .venv/bin/python bench/synth.py [--clips 600] [--jobs 2]

Prints one line per measurement and the peak resident memory (this process and its
worker processes) from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import peak_rss_mb  # noqa: E402

from earshot.synth import FAULTS, render_clip, render_long, synthesize  # noqa: E402

MACHINES = tuple(FAULTS)


def children_peak_rss_mb() -> float:
    """Peak resident set size of the largest finished worker process, in MiB (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def bench_render(n_clips: int, duration_s: float, sr: int) -> float:
    """Render-only throughput in this process (normal and abnormal clips, all machines)."""
    jobs = []
    for k in range(n_clips):
        machine = MACHINES[k % len(MACHINES)]
        faults = FAULTS[machine]
        fault = faults[(k // len(MACHINES)) % len(faults)] if k % 4 == 3 else None
        jobs.append((machine, fault, 0.7 if fault else 0.0, k))
    for machine in MACHINES:  # warm the caches (models, spectral shapes, reference levels)
        render_clip(machine, machine_id=0, duration_s=duration_s, sr=sr, snr_db=0.0,
                    rng=np.random.default_rng(0))
    t0 = time.perf_counter()
    for machine, fault, sev, k in jobs:
        render_clip(machine, machine_id=0, fault=fault, severity=sev, duration_s=duration_s,
                    sr=sr, snr_db=0.0, rng=np.random.default_rng(k))
    return n_clips / (time.perf_counter() - t0)


def _cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def bench_write(n_clips: int, duration_s: float, sr: int, n_jobs: int, root: str) -> tuple[float, float]:
    """Throughput of :func:`synthesize` (render + write wavs + manifest).

    Returns clips/s (wall clock) and CPU milliseconds per clip (all processes), the
    latter independent of other load on a shared machine.
    """
    per_machine = max(1, n_clips // len(MACHINES))
    n_abnormal = per_machine // 4
    out = os.path.join(root, f"jobs{n_jobs}")
    c0, t0 = _cpu_s(), time.perf_counter()
    synthesize(out, machines=MACHINES, n_ids=1, n_normal=per_machine - n_abnormal,
               n_abnormal=n_abnormal, duration_s=duration_s, sr=sr, n_jobs=n_jobs)
    n = per_machine * len(MACHINES)
    rate, cpu_ms = n / (time.perf_counter() - t0), (_cpu_s() - c0) / n * 1e3
    shutil.rmtree(out)
    return rate, cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser(description="synthesiser throughput")
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=16000)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="earshot-bench-synth-", dir=args.dir)
    try:
        print(f"cpus: {os.cpu_count()}, clips: {args.clips} x {args.duration:g} s at {args.sr} Hz")
        r = bench_render(args.clips // 2, args.duration, args.sr)
        print(f"render only, 1 process:        {r:7.1f} clips/s")
        w1, c1 = bench_write(args.clips // 2, args.duration, args.sr, 1, root)
        print(f"render + write, n_jobs=1:      {w1:7.1f} clips/s   cpu {c1:5.2f} ms/clip")
        wn, cn = bench_write(args.clips, args.duration, args.sr, args.jobs, root)
        print(f"render + write, n_jobs={args.jobs}:      {wn:7.1f} clips/s   cpu {cn:5.2f} ms/clip"
              f"  (budget >= 200 clips/s on 2 cores)")
        print(f"  -> on {args.jobs} otherwise idle cores: {args.jobs * 1e3 / cn:7.1f} clips/s "
              f"(load average now {os.getloadavg()[0]:.1f})")
        t0 = time.perf_counter()
        render_long("bearing", duration_s=120.0, fault_start_s=60.0, sr=args.sr)
        print(f"long recording 120 s:          {time.perf_counter() - t0:7.2f} s")
        print(f"peak RSS: this process {peak_rss_mb():.0f} MiB, "
              f"largest worker {children_peak_rss_mb():.0f} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
