"""earshot listen from a sound card, without one: a fake ``sounddevice`` module
(:mod:`helpers.fake_sounddevice`, which says what of python-sounddevice and PortAudio it
mirrors) drives the real :class:`~earshot.timeline.DeviceSource`,
:func:`~earshot.timeline.monitor` and ``earshot listen``.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from earshot.cli.app import main
from earshot.errors import AudioError, EarshotError
from earshot.errors import ParameterError
from earshot.timeline import DeviceSource, FileSource, RingBuffer, StreamScorer, list_input_devices, monitor
from earshot.timeline import EventSettings, WindowGeometry

from helpers.fake_sounddevice import FakeDevice
from helpers.long_case import FAULT, long_case, read_events
from helpers.signals import SR, machine_sound
from helpers.streaming import SpyScorer, drain, warnings_of, within


@pytest.fixture
def live_log():
    """Warnings of earshot.timeline.live."""
    yield from warnings_of("earshot.timeline.live")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return long_case(tmp_path_factory)  # the same model as test_listen / test_timeline (built once)


@pytest.fixture(scope="module")
def bundle(case):
    from earshot.bundle import load_model

    return next(iter(load_model(case["model"]).bundles.values()))


def session(bundle):
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    tracker, _ = EventSettings().tracker(bundle, geo)
    return StreamScorer(bundle, geo, threads=1), tracker


def one_error_line(err: str) -> str:
    """The error, one line (after the "listening to ..." banner, if the session got that far)."""
    lines = [x for x in err.strip().splitlines() if not x.startswith("listening to ")]
    assert len(lines) == 1 and lines[0].startswith("earshot: error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- callback -> ring buffer
@pytest.mark.parametrize("n_ch, channel, blocksize, opened, pick", [
    (1, None, 1024, 1, lambda a: a[:, 0]),  # a mono microphone
    (2, None, 1024, 2, lambda a: a.mean(axis=1, dtype=np.float32)),  # stereo: the mean of both
    (4, 2, 480, 3, lambda a: a[:, 2]),  # a 4-channel interface, channel 2, 30 ms periods: channels 0-2 opened
    (8, 0, 1024, 1, lambda a: a[:, 0]),  # channel 0 of 8: one channel opened
    (128, 1, 1024, 2, lambda a: a[:, 1]),  # ALSA's "default" reports 128: channel 1 needs two, not 128
    (4, None, 1024, 1, lambda a: a[:, 0]),  # more than two channels and none named: the first only
])
def test_device_blocks_reach_the_ring_unchanged(fake_sd, n_ch, channel, blocksize, opened, pick):
    sig = machine_sound(2.0, n_ch)
    sd = fake_sd(FakeDevice("Fake USB Audio", n_ch, signal=sig))
    source = DeviceSource(0, sr=SR, channel=channel, blocksize=blocksize)
    ring = RingBuffer(4 * SR)
    source.start(ring)
    got = drain(ring, sig.shape[0])
    source.stop()
    (stream,) = sd.streams
    assert stream.kwargs == dict(samplerate=SR, blocksize=blocksize, device=0, channels=opened, dtype="float32")
    assert source.device_sr == SR and source.resampler is None  # the model's rate: no resampling
    assert stream.events == ["open", "start", "stop", "finished", "close"] and stream.closed and not stream.active
    assert stream.outcome == "stopped" and source._stream is None
    heard = stream.audio()
    np.testing.assert_array_equal(heard[: len(sig)], sig[:, :opened])  # (the fake delivered the signal)
    # every sample, in order, the right channel, float32; nothing read from the reused buffer later
    # (a kept view would hold the NaNs the fake writes over it after each callback)
    rest = ring.read(timeout=0)
    got = np.concatenate([got, rest if rest is not None else []]).astype(np.float32)
    assert got.dtype == np.float32 and len(got) == len(heard) and not np.isnan(got).any()
    np.testing.assert_array_equal(got, pick(heard))
    assert ring.dropped == 0 and source.status_flags == 0 and source.error is None
    calls = stream.calls
    time.sleep(0.05)
    assert stream.calls == calls  # stopped means stopped: no callback after stop()


# ---------------------------------------------------------------------- device rates, resampling
RESAMPLE_TOL = 1e-6  # what reaches the scorer vs resample_poly of what the device delivered (float32 rounding: ~6e-8)


@pytest.fixture
def sources_log():
    """Warnings of earshot.timeline.sources (the device's rate)."""
    yield from warnings_of("earshot.timeline.sources")


@pytest.mark.parametrize("default_sr, rates, opened", [
    (48000.0, None, SR),  # takes any rate: the model's
    (48000.0, (16000, 48000), SR),  # takes the model's among others: the model's, unchanged behaviour
    (48000.0, (44100, 48000), 48000),  # not the model's: its default
    (44100.0, (44100,), 44100),
    (96000.0, (22050, 32000, 96000), 96000),  # the default comes first
    (0.0, (22050, 48000, 96000), 22050),  # no usable default: the nearest common rate above the model's
    (8000.0, (8000, 48000), 48000),  # a default below the model's is the last resort
    (8000.0, (8000,), 8000),  # ... taken when nothing else opens (upsampled, with a warning)
    (48000.0, (), SR),  # nothing checks out: the model's, and opening the stream says why
])
def test_the_rate_a_device_is_opened_at(fake_sd, default_sr, rates, opened):
    sd = fake_sd(FakeDevice("Card", 2, default_sr=default_sr, rates=rates))
    source = DeviceSource(0, sr=SR, channel=1)
    source.probe()
    assert source.device_sr == opened
    assert sd.checks[0] == dict(device=0, channels=2, samplerate=SR)  # the model's rate is tried first
    if opened == SR and rates != ():
        assert len(sd.checks) == 1
    assert all(c["channels"] == 2 for c in sd.checks) and not sd.streams  # probing opens no stream


@pytest.mark.parametrize("rate, channel, blocksize", [(48000, None, 1024), (44100, 2, 480)])
def test_a_device_without_the_models_rate_is_resampled_as_it_streams(fake_sd, sources_log, rate, channel, blocksize):
    """A card that only opens at 48 (or 44.1) kHz: opened at its rate, every block resampled to
    16 kHz in the callback; the ring gets resample_poly of what the card delivered, from the first sample."""
    from scipy.signal import resample_poly

    n_ch = 1 if channel is None else 4
    sig = machine_sound(1.5, n_ch, seed=2, sr=rate)
    sd = fake_sd(FakeDevice("Studio Card", n_ch, default_sr=float(rate), rates=(rate,), signal=sig))
    source = DeviceSource(0, sr=SR, channel=channel, blocksize=blocksize)
    ring = RingBuffer(4 * SR)
    source.start(ring)
    got = drain(ring, SR)  # the first second at 16 kHz
    source.stop()
    rest = ring.read(timeout=0)
    got = np.concatenate([got, rest if rest is not None else []]).astype(np.float32)
    (stream,) = sd.streams
    device_block = round(blocksize * rate / SR)  # the same duration as --blocksize at 16 kHz
    assert stream.kwargs == dict(samplerate=rate, blocksize=device_block, device=0,
                                 channels=1 if channel is None else channel + 1, dtype="float32")
    assert source.device_sr == rate and stream.closed and source.error is None
    heard = stream.audio()[:, 0 if channel is None else channel].astype(np.float64)
    g = np.gcd(rate, SR)
    ref = resample_poly(heard, SR // g, rate // g)
    # everything the card delivered, less the outputs whose filter still waits for input (delay)
    waiting = len(ref) - len(got)
    assert 0 <= waiting <= int(np.ceil(source.resampler.delay * SR / rate)) + 1, (len(ref), len(got))
    assert np.abs(got - ref[: len(got)]).max() <= RESAMPLE_TOL
    assert got.dtype == np.float32 and not np.isnan(got).any() and ring.dropped == 0
    (record,) = sources_log  # one line per stream
    assert record.getMessage() == (f"input device 'Studio Card' does not support 16000 Hz: opened at {rate} Hz, "
                                   "resampled to 16000 Hz as it streams")


def test_input_overflow_is_counted_and_reported(fake_sd, bundle, live_log):
    sig = machine_sound(3.0, 1)
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, signal=sig, overflow_at=(7,)))
    source = DeviceSource(0, sr=SR, blocksize=1024)
    scorer, tracker = session(bundle)
    spy = SpyScorer(scorer)
    summary = within(20, monitor, source, spy, tracker, max_seconds=2.0)
    (stream,) = sd.streams
    assert source.status_flags == 1  # one block came with status.input_overflow
    heard = stream.audio()[:, 0]
    # the period lost in the xrun never reached earshot; everything the callback got was scored
    assert np.array_equal(heard[: 7 * 1024], sig[: 7 * 1024, 0])
    assert np.array_equal(heard[7 * 1024 : 8 * 1024], sig[8 * 1024 : 9 * 1024, 0])
    np.testing.assert_array_equal(spy.audio(), heard[: 2 * SR])
    assert summary.seconds == 2.0 and summary.dropped_samples == 0
    assert summary.input_overflows == 1
    assert any("overflow" in r.getMessage() for r in live_log), [r.getMessage() for r in live_log]
    assert stream.closed


def test_a_scorer_that_falls_behind_loses_the_oldest_samples_and_says_so(fake_sd, bundle, live_log):
    """The callback never waits: with the consumer stalled, the ring keeps the newest samples,
    counts the rest, and monitor() reports them; what is scored is the device's audio with gaps."""
    sig = machine_sound(6.0, 1, seed=3)
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, signal=sig, speed=40.0))
    source = DeviceSource(0, sr=SR, blocksize=1024)
    scorer, tracker = session(bundle)

    def stall_once(spy):  # the first block scored takes as long as 1.5 s of audio take to arrive
        if len(spy.pushed) == 1:
            deadline = time.monotonic() + 10
            while sd.streams[0].delivered_samples < len(spy.pushed[0]) + int(1.5 * SR) and time.monotonic() < deadline:
                time.sleep(0.005)

    spy = SpyScorer(scorer, on_push=stall_once)
    summary = within(30, monitor, source, spy, tracker, max_seconds=2.0, ring_s=0.5)
    heard = sd.streams[0].audio()[:, 0]
    assert summary.dropped_samples >= SR  # at least the second of audio the 0.5 s ring could not hold
    assert any("fell behind" in r.getMessage() for r in live_log)
    # every block read is a contiguous piece of what the device delivered; the gaps add up to the drops
    pos, gaps = 0, 0
    for piece in spy.pushed:
        limit = summary.dropped_samples - gaps
        cand = [int(c) for c in np.flatnonzero(heard[pos : pos + limit + 1] == piece[0])
                if np.array_equal(heard[pos + c : pos + c + len(piece)], piece)]
        assert cand, f"a block read at {pos} is not the device's audio"
        gaps += cand[0]
        pos += cand[0] + len(piece)
    assert gaps == summary.dropped_samples and summary.seconds == 2.0


# ---------------------------------------------------------------------- stopping
@pytest.mark.parametrize("how", ["duration", "stop event", "ctrl-c"])
def test_stopping_closes_the_stream(fake_sd, bundle, how):
    sig = machine_sound(4.0, 2)
    sd = fake_sd(FakeDevice("Fake USB Audio", 2, signal=sig))
    source = DeviceSource(None, sr=SR, channel=1, blocksize=1024)  # the default input
    scorer, tracker = session(bundle)
    stop = threading.Event()

    def on_window(w, t):
        if w.end_s >= 1.5 and how == "stop event":
            stop.set()
        if w.end_s >= 1.5 and how == "ctrl-c":
            raise KeyboardInterrupt

    spy = SpyScorer(scorer)
    summary = within(20, monitor, source, spy, tracker, on_window=on_window, stop=stop,
                     max_seconds=2.0 if how == "duration" else None)
    (stream,) = sd.streams
    assert stream.events == ["open", "start", "stop", "finished", "close"] and stream.closed
    assert not stream._thread.is_alive() and source._stream is None
    assert summary.interrupted == (how == "ctrl-c")
    got = spy.audio()
    assert len(got) >= 1.5 * SR and np.array_equal(got, stream.audio()[: len(got), 1])
    source.stop()  # twice is harmless
    assert stream.events.count("close") == 1


# ---------------------------------------------------------------------- a device that goes away
def test_device_unplugged_mid_stream_ends_monitor_with_an_error(fake_sd, bundle):
    sig = machine_sound(3.0, 1)
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, signal=sig, lost_after=20))
    source = DeviceSource(0, sr=SR, blocksize=1024)
    scorer, tracker = session(bundle)
    spy, events = SpyScorer(scorer), []
    started = time.perf_counter()
    with pytest.raises(AudioError, match="input device 'Fake USB Audio' stopped delivering audio"):
        within(10, monitor, source, spy, tracker, on_event=events.append)  # no --duration-s: it would wait for ever
    assert time.perf_counter() - started < 5
    assert all(e.end_s <= 20 * 1024 / SR + 1e-9 for e in events)  # open events closed at the loss, not lost
    (stream,) = sd.streams
    assert stream.outcome == "lost" and stream.closed and source._stream is None
    np.testing.assert_array_equal(spy.audio(), sig[: 20 * 1024, 0])  # all that came was scored


def test_an_exception_in_the_callback_is_the_sources_error(fake_sd):
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, signal=machine_sound(2.0, 1)))

    class Failing(RingBuffer):
        def write(self, x, **kw):
            if self._written >= 3 * 1024:
                raise MemoryError("no room for the 4th block")
            super().write(x, **kw)

    source = DeviceSource(0, sr=SR, blocksize=1024)
    ring = Failing(SR)
    source.start(ring)
    got = drain(ring, 3 * 1024)
    assert within(5, ring.read, timeout=5) is None  # closed: monitor() stops waiting and reports
    assert isinstance(source.error, MemoryError)
    (stream,) = sd.streams
    assert stream.outcome == "aborted"  # CallbackAbort: no traceback printed from the audio thread
    assert np.array_equal(got, stream.audio()[: 3 * 1024, 0])
    source.stop()
    assert stream.closed


# ---------------------------------------------------------------------- a device that hangs: the watchdog
@pytest.mark.parametrize("stall_s", [1.0, 0])
def test_a_device_that_stops_calling_back_ends_monitor_after_stall_s(fake_sd, bundle, fan_40s, stall_s):
    """The fan (its fault from 5 s) stops coming after block 150 (9.6 s, in the event) with no
    error: with ``stall_s`` 1 the watchdog ends the session 1 s after the last block, the open
    event closed, the stream closed; with 0 (off) monitor waits until the device is reported
    gone, 2.5 s later."""
    fan, _ = sf.read(fan_40s, dtype="float32")
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, signal=fan[:, None], hang_after=150, lost_after_hang_s=2.5))
    source = DeviceSource(0, sr=SR, blocksize=1024, stall_s=stall_s)
    scorer, tracker = session(bundle)
    spy, events = SpyScorer(scorer), []
    message = (r"input device 'Fake USB Audio' delivered no audio for 1\.\d s \(hung" if stall_s
               else "input device 'Fake USB Audio' stopped delivering audio")
    with pytest.raises(AudioError, match=message):
        within(20, monitor, source, spy, tracker, on_event=events.append)
    ended = time.perf_counter()
    (stream,) = sd.streams
    waited = ended - stream.last_call_at
    if stall_s:
        assert stall_s <= waited < stall_s + 1.2, waited  # on time (loose: CI machines are shared)
        assert stream.outcome == "hung"  # stopped by earshot, not gone
    else:
        assert 2.5 <= waited < 3.5 and stream.outcome == "lost"
    (event,) = events  # the fault's event, closed at the last block heard, not lost
    assert abs(event.start_s - (FAULT[0] - 55)) <= 1 and 9.0 <= event.end_s <= 150 * 1024 / SR + 1e-9
    assert stream.closed and stream.events[-1] == "close" and source._stream is None
    assert not stream._thread.is_alive()
    np.testing.assert_array_equal(spy.audio(), fan[: 150 * 1024])  # all that came was scored


def test_a_device_that_never_delivers_is_given_up_on(fake_sd, bundle):
    sd = fake_sd(FakeDevice("Fake USB Audio", 1, hang_after=0))
    source = DeviceSource(0, sr=SR, stall_s=1.0)
    scorer, tracker = session(bundle)
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"^input device 'Fake USB Audio' delivered no audio for 1\.\d s since it "
                                         r"was started \(hung"):
        within(10, monitor, source, scorer, tracker)
    assert 1.0 <= time.perf_counter() - started < 2.2
    (stream,) = sd.streams
    assert stream.calls == 0 and stream.outcome == "hung" and stream.closed


def test_a_slow_but_alive_device_is_not_stopped(fake_sd, bundle):
    """The first block 0.7 s after the start, then one every 0.3 s, with ``stall_s`` 1: never
    1 s without audio, so the session runs to its end."""
    sig = machine_sound(1.0, 1)
    sd = fake_sd(FakeDevice("Slow USB Audio", 1, signal=sig, speed=(1024 / SR) / 0.3, start_delay_s=0.7))
    source = DeviceSource(0, sr=SR, blocksize=1024, stall_s=1.0)
    scorer, tracker = session(bundle)
    spy = SpyScorer(scorer)
    started = time.perf_counter()
    summary = within(10, monitor, source, spy, tracker, max_seconds=6 * 1024 / SR)
    assert time.perf_counter() - started >= 0.7 + 5 * 0.3  # it was slow
    (stream,) = sd.streams
    assert source.error is None and stream.outcome == "stopped" and stream.closed
    assert summary.seconds == 6 * 1024 / SR and not summary.interrupted
    np.testing.assert_array_equal(spy.audio(), sig[: 6 * 1024, 0])


def test_the_watchdogs_default_and_who_has_one(case):
    assert DeviceSource(0, sr=SR).stall_s == 5.0  # 1024-sample blocks: 5 s
    assert DeviceSource(0, sr=SR, blocksize=32768).stall_s == pytest.approx(4 * 32768 / SR)  # 2 s blocks: 4 of them
    assert DeviceSource(0, sr=SR, stall_s=2.5).stall_s == 2.5
    assert DeviceSource(0, sr=SR, stall_s=0).stall_s is None  # off
    with pytest.raises(ParameterError, match="stall_s"):
        DeviceSource(0, sr=SR, stall_s=-1)
    for realtime in (True, False):  # a file's gaps (decoding, resampling it whole) are not a hung device
        assert FileSource(case["long"], sr=SR, realtime=realtime).stall_s is None


# ---------------------------------------------------------------------- earshot listen --device
def devices(**usb) -> list[FakeDevice]:
    return [FakeDevice("HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, outputs=2, default_sr=44100.0),
            FakeDevice("Fake USB Mic", 2, **usb),
            FakeDevice("HDMI 0", 0, outputs=8),
            FakeDevice("Studio 48k only", 4, rates=(44100, 48000))]


def test_list_devices_with_a_sound_card(fake_sd, capsys):
    fake_sd(*devices(), default_input=1)
    assert [d["name"] for d in list_input_devices()] == ["HDA Intel PCH: ALC3246 Analog (hw:0,0)", "Fake USB Mic",
                                                         "Studio 48k only"]
    assert main(["listen", "--list-devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  1 * Fake USB Mic  (2 ch, 48000 Hz)" and len(out) == 3 and "HDMI" not in "".join(out)


@pytest.mark.parametrize("args, message", [
    (["--device", "99"], "no input device 99 (Error querying device 99); see `earshot listen --list-devices`"),
    (["--device", "Blue Yeti"], "no input device 'Blue Yeti' (No input device matching 'Blue Yeti')"),
    (["--device", "2"], "no input device 2 (Not an input device: 'HDMI 0')"),
    (["--device", "1", "--channel", "5"], "channel=5 is out of range: device 'Fake USB Mic' has 2 input channel(s)"),
])
def test_listen_no_such_device_is_one_line_and_writes_nothing(fake_sd, case, capsys, tmp_path, monkeypatch, args,
                                                              message):
    sd = fake_sd(*devices())
    monkeypatch.chdir(tmp_path)
    code = within(20, main, ["listen", str(case["model"]), *args, "--record", "heard.wav"])
    err = capsys.readouterr().err
    assert code == 1 and message in one_error_line(err)
    assert not sd.streams and list(tmp_path.iterdir()) == []  # no stream opened, no events log, no recording


@pytest.mark.parametrize("device, message", [
    (FakeDevice("Odd Card", 4, rates=()),  # no rate checks out: opening at the model's says why
     "cannot open input device 'Odd Card' at 16000 Hz (Error opening InputStream: Invalid sample rate "
     "[PaErrorCode -9997])"),
    (FakeDevice("Busy USB Mic", 1, start_error="Device unavailable"),
     "cannot open input device 'Busy USB Mic' at 16000 Hz (Error starting stream: Device unavailable "
     "[PaErrorCode -9985])"),
    (FakeDevice("Busy Studio", 2, rates=(48000,), start_error="Device unavailable"),  # the rate it was opened at
     "cannot open input device 'Busy Studio' at 48000 Hz (Error starting stream: Device unavailable "
     "[PaErrorCode -9985])"),
])
def test_listen_a_stream_that_will_not_open_is_one_line(fake_sd, case, capsys, tmp_path, device, message):
    sd = fake_sd(device)
    code = within(20, main, ["listen", str(case["model"]), "--device", "0", "--events", str(tmp_path / "ev.csv")])
    err = capsys.readouterr().err
    assert code == 1 and message in one_error_line(err)
    assert "listening to" not in err, "the banner waits until the input is open: the error stands alone"
    for stream in sd.streams:  # one that opened and failed to start is closed again
        assert stream.closed and stream.events[-1] == "close"
    assert not (tmp_path / "ev.csv").exists(), "a session that never started leaves no events log"


@pytest.fixture(scope="module")
def fan_40s(case):
    """40 s of the case's fan, 55 s to 95 s of its long recording: the fault from 5 s to 35 s."""
    y, sr = sf.read(case["long"], dtype="int16")
    assert sr == SR
    path = case["root"] / "fan_40s.wav"
    sf.write(path, y[55 * SR : 95 * SR], SR, subtype="PCM_16")
    return path


def test_listen_to_a_device_finds_the_events_detect_finds(fake_sd, case, fan_40s, tmp_path, capsys):
    """The issue's test, through a sound card: the fan on channel 1 of a stereo USB interface,
    something else (loud) on channel 0; the events live equal those of ``detect`` on the file."""
    fan, _ = sf.read(fan_40s, dtype="float32")
    other = 0.3 * np.random.default_rng(5).standard_normal(len(fan)).astype(np.float32)
    sd = fake_sd(*devices(signal=np.stack([other, fan], axis=1), speed=60.0))
    assert main(["detect", str(case["model"]), str(fan_40s), "--out", str(tmp_path / "d"), "--no-picture"]) == 0
    capsys.readouterr()
    log, heard = tmp_path / "live.csv", tmp_path / "heard.wav"
    code = within(60, main, ["listen", str(case["model"]), "--device", "USB Mic", "--channel", "1", "--duration-s", "40",
                             "--events", str(log), "--record", str(heard)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (stream,) = sd.streams
    assert stream.kwargs["channels"] == 2 and stream.kwargs["samplerate"] == SR and stream.closed
    assert "resampl" not in captured.err  # a device that takes the model's rate is opened at it, as is
    detected, live = read_events(tmp_path / "d" / "events.csv"), read_events(log)
    assert len(live) == len(detected) == 1, (live, detected)
    assert abs(live[0]["start_s"] - (FAULT[0] - 55)) <= 1 and abs(live[0]["end_s"] - (FAULT[1] - 55)) <= 1
    for a, b in zip(live, detected):
        assert a["start_s"] == b["start_s"] and a["end_s"] == b["end_s"]
        assert a["peak_score"] == pytest.approx(b["peak_score"], rel=1e-4)
        assert a["mean_score"] == pytest.approx(b["mean_score"], rel=1e-4)
    assert "ALARM" in captured.out and "1 event(s)" in captured.out and "dropped" not in captured.out
    rec, _ = sf.read(heard, dtype="int16")
    assert np.array_equal(rec, sf.read(fan_40s, dtype="int16")[0])  # the recording is channel 1, every sample


@pytest.mark.parametrize("rate", [48000, 44100])
def test_listen_to_a_device_without_the_models_rate(fake_sd, case, fan_40s, tmp_path, capsys, rate):
    """The same fan through a studio interface that only opens at 48 (44.1) kHz, on channel 1 of
    four: listen opens it at its rate and with two channels, resamples as it streams, and finds
    the event ``detect`` finds: the same as in the card's recording (resampled whole by detect),
    and within 0.3 s of the 16 kHz file's (resample_poly's filter takes 0.25 dB at 7 kHz, 1.9 dB
    at 7.5 kHz, 6 dB at 8 kHz off the band the synthetic fan fills up to 8 kHz: the fan scores
    2-3 % higher)."""
    from scipy.signal import resample, resample_poly

    fan, _ = sf.read(fan_40s, dtype="float32")
    g = np.gcd(rate, SR)
    # what the card hears: the fan with all of its band (an ideal interpolation, not resample_poly's filter)
    fan_dev = resample(fan.astype(np.float64), len(fan) * rate // SR).astype(np.float32)
    other = 0.3 * np.random.default_rng(5).standard_normal((len(fan_dev), 3)).astype(np.float32)
    signal = np.concatenate([other[:, :1], fan_dev[:, None], other[:, 1:]], axis=1)
    sd = fake_sd(FakeDevice("Studio 4x4", 4, default_sr=float(rate), rates=(rate,), signal=signal, speed=60.0))
    card_wav = tmp_path / "card.wav"
    sf.write(card_wav, fan_dev, rate, subtype="FLOAT")
    for wav, out in ((fan_40s, "d16"), (card_wav, "dcard")):
        assert main(["detect", str(case["model"]), str(wav), "--out", str(tmp_path / out), "--no-picture"]) == 0
    capsys.readouterr()
    log, heard = tmp_path / "live.csv", tmp_path / "heard.wav"
    code = within(60, main, ["listen", str(case["model"]), "--device", "Studio", "--channel", "1", "--duration-s", "40",
                             "--events", str(log), "--record", str(heard)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (stream,) = sd.streams
    assert stream.kwargs["samplerate"] == rate and stream.kwargs["channels"] == 2 and stream.closed
    assert f"listening to input device Studio at {rate} Hz, resampled to 16000 Hz" in captured.err
    assert (f"earshot: warning: input device 'Studio 4x4' does not support 16000 Hz: opened at {rate} Hz, "
            "resampled to 16000 Hz as it streams") in captured.err.splitlines()
    live = read_events(log)
    card, file16 = read_events(tmp_path / "dcard" / "events.csv"), read_events(tmp_path / "d16" / "events.csv")
    assert len(live) == len(card) == len(file16) == 1, (live, card, file16)
    (a,), (b,), (c,) = live, card, file16
    assert a["start_s"] == b["start_s"] and a["end_s"] == b["end_s"]  # streamed = resampled whole
    assert a["peak_score"] == pytest.approx(b["peak_score"], rel=1e-4)
    assert a["mean_score"] == pytest.approx(b["mean_score"], rel=1e-4)
    assert abs(a["start_s"] - c["start_s"]) <= 0.3 and abs(a["end_s"] - c["end_s"]) <= 0.3, (a, c)
    assert a["peak_score"] == pytest.approx(c["peak_score"], rel=0.05)
    assert a["mean_score"] == pytest.approx(c["mean_score"], rel=0.05)
    assert "ALARM" in captured.out and "1 event(s)" in captured.out and "dropped" not in captured.out
    # what was scored (and recorded) is resample_poly of what the card delivered on channel 1
    rec, _ = sf.read(heard, dtype="float32")
    ref = resample_poly(stream.audio()[:, 1].astype(np.float64), SR // g, rate // g)[: 40 * SR]
    assert len(rec) == 40 * SR and np.abs(rec - ref).max() <= 1 / 32768 + RESAMPLE_TOL  # (a 16-bit wav)


def test_listen_device_unplugged_mid_alarm_is_one_line_and_logs_the_event(fake_sd, case, fan_40s, tmp_path, capsys):
    """The fan's fault starts at 5 s; the USB microphone is pulled out at 12.8 s, in the alarm:
    listen ends with one error line (not a hang), and the event heard so far is in the log."""
    fan, _ = sf.read(fan_40s, dtype="float32")
    sd = fake_sd(FakeDevice("Fake USB Mic", 1, signal=fan[:, None], speed=60.0, lost_after=200))  # 200 x 64 ms
    log, heard = tmp_path / "live.csv", tmp_path / "heard.wav"
    code = within(30, main, ["listen", str(case["model"]), "--events", str(log), "--record", str(heard)])
    captured = capsys.readouterr()
    assert code == 1
    line = one_error_line(captured.err)
    assert "input device 'Fake USB Mic' stopped delivering audio" in line
    (stream,) = sd.streams
    assert stream.outcome == "lost" and stream.closed
    assert "ALARM" in captured.out
    (event,) = read_events(log)  # closed at the loss, like Ctrl-C closes it
    assert abs(event["start_s"] - (FAULT[0] - 55)) <= 1 and 12.0 <= event["end_s"] <= 200 * 1024 / SR
    assert not heard.exists() and [p.name for p in tmp_path.iterdir()] == ["live.csv"]  # a failed recording is discarded


@pytest.mark.parametrize("stall", ["1", "0"])
def test_listen_device_that_hangs_mid_alarm_is_one_line_and_logs_the_event(fake_sd, case, fan_40s, tmp_path, capsys,
                                                                           monkeypatch, stall):
    """The USB microphone stops calling back at 12.8 s, in the alarm, without an error (and is
    reported gone 2.5 s later): ``--stall-s 1`` ends listen 1 s after its last block with one
    error line and the event logged; ``--stall-s 0`` waits until the device is reported gone."""
    import earshot.timeline

    made = []

    class Spied(DeviceSource):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(earshot.timeline, "DeviceSource", Spied)
    fan, _ = sf.read(fan_40s, dtype="float32")
    sd = fake_sd(FakeDevice("Fake USB Mic", 1, signal=fan[:, None], speed=60.0, hang_after=200, lost_after_hang_s=2.5))
    log, heard = tmp_path / "live.csv", tmp_path / "heard.wav"
    code = within(30, main, ["listen", str(case["model"]), "--events", str(log), "--record", str(heard),
                             "--stall-s", stall])
    ended = time.perf_counter()
    captured = capsys.readouterr()
    assert code == 1
    line = one_error_line(captured.err)
    (stream,) = sd.streams
    (source,) = made
    waited = ended - stream.last_call_at
    if stall == "1":
        assert source.stall_s == 1.0 and 1.0 <= waited < 2.2, waited
        assert "input device 'Fake USB Mic' delivered no audio for 1." in line and stream.outcome == "hung"
    else:
        assert source.stall_s is None and waited >= 2.5
        assert "input device 'Fake USB Mic' stopped delivering audio" in line and stream.outcome == "lost"
    assert stream.closed and stream.events[-1] == "close"
    assert "ALARM" in captured.out
    (event,) = read_events(log)  # closed at the stall, like Ctrl-C closes it
    assert abs(event["start_s"] - (FAULT[0] - 55)) <= 1 and 12.0 <= event["end_s"] <= 200 * 1024 / SR
    assert not heard.exists() and [p.name for p in tmp_path.iterdir()] == ["live.csv"]


@pytest.mark.parametrize("args, message", [
    (["--stall-s", "-1"], "--stall-s: expected 0 (off) or a number of seconds, got -1"),
    (["--input", "{long}", "--stall-s", "1"], "--stall-s: only with a device"),
])
def test_listen_stall_s_is_checked(fake_sd, case, capsys, args, message):
    sd = fake_sd(*devices())
    code = main(["listen", str(case["model"]), *[a.format(long=case["long"]) for a in args]])
    assert code == 1 and message in one_error_line(capsys.readouterr().err)
    assert not sd.streams


def test_without_sounddevice_listen_says_how_to_get_it(case, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice -> ImportError
    assert main(["listen", str(case["model"]), "--device", "1"]) == 1
    assert "pip install 'earshot[live]'" in one_error_line(capsys.readouterr().err)
    with pytest.raises(EarshotError, match="sounddevice"):
        list_input_devices()
