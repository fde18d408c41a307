"""Supervised CNN throughput: training patches/s and ONNX inference clips/s.

    python bench/cnn.py [--threads 2] [--clips 200] [--epochs 2] [--n-mels 128] [--layouts]

Prints, on this machine, in one run, for 10 s clips at 16 kHz (313 log-mel frames):
- training samples/s of the cnn detector (32-frame patches, batches of 32, SpecAugment and mixup
  on, channels_last), measured over whole epochs of ``CNNDetector.fit`` (validation pass
  included in the epoch time, reported separately too);
- with --layouts: one optimiser step on the same batch in channels_last and in the default
  (contiguous) layout, to show what channels_last buys on this CPU;
- ONNX inference clips/s of the saved bundle (onnxruntime, ``threads`` intra-op threads) from
  log-mel arrays, and from wav files (decode + log-mel + ONNX).
No assertions: figures only. Timings on a shared machine are noisy; the best of 3 is printed.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import best_time  # noqa: E402

SR = 16000


def _logmels(n: int, n_mels: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.linspace(-60, -20, n_mels, dtype=np.float32)[:, None]
    X, y = [], np.array([i % 4 == 0 for i in range(n)], dtype=np.int64)
    for label in y:
        x = base + rng.normal(0, 2.0, size=(n_mels, 313)).astype(np.float32)
        if label:
            x[n_mels // 3 : n_mels // 3 + 4] += 6.0
        X.append(x)
    return X, y


def bench_training(n_clips: int, epochs: int, n_mels: int) -> object:
    from earshot.detection.cnn import CNNDetector

    X, y = _logmels(n_clips, n_mels)
    stamps: list[float] = []
    det = CNNDetector(epochs=epochs + 1, patience=epochs + 10, validation_fraction=0.2)
    t0 = time.perf_counter()
    det.fit(X, y, progress=lambda *a: stamps.append(time.perf_counter()))
    per_epoch = np.diff([t0, *stamps])[1:].min()  # epoch 1 warms up
    n_train = len(det.train_indices_)
    patches = n_train * det.patches_per_clip
    print(f"train cnn ({n_mels} mels x {det.n_frames} frames, batch {det.batch_size}, {n_train} clips x "
          f"{det.patches_per_clip} patches/epoch, + validation of {len(det.validation_indices_)} clips): "
          f"{patches / per_epoch:8.0f} samples/s (patches; epoch {per_epoch:.2f} s)")
    return det


def bench_layouts(n_mels: int) -> None:
    import torch

    from earshot.models.cnn import SpectrogramCNN

    for layout in ("channels_last", "contiguous"):
        torch.manual_seed(0)
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = SpectrogramCNN().to(memory_format=fmt)
        opt = torch.optim.AdamW(net.parameters())
        x = torch.randn(32, 1, n_mels, 32).contiguous(memory_format=fmt)
        target = (torch.rand(32) > 0.5).float()
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step():
            loss = loss_fn(net(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        dt = best_time(lambda: [step() for _ in range(5)], repeat=3) / 5
        print(f"  one step, batch 32, {layout:13s}: {32 / dt:8.0f} samples/s ({dt * 1000:.1f} ms)")


def bench_inference(det, n_clips: int, n_mels: int, threads: int) -> None:
    from earshot.bundle import Bundle
    from earshot.bundle.save import save_bundle
    from earshot.features.config import FeatureConfig

    X, _ = _logmels(n_clips, n_mels, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = save_bundle(tmp / "bundle", det, features=FeatureConfig(n_mels=n_mels))
        bundle = Bundle(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        bundle._session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        dt = best_time(lambda: bundle.score_samples(X), repeat=3)
        print(f"ONNX inference from log-mel ({n_clips} clips of 10 s, {threads} threads): {n_clips / dt:8.1f} clips/s")
        rng = np.random.default_rng(2)
        t = np.arange(10 * SR) / SR
        paths = []
        for i in range(min(n_clips, 100)):
            p = tmp / f"{i:04d}.wav"
            sf.write(p, (0.1 * np.sin(2 * np.pi * 120 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32), SR,
                     subtype="PCM_16")
            paths.append(p)
        dt = best_time(lambda: bundle.score_files(paths), repeat=3)
        print(f"ONNX inference from wav (decode + log-mel + ONNX, {len(paths)} files): {len(paths) / dt:8.1f} clips/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (2 cores)")
    parser.add_argument("--clips", type=int, default=200, help="training clips (and clips scored)")
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (after one warm-up epoch)")
    parser.add_argument("--n-mels", type=int, default=128)
    parser.add_argument("--layouts", action="store_true", help="also compare channels_last with contiguous")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}")
    det = bench_training(args.clips, args.epochs, args.n_mels)
    if args.layouts:
        bench_layouts(args.n_mels)
    bench_inference(det, args.clips, args.n_mels, args.threads)


if __name__ == "__main__":
    main()
