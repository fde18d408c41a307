"""Training from the team's labels through the service, on synthetic machines: is the swap right?

    python bench/supervised_service.py [--seed 0] [--unlabelled 60] [--labelled-normal 12]
                                       [--anomalies 12] [--test 50] [--epochs 30] [--machines fan,pump]

For each machine type of :mod:`earshot.synth` (machine id 0, source domain, 2-second clips at
16 kHz, SNR 0 dB, fault severity uniform in [0.1, 1] over every fault type of the machine), in
one in-process service (SQLite, no ``--models``):

1. ``--unlabelled`` normal snippets are posted and the machine's autoencoder job
   (``"model": "autoencoder"``, the existing job) trains its current model on them;
2. ``--labelled-normal`` normal and ``--anomalies`` anomalous snippets follow, interleaved in
   time, labelled normal / anomaly as the team would;
3. the supervised job (``"model": "supervised"``) trains the CNN on the older labels and the
   unlabelled normals, compares it with the current model on the newest labels (30% of each),
   and swaps only when its held-out AUC is higher.

Printed per machine: the held-out AUCs (candidate, current) and the decision; the AUC of the
machine's model on ``--test`` fresh normal + ``--test`` fresh anomalous clips (never stored)
before and after the job (equal when it was not swapped); the seconds of the autoencoder job
(the reference) and of the supervised job, in the same run. Torch uses the job's threads (half
the cores). No assertions: figures only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from earshot.evaluation.metrics import roc_auc
from earshot.service.app import create_app
from earshot.service.settings import Settings
from earshot.synth import FAULTS, render_clip
from earshot.synth.writer import draw_severity

SR = 16000


def wav(y: np.ndarray) -> bytes:
    import io

    import soundfile as sf  # deferred: only the bench's uploads need it

    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def clip(machine: str, fault, rng, seed: int) -> bytes:
    severity = draw_severity(rng) if fault else 0.0
    return wav(render_clip(machine, machine_id=0, fault=fault, severity=severity, duration_s=2.0, sr=SR, snr_db=0.0,
                           rng=rng, seed=seed))


def finished(client, job: dict) -> dict:
    while job["state"] in ("queued", "running"):
        time.sleep(0.2)
        job = client.get(f"/jobs/{job['id']}").json()
    if job["state"] != "succeeded":
        raise SystemExit(f"job failed: {job['message']}")
    return job


def fresh_auc(client, machine: str, model: str, test: list[tuple[bytes, int]]) -> float:
    scores = [client.post("/score", files={"file": ("c.wav", b, "audio/wav")}, data={"model": model}).json()["score"]
              for b, _ in test]
    return float(roc_auc([y for _, y in test], scores))


def one_machine(client, machine: str, args, rng) -> dict:
    name = f"{machine}-0"
    for i in range(args.unlabelled):
        client.post(f"/machines/{name}/snippets", files={"file": ("c.wav", clip(machine, None, rng, args.seed), "audio/wav")},
                    data={"recorded_at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"})
    ae = finished(client, client.post(f"/machines/{name}/train", json={"epochs": args.epochs}).json())
    kinds = ["normal"] * args.labelled_normal + ["anomaly"] * args.anomalies
    rng.shuffle(kinds)
    faults = FAULTS[machine]
    for i, kind in enumerate(kinds):
        fault = faults[i % len(faults)] if kind == "anomaly" else None
        r = client.post(f"/machines/{name}/snippets", files={"file": ("c.wav", clip(machine, fault, rng, args.seed), "audio/wav")},
                        data={"recorded_at": f"2026-02-01T00:{i // 60:02d}:{i % 60:02d}Z"}).json()
        client.post(f"/snippets/{r['id']}/label", json={"label": kind})
    test = ([(clip(machine, None, rng, args.seed), 0) for _ in range(args.test)]
            + [(clip(machine, faults[i % len(faults)], rng, args.seed), 1) for i in range(args.test)])
    before = fresh_auc(client, machine, name, test)
    sup = finished(client, client.post(f"/machines/{name}/train", json={"model": "supervised", "epochs": args.epochs}).json())
    after = fresh_auc(client, machine, name, test)
    c = sup["result"]["comparison"]
    return {"machine": machine, "cand": c["candidate"].get("auc"), "cur": (c["current"] or {}).get("auc"),
            "held": c["held_out"], "swapped": c["swapped"], "before": before, "after": after,
            "ae_s": ae["result"]["seconds"], "sup_s": sup["result"]["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unlabelled", type=int, default=60, help="normal snippets the current autoencoder trains on")
    ap.add_argument("--labelled-normal", type=int, default=12)
    ap.add_argument("--anomalies", type=int, default=12, help="confirmed anomalies (every fault type in turn)")
    ap.add_argument("--test", type=int, default=50, help="fresh normal and fresh anomalous clips, each")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--machines", default=",".join(FAULTS))
    args = ap.parse_args()
    from fastapi.testclient import TestClient  # deferred: the bench's in-process service

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"{'machine':<8} {'held out a/n':>12} {'cand AUC':>9} {'cur AUC':>8} {'swapped':>8} "
          f"{'fresh AUC before':>17} {'after':>6} {'AE job s':>9} {'CNN job s':>10}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            TestClient(create_app(Settings(models_dir=None, data_dir=Path(tmp) / "data"))) as client:
        for machine in args.machines.split(","):
            r = one_machine(client, machine, args, rng)
            rows.append(r)
            print(f"{machine:<8} {r['held']['anomaly']:>6}/{r['held']['normal']:<5} {r['cand']:>9.3f} {r['cur']:>8.3f} "
                  f"{'yes' if r['swapped'] else 'no':>8} {r['before']:>17.3f} {r['after']:>6.3f} {r['ae_s']:>9.1f} "
                  f"{r['sup_s']:>10.1f}", flush=True)
    swapped = [r for r in rows if r["swapped"]]
    better = sum(r["after"] > r["before"] for r in swapped)
    print(f"\nseed {args.seed}; {args.unlabelled} unlabelled normal, {args.labelled_normal} labelled normal, "
          f"{args.anomalies} confirmed anomalies per machine; {args.epochs} epochs; {os.cpu_count()} cores; "
          f"{time.perf_counter() - started:.0f} s")
    print(f"swapped: {len(swapped)}/{len(rows)}; fresh AUC higher after the swap: {better}/{len(swapped)}; "
          f"mean fresh AUC {np.mean([r['before'] for r in rows]):.3f} -> {np.mean([r['after'] for r in rows]):.3f}")
    print(f"job seconds: autoencoder (reference) {sum(r['ae_s'] for r in rows):.1f}, "
          f"supervised CNN {sum(r['sup_s'] for r in rows):.1f}")


if __name__ == "__main__":
    main()
