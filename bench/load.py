"""Load test of `earshot serve`: concurrent machines posting 10 s snippets.

    python bench/load.py [--seconds 60] [--clients 20] [--model DIR] [--json OUT]

Starts `earshot serve` on a free 127.0.0.1 port (SQLite store in a temporary folder, the
model of --model, or a small one trained here on synthetic clips), then --clients threads,
each one machine with its own keep-alive connection, post distinct 10 s / 16 kHz snippets
(every request carries new bytes, so every snippet is decoded, scored, written and fsynced)
for --seconds. Prints requests per second, p50/p99/max latency and errors. Then it proves that
every acknowledged (201) snippet is in the store: the server is killed with SIGKILL right
after the run, restarted on the same folder, and every acknowledged snippet id is looked up
with its SHA-256. The clients run on the same machine as the server (they share its cores).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], url: str) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "earshot.cli", "serve", *args, "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def _train_model(work: Path) -> Path:
    from earshot.features.config import FeatureConfig
    from earshot.pipeline import train
    from earshot.synth import synthesize

    data = work / "synth"
    synthesize(data, machines=("fan",), n_ids=1, n_normal=30, n_abnormal=2, duration_s=10.0, seed=0)
    out = work / "model"
    train(data, out, model_params={"epochs": 3}, features=FeatureConfig(n_mels=64), group_by="machine")
    return out


def _snippet_bytes(base: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, base, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: train a small one here)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    import httpx

    work = Path(tempfile.mkdtemp(prefix="earshot-load-"))
    model = args.model or _train_model(work)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    serve_args = ["--port", str(port), "--models", str(model), "--data", str(work / "data")]
    proc = _start(serve_args, url)

    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    hum = (0.1 * np.sin(2 * np.pi * 120 * t) + 0.05 * np.sin(2 * np.pi * 240 * t)).astype(np.float32)
    template = _snippet_bytes(hum + 0.01 * rng.normal(size=t.size).astype(np.float32))
    header = template.index(b"data") + 8

    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    acked: dict[tuple[str, str], str] = {}
    start_gate = threading.Event()
    deadline = [0.0]

    def client(n: int) -> None:
        import hashlib

        machine = f"machine-{n:02d}"
        local = np.random.default_rng(n)
        with httpx.Client(base_url=url, timeout=60) as http:
            start_gate.wait()
            i = 0
            while time.monotonic() < deadline[0]:
                body = bytearray(template)
                noise = local.integers(-64, 64, size=(len(body) - header) // 2, dtype=np.int16)
                pcm = np.frombuffer(body, dtype=np.int16, count=(len(body) - header) // 2, offset=header) + noise
                body[header:header + pcm.nbytes] = pcm.astype(np.int16).tobytes()
                body = bytes(body)
                sid = f"{machine}-{i:06d}"
                t0 = time.perf_counter()
                try:
                    r = http.post(f"/machines/{machine}/snippets", files={"file": ("s.wav", body, "audio/wav")},
                                  data={"snippet_id": sid})
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                dt = time.perf_counter() - t0
                with lock:
                    if status == "201":
                        latencies.append(dt)
                        acked[(machine, sid)] = hashlib.sha256(body).hexdigest()
                    else:
                        errors[status] = errors.get(status, 0) + 1
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    started = time.monotonic()
    deadline[0] = started + args.seconds
    start_gate.set()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    proc.send_signal(signal.SIGKILL)  # no shutdown code: what was acknowledged must already be on disk
    proc.wait()

    proc = _start(serve_args, url)
    found = mismatched = 0
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            stored: dict[tuple[str, str], str] = {}
            for n in range(args.clients):
                machine = f"machine-{n:02d}"
                page_url = f"/machines/{machine}/snippets?limit=500"
                while page_url:
                    r = http.get(page_url)
                    if r.status_code == 404:
                        break
                    page = r.json()
                    stored.update({(machine, s["snippet_id"]): s["sha256"] for s in page["items"]})
                    page_url = page["next"]
        for key, sha in acked.items():
            if key in stored:
                found += 1
                mismatched += stored[key] != sha
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()

    lat = np.array(latencies) * 1000
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "snippet": "10 s, 16 kHz, PCM_16 wav (320 kB)",
        "acknowledged": len(acked), "errors": errors,
        "requests_per_s": round(len(acked) / elapsed, 1),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
                       "p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
                       "max": round(float(lat.max()), 1) if lat.size else None},
        "after_kill_9_and_restart": {"found": found, "missing": len(acked) - found, "sha256_mismatch": mismatched},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if found != len(acked) or mismatched:
        raise SystemExit("some acknowledged snippets are missing from the store")


if __name__ == "__main__":
    main()
