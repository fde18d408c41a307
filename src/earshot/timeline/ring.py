"""The ring buffer between an audio producer (a sound card callback, a file-reading thread)
and the scorer: :class:`RingBuffer`, fixed capacity, one producer and one consumer thread."""

from __future__ import annotations

import threading

import numpy as np

from earshot.errors import ParameterError

__all__ = ["RingBuffer"]


class RingBuffer:
    """A fixed-capacity ring of float32 samples between one producer and one consumer thread.

    The producer is the audio callback (which must never wait: :meth:`write` with
    ``wait=False`` overwrites the oldest unread samples when the consumer falls behind and
    counts them in :attr:`dropped`) or a file reader (``wait=True``: it waits for room).

    Parameters
    ----------
    capacity : int
        Samples held at most.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ParameterError(f"capacity: expected a positive number of samples, got {capacity!r}")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self._written = 0  # samples written in all
        self._read = 0  # samples consumed (or dropped) in all
        self.dropped = 0
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return self._written - self._read

    def write(self, x: np.ndarray, *, wait: bool = False, timeout: float | None = None) -> None:
        """Append samples; with ``wait`` block until there is room, else drop the oldest."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        with self._cond:
            if wait:
                for i in range(0, x.size, self.capacity):
                    part = x[i : i + self.capacity]
                    if not self._cond.wait_for(lambda: self.capacity - (self._written - self._read) >= part.size or self._closed,
                                               timeout):
                        raise TimeoutError("ring buffer: no room")
                    self._put(part)
                return
            if x.size > self.capacity:
                self.dropped += x.size - self.capacity
                self._read += x.size - self.capacity
                self._written += x.size - self.capacity
                x = x[-self.capacity :]
            over = (self._written - self._read) + x.size - self.capacity
            if over > 0:
                self.dropped += over
                self._read += over
            self._put(x)

    def _put(self, x: np.ndarray) -> None:
        pos = self._written % self.capacity
        first = min(x.size, self.capacity - pos)
        self._data[pos : pos + first] = x[:first]
        self._data[: x.size - first] = x[first:]
        self._written += x.size
        self._cond.notify_all()

    def read(self, *, timeout: float | None = None) -> np.ndarray | None:
        """Every unread sample (a copy); waits for some. None once closed and drained; an empty
        array on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._written > self._read or self._closed, timeout)
            n = self._written - self._read
            if n == 0:
                return None if self._closed else np.empty(0, np.float32)
            pos = self._read % self.capacity
            first = min(n, self.capacity - pos)
            out = np.concatenate([self._data[pos : pos + first], self._data[: n - first]])
            self._read += n
            self._cond.notify_all()
            return out

    def read_into(self, out: np.ndarray, *, timeout: float | None = None) -> int | None:
        """Move up to ``out.size`` unread samples into ``out`` (no allocation); waits for some.

        Returns how many were moved: None once closed and drained, 0 on timeout. Samples that
        do not fit stay for the next read.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._written > self._read or self._closed, timeout)
            n = min(self._written - self._read, out.size)
            if n == 0:
                return None if self._closed and self._written == self._read else 0
            pos = self._read % self.capacity
            first = min(n, self.capacity - pos)
            out[:first] = self._data[pos : pos + first]
            out[first:n] = self._data[: n - first]
            self._read += n
            self._cond.notify_all()
            return n

    def close(self) -> None:
        """No more samples will come; the consumer drains what is left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
