"""Streaming speed, latency and event quality of `earshot listen` / `earshot detect`.

    python bench/stream.py [--minutes 10] [--realtime-s 20] [--repeats 5] [--quality]

On one core (this process's main thread is pinned to one CPU, onnxruntime runs one intra-op
thread, log-mel one worker; CPU is process time, every thread counted), for a dense-AE and an LSTM-AE bundle trained here on synthetic long recordings:

- streaming cost: CPU seconds per second of audio of listen (the scorer fed sound-card blocks of
  1024 samples = 64 ms) beside detect (10 s blocks) on the same audio in the same run, their
  ratio (goal: listen <= 1.5x detect) and the model calls per second, at hops of 0.1 (the
  default), 0.5 and 1 s;
- latency from a sample's arrival to its verdict, in a real-time run (a file delivered at the
  pace of the audio in blocks of 1024 samples, as a sound card would): for every window k, the
  wall time its verdict is out minus the arrival time of the first sample that no earlier
  verdict covered (sample ``end_{k-1}``); the bound to meet is one hop + 100 ms; and the CPU of
  that real-time session per second of audio (file thread, ring, scorer, events), less the
  same source and ring with nothing scored (thread wake-ups: the floor of any real-time
  session), beside detect's scan of the file (decode included). Not `listen --fast`: its reader runs ahead and
  each read of the ring takes many blocks at once;
- with --quality: events on synthetic long recordings of five machine types (fault from 60 s
  to 90 s) and false events per hour on 10 minutes of normal sound per machine, with the
  default event settings and with --sensitivity 0.5.
No assertions: figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
MACHINES = ("fan", "pump", "valve", "slider", "bearing")


def _pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return "not pinned (no sched_setaffinity)"


def _normal_recordings(folder: Path, machine: str, n: int, seconds: float, seed: int = 0) -> None:
    from earshot.synth import render_clip

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y = render_clip(machine, machine_id=0, duration_s=seconds, sr=SR, snr_db=6.0,
                        rng=np.random.default_rng(1000 + i), seed=seed)
        sf.write(folder / f"normal_{i}.wav", y, SR, subtype="PCM_16")


def _train(folder: Path, out: Path, kind: str, n_mels: int = 64) -> Path:
    import torch

    from earshot.features import FeatureConfig
    from earshot.pipeline import train

    torch.set_num_threads(1)
    params = {"epochs": 15}
    train(folder, out, model=kind, model_params=params, group_by="none",
          features=FeatureConfig(n_mels=n_mels, n_frames=5 if kind == "dense-ae" else 16))
    return out


def _bundle(path: Path):
    from earshot.bundle import load_model

    return next(iter(load_model(path).bundles.values()))


def _cpu_scorer(bundle, geo, y: np.ndarray, block: int) -> tuple[float, object]:
    """CPU seconds of pushing ``y`` through a fresh StreamScorer in blocks of ``block``."""
    from earshot.timeline import StreamScorer

    s = StreamScorer(bundle, geo, threads=1)
    t = time.process_time()
    for i in range(0, y.size, block):
        s.push(y[i : i + block])
    s.finish()
    return time.process_time() - t, s


def _cpu_pair(bundle, geo, y: np.ndarray, repeats: int) -> tuple[tuple[float, object], tuple[float, object]]:
    """The least CPU of detect's blocks (10 s) and of listen's (1024 samples), run alternately."""
    detect = listen = (np.inf, None)
    for _ in range(repeats):
        detect = min(detect, _cpu_scorer(bundle, geo, y, 10 * SR), key=lambda r: r[0])
        listen = min(listen, _cpu_scorer(bundle, geo, y, 1024), key=lambda r: r[0])
    return detect, listen


def _cpu_detect_scan(bundle, geo, recording: Path, repeats: int = 5) -> float:
    """Least CPU seconds of `detect`'s scan of the file (decode, 10 s blocks, one thread)."""
    from earshot.timeline import scan_file

    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        for _w in scan_file(recording, bundle, geo, threads=1):
            pass
        best = min(best, time.process_time() - t)
    return best


def bench_speed(bundle, recording: Path, label: str, repeats: int = 5) -> float:
    """CPU per second of audio of listen (1024-sample blocks: 64 ms) beside detect (10 s blocks)
    on the same audio in the same run, and the model calls each made; returns detect's CPU per
    second of audio from the file (decode included, 0.1 s hop)."""
    from earshot.timeline import WindowGeometry

    y, _ = sf.read(recording, dtype="float32")
    seconds = y.size / SR
    for hop_s in (0.1, 0.5, 1.0):
        geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=hop_s)
        (detect, sd), (listen, sl) = _cpu_pair(bundle, geo, y, repeats)
        print(f"{label:8s} hop {hop_s:3.1f} s, scorer only : listen {listen / seconds * 1e3:6.3f} ms CPU per s of audio "
              f"({seconds / listen:5.0f} x real time; {sl.onnx_calls / seconds:5.1f} model calls/s, "
              f"{sl.onnx_seconds / max(1, sl.onnx_calls) * 1e6:4.0f} us wall each) vs detect {detect / seconds * 1e3:6.3f} ms "
              f"({sd.onnx_calls / seconds:4.2f} calls/s): {listen / detect:4.2f}x detect")
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    return _cpu_detect_scan(bundle, geo, recording, repeats) / seconds


def _null_session_cpu(recording: Path, seconds: float, block: int) -> float:
    """CPU per second of audio of the same real-time file source and ring with nothing scored
    (the floor of a real-time session: the reader's pacing, the thread wake-ups)."""
    from earshot.timeline import FileSource, RingBuffer

    source = FileSource(recording, sr=SR, blocksize=block, realtime=True)
    ring, out = RingBuffer(10 * SR), np.empty(10 * SR, np.float32)
    cpu = time.process_time()
    source.start(ring)
    got = 0
    while got < seconds * SR and (n := ring.read_into(out, timeout=0.25)) is not None:
        got += n
    source.stop()
    return (time.process_time() - cpu) / seconds


def bench_latency(bundle, recording: Path, seconds: float, label: str, detect_cpu: float, hop_s: float = 0.1,
                  block: int = 1024) -> None:
    """Latency of a real-time session (a file at the pace of the audio, in sound-card blocks)
    and its CPU per second of audio (file thread, ring, scorer, events) beside ``detect_cpu``."""
    from earshot.timeline import FileSource, StreamScorer, monitor
    from earshot.timeline import EventSettings, WindowGeometry

    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=hop_s)
    tracker, _ = EventSettings().tracker(bundle, geo)
    source = FileSource(recording, sr=SR, blocksize=block, realtime=True)
    out: list[tuple[int, float]] = []
    cpu = time.process_time()
    monitor(source, StreamScorer(bundle, geo, threads=1), tracker,
            on_window=lambda w, t: out.append((w.index, time.perf_counter())), max_seconds=seconds)
    cpu = (time.process_time() - cpu) / seconds
    lat = []
    for k, emitted in out[1:]:  # after the first window (which waits for a whole window)
        first_new = (k - 1) * geo.hop_samples + geo.window_samples  # sample end_{k-1}
        lat.append(emitted - (source.t0 + (first_new + 1) / SR))
    lat = np.array(lat) * 1e3
    print(f"{label:8s} latency, sample arrival -> verdict (hop {hop_s * 1e3:.0f} ms, blocks of {block / SR * 1e3:.0f} ms, "
          f"{len(lat)} windows): median {np.median(lat):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms, "
          f"max {lat.max():.0f} ms; bound hop + 100 ms = {hop_s * 1e3 + 100:.0f} ms")
    floor = _null_session_cpu(recording, seconds, block)
    print(f"{label:8s} real-time session CPU ({block / SR * 1e3:.0f} ms blocks): {cpu * 1e3:.3f} ms per s of audio, of "
          f"which {floor * 1e3:.3f} ms the file source and ring alone (nothing scored); the rest "
          f"{(cpu - floor) * 1e3:.3f} ms vs detect's scan of the file {detect_cpu * 1e3:.3f} ms: "
          f"{(cpu - floor) / detect_cpu:.2f}x detect")


def bench_quality(tmp: Path) -> None:
    from earshot.pipeline.detect import detect_file
    from earshot.synth import render_clip, synthesize_long
    from earshot.timeline import EventSettings

    print("\nevents (fault 60-90 s; trained on 6 x 32 s of other normal recordings of the same machine; "
          "1 s windows, 0.1 s hop)")
    print(f"{'machine':8s} {'model':8s} {'setting':16s} {'events in fault':>15s} {'start err':>9s} {'end err':>8s} "
          f"{'false (120 s)':>13s} {'false/h normal':>14s}")
    totals: dict[tuple[str, str], list[int]] = {}
    for machine in MACHINES:
        d = tmp / machine
        synthesize_long(d / "long.wav", machine=machine, duration_s=120.0, fault_start_s=60.0, fault_end_s=90.0)
        y = render_clip(machine, machine_id=0, duration_s=600.0, sr=SR, snr_db=6.0, rng=np.random.default_rng(99),
                        seed=0)
        sf.write(d / "normal.wav", y, SR, subtype="PCM_16")
        _normal_recordings(d / "train", machine, 6, 32.0)
        for kind in ("dense-ae", "lstm-ae"):
            bundle = _bundle(_train(d / "train", d / kind, kind))
            for name, settings in (("default", EventSettings()), ("sensitivity 0.5", EventSettings(sensitivity=0.5))):
                r = detect_file(bundle, d / "long.wav", events=settings, spectrogram=False, threads=1)
                n = detect_file(bundle, d / "normal.wav", events=settings, spectrogram=False, threads=1)
                inside = [e for e in r.events if e.end_s > 60 and e.start_s < 90]
                outside = len(r.events) - len(inside)
                s_err = f"{inside[0].start_s - 60:+.2f}" if inside else "-"
                e_err = f"{inside[-1].end_s - 90:+.2f}" if inside else "-"
                print(f"{machine:8s} {kind:8s} {name:16s} {len(inside):15d} {s_err:>9s} {e_err:>8s} {outside:13d} "
                      f"{len(n.events) * 6:14d}")
                t = totals.setdefault((kind, name), [0, 0, 0])
                t[0] += int(len(inside) == 1 and abs(inside[0].start_s - 60) <= 1 and abs(inside[-1].end_s - 90) <= 1)
                t[1] += outside
                t[2] += len(n.events)
    for (kind, name), (ok, outside, normal) in totals.items():
        hours = len(MACHINES) * (600 + 60) / 3600
        print(f"{kind:8s} {name:16s}: fault found as one event within 1 s on {ok}/{len(MACHINES)} machines; "
              f"{(outside + normal) / hours:.1f} false events per hour of normal sound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording for the speed runs")
    parser.add_argument("--realtime-s", type=float, default=20.0, help="seconds of the real-time latency run")
    parser.add_argument("--quality", action="store_true", help="also the event-quality study (a few minutes)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each speed measure (the least CPU is kept)")
    args = parser.parse_args()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"earshot streaming bench: {_pin_one_core()}; onnxruntime 1 intra-op thread; load average {load} "
          f"on {os.cpu_count()} CPUs")
    from earshot.synth import synthesize_long

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _normal_recordings(tmp / "train", "fan", 6, 32.0)
        seconds = args.minutes * 60
        synthesize_long(tmp / "long.wav", machine="fan", duration_s=seconds, fault_start_s=seconds / 2,
                        fault_end_s=seconds / 2 + 30)
        for kind in ("dense-ae", "lstm-ae"):
            t = time.perf_counter()
            bundle = _bundle(_train(tmp / "train", tmp / kind, kind))
            print(f"{kind:8s} trained in {time.perf_counter() - t:.1f} s (64 mels, {bundle.min_frames} frames per model window)")
            detect_cpu = bench_speed(bundle, tmp / "long.wav", kind, args.repeats)
            bench_latency(bundle, tmp / "long.wav", args.realtime_s, kind, detect_cpu)
        if args.quality:
            bench_quality(tmp)


if __name__ == "__main__":
    sys.exit(main())
