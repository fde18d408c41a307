"""The ``earshot listen`` session: :func:`monitor`, the consumer loop (ring buffer, scorer,
event tracker), and what a session writes as it goes: :class:`Recorder` (``--record``, the
audio) and :class:`EventLog` (``--events``, one CSV row per finished event).

Per audio block the loop only moves samples: each read copies the unread samples out of the
ring into one reused array and pushes a view of it to the scorer, which copies them into its
own preallocated buffer and computes frames and runs the model only when a timeline window has
become complete (once per hop, not once per block).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot._util.fs import PendingFile
from earshot.errors import AudioError, EarshotError, ParameterError
from earshot.timeline.events import Event, EventTracker, event_row
from earshot.timeline.ring import RingBuffer
from earshot.timeline.scorer import StreamScorer
from earshot.timeline.windows import EVENT_COLUMNS, WindowScore

__all__ = ["Recorder", "EventLog", "MonitorSummary", "monitor"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- what a session writes
class Recorder:
    """Write the monitored audio to a wav file as it arrives (``listen --record``).

    Written to a temporary name beside the target and renamed at :meth:`close`, so a reader
    never sees a half-written file under the target name.
    """

    def __init__(self, path: str | os.PathLike, sr: int):
        self.path = Path(path)
        self._pending = PendingFile(self.path, suffix=".wav")
        self._file = sf.SoundFile(str(self._pending.tmp), "w", samplerate=int(sr), channels=1, subtype="PCM_16",
                                  format="WAV")

    def write(self, x: np.ndarray) -> None:
        self._file.write(np.clip(x, -1.0, 1.0))

    def close(self) -> Path:
        self._file.close()
        return self._pending.commit()

    def discard(self) -> None:
        self._file.close()
        self._pending.discard()


class EventLog:
    """Events appended to a CSV file as they end (``start_s, end_s, peak_score, mean_score``).

    A log, not a report: each row is written whole and flushed, so the file is always a valid
    CSV however the session ends. An existing log with the same header is appended to. The
    file is checked at once but only opened by the first event, or by :meth:`close` after a
    session that ran (a session that never started leaves no file behind).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise ParameterError(f"--events {self.path}: expected a file name, got a folder")
        self._fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not self._fresh:
            with open(self.path, encoding="utf-8") as fh:
                head = fh.readline().strip()
            if head != ",".join(EVENT_COLUMNS):
                raise ParameterError(f"--events {self.path}: exists and is not an earshot events log (header {head!r})")
        self._fh = None

    def _open(self) -> None:
        if self._fh is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        if self._fresh:
            self._writer.writerow(EVENT_COLUMNS)
            self._fh.flush()

    def write(self, event: Event) -> None:
        self._open()
        self._writer.writerow(event_row(event))
        self._fh.flush()

    def close(self, *, create: bool = True) -> None:
        """Close the log; ``create``: write it (header only) even if no event came."""
        if create:
            self._open()
        if self._fh is not None:
            self._fh.close()


# ---------------------------------------------------------------------- the monitor loop
@dataclass
class MonitorSummary:
    """What a :func:`monitor` run saw."""

    seconds: float = 0.0  # audio time scored
    n_windows: int = 0
    n_above: int = 0
    events: int = 0
    dropped_samples: int = 0
    input_overflows: int = 0  # blocks the sound card flagged: audio lost before it reached earshot
    wall_seconds: float = 0.0
    interrupted: bool = False
    last_events: list[Event] = field(default_factory=list)  # the last few (bounded)


def monitor(source, scorer: StreamScorer, tracker: EventTracker, *,
            on_window: Callable[[WindowScore, EventTracker], None] | None = None,
            on_event: Callable[[Event], None] | None = None,
            recorder: Recorder | None = None, stop: threading.Event | None = None,
            max_seconds: float | None = None, ring_s: float = 10.0, keep_events: int = 100,
            on_start: Callable[[], None] | None = None) -> MonitorSummary:
    """Stream ``source`` through a ring buffer, the scorer and the event tracker until the source
    ends, ``stop`` is set or ``max_seconds`` of audio are scored.

    A source that fails (``source.error``: an unplugged device) or stalls (a ``source.stall_s``
    that is not None, a device's: no audio for that long, counted from the start and from the
    last block read) ends the session with the error, raised once the source is stopped and the
    open events are closed (as Ctrl-C closes them).

    Parameters
    ----------
    source : FileSource or DeviceSource
        Anything with ``sr``, ``start(ring)``, ``stop()`` and ``error``; optionally ``stall_s``
        and ``name`` (the watchdog, and the device it names).
    scorer : StreamScorer
    tracker : EventTracker
    on_window : callable, optional
        ``on_window(window, tracker)`` for every scored window (the rolling verdict).
    on_event : callable, optional
        ``on_event(event)`` for every finished event (the events log).
    recorder : Recorder, optional
        Gets every sample read.
    ring_s : float
        Ring buffer capacity in seconds.
    on_start : callable, optional
        Called once the source has started (a sound card is open and delivering).

    Returns
    -------
    MonitorSummary
    """
    ring = RingBuffer(int(math.ceil(ring_s * source.sr)))
    block = np.empty(ring.capacity, np.float32)  # what each read moves out of the ring (reused)
    summary = MonitorSummary()
    started = time.perf_counter()
    limit = None if max_seconds is None else int(round(max_seconds * source.sr))

    def handle(windows: list[WindowScore]) -> None:
        for w in windows:
            summary.n_windows += 1
            summary.n_above += int(w.score > tracker.threshold)
            events = tracker.update(w)
            if on_window is not None:
                on_window(w, tracker)
            for e in events:
                _event(e)

    def _event(e: Event) -> None:
        summary.events += 1
        summary.last_events.append(e)
        del summary.last_events[:-keep_events]
        if on_event is not None:
            on_event(e)

    failure: EarshotError | None = None
    stall_s = getattr(source, "stall_s", None) or None  # the watchdog: devices only (0 or None: off)
    heard = False
    source.start(ring)
    heard_at = time.monotonic()  # the start, then the last block read: a device may take a moment
    if on_start is not None:
        on_start()
    try:
        while not (stop is not None and stop.is_set()):
            wait = 0.25 if stall_s is None else min(0.25, max(0.01, heard_at + stall_s - time.monotonic()))
            n = ring.read_into(block, timeout=wait)  # (waits for samples: no busy loop, the watchdog's deadline kept)
            if n is None:
                break
            if not n:
                silence = time.monotonic() - heard_at  # an empty read: nothing came since the last one
                if stall_s is not None and silence >= stall_s:  # a hung device, or one gone without a word
                    failure = _stalled(source, silence, heard)
                    break
                continue
            heard_at, heard = time.monotonic(), True
            x = block[: n if limit is None else min(n, max(0, limit - scorer.n_samples))]  # a view: no copy
            if recorder is not None:
                recorder.write(x)
            handle(scorer.push(x))
            if limit is not None and scorer.n_samples >= limit:
                break
        if failure is None and source.error is not None:  # raised below, once the open events are closed
            err = source.error
            failure = err if isinstance(err, EarshotError) else AudioError(f"audio input failed ({err})")
    except KeyboardInterrupt:  # Ctrl-C ends a session like the end of a file: open events are closed
        summary.interrupted = True
    finally:
        source.stop()
        ring.close()
    handle(scorer.finish())
    for e in tracker.finish():
        _event(e)
    if failure is not None:  # an unplugged (or stalled) device mid-alarm: the event is logged, then the error
        raise failure
    _record_totals(summary, source, scorer, ring, started)
    return summary


def _record_totals(summary: MonitorSummary, source, scorer: StreamScorer, ring: RingBuffer, started: float) -> None:
    """Fill in the session's totals (audio scored, samples dropped, device overflows, wall time)
    and warn about lost audio."""
    summary.seconds = scorer.n_samples / source.sr
    summary.dropped_samples = ring.dropped
    summary.input_overflows = int(getattr(source, "status_flags", 0))
    summary.wall_seconds = time.perf_counter() - started
    if ring.dropped:
        log.warning("the scorer fell behind: %d samples (%.1f s) were dropped", ring.dropped, ring.dropped / source.sr)
    if summary.input_overflows:
        log.warning("the input device reported %d overflow(s): some audio was lost before it reached earshot "
                    "(a busy machine? try a larger --blocksize)", summary.input_overflows)


def _stalled(source, silence: float, heard: bool) -> AudioError:
    name = getattr(source, "name", None)
    what = f"input device {name!r}" if name else "the input device"
    return AudioError(f"{what} delivered no audio for {silence:.1f} s{'' if heard else ' since it was started'} "
                      "(hung, or disconnected without an error?); --stall-s sets how long to wait, 0: for ever")
