"""Device check: each torch detector trained on the CPU and, where torch sees one, on a GPU.

    .venv/bin/python bench/gpu.py [--epochs 10] [--normal 24] [--abnormal 12] [--models dense-ae,lstm-ae,cnn]

Per machine of a small synthetic fleet (``earshot.synth``: fan and valve, one id each, 10 s
clips at 16 kHz, 0 dB SNR, seed 0; 128-mel log-mels computed once) and per detector
(``dense-ae``, ``lstm-ae``, ``cnn``), in one process:

- ``cpu``: the detector's defaults (``device="cpu"``), torch threads as training sets them
  (the idle usable cores);
- ``cuda`` (only where ``torch.cuda.is_available()``): the same parameters on the GPU, and
  ``cuda, big batch``: the batch that fills it (dense-ae 8192, lstm-ae 4096, cnn 512 windows).

Printed: training frames/s (log-mel frames of the training clips x epochs run / seconds of
the epochs, from the first to the last epoch's progress call; the same definition for every
row), and the AUC of the test clips (half the normals, every anomaly; cnn, being supervised,
also trains on the other half of the anomalies). Epochs are fixed (``--epochs``) so every row
does the same number of passes. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

BIG_BATCH = {"dense-ae": 8192, "lstm-ae": 4096, "cnn": 512}
MACHINES = ("fan", "valve")
SR, SECONDS = 16000, 10.0


def fleet(n_normal: int, n_abnormal: int, seed: int = 0) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """machine -> (log-mel clips, labels 0/1): ``n_normal`` normal and ``n_abnormal`` faulty clips."""
    from earshot.features import FeatureConfig, log_mel_batch
    from earshot.synth import FAULTS, render_clip

    out = {}
    for m, machine in enumerate(MACHINES):
        rng = np.random.default_rng(seed + m)
        faults = FAULTS[machine]
        waves = [render_clip(machine, machine_id=0, duration_s=SECONDS, sr=SR, snr_db=0.0, rng=rng, seed=seed)
                 for _ in range(n_normal)]
        waves += [render_clip(machine, machine_id=0, fault=faults[i % len(faults)], severity=0.6,
                              duration_s=SECONDS, sr=SR, snr_db=0.0, rng=rng, seed=seed) for i in range(n_abnormal)]
        mels = log_mel_batch(np.stack(waves).astype(np.float32), FeatureConfig(sr=SR))
        out[machine] = ([np.ascontiguousarray(x) for x in mels], np.array([0] * n_normal + [1] * n_abnormal))
    return out


def split(y: np.ndarray, supervised: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices: half the normals train; anomalies test (half train too when supervised)."""
    rng = np.random.default_rng(seed)
    normal, abnormal = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
    n_tr, a_tr = len(normal) // 2, (len(abnormal) // 2 if supervised else 0)
    train = np.sort(np.concatenate([normal[:n_tr], abnormal[:a_tr]]))
    test = np.sort(np.concatenate([normal[n_tr:], abnormal[a_tr:]]))
    return train, test


def run_one(kind: str, device: str, clips, y, epochs: int, batch: int | None) -> tuple[float, float, int]:
    """(frames/s, test AUC, epochs run) of one training."""
    from earshot.detection import make_detector
    from earshot.evaluation import roc_auc

    supervised = kind == "cnn"
    train, test = split(y, supervised)
    params = {"epochs": epochs, "device": device}
    if batch is not None:
        params["batch_size"] = batch
    if supervised:
        params["patience"] = epochs  # the same number of epochs on every device
    det = make_detector(kind, **params)
    stamps: list[float] = []
    start = time.perf_counter()
    fit_args = (y[train],) if supervised else ()
    det.fit([clips[i] for i in train], *fit_args, progress=lambda *a: stamps.append(time.perf_counter()))
    run = len(stamps)
    # from the start of fit to the last epoch: includes the first epoch (and its device start-up)
    seconds = stamps[-1] - start if stamps else float("nan")
    frames = sum(clips[i].shape[1] for i in train) * run
    auc = roc_auc(y[test], det.score_samples([clips[i] for i in test]))
    return frames / seconds, float(auc), run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--normal", type=int, default=24, help="normal clips per machine")
    ap.add_argument("--abnormal", type=int, default=12, help="faulty clips per machine")
    ap.add_argument("--models", default="dense-ae,lstm-ae,cnn")
    args = ap.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if gpu else "none (torch.cuda.is_available() is False)"
    print(f"torch {torch.__version__}; CPU: {len(os.sched_getaffinity(0))} usable cores, load "
          f"{os.getloadavg()[0]:.1f}; GPU: {name}")
    data = fleet(args.normal, args.abnormal)
    rows = [("cpu", "cpu", None)] + ([("cuda", "cuda", None), ("cuda, big batch", "cuda", "big")] if gpu else [])
    from earshot.detection import make_detector

    warm = next(iter(data.values()))[0][:4]
    for _, device, _ in rows:  # the first fit on a device pays its start-up (kernels, allocator): not timed
        make_detector("dense-ae", epochs=1, device=device).fit(warm)
    print(f"\n| model | machine | device | batch | epochs | frames/s | AUC |\n|---|---|---|---|---|---:|---:|")
    for kind in args.models.split(","):
        for machine, (clips, y) in data.items():
            for label, device, batch in rows:
                size = BIG_BATCH[kind] if batch == "big" else None
                fps, auc, run = run_one(kind, device, clips, y, args.epochs, size)
                shown = size if size is not None else "default"
                print(f"| {kind} | {machine} | {label} | {shown} | {run} | {fps:,.0f} | {auc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
