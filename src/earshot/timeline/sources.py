"""Audio sources that feed a :class:`~earshot.timeline.ring.RingBuffer`: :class:`FileSource`
(a file, at real-time pace or as fast as it is taken) and :class:`DeviceSource` (a sound card
through sounddevice, the ``live`` extra; resampled block by block with
:class:`~earshot.timeline.resample.StreamResampler` when it cannot be opened at the model's
rate), plus :func:`list_input_devices`.

A source has ``sr``, ``start(ring)``, ``stop()`` and ``error`` (an exception raised in its
producer thread, re-raised by :func:`earshot.timeline.monitor`), and ``stall_s``: for a device,
the seconds without a block after which :func:`~earshot.timeline.monitor` gives up on it; None for
a file (its gaps are its own: one at another rate is decoded whole before its first block).
sounddevice (an optional extra) is imported only when a device is listed, probed or opened.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from earshot.errors import AudioError, EarshotError, ParameterError
from earshot.io.audio import info, load
from earshot.timeline.resample import StreamResampler
from earshot.timeline.ring import RingBuffer

__all__ = ["FileSource", "DeviceSource", "list_input_devices"]

log = logging.getLogger(__name__)

# Rates a sound card is tried at when it cannot be opened at the model's (after its default rate).
COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)

# A device that delivers nothing for this long (or 4 blocks, if longer) is given up on. Longer than
# a healthy device's slowest start (a Bluetooth headset switching profile: 1-3 s) or a scheduling
# hiccup, so a working monitor is never ended by mistake; short next to the verdict's "every second".
STALL_S = 5.0
STALL_BLOCKS = 4


def default_stall_s(blocksize: int, sr: int) -> float:
    """The watchdog's default for blocks of ``blocksize`` samples at ``sr``: 5 s, or 4 blocks."""
    return max(STALL_S, STALL_BLOCKS * blocksize / sr)


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
        self.stall_s: float | None = None  # no watchdog: a file's gaps are its own, not a hung device

    @property
    def duration_s(self) -> float:
        return self.meta.duration_s

    def blocks(self) -> Iterator[np.ndarray]:
        """The file as mono float32 blocks at :attr:`sr` (no pacing)."""
        if self.meta.sr != self.sr:
            y, _ = load(self.path, sr=self.sr, channel=self.channel)
            for i in range(0, y.size, self.blocksize):
                yield y[i : i + self.blocksize]
            return
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
        import sounddevice as sd  # deferred: the optional `live` extra, needed only for a device
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
        Rate to deliver (the model's). The device is opened at this rate when it supports it
        (``sounddevice.check_input_settings``); otherwise at its default rate, or the nearest
        common rate it supports (higher ones first), and every block is resampled to ``sr`` as
        it comes (:class:`~earshot.timeline.resample.StreamResampler`: resample_poly's filter,
        0.625 ms of delay at 16 kHz), with one warning line. :attr:`device_sr` is the rate
        chosen.
    channel : int or None
        Channel to use (the device is opened with ``channel + 1`` channels); None averages the
        channels of a mono or stereo device (one with more channels is opened with one, its first).
    blocksize : int
        Samples per callback at ``sr``; a device opened at another rate gets blocks of the same
        duration.
    stall_s : float or None
        The watchdog (:attr:`stall_s`): :func:`~earshot.timeline.monitor` ends the session with an
        :class:`~earshot.errors.AudioError` when the device delivers no block for this long,
        counted from the start and from the last block (some host APIs, CoreAudio, or a hung USB
        device, just stop calling back, without the error an unplugged ALSA device gives).
        None: :func:`default_stall_s` (5 s, or 4 blocks if longer); 0: no watchdog.

    A stream that ends without :meth:`stop` (the device was unplugged, or the callback
    raised) sets :attr:`error` and closes the ring, so :func:`~earshot.timeline.monitor` stops
    and reports it instead of waiting for samples that will never come. :attr:`status_flags`
    counts the blocks PortAudio flagged (input overflow: samples lost before the callback).
    """

    def __init__(self, device: int | str | None, *, sr: int, channel: int | None = None, blocksize: int = 1024,
                 stall_s: float | None = None):
        self.device = device
        self.sr = int(sr)
        self.channel = channel
        self.blocksize = int(blocksize)
        self.realtime = True
        if stall_s is None:
            stall_s = default_stall_s(self.blocksize, self.sr)
        elif not stall_s >= 0:
            raise ParameterError(f"stall_s: expected 0 (no watchdog) or a number of seconds, got {stall_s!r}")
        self.stall_s: float | None = float(stall_s) if stall_s > 0 else None
        self.name: str | None = None  # the device's name, as PortAudio gives it (set by probe())
        self.device_sr: int | None = None  # the rate the device is opened at (set by probe())
        self.resampler = None  # a StreamResampler while a resampled stream runs
        self._stream = None
        self._stopping = False
        self.error: BaseException | None = None
        self.status_flags = 0

    def _channels(self, n_ch: int) -> int:
        """Channels to open: up to the one named, else all of a mono or stereo device, else one."""
        if self.channel is not None:
            return self.channel + 1
        return n_ch if n_ch <= 2 else 1

    def probe(self) -> dict[str, Any]:
        """Check that the device exists and has input channels (one clear line if not), and
        choose the rate to open it at (:attr:`device_sr`)."""
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
        self.name = str(info["name"])
        self.device_sr = self._choose_rate(sd, info, self._channels(n_ch))
        return dict(info)

    def _choose_rate(self, sd, info: dict[str, Any], channels: int) -> int:
        """The model's rate if the device takes it; else its default rate, or the nearest common
        rate it takes (above the model's first: downsampling loses nothing the model hears).
        When no rate checks out, the model's: opening the stream then says why."""
        check = getattr(sd, "check_input_settings", None)
        if check is None:
            return self.sr

        def supported(rate: int) -> bool:
            try:
                check(device=self.device, channels=channels, dtype="float32", samplerate=rate)
            except Exception:  # PortAudioError (Invalid sample rate, ...), ValueError
                return False
            return True

        if supported(self.sr):
            return self.sr
        default = int(round(float(info.get("default_samplerate") or 0)))
        above = sorted({r for r in (default, *COMMON_RATES) if r > self.sr}, key=lambda r: (r != default, r))
        below = sorted({r for r in (default, *COMMON_RATES) if 0 < r < self.sr}, key=lambda r: (r != default, -r))
        for rate in (*above, *below):
            if supported(rate):
                return rate
        return self.sr

    def start(self, ring: RingBuffer) -> None:
        sd = _sounddevice()
        info = self.probe()
        channels = self._channels(int(info["max_input_channels"]))
        rate = self.device_sr or self.sr
        resampler = None
        if rate != self.sr:
            resampler = StreamResampler(rate, self.sr)
        self.resampler = resampler
        blocksize = max(16, int(round(self.blocksize * rate / self.sr)))

        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread: no waiting here
            if status:
                self.status_flags += 1
            try:
                x = (_mono(indata, self.channel if channels > 1 else None)
                     if indata.ndim == 2 and indata.shape[1] > 1 else indata.reshape(-1))
                ring.write(x if resampler is None else resampler.process(x))  # (the resampler copies)
            except Exception as exc:  # sounddevice would only print it and abort the stream
                self.error = exc
                raise sd.CallbackAbort from None

        def finished() -> None:  # the stream went inactive: stop(), or the device went away
            if not self._stopping:
                if self.error is None:
                    self.error = AudioError(f"input device {info['name']!r} stopped delivering audio "
                                            "(unplugged, or taken by another program?)")
                ring.close()  # monitor() stops waiting and reports self.error

        self._stopping = False
        try:
            self._stream = sd.InputStream(device=self.device, samplerate=rate, channels=channels, dtype="float32",
                                          blocksize=blocksize, callback=callback, finished_callback=finished)
            self._stream.start()
        except Exception as exc:
            self.stop()  # opened but not started: close it again
            raise EarshotError(f"cannot open input device {info['name']!r} at {rate} Hz ({exc})") from None
        if resampler is not None:
            log.warning("input device %r does not support %d Hz: opened at %d Hz, resampled to %d Hz as it streams%s",
                        info["name"], self.sr, rate, self.sr,
                        f" (it has no sound above {rate / 2:g} Hz)" if rate < self.sr else "")

    def stop(self) -> None:
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
