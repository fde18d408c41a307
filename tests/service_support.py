"""Helpers shared by the service tests: a tiny trained model (once per session), clips, a live server."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
_MODEL: dict[str, Path] = {}


def hum(rng: np.random.Generator, seconds: float = 2.0, sr: int = SR, fault: bool = False) -> np.ndarray:
    """A machine hum (100 + 200 Hz and noise); ``fault`` adds bearing-like clicks ringing at 3 kHz."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.1 * np.sin(2 * np.pi * 200 * t) + 0.02 * rng.normal(size=t.size)
    if fault:
        clicks = np.zeros_like(t)
        clicks[:: sr // 37] = 1.0
        ring = np.exp(-np.arange(200) / 30) * np.sin(2 * np.pi * 3000 * np.arange(200) / sr)
        y = y + 0.3 * np.convolve(clicks, ring)[: t.size]
    return (y / 2).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int = SR, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def tiny_model(tmp_path_factory) -> Path:
    """A single-bundle model for machine group ``fan/id_00`` (3 epochs, 32 mels), trained once per session."""
    if "path" in _MODEL:
        return _MODEL["path"]
    from earshot.cli.app import main

    root = tmp_path_factory.mktemp("service-data")
    rng = np.random.default_rng(0)
    for label, n in (("normal", 14), ("abnormal", 3)):
        d = root / "fan" / "id_00" / label
        d.mkdir(parents=True)
        for i in range(n):
            sf.write(d / f"{i:08d}.wav", hum(rng, fault=label == "abnormal"), SR, subtype="PCM_16")
    out = tmp_path_factory.mktemp("service-model") / "model"
    assert main(["train", str(root), "--out", str(out), "--epochs", "3", "--n-mels", "32"]) == 0
    _MODEL["path"] = out
    return out


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``earshot serve`` in a subprocess on 127.0.0.1 (killable with -9)."""

    def __init__(self, *args: str, port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "earshot.cli", "serve", "--port", str(self.port), "--log-level", "warning", *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Server":
        import httpx

        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode(errors='replace')}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not start in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
