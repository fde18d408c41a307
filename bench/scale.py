"""Batch scoring at scale: throughput with 1 and 2 workers, flat memory, a separate Dask cluster.

    python bench/scale.py [--distinct 200] [--small 1000] [--large 20000] [--files 2000]
                          [--workers 1,2] [--skip-memory] [--skip-external] [--json OUT]

On synthetic 1 s fan clips (16 kHz) and a dense-autoencoder bundle (128 mels, the defaults):

1. throughput of ``earshot score MODEL DIR --out`` (library: ``score_to_file``) on ``--files``
   files, serial, then the ``processes`` executor and an embedded Dask ``LocalCluster`` with 1
   and 2 workers: files/s over the whole run (start-up included) and in steady state (after the
   first 2 x workers batches), and the scaling efficiency ``rate(2) / (2 * rate(1))`` of the steady rates;
   also the CPU milliseconds per file spent inside the tasks (a second pass): if it does not grow
   with the workers, parallel scoring has no overhead and wall-clock scaling is bounded by the
   free cores only (the figure to read on a busy machine);
2. peak resident memory of the scoring process and of its largest worker for ``--small`` and
   ``--large`` files (processes executor, 2 workers), which should be the same;
3. a Dask scheduler and two workers started as separate processes on 127.0.0.1 (``dask
   scheduler``, ``dask worker``) score ``--files`` files through the CLI
   (``--executor dask=tcp://127.0.0.1:PORT``); the CSV must equal the serial run's.

To keep the disk small the folders hold hard links to ``--distinct`` distinct clips (20,000 one
second clips would be 640 MB; ten-second ones 6 GB). Every run is a fresh child process, so each
peak-memory figure is its own. No assertions except the Dask equality: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of one process (VmHWM, MiB). Unlike getrusage's ru_maxrss it starts
    afresh at exec, so a child does not inherit the high-water mark of the process that forked it."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


class _WorkerPeak(threading.Thread):
    """Samples the peak resident memory of this process's descendants (the workers)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            for pid in _descendants(os.getpid()):
                self.peak = max(self.peak, _hwm_mb(pid))


def _timed_batch(task: tuple) -> tuple[int, float]:
    """A scoring task that also reports the CPU seconds its thread used (in its worker; the
    executor's own threads, e.g. Dask's communication, are not counted)."""
    from earshot.pipeline.batch import score_batch

    t = time.thread_time()
    rows = score_batch(task)
    return len(rows), time.thread_time() - t


def cpu_per_file(model: str, folder: str, executor: str, workers: int, batch_size: int) -> float:
    """CPU milliseconds per file inside the scoring tasks: the median over batches (a fresh
    worker's first batch also loads the model and warms its caches)."""
    from earshot.pipeline.batch import walk_audio
    from earshot._util.executors import batched, executor_scope

    paths = (str(p) for p in walk_audio([folder], absolute=True))
    tasks = ((os.path.abspath(model), b, None, "record", None) for b in batched(paths, batch_size))
    with executor_scope(executor, workers=workers) as ex:
        done = list(ex.map(_timed_batch, tasks))
    return 1000 * float(sorted(c / n for n, c in done)[len(done) // 2])


# ---------------------------------------------------------------------- child: one measured run
def child(model: str, folder: str, out: str, executor: str, workers: int, batch_size: int) -> None:
    from earshot.pipeline.batch import score_to_file

    sampler = _WorkerPeak()
    sampler.start()
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    res = score_to_file(model, [folder], out, executor=executor, workers=workers, batch_size=batch_size,
                        progress=lambda _s, done, _t: marks.append((time.perf_counter(), done)))
    total = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    steady = None
    k = min(2 * workers, len(marks) - 2)  # after the ramp-up: pool start, first batches in flight
    if k >= 0 and len(marks) > 2:
        (t0, n0), (t1, n1) = marks[k], marks[-1]
        steady = (n1 - n0) / (t1 - t0) if t1 > t0 else None
    figures = {
        "files": res.scored, "errors": res.errors, "seconds": total, "rate_total": res.scored / total,
        "rate_steady": steady, "first_batch_s": marks[0][0] - started if marks else None,
        "rss_parent_mb": _hwm_mb(), "rss_worker_mb": sampler.peak,
    }
    if os.environ.get("SCALE_CPU") == "1":
        figures["cpu_ms_per_file"] = cpu_per_file(model, folder, executor, workers, batch_size)
    print(json.dumps(figures))


def run_child(model: Path, folder: Path, out: Path, executor: str, workers: int, batch_size: int, *,
              cpu: bool = False) -> dict:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", str(model), str(folder), str(out), executor, str(workers),
           str(batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SCALE_CPU": "1" if cpu else "0"})
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- data
def make_data(work: Path, distinct: int) -> tuple[Path, Path]:
    from earshot.pipeline import train
    from earshot.synth import synthesize

    clips = work / "clips"
    if (work / "model" / "manifest.json").exists():  # --work of an earlier run: reuse its data and model
        print(f"reusing the clips and the model in {work}")
        return clips, work / "model"
    synthesize(clips, machines=["fan"], n_ids=1, n_normal=distinct, n_abnormal=max(1, distinct // 10),
               duration_s=1.0, seed=0)
    t = time.perf_counter()
    train(clips / "fan/id_00/normal", work / "model", group_by="none", model_params={"epochs": 5})
    print(f"trained a dense-ae bundle on {distinct} normal 1 s clips in {time.perf_counter() - t:.1f} s")
    return clips, work / "model"


def link_folder(clips: Path, folder: Path, n: int) -> Path:
    """``n`` hard links to the distinct clips, 1,000 per sub-folder."""
    if folder.exists():
        shutil.rmtree(folder)
    sources = sorted(clips.rglob("*.wav"))
    for i in range(n):
        dst = folder / f"d{i // 1000:03d}" / f"clip_{i:06d}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[i % len(sources)], dst)
    return folder


# ---------------------------------------------------------------------- external Dask cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def external_dask(model: Path, folder: Path, work: Path, reference: Path, n_workers: int = 2) -> dict:
    from dask.distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = open(work / "dask.log", "w")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=logs, stderr=logs)]
    try:
        time.sleep(2)
        for _ in range(n_workers):
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard"], stdout=logs, stderr=logs))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
            pids = client.run(os.getpid)
        out = work / "dask-external.csv"
        out.unlink(missing_ok=True)
        t = time.perf_counter()
        proc = subprocess.run([str(BIN / "earshot"), "score", str(model), str(folder), "--out", str(out),
                               "--executor", f"dask={address}"], capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"earshot score --executor {address} failed: {proc.stderr}")
        same = out.read_bytes() == reference.read_bytes()
        lines = out.read_bytes().count(b"\n") - 1
        return {"address": address, "worker_pids": sorted(pids.values()), "files": lines, "seconds": seconds,
                "identical_to_serial": same}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distinct", type=int, default=200, help="distinct clips behind the hard links")
    parser.add_argument("--files", type=int, default=2000, help="files of the throughput runs")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-external", action="store_true")
    parser.add_argument("--work", type=Path, help="keep the data here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        m, f, o, ex, w, b = args.child
        child(m, f, o, ex, int(w), int(b))
        return

    workers = [int(w) for w in args.workers.split(",")]
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="earshot-scale-")
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    figures: dict = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "clip_s": 1.0,
                     "distinct_clips": args.distinct, "batch_size": args.batch_size}
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (other jobs on this machine skew timings)")
    clips, model = make_data(work, args.distinct)
    folder = link_folder(clips, work / "files", args.files)

    serial = run_child(model, folder, work / "serial.csv", "serial", 1, args.batch_size, cpu=True)
    figures["serial"] = serial
    print(f"\nthroughput on {args.files} files (files/s; total includes start-up, steady is after the first 2 x workers batches):")
    print(f"  serial (in-process)        total {serial['rate_total']:7.1f}   steady {serial['rate_steady'] or 0:7.1f}"
          f"   CPU in tasks {serial['cpu_ms_per_file']:.2f} ms/file")
    figures["throughput"] = {}
    for ex in ("processes", "dask"):
        rates = {}
        for w in workers:
            r = run_child(model, folder, work / f"{ex}-{w}.csv", ex, w, args.batch_size, cpu=True)
            same = (work / f"{ex}-{w}.csv").read_bytes() == (work / "serial.csv").read_bytes()
            rates[w] = r
            print(f"  {ex:9s} {w} worker(s)       total {r['rate_total']:7.1f}   steady {r['rate_steady'] or 0:7.1f}"
                  f"   start-up+first batch {r['first_batch_s']:.1f} s   CPU in tasks {r['cpu_ms_per_file']:.2f} ms/file"
                  f"   same CSV as serial: {same}")
        if 1 in rates and 2 in rates and rates[1]["rate_steady"] and rates[2]["rate_steady"]:
            eff = rates[2]["rate_steady"] / (2 * rates[1]["rate_steady"])
            print(f"  {ex}: scaling efficiency 2 workers vs 1 (steady): {eff:.2f}")
            rates["efficiency_2_vs_1"] = eff
        figures["throughput"][ex] = rates

    if not args.skip_memory:
        print("\npeak resident memory, processes executor, 2 workers:")
        figures["memory"] = {}
        for n in (args.small, args.large):
            big = link_folder(clips, work / f"mem{n}", n)
            r = run_child(model, big, work / f"mem{n}.csv", "processes", 2, args.batch_size)
            figures["memory"][n] = r
            print(f"  {n:6d} files: scoring process {r['rss_parent_mb']:6.1f} MB, largest worker "
                  f"{r['rss_worker_mb']:6.1f} MB  ({r['rate_total']:.0f} files/s, {r['seconds']:.0f} s)")
            shutil.rmtree(big)

    if not args.skip_external:
        r = external_dask(model, folder, work, work / "serial.csv")
        figures["external_dask"] = r
        print(f"\nDask scheduler + {len(r['worker_pids'])} workers as separate processes at {r['address']}: "
              f"{r['files']} files in {r['seconds']:.1f} s (CLI, start-up included); "
              f"CSV identical to the serial run: {r['identical_to_serial']}")
        if not r["identical_to_serial"]:
            raise SystemExit("the Dask run differs from the serial run")

    figures["load_average_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
