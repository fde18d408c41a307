"""Threads, ring buffers and scorers of a live session, seen from a test."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from earshot.timeline import RingBuffer, StreamScorer


def drain(ring: RingBuffer, n: int, timeout: float = 10.0) -> np.ndarray:
    """Read ``n`` samples from ``ring`` (what the scorer would get)."""
    parts, got, deadline = [], 0, time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, f"only {got} of {n} samples arrived"
        x = ring.read(timeout=0.5)
        assert x is not None, f"the ring was closed after {got} of {n} samples"
        assert x.dtype == np.float32
        parts.append(x)
        got += x.size
    return np.concatenate(parts)


def within(seconds: float, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread: its result or its exception, or fail (not hang) after ``seconds``."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s (it would hang for ever)"
    if "error" in box:
        raise box["error"]
    return box["value"]


class SpyScorer:
    """The real StreamScorer, keeping a copy of every block monitor() pushes."""

    def __init__(self, inner: StreamScorer, on_push=None):
        self.inner, self.pushed, self.on_push = inner, [], on_push

    @property
    def n_samples(self) -> int:
        return self.inner.n_samples

    def push(self, x):
        assert x.dtype == np.float32 and x.ndim == 1
        self.pushed.append(x.copy())
        if self.on_push is not None:
            self.on_push(self)
        return self.inner.push(x)

    def finish(self):
        return self.inner.finish()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.pushed) if self.pushed else np.empty(0, np.float32)


def warnings_of(name: str):
    """Yield the list of WARNING+ records of logger ``name`` while the fixture lives (the CLI's
    logging setup stops them reaching caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
