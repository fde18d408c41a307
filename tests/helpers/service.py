"""Shared by the service tests: a tiny trained model (once per session), clips, a live server."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.cli.app import main

from helpers.datasets import write_hum_dataset
from helpers.signals import SR

_MODEL: dict[str, Path] = {}


def wav_bytes(y: np.ndarray, sr: int = SR, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """``y`` encoded as an audio file (WAV, 16-bit by default), in memory."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def tiny_model(tmp_path_factory) -> Path:
    """A single-bundle model for machine group ``fan/id_00`` (3 epochs, 32 mels), trained once per session."""
    if "path" in _MODEL:
        return _MODEL["path"]
    root = write_hum_dataset(tmp_path_factory.mktemp("service-data"), np.random.default_rng(0), n_normal=14,
                             n_abnormal=3)
    out = tmp_path_factory.mktemp("service-model") / "model"
    assert main(["train", str(root), "--out", str(out), "--epochs", "3", "--n-mels", "32"]) == 0
    _MODEL["path"] = out
    return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
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


class JsonHook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that keeps each POSTed JSON body in ``received`` and answers 204.
    Make one class per test (``type("Hook", (JsonHook,), {"received": []})``)."""

    received: list

    def do_POST(self):  # noqa: N802
        type(self).received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def hook_server(handler: type[http.server.BaseHTTPRequestHandler]):
    """A webhook receiver on 127.0.0.1 (a free port) serving ``handler`` in a thread; yields its URL."""
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` every 50 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
