"""The service's drift series on synthetic machines: false drift alarms and time to detection.

    python bench/drift_watch.py [--seeds 1] [--every 50] [--model gauss]

For each seed and each machine of bench/drift.py (fan, pump, valve, slider; each with its own
domain shift: speed, load or factory background, no fault): trains a model on 48 normal
one-second source clips and serves it in process (``earshot.service``, SQLite, the default
drift window: the last 200 snippets of the last 7 days, alpha 0.01). Through the API:

- a *steady* machine posts 200 source clips (the default window): the background watcher
  checks it after every ``--every`` snippets; each drifted check is a false drift alarm;
- a *moved* machine posts 100 source clips, then up to 200 clips of its target domain; the
  row gives how many shifted snippets it took until the first drifted check ("-": none within
  200) and how many ``drift.detected`` notifications were queued for both machines, after one
  more shifted block (one episode: 1 expected when detected, 0 otherwise).

Prints one row per machine and the totals. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.service.app import create_app
from earshot.service.settings import Settings
from earshot.service.store import Notification
from earshot.synth import render_clip
from earshot.synth.clip import get_model

SR = 16000
CASES = [("fan", 0), ("fan", 1), ("pump", 0), ("pump", 1), ("valve", 0), ("valve", 3), ("slider", 0), ("slider", 1)]


def clip_bytes(machine: str, machine_id: int, domain: str, rng, data_seed: int) -> bytes:
    y = render_clip(machine, machine_id=machine_id, domain=domain, duration_s=1.0, sr=SR, snr_db=0.0, rng=rng,
                    seed=data_seed)
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def history(client, name: str) -> list[dict]:
    r = client.get(f"/machines/{name}/drift/history")
    return r.json()["checks"] if r.status_code == 200 else []  # 404 before the machine's first snippet


def post_block(client, name: str, clips: list[bytes]) -> dict:
    """Post the clips (one check's worth), wait for the check they trigger, return it."""
    before = len(history(client, name))
    for b in clips:
        r = client.post(f"/machines/{name}/snippets", files={"file": ("c.wav", b, "audio/wav")})
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        checks = history(client, name)
        if len(checks) > before:
            return checks[-1]
        time.sleep(0.05)
    raise RuntimeError(f"no drift check of {name} within 120 s")


def run_case(root: Path, machine: str, machine_id: int, seed: int, every: int, model: str) -> dict:
    rng = np.random.default_rng(1000 + seed)
    normal = root / "train" / "normal"
    normal.mkdir(parents=True)
    for i in range(48):
        (normal / f"{i:04d}.wav").write_bytes(clip_bytes(machine, machine_id, "source", rng, seed))
    train(root / "train", root / "model", model=model, group_by="none", features=FeatureConfig(n_mels=32), seed=seed)
    # a webhook URL that refuses (port 9): the notifications are queued (and fail), which is what is counted
    settings = Settings(models_dir=root / "model", data_dir=root / "data", drift_check_every=every,
                        webhook_allow=("127.0.0.1",), webhook_retries=1)
    out = {"false_alarms": 0, "steady_checks": 0, "detected_after": None, "notified": 0}
    with TestClient(create_app(settings)) as client:
        for name in ("steady", "moved"):
            assert client.put(f"/machines/{name}", json={"webhook_url": "http://127.0.0.1:9/hook"}).status_code == 200
        rng = np.random.default_rng(2000 + seed)
        for _ in range(200 // every):
            check = post_block(client, "steady", [clip_bytes(machine, machine_id, "source", rng, seed) for _ in range(every)])
            out["steady_checks"] += 1
            out["false_alarms"] += check["drifted"]
        for _ in range(100 // every):
            check = post_block(client, "moved", [clip_bytes(machine, machine_id, "source", rng, seed) for _ in range(every)])
            out["false_alarms"] += check["drifted"]
            out["steady_checks"] += 1
        for k in range(1, 200 // every + 1):
            check = post_block(client, "moved", [clip_bytes(machine, machine_id, "target", rng, seed) for _ in range(every)])
            if check["drifted"]:
                out["detected_after"] = k * every
                out["band"] = check["bands"][0] if check["bands"] else {}
                break
        # one more shifted block: the same episode, no second notification
        if out["detected_after"] is not None:
            post_block(client, "moved", [clip_bytes(machine, machine_id, "target", rng, seed) for _ in range(every)])
        with client.app.state.earshot.store.read() as s:
            out["notified"] = s.query(Notification).filter(Notification.event == "drift.detected").count()  # both machines
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--model", default="gauss")
    args = ap.parse_args()
    logging.getLogger("earshot.service.alerts").setLevel(logging.ERROR)  # the refused deliveries are expected
    started = time.perf_counter()
    alarms = checks = detected = cases = 0
    print(f"{'seed':>4} {'machine':<10} {'shift':<18} {'false alarms':>12} {'detected after':>15} {'webhooks':>8}  top moved band")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for machine, machine_id in CASES:
                r = run_case(Path(tmp) / f"{seed}-{machine}-{machine_id}", machine, machine_id, seed, args.every, args.model)
                kind, value = get_model(machine, machine_id, seed).shift_label()
                band = r.get("band", {})
                after = f"{r['detected_after']} snippets" if r["detected_after"] else "-"
                print(f"{seed:>4} {machine}/{machine_id:<4} {kind + ' ' + value:<18} {r['false_alarms']:>5}/{r['steady_checks']:<6} "
                      f"{after:>15} {r['notified']:>8}  "
                      + (f"{band.get('lo_hz')}-{band.get('hi_hz')} Hz {band.get('shift_db', 0):+.1f} dB" if band else ""),
                      flush=True)
                alarms += r["false_alarms"]
                checks += r["steady_checks"]
                detected += r["detected_after"] is not None
                cases += 1
    print(f"\nmodel {args.model}, a check every {args.every} snippets, window 200 snippets / 7 days, alpha 1 %, "
          f"{cases} machines x seeds, {time.perf_counter() - started:.0f} s")
    print(f"false drift alarms (steady checks): {alarms}/{checks}")
    print(f"drift detected within 200 shifted snippets: {detected}/{cases}")


if __name__ == "__main__":
    main()
