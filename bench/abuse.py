"""Replay issue 15's decode bombs and slow clients against `earshot serve` on 127.0.0.1.

Starts ``earshot serve`` (no models, a temporary data folder, a free port), then sends, one
stage at a time: an 8-channel 96 kHz 600 s FLAC of a constant, wav headers claiming
1,000,003 Hz and 2,147,483,647 Hz, four FLAC bombs at once, a client sending its headers a
byte every 0.2 s, and the spectrogram of a stored 600 s snippet (twice: rendered, then
cached). For each stage it prints the answer, the seconds to it, and the server process's
peak resident memory during the stage (VmHWM from /proc, reset between stages through
/proc/PID/clear_refs), beside the figures the issue measured before the decode budget.

Run: ``.venv/bin/python bench/abuse.py`` (about a minute; writes only to a temp folder).
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

HOST = "127.0.0.1"
#: What the issue measured before (peak memory, seconds), for the side-by-side column.
BEFORE = {"flac bomb": "1.1 GB, 13 s", "1,000,003 Hz": "0.9 GB, 10 s", "2,147,483,647 Hz": "500",
          "4 flac bombs at once": "4.8 GB", "slow headers": "open after 151 s", "spectrogram 600 s": "repeats the cost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def flac_bomb() -> bytes:
    """8 channels, 96 kHz, 600 s of a constant, written in blocks (a few hundred KB)."""
    buf = io.BytesIO()
    block = np.full((96000, 8), 0.25, np.float32)
    with sf.SoundFile(buf, "w", samplerate=96000, channels=8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(600):
            f.write(block)
    return buf.getvalue()


def rate_bomb(sr: int) -> bytes:
    frames = 16000
    data = frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr,
            (sr * 2) & 0xFFFFFFFF, 2, 16) + b"data" + struct.pack("<I", data) + b"\x01\x00" * frames)


def long_snippet() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    sf.write(buf, rng.uniform(-0.3, 0.3, 16000 * 600).astype(np.float32), 16000, format="FLAC")
    return buf.getvalue()


def slow_headers(port: int, limit_s: float = 60.0) -> str:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"a" * 300 + b"\r\n\r\n"
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port)) as s:
        for byte in request:  # bounded: at most len(request) bytes, 0.2 s apart
            try:
                s.sendall(bytes([byte]))
            except OSError:
                return f"closed by the server after {time.perf_counter() - t0:.1f} s"
            time.sleep(0.2)
            if time.perf_counter() - t0 > limit_s:
                return f"still open after {limit_s:.0f} s"
        s.settimeout(5)
        return f"answered after {time.perf_counter() - t0:.1f} s: {s.recv(64)[:20]!r}"


def main() -> int:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "earshot.cli", "serve", "--host", HOST, "--port", str(port),
                                   "--data", data, "--log-level", "warning"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            return run(server, port)
        finally:
            server.terminate()
            server.wait(30)


def run(server: subprocess.Popen, port: int) -> int:
    base = f"http://{HOST}:{port}"
    client = httpx.Client(base_url=base, timeout=120)
    for _ in range(300):
        try:
            if client.get("/health").status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        print("the server did not start:", server.stderr.read().decode()[-2000:] if server.stderr else "")
        return 1
    pid = server.pid
    print(f"earshot serve on {base} (pid {pid}); server RSS at rest {status_kb(pid, 'VmRSS') / 1024:.0f} MB")
    print(f"{'stage':24} {'answer':52} {'s':>6} {'peak MB':>8}   before the budget (issue 15)")

    def stage(name, fn):
        reset_peak(pid)
        t0 = time.perf_counter()
        answer = fn()
        dt = time.perf_counter() - t0
        print(f"{name:24} {answer[:52]:52} {dt:6.2f} {status_kb(pid, 'VmHWM') / 1024:8.0f}   {BEFORE.get(name, '')}")

    def post(data, name):
        r = client.post("/machines/bench/snippets", files={"file": (name, data)})
        return f"{r.status_code} {r.json().get('detail', '')}"

    bomb = flac_bomb()
    print(f"(flac bomb: {len(bomb) / 1024:.0f} KB on the wire)")
    stage("flac bomb", lambda: post(bomb, "bomb.flac"))
    stage("1,000,003 Hz", lambda: post(rate_bomb(1_000_003), "r1.wav"))
    stage("2,147,483,647 Hz", lambda: post(rate_bomb(2_147_483_647), "r2.wav"))

    def four():
        with ThreadPoolExecutor(4) as pool:
            return " | ".join(a[:3] for a in pool.map(lambda i: post(bomb, f"b{i}.flac"), range(4)))
    stage("4 flac bombs at once", four)
    stage("slow headers", lambda: slow_headers(port))
    snippet = long_snippet()
    r = client.post("/machines/bench/snippets", files={"file": ("long.flac", snippet)})
    sid = r.json().get("id")
    print(f"(stored a 600 s 16 kHz snippet: {r.status_code}, id {sid})")

    def picture():
        g = client.get(f"/snippets/{sid}/spectrogram.png")
        return f"{g.status_code} {len(g.content)} bytes of PNG"
    stage("spectrogram 600 s", picture)
    stage("spectrogram again", picture)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
