"""STFT power spectrogram and the drivers shared with log-mel.

:func:`power_spectrogram` is ``abs(librosa.stft(y, pad_mode="constant")) ** power`` in
float32. The drivers check the audio (:func:`_as_audio`), pick the thread count
(:func:`_n_workers`) and run a plan over clips (:func:`_run`): the blocks of one long
recording, or runs of clips, on a thread pool (numpy ufuncs, scipy.fft and BLAS release the
GIL); :func:`_dispatch` reshapes any ``(..., n_samples)`` input for them.

The pool is one per process (:func:`_shared_pool`), kept between calls: a pool per call made
fresh threads each time, and with them fresh per-thread buffers that page-faulted in on every
call (measured on batches of 4-8 clips, 2 workers: 17-35 % more CPU per clip than one thread).
A call runs ``workers`` tasks on it that take runs of clips from a shared queue, so a pool
grown by an earlier call with more workers never runs more threads than asked.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from earshot._util.cores import usable_cores
from earshot.errors import ParameterError
from earshot.features.stft_kernels import (
    _Scratch,
    _Signal,
    _buffers,
    _process_block,
    _process_clip,
)
from earshot.features.stft_plan import _MAX_BLOCK, _Plan, _n_time, _plan

__all__ = ["power_spectrogram"]

_MIN_SPLIT = 2048  # a single clip is split across threads only from this many frames on


def _n_workers(workers: int | None) -> int:
    if workers is None:
        return usable_cores()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ParameterError(f"workers must be a positive int or None, got {workers!r}")
    return int(workers)


def _as_audio(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ParameterError(
            f"{name} must hold floating-point samples (float32 or float64), got dtype {arr.dtype}"
        )
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ParameterError(f"{name} must have at least one sample, got shape {arr.shape}")
    return arr


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    # A forked child has none of the parent's pool threads: it starts its own when needed (and
    # a fresh lock, in case another thread of the parent held it at the fork).
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process's feature thread pool, grown to at least ``workers`` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="earshot-features")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)  # its running tasks finish; its threads then exit
        return _pool


def _on_threads(workers: int, items: list, work: Callable[[Any], None],
                setup: Callable[[], Any]) -> None:
    """``work(state, item)`` for every item on ``workers`` pool threads, ``state = setup()``
    once per thread and call; items are taken in order from a shared queue."""
    lock = threading.Lock()
    queue = iter(items)

    def drain() -> None:
        state = setup()
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            work(state, item)

    pool = _shared_pool(workers)
    futures = [pool.submit(drain) for _ in range(min(workers, len(items)))]
    for f in futures:
        f.result()


def _run(Y: np.ndarray, plan: _Plan, workers: int) -> np.ndarray:
    """Y (n_clips, n_samples) -> (n_clips, n_mels or n_bins, n_time) float32."""
    n_clips, n_samples = Y.shape
    n_time = _n_time(n_samples, plan.n_fft, plan.hop_length)
    out = np.empty((n_clips, plan.n_mels or plan.n_bins, n_time), dtype=np.float32)
    block = min(n_time, _MAX_BLOCK)

    if n_clips == 1 and workers > 1 and n_time >= _MIN_SPLIT:
        # One long recording: its blocks of frames go to the threads.
        sig = _Signal(plan, n_samples)
        sig.load(Y[0])
        starts = list(range(0, n_time, block))

        _on_threads(
            workers, starts,
            lambda scratch, t0: _process_block(plan, sig, scratch, t0, min(n_time, t0 + block),
                                               out[0]),
            lambda: _Scratch(plan, block),
        )
        return out

    if workers == 1 or n_clips < 2 * workers:
        sig, scratch = _buffers(plan, n_samples, block)
        for i in range(n_clips):
            _process_clip(plan, sig, scratch, Y[i], out[i])
        return out

    # Many clips: runs of consecutive clips per task on a pool of threads.
    per_task = max(1, min(16, n_clips // (4 * workers)))
    ranges = [(i, min(n_clips, i + per_task)) for i in range(0, n_clips, per_task)]

    def run_range(bufs: tuple[_Signal, _Scratch], r: tuple[int, int]) -> None:
        for i in range(*r):
            _process_clip(plan, bufs[0], bufs[1], Y[i], out[i])

    # One set of buffers per pool thread, kept by the thread between calls.
    _on_threads(workers, ranges, run_range, lambda: _buffers(plan, n_samples, block))
    return out


def _dispatch(y: Any, plan: _Plan, workers: int | None, name: str) -> np.ndarray:
    arr = _as_audio(y, name)
    lead = arr.shape[:-1]
    Y = arr.reshape(-1, arr.shape[-1]) if arr.ndim != 2 else arr
    out = _run(Y, plan, _n_workers(workers))
    return out.reshape(*lead, *out.shape[1:]) if arr.ndim != 2 else out


def power_spectrogram(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    power: float = 2.0,
    workers: int | None = None,
) -> np.ndarray:
    """STFT power spectrogram: ``abs(librosa.stft(y, pad_mode="constant")) ** power``.

    Parameters
    ----------
    y : np.ndarray, shape (..., n_samples), float
        Any number of samples >= 1 (shorter than ``n_fft`` is zero-padded, as librosa).
    n_fft, hop_length : int
        FFT length and hop in samples.
    win_length : int or None
        Hann window length (centred, zero-padded to ``n_fft``); ``None`` = ``n_fft``.
    power : float, default 2.0
        Exponent of the magnitude.
    workers : int or None
        Threads to use; ``None`` = the CPUs this process may run on.

    Returns
    -------
    np.ndarray, shape (..., 1 + n_fft // 2, 1 + n_samples // hop_length), float32
        (for even ``n_fft``; ``1 + (n_samples - 1) // hop_length`` frames for odd).
    """
    for name, value in (("n_fft", n_fft), ("hop_length", hop_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"{name} must be a positive int, got {value!r}")
    if n_fft < 2:
        raise ParameterError(f"n_fft must be an int >= 2, got {n_fft!r}")
    if win_length is not None and (
        isinstance(win_length, bool)
        or not isinstance(win_length, (int, np.integer))
        or not 1 <= win_length <= n_fft
    ):
        raise ParameterError(
            f"win_length must be None or an int in [1, n_fft={n_fft}], got {win_length!r}"
        )
    if isinstance(power, bool) or not isinstance(power, (int, float, np.number)) or not (
        math.isfinite(power) and power > 0
    ):
        raise ParameterError(f"power must be a number > 0, got {power!r}")
    plan = _plan(
        None, int(n_fft), int(hop_length), None if win_length is None else int(win_length),
        float(power),
    )
    return _dispatch(y, plan, workers, "y")
