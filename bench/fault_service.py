"""What naming the closest confirmed fault costs the service's snippet ingest.

    python bench/fault_service.py [--snippets 30] [--labelled 8] [--seconds 2]

An in-process service (FastAPI TestClient, SQLite in a temporary folder) scores synthetic fan
snippets (machine id 0, ``--seconds`` long, 16 kHz) with a gauss model trained on 20 normal
clips. Two machines get the same stream: ``plain`` has no fault label, ``labelled`` has
``--labelled`` confirmed snippets labelled with their fault (imbalance, blade_damage). Their
uploads alternate, so both see the same load. Prints, per machine, the median and 90th
percentile ms per upload of anomalous and of normal snippets, the time of the label requests
(which refit the signatures), and the share of ``labelled``'s new alerts that name the right
fault. The reference is ``plain`` in the same run: the difference is the fault's cost.

No assertions: figures only.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def clip(fault, rng, seconds):
    from earshot.synth import render_clip  # deferred: after argument parsing (fast --help)

    severity = 0.0 if fault is None else float(rng.uniform(0.5, 1.0))
    return render_clip("fan", machine_id=0, fault=fault, severity=severity, duration_s=seconds, sr=SR, snr_db=6.0,
                       rng=rng)


def wav(y) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snippets", type=int, default=30, help="anomalous and normal snippets per machine")
    ap.add_argument("--labelled", type=int, default=8, help="fault-labelled snippets of the 'labelled' machine")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    from fastapi.testclient import TestClient  # deferred: after argument parsing (fast --help)

    from earshot.features.config import FeatureConfig  # deferred: as above
    from earshot.pipeline import train  # deferred: as above
    from earshot.service.app import create_app  # deferred: as above
    from earshot.service.settings import Settings  # deferred: as above

    rng = np.random.default_rng(0)
    faults = ("imbalance", "blade_damage")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "train" / "normal").mkdir(parents=True)
        for i in range(20):
            sf.write(root / "train" / "normal" / f"{i:02d}.wav", clip(None, rng, args.seconds), SR)
        train(root / "train", root / "model", model="gauss", group_by="none", features=FeatureConfig(n_mels=32), seed=0)
        settings = Settings(models_dir=root / "model", data_dir=root / "data", alert_open_after=1, alert_close_after=1)
        with TestClient(create_app(settings)) as c:
            def post(machine, y):
                t0 = time.perf_counter()
                r = c.post(f"/machines/{machine}/snippets", files={"file": ("c.wav", wav(y), "audio/wav")})
                assert r.status_code == 201, r.text
                return r.json(), 1000 * (time.perf_counter() - t0)

            label_ms = []
            for i in range(args.labelled):
                f = faults[i % 2]
                sn, _ = post("labelled", clip(f, rng, args.seconds))
                t0 = time.perf_counter()
                assert c.post(f"/snippets/{sn['id']}/label", json={"label": "anomaly", "fault": f}).status_code == 200
                label_ms.append(1000 * (time.perf_counter() - t0))
                post("plain", clip(f, rng, args.seconds))
            ms = {(m, k): [] for m in ("plain", "labelled") for k in ("anomalous", "normal")}
            right = opened = 0
            for i in range(args.snippets):
                f = faults[i % 2]
                a, n = clip(f, rng, args.seconds), clip(None, rng, args.seconds)
                for machine in ("plain", "labelled"):
                    for y, truth in ((a, f), (n, None)):
                        sn, t = post(machine, y)
                        ms[(machine, "anomalous" if sn["is_anomalous"] else "normal")].append(t)
                        if machine == "labelled" and sn["alert_event"] == "open" and truth is not None:
                            alert = c.get("/alerts?machine=labelled&limit=1").json()["alerts"][0]
                            opened += 1
                            right += alert["fault_known"] is True and alert["fault"] == truth
    print(f"load average {os.getloadavg()[0]:.1f}; {args.snippets} anomalous + {args.snippets} normal fan snippets of "
          f"{args.seconds:g} s per machine, uploads alternating")
    print(f"{'machine':<10} {'verdict':<10} {'n':>4} {'median ms':>10} {'p90 ms':>8}")
    for (m, k), v in ms.items():
        if v:
            print(f"{m:<10} {k:<10} {len(v):>4} {np.median(v):>10.1f} {np.percentile(v, 90):>8.1f}")
    print(f"label requests (refit the signatures): median {np.median(label_ms):.1f} ms, first {label_ms[0]:.1f} ms, "
          f"max {max(label_ms):.1f} ms")
    print(f"'labelled' alerts opened by an anomaly: {opened}, naming its fault (known): {right}")


if __name__ == "__main__":
    main()
