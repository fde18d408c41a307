"""earshot listen: the streaming path (ring buffer, scorer, events) without a microphone."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from earshot.cli.app import main
from earshot.timeline import EventLog, FileSource, RingBuffer, StreamScorer, monitor
from earshot.timeline import EventSettings, WindowGeometry

from helpers.long_case import long_case, read_events


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return long_case(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(case):
    from earshot.bundle import load_model

    return next(iter(load_model(case["model"]).bundles.values()))


# ---------------------------------------------------------------------- the test
def test_listen_fast_gives_the_same_events_as_detect(case, tmp_path, capsys):
    assert main(["detect", str(case["model"]), str(case["long"]), "--out", str(tmp_path / "d"), "--no-picture"]) == 0
    log = tmp_path / "listen.csv"
    code = main(["listen", str(case["model"]), "--input", str(case["long"]), "--fast", "--events", str(log),
                 "--record", str(tmp_path / "heard.wav")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    detected, heard = read_events(tmp_path / "d" / "events.csv"), read_events(log)
    assert len(heard) == len(detected) == 1
    for a, b in zip(heard, detected):
        assert a["start_s"] == b["start_s"] and a["end_s"] == b["end_s"]
        assert a["peak_score"] == pytest.approx(b["peak_score"], rel=1e-4)
        assert a["mean_score"] == pytest.approx(b["mean_score"], rel=1e-4)
    assert "ALARM" in captured.out and "1 event(s)" in captured.out
    y, _ = sf.read(case["long"], dtype="int16")
    rec, sr = sf.read(tmp_path / "heard.wav", dtype="int16")
    assert sr == 16000 and np.array_equal(rec, y)  # --record keeps every sample heard


def test_events_log_appends_and_refuses_other_files(case, tmp_path, capsys):
    log = tmp_path / "ev.csv"
    for _ in range(2):
        assert main(["listen", str(case["model"]), "--input", str(case["long"]), "--fast", "--events", str(log),
                     "--print-every-s", "1000"]) == 0
    assert len(read_events(log)) == 2
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    capsys.readouterr()
    assert main(["listen", str(case["model"]), "--input", str(case["long"]), "--fast", "--events", str(other)]) == 1
    assert "not an earshot events log" in capsys.readouterr().err


# ---------------------------------------------------------------------- no device, bad input: one line
def test_no_input_device_is_one_clear_line(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["listen", str(case["model"]), "--duration-s", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not (tmp_path / "listen-events.csv").exists()  # nothing written
    assert err[-1].startswith("earshot: error:") and "Traceback" not in "\n".join(err)
    assert any(w in err[-1] for w in ("input device", "sounddevice", "PortAudio"))


def test_list_devices_never_a_traceback(capsys):
    code = main(["listen", "--list-devices"])
    captured = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in captured.err
    if code == 1:
        assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--fast"], "--fast"),
    (["--input", "missing.wav", "--fast"], "no such file"),
    (["--input", "x.wav", "--device", "1"], "not both"),
])
def test_bad_listen_options(case, capsys, args, message):
    code = main(["listen", str(case["model"]), *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_missing_model_is_a_one_line_error(capsys):
    assert main(["listen"]) == 1
    assert "MODEL" in capsys.readouterr().err


# ---------------------------------------------------------------------- ring buffer
def test_ring_buffer_wraps_drops_and_closes():
    ring = RingBuffer(10)
    ring.write(np.arange(6))
    assert ring.read(timeout=0).tolist() == list(range(6))
    ring.write(np.arange(6, 14))  # wraps around the end
    ring.write(np.arange(14, 18))  # 12 unread > 10: the two oldest are dropped
    assert ring.dropped == 2
    assert ring.read(timeout=0).tolist() == list(range(8, 18))
    assert ring.read(timeout=0).size == 0  # nothing new: empty on timeout
    ring.write(np.arange(25))  # more than the capacity at once: the last 10 kept
    assert ring.read(timeout=0).tolist() == list(range(15, 25)) and ring.dropped == 17
    ring.close()
    assert ring.read(timeout=0) is None


def test_ring_buffer_waiting_writer_loses_nothing():
    ring = RingBuffer(64)
    data = np.arange(10_000, dtype=np.float32)

    def produce():
        for i in range(0, data.size, 50):
            ring.write(data[i : i + 50], wait=True, timeout=5)
        ring.close()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    while (x := ring.read(timeout=1)) is not None:
        got.append(x)
    t.join()
    assert np.array_equal(np.concatenate(got), data) and ring.dropped == 0


# ---------------------------------------------------------------------- the streaming path
def test_file_source_real_time_pace(bundle, tmp_path, rng):
    path = tmp_path / "two_s.wav"
    sf.write(path, (0.1 * rng.normal(size=32000)).astype(np.float32), 16000)
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.5)
    tracker, _ = EventSettings().tracker(bundle, geo)
    started = time.perf_counter()
    summary = monitor(FileSource(path, sr=16000, blocksize=1024), StreamScorer(bundle, geo), tracker)
    wall = time.perf_counter() - started
    assert summary.seconds == 2.0 and summary.n_windows == 3
    assert wall >= 1.8  # delivered at the pace of the audio, not faster


class _Generated:
    """A source of ``seconds`` of synthetic audio in device-sized blocks (as fast as taken)."""

    def __init__(self, seconds: float, sr: int = 16000, block: int = 4096):
        self.sr, self.n, self.block, self.error = sr, int(seconds * sr), block, None
        self._rng = np.random.default_rng(0)
        self._thread = None

    def start(self, ring):
        def run():
            t = 0
            while t < self.n:
                k = min(self.block, self.n - t)
                x = 0.05 * self._rng.standard_normal(k).astype(np.float32)
                x += 0.2 * np.sin(2 * np.pi * 100 * (t + np.arange(k)) / self.sr).astype(np.float32)
                ring.write(x, wait=True)
                t += k
            ring.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self):
        self._thread.join()


def _peak_memory(bundle, seconds: float) -> tuple[int, object]:
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    tracker, _ = EventSettings().tracker(bundle, geo)
    scorer = StreamScorer(bundle, geo)
    tracemalloc.start()
    try:
        summary = monitor(_Generated(seconds), scorer, tracker, ring_s=0.5)  # a small ring: even reads
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, summary


def test_memory_stays_flat_however_long_it_listens(bundle):
    _peak_memory(bundle, 5)  # caches (mel plans, onnxruntime) are filled once
    short, s1 = _peak_memory(bundle, 30)
    long, s2 = _peak_memory(bundle, 300)
    assert s1.seconds == 30 and s2.seconds == 300 and s2.n_windows == 2991
    # ten times the audio, the same memory (the ring, the scorer's frames, one block)
    assert long < short * 1.2 + 64 * 1024, (short, long)


def test_event_log_is_a_valid_csv_at_every_moment(tmp_path):
    from earshot.timeline import Event

    log = EventLog(tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists(), "opened by the first event (or a session's end), not before"
    log.write(Event(1.0, 5.0, 3.0, 2.0))
    assert read_events(tmp_path / "e.csv") == [{"start_s": 1.0, "end_s": 5.0, "peak_score": 3.0, "mean_score": 2.0}]
    log.close()
    quiet = EventLog(tmp_path / "quiet.csv")
    quiet.close()  # a session that ran without events: the log exists, header only
    assert (tmp_path / "quiet.csv").read_text() == "start_s,end_s,peak_score,mean_score\n"
    EventLog(tmp_path / "never.csv").close(create=False)  # a session that never started
    assert not (tmp_path / "never.csv").exists()


# ---------------------------------------------------------------------- once per hop, any block size
def _slice_wav(case, tmp_path, start_s: float = 50.0, seconds: float = 20.0):
    """20 s of the long recording around the fault's start, as its own file."""
    y, sr = sf.read(case["long"], dtype="float32")
    path = tmp_path / "slice.wav"
    sf.write(path, y[int(start_s * sr) : int((start_s + seconds) * sr)], sr, subtype="FLOAT")
    return path, y[int(start_s * sr) : int((start_s + seconds) * sr)]


def _stream(scorer, y, sizes):
    """Push ``y`` in blocks of ``sizes`` (cycled); every window, and the pushes that gave some."""
    out, i, j, productive = [], 0, 0, 0
    while i < y.size:
        n = sizes[j % len(sizes)]
        got = scorer.push(y[i : i + n])
        productive += bool(got)
        out += got
        i, j = i + n, j + 1
    return out + scorer.finish(), productive


class _CountingSession:
    """The scorer's onnxruntime session, counting its calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def run(self, *args, **kwargs):
        self.calls += 1
        return self.inner.run(*args, **kwargs)


@pytest.mark.parametrize("model", ["dense-ae", "lstm-ae"])
def test_any_block_size_scores_as_detect_does(model, tmp_path_factory, tmp_path):
    from earshot.bundle import load_model
    from earshot.timeline import scan_file

    case = long_case(tmp_path_factory, model=model)
    bundle = next(iter(load_model(case["model"]).bundles.values()))
    path, y = _slice_wav(case, tmp_path)
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    offline = list(scan_file(path, bundle, geo, threads=1))  # what detect scores
    assert len(offline) == geo.n_windows(y.size) == 191
    settings = EventSettings()
    for sizes in ([1024], [16000], [777], [1, 1023, 5000, 333, 160], [50_000]):  # 64 ms, 1 s, odd, mixed, > ring
        got, _ = _stream(StreamScorer(bundle, geo), y, sizes)
        assert [(w.index, w.start_s, w.end_s) for w in got] == [(w.index, w.start_s, w.end_s) for w in offline]
        np.testing.assert_allclose([w.score for w in got], [w.score for w in offline], rtol=1e-5, atol=0)
        events = [settings.tracker(bundle, geo)[0] for _ in range(2)]
        found = [[e for w in ws for e in t.update(w)] + t.finish() for t, ws in zip(events, (got, offline))]
        assert [(e.start_s, e.end_s) for e in found[0]] == [(e.start_s, e.end_s) for e in found[1]]


@pytest.mark.parametrize("hop_s, block", [(0.1, 1024), (0.05, 1024), (0.5, 1024), (0.1, 16000)])
def test_the_model_runs_once_per_completed_hop(bundle, case, tmp_path, hop_s, block):
    """One model call per push that completes a window (all its new windows batched), never one
    per audio block: with 64 ms blocks and a 100 ms hop, 10 calls a second, not 15.6."""
    _, y = _slice_wav(case, tmp_path)
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=hop_s)
    scorer = StreamScorer(bundle, geo)
    spy = scorer._session = _CountingSession(scorer._session)
    windows, productive = [], 0
    for i in range(0, y.size, block):
        before = spy.calls
        got = scorer.push(y[i : i + block])
        assert spy.calls - before == (1 if got else 0)  # a call only for a push that completes windows
        productive += bool(got)
        windows += got
    in_pushes = spy.calls
    windows += scorer.finish()
    assert spy.calls - in_pushes <= 1 and spy.calls == scorer.onnx_calls
    assert len(windows) == geo.n_windows(y.size) and in_pushes == productive
    n_blocks = -(-y.size // block)
    if block < geo.hop_samples:
        assert in_pushes <= len(windows) and in_pushes < n_blocks  # one call per hop, fewer than blocks
    else:
        assert in_pushes < len(windows)  # several windows complete in one block: one call for them all


def test_ring_read_into_moves_samples_without_allocating():
    ring = RingBuffer(10)
    out = np.zeros(4, np.float32)
    ring.write(np.arange(8))
    assert ring.read_into(out, timeout=0) == 4 and out.tolist() == [0, 1, 2, 3]  # the rest stays
    ring.write(np.arange(8, 14))  # wraps around the end
    got = []
    while n := ring.read_into(out, timeout=0):
        got += out[:n].tolist()
    assert got == list(range(4, 14)) and ring.read_into(out, timeout=0) == 0
    ring.close()
    assert ring.read_into(out, timeout=0) is None


def test_blocks_go_into_preallocated_buffers(bundle):
    """Pushing 64 ms blocks never reallocates the scorer's sample, frame or error buffers (sized
    for a hop and a window at the start): a block is copied in, nothing is concatenated."""
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    scorer = StreamScorer(bundle, geo)
    y = (0.1 * np.random.default_rng(0).standard_normal(16000 * 30)).astype(np.float32)
    buffers = (scorer._frames._buf, scorer._fbuf, scorer._errors)
    n = 0
    for i in range(0, y.size, 1024):
        n += len(scorer.push(y[i : i + 1024]))
        assert all(now is then for now, then in zip((scorer._frames._buf, scorer._fbuf, scorer._errors), buffers))
    assert n + len(scorer.finish()) == geo.n_windows(y.size)
