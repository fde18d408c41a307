"""A fake ``sounddevice`` module: sound cards that PortAudio lists and streams that call back from a thread.

It mirrors what python-sounddevice does on top of PortAudio (0.5): ``query_devices``
and its errors (``PortAudioError('Error querying device 99')``, ``ValueError('No input device
matching ...')``, ``ValueError('Not an input device: ...')``); an ``InputStream`` that calls
``callback(indata, frames, time, status)`` from its own thread with ``indata`` a
``(frames, channels)`` float32 view of a buffer that is overwritten once the callback returns,
``status`` a ``CallbackFlags`` (input overflow = 0x2); ``check_input_settings`` (PortAudio's
``Pa_IsFormatSupported``: ``PortAudioError('Invalid sample rate', -9997)`` for a rate the
device does not take, ``'Invalid number of channels'`` -9998); an exception in the callback prints a
traceback and aborts the stream (cffi's ``error=paAbort``); ``finished_callback`` runs when the
stream becomes inactive (``stop()``, an abort, or, as PortAudio's ALSA host API does, when the
device goes away); ``stop()`` waits for the callback thread; ``stop``/``close`` ignore errors.
A device can also hang: the callbacks stop coming with no error and no ``finished_callback``
(CoreAudio, a hung USB device), the stream still active until ``stop()``. Blocks are cut from a
known signal and delivered faster than real time.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass

import numpy as np


class PortAudioError(Exception):
    """As sounddevice's: ``args = (message, PaErrorCode)``, shown ``message [PaErrorCode n]``."""

    def __str__(self):
        msg = self.args[0] if self.args else ""
        return f"{msg} [PaErrorCode {self.args[1]}]" if len(self.args) > 1 else msg


class CallbackStop(Exception):
    pass


class CallbackAbort(Exception):
    pass


class CallbackFlags:
    """As sounddevice's: truthy when any PortAudio status bit is set."""

    INPUT_OVERFLOW = 0x2  # paInputOverflow

    def __init__(self, flags: int = 0):
        self._flags = flags

    def __bool__(self):
        return bool(self._flags)

    @property
    def input_overflow(self) -> bool:
        return bool(self._flags & self.INPUT_OVERFLOW)

    @property
    def input_underflow(self) -> bool:
        return bool(self._flags & 0x1)


@dataclass
class FakeDevice:
    """A sound card: what PortAudio says about it and what its microphone hears."""

    name: str
    channels: int  # max input channels
    outputs: int = 0
    default_sr: float = 48000.0
    rates: tuple[int, ...] | None = None  # sample rates it opens at (None: any; (): none at all)
    signal: np.ndarray | None = None  # (n, channels) float32: the first samples it delivers
    speed: float = 100.0  # blocks come this many times faster than real time
    overflow_at: tuple[int, ...] = ()  # these blocks come flagged input_overflow, one block lost before each
    lost_after: int | None = None  # unplugged after this many blocks
    start_error: str | None = None  # Pa_StartStream fails with this (e.g. "Device unavailable")
    hang_after: int | None = None  # no callback after this many blocks, and no error: the stream stays active
    lost_after_hang_s: float | None = None  # ... until it goes away (finished_callback) this long later
    start_delay_s: float = 0.0  # the first block comes this late (a device that takes a moment to start)
    seed: int = 1  # the low noise it hears once the signal is over


class FakeInputStream:
    def __init__(self, sd: "FakeSoundDevice", *, samplerate=None, blocksize=None, device=None, channels=None,
                 dtype=None, latency=None, callback=None, finished_callback=None):
        index = sd._device_id(device, "input")
        info = sd.query_devices(index)  # PortAudioError for an index PortAudio does not know
        self.dev: FakeDevice = sd.devices[index]
        self.kwargs = dict(samplerate=samplerate, blocksize=blocksize, device=device, channels=channels, dtype=dtype)
        if not 1 <= channels <= info["max_input_channels"]:
            raise PortAudioError("Error opening InputStream: Invalid number of channels", -9998)
        if self.dev.rates is not None and samplerate not in self.dev.rates:
            raise PortAudioError("Error opening InputStream: Invalid sample rate", -9997)
        assert dtype == "float32" and blocksize and callback is not None
        self.samplerate, self.blocksize, self.channels = samplerate, blocksize, channels
        self.callback, self.finished_callback = callback, finished_callback
        self.calls = 0  # callbacks made
        self.delivered: list[np.ndarray] = []  # copies of every block handed to the callback
        self.outcome = None  # how the callback loop ended: "stopped", "lost", "hung", "aborted", "error: ..."
        self.last_call_at: float | None = None  # time.perf_counter() of the last callback
        self.events: list[str] = []  # open, start, stop, close, finished (in order)
        self.active = self.closed = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.events.append("open")
        sd.streams.append(self)

    @property
    def delivered_samples(self) -> int:
        with self._lock:
            return sum(len(b) for b in self.delivered)

    def audio(self) -> np.ndarray:
        """Everything delivered, (n, channels)."""
        with self._lock:
            return np.concatenate(self.delivered) if self.delivered else np.empty((0, self.channels), np.float32)

    def start(self):
        self.events.append("start")
        if self.dev.start_error:
            raise PortAudioError(f"Error starting stream: {self.dev.start_error}", -9985)
        self.active = True
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def _source(self):
        """Blocks of ``blocksize`` frames x ``channels``: the signal, then low noise for ever."""
        bs, dev = self.blocksize, self.dev
        sig = dev.signal if dev.signal is not None else np.zeros((0, dev.channels), np.float32)
        rng = np.random.default_rng(dev.seed)
        pos, i = 0, 0
        while True:
            if i in dev.overflow_at:  # an xrun: the samples of one period never reached the callback
                pos += bs
            block = sig[pos : pos + bs, : self.channels]
            if len(block) < bs:  # past the signal: the room's noise
                block = np.concatenate([block, 0.001 * rng.standard_normal((bs - len(block), self.channels))])
            yield i, np.ascontiguousarray(block, dtype=np.float32)
            pos += bs
            i += 1

    def _run(self):
        buf = np.empty((self.blocksize, self.channels), np.float32)  # PortAudio's memory, reused
        period = self.blocksize / self.samplerate / self.dev.speed
        t0 = time.perf_counter() + self.dev.start_delay_s
        try:
            for i, block in self._source():
                if self._halt.is_set():
                    self.outcome = "stopped"
                    break
                if self.dev.lost_after is not None and i >= self.dev.lost_after:
                    self.outcome = "lost"  # ALSA: the callback thread ends, the stream goes inactive
                    break
                if self.dev.hang_after is not None and i >= self.dev.hang_after:
                    self.outcome = "hung"  # no more callbacks, no error: nothing tells the program
                    if not self._halt.wait(self.dev.lost_after_hang_s):  # (None: until stop())
                        self.outcome = "lost"  # the system gave up on the device: now it is gone
                    break
                delay = t0 + i * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                buf[:] = block
                with self._lock:
                    self.delivered.append(block.copy())
                status = CallbackFlags(CallbackFlags.INPUT_OVERFLOW if i in self.dev.overflow_at else 0)
                self.last_call_at = time.perf_counter()
                ti = types.SimpleNamespace(inputBufferAdcTime=i * period, currentTime=(i + 1) * period,
                                           outputBufferDacTime=0.0)
                self.calls += 1
                try:
                    self.callback(buf, self.blocksize, ti, status)
                except CallbackStop:
                    self.outcome = "complete"
                    break
                except CallbackAbort:
                    self.outcome = "aborted"
                    break
                except Exception as exc:  # cffi: the traceback is printed, paAbort is returned
                    traceback.print_exc()
                    self.outcome = f"error: {exc!r}"
                    break
                finally:
                    buf.fill(np.nan)  # the next period overwrites it: nobody may keep a view
        finally:
            self.active = False
            self.events.append("finished")
            if self.finished_callback is not None:
                self.finished_callback()

    def stop(self, ignore_errors=True):
        self.events.append("stop")
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive(), "the fake callback thread did not end"

    def abort(self, ignore_errors=True):
        self.stop()

    def close(self, ignore_errors=True):
        if self.active:
            self.abort()
        self.events.append("close")
        self.closed = True


class FakeSoundDevice(types.ModuleType):
    """The parts of the sounddevice module earshot uses."""

    PortAudioError = PortAudioError
    CallbackFlags = CallbackFlags
    CallbackStop = CallbackStop
    CallbackAbort = CallbackAbort

    def __init__(self, devices: list[FakeDevice], default_input: int = 0):
        super().__init__("sounddevice")
        self.devices = devices
        self.default = types.SimpleNamespace(device=[default_input, -1])
        self.streams: list[FakeInputStream] = []
        self.checks: list[dict] = []  # every check_input_settings call: device, channels, samplerate

    def check_input_settings(self, device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
        """As sounddevice's: None takes the default (the device's default rate, all its channels);
        nothing when PortAudio would open the stream, else the error Pa_IsFormatSupported gives."""
        index = self._device_id(device, "input")
        info = self.query_devices(index)  # PortAudioError for an unknown index
        channels = info["max_input_channels"] if channels is None else channels
        samplerate = info["default_samplerate"] if samplerate is None else samplerate
        self.checks.append(dict(device=device, channels=channels, samplerate=samplerate))
        if dtype not in (None, "float32", "int16", "int32"):
            raise ValueError("Invalid input sample format")
        if not 1 <= channels <= info["max_input_channels"]:
            raise PortAudioError("Invalid number of channels", -9998)
        rates = self.devices[index].rates
        if rates is not None and samplerate not in rates:
            raise PortAudioError("Invalid sample rate", -9997)

    def _device_id(self, device, kind):
        if device is None:
            device = self.default.device[0]
        if isinstance(device, int):
            return device
        subs = device.lower().split()
        matches = [i for i, d in enumerate(self.devices) if getattr(d, "channels" if kind == "input" else "outputs") > 0
                   and all(s in d.name.lower() for s in subs)]
        if len(matches) != 1:
            raise ValueError(f"No {kind} device matching {device!r}" if not matches
                             else f"Multiple {kind} devices found for {device!r}")
        return matches[0]

    def query_devices(self, device=None, kind=None):
        if device is None and kind is None:
            return [self.query_devices(i) for i in range(len(self.devices))]
        index = self._device_id(device, kind)
        if not 0 <= index < len(self.devices):
            raise PortAudioError(f"Error querying device {index}")
        d = self.devices[index]
        info = {"name": d.name, "index": index, "hostapi": 0, "max_input_channels": d.channels,
                "max_output_channels": d.outputs, "default_samplerate": d.default_sr,
                "default_low_input_latency": 0.01, "default_high_input_latency": 0.1}
        if kind and info[f"max_{kind}_channels"] < 1:
            raise ValueError(f"Not an {kind} device: {d.name!r}")
        return info

    def InputStream(self, **kwargs):  # noqa: N802 (sounddevice's name)
        return FakeInputStream(self, **kwargs)


def install(monkeypatch, *devices: FakeDevice, default_input: int = 0) -> FakeSoundDevice:
    """Put a :class:`FakeSoundDevice` with ``devices`` in ``sys.modules`` (undone by ``monkeypatch``)."""
    sd = FakeSoundDevice(list(devices), default_input)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    return sd
