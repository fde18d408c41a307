"""Streaming scoring: samples in, timeline windows out, with flat memory.

One code path for ``earshot detect`` (a whole file pushed in large blocks) and ``earshot
listen`` (a microphone, or a file streamed at real-time pace, through a ring buffer):

- :class:`FrameStream` turns samples into log-mel frames as they arrive, equal to
  :func:`earshot.features.log_mel` of the whole signal (``center=True``: zeros before the
  first sample and after the last one, at :meth:`FrameStream.flush`);
- :class:`StreamScorer` runs the bundle's ONNX scoring graph over new frames only and turns the
  model-window errors into timeline windows (:class:`earshot.timeline.WindowGeometry`);
- :class:`RingBuffer` decouples the producer (the audio callback, or a file-reading thread)
  from the scorer; :func:`monitor` is the consumer loop of ``listen``;
- :class:`FileSource`, :class:`DeviceSource` (sounddevice, the ``live`` extra) and
  :class:`Recorder` (``--record``).

Everything kept between calls is bounded by the window length, the model's context and the
ring's capacity, never by how long the stream has run. Imports numpy, soundfile and
onnxruntime; sounddevice only when a device is opened.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot.detection.aggregate import aggregate
from earshot.errors import AudioError, EarshotError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel
from earshot.timeline import Event, EventSettings, EventTracker, WindowGeometry, WindowScore

__all__ = [
    "FrameStream",
    "StreamScorer",
    "RingBuffer",
    "FileSource",
    "DeviceSource",
    "Recorder",
    "EventLog",
    "MonitorSummary",
    "monitor",
    "scan_file",
    "detect_file",
    "DetectResult",
    "list_input_devices",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- frames
class FrameStream:
    """Log-mel frames of a signal that arrives in pieces.

    Frame ``t`` (centred on sample ``t * hop_length``) is produced as soon as the samples it
    spans have arrived, i.e. ``n_fft - n_fft // 2`` samples after its centre. The frames equal
    those of :func:`earshot.features.log_mel` on the whole signal.

    Parameters
    ----------
    config : FeatureConfig
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.hop = config.hop_length
        self.pad = config.n_fft // 2
        self.k = -(-self.pad // self.hop)  # frames of look-back so that no frame touches log_mel's own padding
        self._tail = np.zeros(self.k * self.hop, np.float32)  # samples [self._tail_start, self.n_samples)
        self._tail_start = -self.k * self.hop
        self.n_samples = 0
        self.n_frames = 0  # frames produced so far
        self._flushed = False

    def _end(self, t: int) -> int:
        """One past the last sample frame ``t`` spans."""
        return t * self.hop - self.pad + self.config.n_fft

    def _frames_until(self, t_stop: int) -> np.ndarray:
        """Frames ``[n_frames, t_stop)`` from the tail (which must hold their samples)."""
        t0 = self.n_frames
        if t_stop <= t0:
            return np.empty((0, self.config.n_mels), np.float32)
        a = (t0 - self.k) * self.hop - self._tail_start
        b = self._end(t_stop - 1) - self._tail_start
        seg = self._tail[a:b]
        frames = log_mel(seg, self.config, workers=1)[:, self.k : self.k + t_stop - t0]
        self.n_frames = t_stop
        drop = (t_stop - self.k) * self.hop - self._tail_start
        if drop > 0:
            self._tail = self._tail[drop:]
            self._tail_start += drop
        return np.ascontiguousarray(frames.T)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the new frames, shape ``(n_new, n_mels)``, float32."""
        if self._flushed:
            raise ParameterError("FrameStream: push after flush")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size:
            self._tail = np.concatenate([self._tail, x])
            self.n_samples += x.size
        ready = (self.n_samples + self.pad - self.config.n_fft) // self.hop + 1
        return self._frames_until(max(ready, self.n_frames))

    def flush(self) -> np.ndarray:
        """End of the signal: the last frames, zero-padded as ``log_mel`` pads (``(n_new, n_mels)``)."""
        self._flushed = True
        total = 1 + (self.n_samples + 2 * self.pad - self.config.n_fft) // self.hop
        if total <= self.n_frames:
            return np.empty((0, self.config.n_mels), np.float32)
        need = self._end(total - 1) - (self._tail_start + self._tail.size)
        if need > 0:
            self._tail = np.concatenate([self._tail, np.zeros(need, np.float32)])
        return self._frames_until(total)


# ---------------------------------------------------------------------- scoring
def _session(bundle, threads: int):
    """An onnxruntime session of the bundle's scoring graph with ``threads`` intra-op threads
    (0: onnxruntime's default, all cores)."""
    import onnxruntime as ort

    from earshot.bundle.format import ONNX_FILE

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(bundle.path / ONNX_FILE), options, providers=["CPUExecutionProvider"])


class StreamScorer:
    """Samples in, scored timeline windows out.

    Parameters
    ----------
    bundle : earshot.bundle.Bundle
        The model (features, scoring graph, aggregate).
    geometry : WindowGeometry
        Timeline window and hop (:meth:`WindowGeometry.for_bundle`).
    threads : int
        onnxruntime intra-op threads (1 for a monitor that must leave the machine alone; 0 for
        onnxruntime's default).
    on_frames : callable, optional
        Called with every batch of new log-mel frames ``(n_new, n_mels)`` (for pictures).

    Notes
    -----
    Window ``k`` (samples ``[k * hop, k * hop + window)``) is emitted once its last model
    window is scored, i.e. ``n_fft - n_fft // 2`` samples after the window's end, and only if
    the stream holds the whole window. Its score is the bundle's aggregate of the errors of the
    model windows inside its frames (see :mod:`earshot.timeline`).
    """

    def __init__(self, bundle, geometry: WindowGeometry, *, threads: int = 1,
                 on_frames: Callable[[np.ndarray], None] | None = None):
        self.bundle = bundle
        self.geometry = geometry
        self.aggregate = bundle.aggregate
        self._session = _session(bundle, threads)
        self._frames = FrameStream(bundle.features)
        self._on_frames = on_frames
        n_mels = bundle.features.n_mels
        self._fbuf = np.empty((0, n_mels), np.float32)  # frames from _fbuf_start on
        self._fbuf_start = 0
        self._next_model = 0  # next model window to score
        self._errors = np.empty(0, np.float64)  # model-window errors from _err_start on
        self._err_start = 0
        self.next_window = 0  # next timeline window
        self.onnx_seconds = 0.0

    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._frames.n_samples

    def push(self, samples: np.ndarray) -> list[WindowScore]:
        """Add samples (mono, float32, at the bundle's rate); return the windows now complete."""
        return self._advance(self._frames.push(samples))

    def finish(self) -> list[WindowScore]:
        """End of the stream: score the last frames (zero-padded) and the last whole windows."""
        return self._advance(self._frames.flush())

    def _advance(self, new: np.ndarray) -> list[WindowScore]:
        g = self.geometry
        if len(new):
            if self._on_frames is not None:
                self._on_frames(new)
            self._fbuf = np.concatenate([self._fbuf, new]) if len(self._fbuf) else new
        n_frames = self._fbuf_start + len(self._fbuf)
        if n_frames >= g.model_frames:
            last = (n_frames - g.model_frames) // g.model_hop
            if last >= self._next_model:
                a = self._next_model * g.model_hop - self._fbuf_start
                b = last * g.model_hop + g.model_frames - self._fbuf_start
                x = np.ascontiguousarray(self._fbuf[a:b][None], dtype=np.float32)
                started = time.perf_counter()
                (errors,) = self._session.run(None, {"logmel": x})
                self.onnx_seconds += time.perf_counter() - started
                if errors.shape != (1, last + 1 - self._next_model):
                    raise EarshotError(
                        f"{self.bundle.path}: the scoring graph gave {errors.shape[-1]} windows for {x.shape[1]} frames, "
                        f"expected {last + 1 - self._next_model} (windows of {g.model_frames} frames every "
                        f"{g.model_hop}); this model cannot be streamed")
                self._errors = np.concatenate([self._errors, errors[0].astype(np.float64)])
                self._next_model = last + 1
            drop = self._next_model * g.model_hop - self._fbuf_start
            if drop > 0:
                self._fbuf = self._fbuf[drop:]
                self._fbuf_start += drop
        out: list[WindowScore] = []
        while True:
            k = self.next_window
            if k * g.hop_samples + g.window_samples > self.n_samples:
                break
            i0, i1 = g.model_windows(k)
            if i1 > self._next_model:
                break
            errs = self._errors[i0 - self._err_start : i1 - self._err_start]
            start_s, end_s = g.bounds_s(k)
            out.append(WindowScore(k, start_s, end_s, aggregate(errs, self.aggregate)))
            self.next_window = k + 1
            keep_from = g.model_windows(k + 1)[0]
            if keep_from > self._err_start:
                self._errors = self._errors[keep_from - self._err_start :]
                self._err_start = keep_from
        return out


# ---------------------------------------------------------------------- ring buffer
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

    def close(self) -> None:
        """No more samples will come; the consumer drains what is left."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# ---------------------------------------------------------------------- sources
def _mono(block: np.ndarray, channel: int | None) -> np.ndarray:
    if block.ndim == 1:
        return block
    return block[:, channel] if channel is not None else block.mean(axis=1, dtype=np.float32)


class FileSource:
    """An audio file as a stream: blocks at real-time pace (or as fast as they are taken).

    Parameters
    ----------
    path : path-like
    sr : int
        Rate to deliver (the model's). A file at another rate is decoded and resampled whole
        (memory grows with the file); one at this rate is read block by block.
    channel : int or None
        Channel to use; None averages the channels.
    blocksize : int
        Samples per block (a sound card's period: 1024 samples = 64 ms at 16 kHz).
    realtime : bool
        Deliver at the pace of the audio (``listen --input``); False: as fast as possible
        (``--fast``).
    """

    def __init__(self, path: str | os.PathLike, *, sr: int, channel: int | None = None, blocksize: int = 1024,
                 realtime: bool = True):
        from earshot.io.audio import info

        self.path = Path(path)
        self.meta = info(self.path)  # AudioError for a missing, unreadable or truncated file
        if channel is not None and not 0 <= channel < self.meta.channels:
            raise ParameterError(f"{self.path}: channel={channel} is out of range: the file has "
                                 f"{self.meta.channels} channel(s)")
        if self.meta.frames == 0:
            raise AudioError(f"{self.path}: no samples")
        self.sr = int(sr)
        self.channel = channel
        self.blocksize = int(blocksize)
        self.realtime = bool(realtime)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.t0: float | None = None

    @property
    def duration_s(self) -> float:
        return self.meta.duration_s

    def blocks(self) -> Iterator[np.ndarray]:
        """The file as mono float32 blocks at :attr:`sr` (no pacing)."""
        if self.meta.sr != self.sr:
            from earshot.io.audio import load

            y, _ = load(self.path, sr=self.sr, channel=self.channel)
            for i in range(0, y.size, self.blocksize):
                yield y[i : i + self.blocksize]
            return
        import soundfile as sf

        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    block = f.read(self.blocksize, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    yield _mono(block, self.channel)
        except (RuntimeError, sf.SoundFileError) as exc:
            raise AudioError(f"{self.path}: cannot be read ({exc})") from None

    def start(self, ring: RingBuffer) -> None:
        """Feed ``ring`` from a thread; close it at the end of the file."""

        def run() -> None:
            t0 = self.t0 = time.perf_counter()  # sample i "arrives" at t0 + (i + 1) / sr
            sent = 0
            try:
                for block in self.blocks():
                    if self._stop.is_set():
                        break
                    if self.realtime:  # a block is delivered once its last sample has "arrived"
                        delay = t0 + (sent + block.size) / self.sr - time.perf_counter()
                        if delay > 0 and self._stop.wait(delay):
                            break
                    ring.write(block, wait=True)
                    sent += block.size
            except BaseException as exc:  # reported by monitor() in the consumer thread
                self.error = exc
            finally:
                ring.close()

        self._thread = threading.Thread(target=run, name="earshot-file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _sounddevice():
    """Import sounddevice, turning every way it can be missing into one clear line."""
    try:
        import sounddevice as sd
    except ImportError:
        raise EarshotError("live input needs the sounddevice package: pip install 'earshot[live]' "
                           "(or stream a file with --input FILE)") from None
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise EarshotError(f"live input needs the PortAudio library ({exc}): install Debian's libportaudio2 "
                           "(apt-get install libportaudio2), or stream a file with --input FILE") from None
    return sd


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices PortAudio sees: ``index, name, channels, default_sr, default``."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0] if sd.default.device is not None else -1
    except Exception as exc:  # PortAudioError and friends
        raise EarshotError(f"cannot list audio devices ({exc})") from None
    return [{"index": i, "name": d["name"], "channels": int(d["max_input_channels"]),
             "default_sr": float(d["default_samplerate"]), "default": i == default_in}
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


class DeviceSource:
    """A sound card input through sounddevice (PortAudio), delivered into a ring buffer.

    Parameters
    ----------
    device : int, str or None
        PortAudio device index or name; None: the default input.
    sr : int
        Rate to open the device at (the model's).
    channel : int or None
        Channel to use; None averages the device's channels.
    blocksize : int
        Samples per callback.
    """

    def __init__(self, device: int | str | None, *, sr: int, channel: int | None = None, blocksize: int = 1024):
        self.device = device
        self.sr = int(sr)
        self.channel = channel
        self.blocksize = int(blocksize)
        self.realtime = True
        self._stream = None
        self.error: BaseException | None = None
        self.status_flags = 0

    def probe(self) -> dict[str, Any]:
        """Check that the device exists and has input channels (one clear line if not)."""
        sd = _sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except Exception as exc:  # ValueError / PortAudioError: no such (input) device
            what = "no audio input device found" if self.device is None else f"no input device {self.device!r}"
            raise EarshotError(f"{what} ({str(exc).strip() or type(exc).__name__}); "
                               "see `earshot listen --list-devices`, or stream a file with --input FILE") from None
        n_ch = int(info["max_input_channels"])
        if n_ch < 1:
            raise EarshotError(f"device {info['name']!r} has no input channels; see `earshot listen --list-devices`")
        if self.channel is not None and not 0 <= self.channel < n_ch:
            raise ParameterError(f"channel={self.channel} is out of range: device {info['name']!r} has {n_ch} input channel(s)")
        return dict(info)

    def start(self, ring: RingBuffer) -> None:
        sd = _sounddevice()
        info = self.probe()
        n_ch = int(info["max_input_channels"])
        channels = n_ch if self.channel is not None or n_ch <= 2 else 1

        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread: no waiting here
            if status:
                self.status_flags += 1
            ring.write(_mono(indata, self.channel if channels > 1 else None) if indata.ndim == 2 and indata.shape[1] > 1
                       else indata.reshape(-1))

        try:
            self._stream = sd.InputStream(device=self.device, samplerate=self.sr, channels=channels, dtype="float32",
                                          blocksize=self.blocksize, callback=callback)
            self._stream.start()
        except Exception as exc:
            raise EarshotError(f"cannot open input device {info['name']!r} at {self.sr} Hz ({exc})") from None

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None


class Recorder:
    """Write the monitored audio to a wav file as it arrives (``listen --record``).

    Written to a temporary name beside the target and renamed at :meth:`close`, so a reader
    never sees a half-written file under the target name.
    """

    def __init__(self, path: str | os.PathLike, sr: int):
        import soundfile as sf

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", suffix=".wav", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)
        self._file = sf.SoundFile(name, "w", samplerate=int(sr), channels=1, subtype="PCM_16", format="WAV")

    def write(self, x: np.ndarray) -> None:
        self._file.write(np.clip(x, -1.0, 1.0))

    def close(self) -> Path:
        self._file.close()
        os.chmod(self._tmp, 0o666 & ~_umask())
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class EventLog:
    """Events appended to a CSV file as they end (``start_s, end_s, peak_score, mean_score``).

    A log, not a report: each row is written whole and flushed, so the file is always a valid
    CSV however the session ends. An existing log with the same header is appended to.
    """

    def __init__(self, path: str | os.PathLike):
        import csv

        from earshot.timeline import EVENT_COLUMNS

        self.path = Path(path)
        if self.path.is_dir():
            raise ParameterError(f"--events {self.path}: expected a file name, got a folder")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            with open(self.path, encoding="utf-8") as fh:
                head = fh.readline().strip()
            if head != ",".join(EVENT_COLUMNS):
                raise ParameterError(f"--events {self.path}: exists and is not an earshot events log (header {head!r})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        if fresh:
            self._writer.writerow(EVENT_COLUMNS)
            self._fh.flush()

    def write(self, event: Event) -> None:
        from earshot.timeline import event_row

        self._writer.writerow(event_row(event))
        self._fh.flush()

    def close(self) -> None:
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
    wall_seconds: float = 0.0
    interrupted: bool = False
    last_events: list[Event] = field(default_factory=list)  # the last few (bounded)


def monitor(source, scorer: StreamScorer, tracker: EventTracker, *,
            on_window: Callable[[WindowScore, EventTracker], None] | None = None,
            on_event: Callable[[Event], None] | None = None,
            recorder: Recorder | None = None, stop: threading.Event | None = None,
            max_seconds: float | None = None, ring_s: float = 10.0, keep_events: int = 100) -> MonitorSummary:
    """Stream ``source`` through a ring buffer, the scorer and the event tracker until the source
    ends, ``stop`` is set or ``max_seconds`` of audio are scored.

    Parameters
    ----------
    source : FileSource or DeviceSource
        Anything with ``sr``, ``start(ring)``, ``stop()`` and ``error``.
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

    Returns
    -------
    MonitorSummary
    """
    ring = RingBuffer(int(math.ceil(ring_s * source.sr)))
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

    source.start(ring)
    try:
        while not (stop is not None and stop.is_set()):
            x = ring.read(timeout=0.25)
            if x is None:
                break
            if not x.size:
                continue
            if limit is not None:
                x = x[: max(0, limit - scorer.n_samples)]
            if recorder is not None:
                recorder.write(x)
            handle(scorer.push(x))
            if limit is not None and scorer.n_samples >= limit:
                break
        if source.error is not None:
            err = source.error
            raise err if isinstance(err, EarshotError) else AudioError(f"audio input failed ({err})")
    except KeyboardInterrupt:  # Ctrl-C ends a session like the end of a file: open events are closed
        summary.interrupted = True
    finally:
        source.stop()
        ring.close()
    handle(scorer.finish())
    for e in tracker.finish():
        _event(e)
    summary.seconds = scorer.n_samples / source.sr
    summary.dropped_samples = ring.dropped
    summary.wall_seconds = time.perf_counter() - started
    if ring.dropped:
        log.warning("the scorer fell behind: %d samples (%.1f s) were dropped", ring.dropped, ring.dropped / source.sr)
    return summary


# ---------------------------------------------------------------------- a whole file
def scan_file(path: str | os.PathLike, bundle, geometry: WindowGeometry, *, channel: int | None = None,
              threads: int = 0, block_s: float = 10.0,
              on_frames: Callable[[np.ndarray], None] | None = None) -> Iterator[WindowScore]:
    """Every timeline window of a file, in order (``detect``): the file is pushed through a
    :class:`StreamScorer` in blocks of ``block_s`` seconds, so memory stays flat however long
    it is (when it is at the model's rate).

    Raises
    ------
    AudioError
        Unreadable file, digital silence, or a file shorter than one window.
    """
    source = FileSource(path, sr=bundle.features.sr, channel=channel, blocksize=int(block_s * bundle.features.sr),
                        realtime=False)
    n_expected = int(round(source.meta.frames * bundle.features.sr / source.meta.sr))
    if geometry.n_windows(n_expected) == 0:
        raise AudioError(f"{path}: too short ({source.duration_s:.2f} s) for one {geometry.window_s:g} s window")
    scorer = StreamScorer(bundle, geometry, threads=threads, on_frames=on_frames)
    silent = True
    for block in source.blocks():
        silent = silent and not np.any(block)
        yield from scorer.push(block)
    if silent:
        raise AudioError(f"{path}: every sample is zero (digital silence: a dead or unplugged microphone?)")
    yield from scorer.finish()


# ---------------------------------------------------------------------- detect: a whole file
@dataclass
class DetectResult:
    """What :func:`detect_file` found in one recording."""

    path: Path
    group: str | None
    duration_s: float
    windows: list[WindowScore]
    events: list[Event]
    verdict: dict[str, Any]
    settings: dict[str, Any]
    spectrogram: np.ndarray | None = None
    seconds_per_column: float | None = None
    mel_hz: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary: verdict, reason, settings and events."""
        return {"path": str(self.path), "group": self.group, "duration_s": round(self.duration_s, 3),
                **self.verdict, "settings": self.settings, "events": [e.row() | {"n_windows": e.n_windows}
                                                                      for e in self.events]}

    def save(self, out_dir: str | os.PathLike, *, picture: bool = True,
             truth: list[tuple[float, float]] | None = None) -> dict[str, Path]:
        """Write ``timeline.csv``, ``events.csv``, ``verdict.json`` and (with ``picture``)
        ``timeline.png`` into ``out_dir``; each file appears whole or not at all."""
        import json

        from earshot._fs import atomic_file
        from earshot.timeline import write_events_csv, write_timeline_csv

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ParameterError(f"--out {out}: expected a folder, got a file")
        out.mkdir(parents=True, exist_ok=True)
        written = {"timeline": out / "timeline.csv", "events": out / "events.csv", "verdict": out / "verdict.json"}
        write_timeline_csv(written["timeline"], self.windows, self.settings["threshold"])
        write_events_csv(written["events"], self.events)
        with atomic_file(written["verdict"]) as fh:
            json.dump(self.summary(), fh, indent=2)
            fh.write("\n")
        if picture:
            written["picture"] = out / "timeline.png"
            png = self.picture(truth=truth)
            with atomic_file(written["picture"], "wb") as fh:
                fh.write(png)
        return written

    def picture(self, *, truth: list[tuple[float, float]] | None = None) -> bytes:
        """The timeline picture (PNG bytes; needs matplotlib)."""
        from earshot.plots_timeline import timeline_figure

        return timeline_figure(self.windows, self.events, threshold=self.settings["threshold"],
                               release=self.settings["release"], spectrogram=self.spectrogram,
                               seconds_per_column=self.seconds_per_column, mel_hz=self.mel_hz,
                               duration_s=self.duration_s, verdict=self.verdict, truth=truth,
                               title=self.path.name)


def detect_file(model, path: str | os.PathLike, *, group: str | None = None, window_s: float = 1.0,
                hop_s: float = 0.1, events: EventSettings | None = None, threads: int = 0,
                spectrogram: bool = True) -> DetectResult:
    """Per-window scores, events and a verdict for one long recording.

    Parameters
    ----------
    model : earshot.bundle.ModelSet or earshot.bundle.Bundle
        With several groups, ``group`` (or the file's path, parsed as in training) picks one.
    path : path-like
        The recording.
    window_s, hop_s : float
        Timeline window length and hop (seconds).
    events : EventSettings, optional
        Threshold, sensitivity, hysteresis, minimum duration, merge gap.
    threads : int
        onnxruntime threads (0: its default).
    spectrogram : bool
        Keep a picture-sized spectrogram (for :meth:`DetectResult.picture`).

    Returns
    -------
    DetectResult
    """
    from earshot.timeline import verdict

    if hasattr(model, "bundle_for"):
        group, bundle = model.bundle_for(path, group)
    else:
        bundle = model
    geometry = WindowGeometry.for_bundle(bundle, window_s=window_s, hop_s=hop_s)
    tracker, settings = (events or EventSettings()).tracker(bundle, geometry)
    _warn_calibration(bundle, geometry)
    from earshot.io.audio import info

    meta = info(path)
    n = int(round(meta.frames * bundle.features.sr / meta.sr))
    sink = None
    if spectrogram:
        from earshot.plots_timeline import SpectrogramSink

        sink = SpectrogramSink(geometry.n_frames_total(n), bundle.features.n_mels)
    windows: list[WindowScore] = []
    found: list[Event] = []
    for w in scan_file(path, bundle, geometry, channel=bundle.channel, threads=threads,
                       on_frames=sink.add if sink else None):
        windows.append(w)
        found += tracker.update(w)
    found += tracker.finish()
    v = verdict(found, n_windows=len(windows), n_above=tracker.n_above, threshold=settings["threshold"],
                min_duration_s=settings["min_duration_s"], duration_s=n / bundle.features.sr,
                max_event_s=len(windows) * geometry.hop_s)
    result = DetectResult(Path(path), group, n / bundle.features.sr, windows, found, v, settings)
    if sink is not None:
        from earshot.plots import mel_band_centres

        f = bundle.features
        result.spectrogram = sink.image
        result.seconds_per_column = sink.frames_per_column * f.hop_length / f.sr
        result.mel_hz = mel_band_centres(sr=f.sr, n_fft=f.n_fft, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    return result


def _warn_calibration(bundle, geometry: WindowGeometry) -> None:
    """Warn when the threshold was fitted on clips much longer than the timeline's windows."""
    clip_s = bundle.manifest.get("training", {}).get("clip_s")
    if clip_s and clip_s > 2.5 * geometry.window_s:
        log.warning("the threshold was fitted on %.3g s clips; %.3g s windows score noisier, so more of them cross it "
                    "(events still need their minimum duration). Training on long recordings cuts them into "
                    "windows of --window-s, which calibrates the threshold on windows like these.",
                    clip_s, geometry.window_s)
