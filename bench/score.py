"""Training throughput, bundle scoring throughput and peak memory.

    python bench/score.py [--clips 400] [--train-clips 5000]

Prints, on this machine, in one run:
- training frames/s of the dense autoencoder (windows per second over an epoch);
- bundle scoring files/s from wav files (decode + log-mel + ONNX) with the bundle's default
  graph (the dynamic-int8 one that training stores when it is exact enough) and with
  ``precision="float32"`` in the same run, and a bundle trained with ``window_hop=2`` (every
  second window scored), and the reference path of the DCASE baseline
  notebooks (librosa features + the torch model) side by side on the same files;
- the whole ``earshot score MODEL DIR --out CSV`` command on 4,000 files (start-up, worker
  processes and CSV included), for both bundles;
- peak RSS of a separate `earshot train` process on --train-clips ten-second clips
  (the design budget: < 1.5 GB for 5,000 clips).
No assertions: figures only.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _write_clips(folder: Path, n: int, *, seconds: float = 10.0, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    base = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.1 * np.sin(2 * np.pi * 240 * t)
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y = base * (1 + 0.05 * rng.normal()) + 0.05 * rng.normal(size=t.size)
        p = folder / f"{i:08d}.wav"
        sf.write(p, (y / 2).astype(np.float32), SR, subtype="PCM_16")
        paths.append(p)
    return paths


def bench_training(n_clips: int = 200, epochs: int = 3) -> None:
    from earshot.detection.autoencoder import AutoencoderDetector
    from earshot.features.store import FrameStore

    rng = np.random.default_rng(0)
    store = FrameStore.from_clips([rng.normal(-40, 5, size=(128, 313)).astype(np.float32) for _ in range(n_clips)])
    for batch in (512, 2048):
        det = AutoencoderDetector(epochs=epochs, batch_size=batch, validation_fraction=0.0)
        times = []
        det.fit(store, progress=lambda *a: times.append(time.perf_counter()))
        per_epoch = np.diff(times).mean()
        windows = n_clips * (313 - 4)
        print(f"train dense-ae (128 mels x 5 frames, batch {batch:4d}): {windows / per_epoch:10.0f} frames/s")


def bench_scoring(n_files: int) -> None:
    from earshot.bundle import load_model
    from earshot.pipeline import score_files, train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_clips(tmp / "train" / "normal", 60, seed=1)
        paths = _write_clips(tmp / "score", n_files, seed=2)
        train(tmp / "train", tmp / "model", model_params={"epochs": 2})
        train(tmp / "train", tmp / "hop2", model_params={"epochs": 2, "window_hop": 2})
        model = load_model(tmp / "model")
        f32 = load_model(tmp / "model", precision="float32")
        hop2 = load_model(tmp / "hop2")
        bundle = next(iter(model.bundles.values()))
        print(f"bundle graph: {bundle.graph}; manifest scoring.int8: {bundle.manifest['scoring'].get('int8')}")
        best = {"default": float("inf"), "float32": float("inf"), "hop2": float("inf")}
        for _ in range(3):  # interleaved, best kept: the machine is shared
            for name, m in (("default", model), ("float32", f32), ("hop2", hop2)):
                score_files(m, paths[:8])  # warm up
                t = time.perf_counter()
                rows = score_files(m, paths)
                best[name] = min(best[name], time.perf_counter() - t)
        dt = best["default"]
        print(f"score from wav (decode + log-mel + ONNX), earshot : {n_files / dt:8.1f} files/s  ({len(rows)} files, "
              f"{bundle.graph})")
        print(f"  the same with precision='float32' (model.onnx)   : {n_files / best['float32']:8.1f} files/s")
        print(f"  the same trained with window_hop=2 (int8 graph)  : {n_files / best['hop2']:8.1f} files/s  "
              "(every 2nd window scored; AUC: bench/score_options.py)")
        t = time.perf_counter()
        bundle.score_samples([bundle.extract(p) for p in paths])
        dt_serial = time.perf_counter() - t
        print(f"  the same, all files decoded first, then one ONNX run: {n_files / dt_serial:8.1f} files/s  "
              "(how score_files worked before its lanes)")

        bench_onnx_options(bundle, paths[:64])

        import librosa
        import torch

        from earshot.bundle import load_detector

        det = load_detector(tmp / "model")
        module = det.scoring_module()
        n_ref = min(n_files, 100)
        t = time.perf_counter()
        for p in paths[:n_ref]:
            y, _ = librosa.load(p, sr=SR, mono=True)
            mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=128, power=2.0)
            logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
            with torch.inference_mode():
                module(torch.from_numpy(logmel.T[None].copy())).mean()
        dt_ref = time.perf_counter() - t
        print(f"score from wav, reference (librosa + torch)       : {n_ref / dt_ref:8.1f} files/s  ({n_ref} files)")
        print(f"ratio earshot / reference                         : {(n_files / dt) / (n_ref / dt_ref):8.1f} x")
        bench_cli(tmp, paths, ("model", "hop2"))


def bench_cli(tmp: Path, paths: list[Path], models: tuple[str, ...], n_files: int = 4000) -> None:
    """The whole `earshot score MODEL DIR --out CSV` command (a fresh process, its worker processes
    started and their models loaded, the CSV written) on ``n_files`` hard links to ``paths``."""
    folder = tmp / "cli"
    folder.mkdir()
    for k in range(n_files):
        os.link(paths[k % len(paths)], folder / f"{k:05d}.wav")
    exe = str(Path(sys.executable).parent / "earshot")
    best = dict.fromkeys(models, float("inf"))
    for _ in range(2):  # interleaved, best kept: the machine is shared
        for name in models:
            out = tmp / f"{name}.csv"
            out.unlink(missing_ok=True)  # else score resumes
            t = time.perf_counter()
            subprocess.run([exe, "score", str(tmp / name), str(folder), "--out", str(out)], check=True,
                           capture_output=True)
            best[name] = min(best[name], time.perf_counter() - t)
    for name in models:
        print(f"`earshot score {name} DIR --out CSV` ({n_files} files, whole command): "
              f"{n_files / best[name]:8.1f} files/s")


def bench_onnx_options(bundle, paths: list[Path]) -> None:
    """One-thread ONNX ms per file: float32 at 8 and 1 files per call, and the bundle's stored
    dynamic-int8 graph (the default where stored) at 1 file per call."""
    t_extract = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        mels = [bundle.extract(p) for p in paths]
        t_extract = min(t_extract, (time.perf_counter() - t) / len(paths))
    print(f"  decode + log-mel (bundle.extract), serial         : {t_extract * 1e3:6.2f} ms/file")
    x = np.ascontiguousarray(np.stack([m.T for m in mels]), dtype=np.float32)
    n = len(x)
    runs = {
        "float32, 8 files per call": (bundle.new_session(threads=1), 8),
        "float32, 1 file per call": (bundle.new_session(threads=1), 1),
    }
    if bundle.graph != "model.onnx":
        runs[f"{bundle.graph}, 1 file per call (the lanes)"] = (bundle.new_session(threads=1, clips=True), 1)
    best = {k: float("inf") for k in runs}
    for _ in range(5):  # interleaved, best kept: the machine is shared
        for name, (sess, per) in runs.items():
            t = time.perf_counter()
            for i in range(0, n, per):
                sess.run(None, {"logmel": x[i : i + per]})
            best[name] = min(best[name], (time.perf_counter() - t) / n)
    for name, sec in best.items():
        print(f"  ONNX alone, one thread, {name:<44}: {sec * 1e3:6.2f} ms/file")
    if bundle.graph != "model.onnx":
        ref = bundle.score_samples(mels, session=runs["float32, 1 file per call"][0])
        q = bundle.score_samples(mels)
        print(f"  int8 clip scores vs float32 on these files: max relative difference {np.max(np.abs(q - ref) / np.abs(ref)):.1e}")


def bench_train_memory(n_clips: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        _write_clips(tmp / "data" / "normal", n_clips, seed=3)
        print(f"wrote {n_clips} ten-second clips in {time.perf_counter() - t:.1f} s")
        # The child reports its own VmHWM (peak resident set of its address space): ru_maxrss of
        # children is inherited across fork+exec and would count this process's peak too.
        code = ("import sys\nfrom earshot.cli.app import main\nrc = main(sys.argv[1:])\n"
                "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1], file=sys.stderr)\n"
                "sys.exit(rc)\n")
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, "train", str(tmp / "data"), "--out", str(tmp / "model"),
                               "--epochs", "1"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        dt = time.perf_counter() - t
        peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
        print(f"earshot train on {n_clips} clips, 1 epoch: {dt:.1f} s, peak RSS (VmHWM) {peak_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400, help="files to score")
    parser.add_argument("--train-clips", type=int, default=5000, help="clips for the training-memory run (0: skip)")
    parser.add_argument("--memory-only", action="store_true", help="only the training-memory run")
    args = parser.parse_args()
    if args.memory_only:
        bench_train_memory(args.train_clips)
        return
    import torch

    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    bench_training()
    bench_scoring(args.clips)
    print(f"peak RSS of this process: {_peak_rss_mb():.0f} MB")
    if args.train_clips:
        bench_train_memory(args.train_clips)


if __name__ == "__main__":
    main()
