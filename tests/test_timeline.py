"""Long recordings: streamed log-mel, window geometry, events with hysteresis, verdict, detect.

The end-to-end case (the issue's "done when"): a model trained on a folder of long normal
recordings of a synthetic fan finds the fault of another recording of that fan (60 s to 90 s)
as one event within 1 s of the truth, and nothing elsewhere.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from earshot.cli.app import main
from earshot.errors import ParameterError
from earshot.features import FeatureConfig, log_mel
from earshot.timeline import FrameStream
from earshot.timeline import (
    EventSettings,
    EventTracker,
    WindowGeometry,
    WindowScore,
    default_release,
    find_events,
    frame_span,
    resolve_threshold,
    verdict,
)

from helpers.long_case import FAULT, long_case, read_events
from helpers.signals import SR
from helpers.torch_threads import single_torch_thread


# ---------------------------------------------------------------------- shared long-recording case
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return long_case(tmp_path_factory)


# ---------------------------------------------------------------------- streamed features
@pytest.mark.parametrize("cfg", [FeatureConfig(n_mels=32), FeatureConfig(n_fft=400, hop_length=160, n_mels=40)])
def test_frame_stream_equals_log_mel_of_the_whole_signal(cfg, rng):
    y = (0.1 * rng.normal(size=SR * 3 + 123)).astype(np.float32)
    whole = log_mel(y, cfg).T
    for sizes in ([len(y)], [1, 2, 500, 511, 512, 513, 16000], [37] * 2000):
        fs, parts, i = FrameStream(cfg), [], 0
        for n in sizes:
            parts.append(fs.push(y[i : i + n]))
            i += n
            if i >= len(y):
                break
        if i < len(y):
            parts.append(fs.push(y[i:]))
        parts.append(fs.flush())
        got = np.concatenate(parts)
        assert got.shape == whole.shape
        np.testing.assert_allclose(got, whole, atol=1e-3)


def test_frame_stream_gives_each_frame_once_its_samples_arrived():
    cfg = FeatureConfig(n_mels=32)
    fs = FrameStream(cfg)
    assert len(fs.push(np.zeros(511, np.float32))) == 0  # frame 0 spans samples -512..511
    assert len(fs.push(np.zeros(1, np.float32))) == 1
    assert len(fs.push(np.zeros(512, np.float32))) == 1


# ---------------------------------------------------------------------- geometry
def test_window_geometry():
    assert frame_span(0, 16000, 512) == (0, 32)
    assert frame_span(1600, 17600, 512) == (4, 35)
    g = WindowGeometry(sr=SR, n_fft=1024, hop_length=512, window_samples=SR, hop_samples=1600, model_frames=5)
    assert g.n_windows(SR * 10) == 91 and g.n_windows(SR - 1) == 0
    assert g.bounds_s(3) == (0.3, 1.3)
    assert g.model_windows(0) == (0, 28)  # context windows of 5 frames inside frames 0..31
    lstm = WindowGeometry(sr=SR, n_fft=1024, hop_length=512, window_samples=SR, hop_samples=1600, model_frames=16,
                          model_hop=8)
    i0, i1 = lstm.model_windows(1)  # frames 4..34: windows starting at 8 and 16
    assert (i0, i1) == (1, 3)
    with pytest.raises(ParameterError, match="window_s"):
        WindowGeometry(sr=SR, n_fft=1024, hop_length=512, window_samples=8000, hop_samples=1600, model_frames=16,
                       model_hop=8).check()


def test_default_window_is_one_second_or_the_models_shortest():
    """No --window-s: 1 s, or the shortest window a model with long patches can always score."""
    from types import SimpleNamespace

    from earshot.features.config import FeatureConfig

    def bundle(min_frames, hop_frames):
        return SimpleNamespace(features=FeatureConfig(), min_frames=min_frames,
                               manifest={"fitted": {"windows": {"hop_frames": hop_frames}}, "model": {"params": {}}})

    assert WindowGeometry.for_bundle(bundle(5, 1)).window_s == 1.0  # dense AE: 5 frames
    cnn = WindowGeometry.for_bundle(bundle(32, 16))  # CNN patches: 32 frames every 16 -> 47 frames, 1.504 s
    assert cnn.window_s == pytest.approx(1.6)
    cnn.check()
    with pytest.raises(ParameterError, match="at least 1.50 s"):
        WindowGeometry.for_bundle(bundle(32, 16), window_s=1.0)
    assert WindowGeometry.for_bundle(bundle(32, 16), window_s=3.0).window_s == 3.0


@pytest.mark.parametrize("params", [(), ("window_hop=2",)], ids=["every-window", "window-hop-2"])
def test_window_score_is_the_clip_score_of_its_frames(case, params, tmp_path_factory):
    """A window is scored as a clip of its frames: the bundle's aggregate of the model windows
    inside it, on the continuous log-mel of the recording (timelines run the float32 graph);
    with a dense-ae scoring every 2nd model window too (its model windows lie on the recording's
    grid of 2 frames, so a window starting on an odd frame scores from the next one)."""
    from earshot.bundle import load_model
    from earshot.timeline import scan_file

    if params:
        case = long_case(tmp_path_factory, "dense-ae", params)

    bundle = next(iter(load_model(case["model"], precision="float32").bundles.values()))
    geo = WindowGeometry.for_bundle(bundle, window_s=1.0, hop_s=0.1)
    windows = list(scan_file(case["long"], bundle, geo))
    y, _ = sf.read(case["long"], dtype="float32")
    assert len(windows) == geo.n_windows(len(y)) == 1191
    logmel = log_mel(y, bundle.features)
    for k in (0, 7, 600, 1190):
        t0, t1 = geo.frames(k)
        i0, i1 = geo.model_windows(k)  # the model windows inside: on the recording's grid of model_hop frames
        assert i0 * geo.model_hop >= t0 and (i1 - 1) * geo.model_hop + geo.model_frames <= t1
        as_clip = bundle.score_samples([logmel[:, i0 * geo.model_hop : (i1 - 1) * geo.model_hop + geo.model_frames]])[0]
        assert windows[k].score == pytest.approx(as_clip, rel=1e-4)


# ---------------------------------------------------------------------- events
def _windows(scores, hop=0.1, window=1.0):
    return [WindowScore(k, k * hop, k * hop + window, float(s)) for k, s in enumerate(scores)]


def _track(scores, **kw):
    kw = {"threshold": 1.0, "release": 0.8, "hop_s": 0.1, "min_duration_s": 3.0, "merge_gap_s": 1.0, **kw}
    return find_events(_windows(scores), **kw)


def test_one_noisy_window_or_burst_raises_no_event():
    base = np.full(300, 0.5)
    one = base.copy()
    one[100] = 9.0
    assert _track(one) == []
    burst = base.copy()
    burst[100:120] = 3.0  # two seconds above: shorter than the minimum duration
    assert _track(burst) == []
    two = base.copy()
    two[100:120] = 3.0
    two[125:145] = 3.0  # two short bursts close together are not merged into an event
    assert _track(two) == []


def test_event_boundaries_hysteresis_and_stats():
    s = np.full(400, 0.5)
    s[100:250] = 2.0
    s[150:160] = 0.9  # a dip below the threshold but above the release level: same event
    (e,) = _track(s)
    # first window centre 10.5 s, last 25.4 s; boundaries half a hop outside
    assert e.start_s == pytest.approx(10.45) and e.end_s == pytest.approx(25.45)
    assert e.peak_score == 2.0 and e.n_windows == 150
    assert e.mean_score == pytest.approx((140 * 2.0 + 10 * 0.9) / 150)
    s[150:160] = 0.7  # below the release level: two segments of 5 s and 9 s, merged (gap 1 s)
    (m,) = _track(s)
    assert (m.start_s, m.end_s) == pytest.approx((10.45, 25.45))
    assert len(_track(s, merge_gap_s=0.5)) == 2


def test_tracker_online_alarm_and_finish():
    t = EventTracker(threshold=1.0, release=0.8, hop_s=0.1, min_duration_s=3.0, merge_gap_s=1.0)
    out = []
    alarms = []
    for w in _windows(np.r_[np.full(10, 0.5), np.full(50, 2.0)]):
        out += t.update(w)
        alarms.append(t.alarm())
    assert out == [] and alarms[38] is None and alarms[-1] is not None  # 3 s of windows reached
    assert alarms[-1].start_s == pytest.approx(1.45)
    (e,) = t.finish()  # still open at the end of the stream: closed there
    assert e.end_s == pytest.approx(6.45)
    assert t.n_windows == 60 and t.n_above == 50


def test_threshold_sensitivity_and_release():
    assert resolve_threshold(2.0)[0] == 2.0
    assert resolve_threshold(2.0, sensitivity=2.0, reference=1.0)[0] == 1.5  # half the margin
    assert resolve_threshold(2.0, sensitivity=0.5, reference=1.0)[0] == 3.0
    assert resolve_threshold(2.0, sensitivity=2.0)[0] == 1.0  # no normal level known: divided
    assert resolve_threshold(2.0, threshold=7.0) == (7.0, "given (--threshold)")
    with pytest.raises(ParameterError):
        resolve_threshold(2.0, threshold=1.0, sensitivity=2.0)
    with pytest.raises(ParameterError, match="sensitivity"):
        resolve_threshold(2.0, sensitivity=0.0)
    assert default_release(2.0, 1.0, 0.5) == 1.5
    assert default_release(2.0, None, 0.0) == 2.0


def test_verdict_reasons():
    v = verdict([], n_windows=100, n_above=3, threshold=1.0, min_duration_s=3.0, duration_s=10.9)
    assert v["verdict"] == "normal" and "3/100 windows" in v["reason"] and "3 s" in v["reason"]
    e = _track(np.r_[np.full(10, 0.5), np.full(50, 2.0), np.full(10, 0.5)])
    v = verdict(e, n_windows=70, n_above=50, threshold=1.0, min_duration_s=3.0, duration_s=7.9)
    assert v["is_anomalous"] and "1 event(s)" in v["reason"] and "2.0x the threshold" in v["reason"]


# ---------------------------------------------------------------------- earshot train on long recordings, detect
def test_train_on_long_recordings_cuts_them_into_windows(case):
    manifest = json.loads((case["model"] / "manifest.json").read_text())
    training = manifest["training"]
    assert training["n_clips"] == 6 and training["n_windows"] == 6 * 32
    assert training["window_s"] == 1.0 and training["clip_s"] == pytest.approx(1.0, abs=0.05)
    assert manifest["threshold"]["source"] == "validation"  # held-out normal windows


def test_detect_finds_the_fault_and_nothing_else(case, tmp_path, capsys):
    out = tmp_path / "det"
    code = main(["detect", str(case["model"]), str(case["long"]), "--out", str(out),
                 "--truth", str(case["long"]) + ".json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    events = read_events(out / "events.csv")
    assert len(events) == 1, events
    assert abs(events[0]["start_s"] - FAULT[0]) <= 1.0 and abs(events[0]["end_s"] - FAULT[1]) <= 1.0
    assert "ANOMALOUS" in captured.out
    with open(out / "timeline.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["start_s", "end_s", "score", "threshold", "is_anomalous"]
    assert len(rows) == 1191 and float(rows[1]["start_s"]) == pytest.approx(0.1)
    summary = json.loads((out / "verdict.json").read_text())
    assert summary["verdict"] == "anomalous" and summary["reason"]
    assert summary["settings"]["threshold_source"].startswith("the model's")
    assert (out / "timeline.png").stat().st_size > 10_000


def test_detect_on_normal_part_only_is_normal(case, tmp_path, capsys):
    y, _ = sf.read(case["long"], dtype="float32")
    part = tmp_path / "first_55s.wav"
    sf.write(part, y[: 55 * SR], SR, subtype="PCM_16")
    code = main(["detect", str(case["model"]), str(part)])
    captured = capsys.readouterr()
    assert code == 0 and "verdict: NORMAL" in captured.out, captured.out


def test_detect_sensitivity_and_threshold_options(case, capsys):
    code = main(["detect", str(case["model"]), str(case["long"]), "--threshold", "1e9"])
    assert code == 0 and "NORMAL" in capsys.readouterr().out
    code = main(["detect", str(case["model"]), str(case["long"]), "--sensitivity", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "sensitivity 0.5" in out


@pytest.mark.parametrize("args, message", [
    (["--window-s", "0.05"], "window_s"),
    (["--hop-s", "0"], "hop_s"),
    (["--threshold", "1", "--sensitivity", "2"], "not both"),
    (["--sensitivity", "-1"], "sensitivity"),
])
def test_detect_bad_options_are_one_line(case, capsys, args, message):
    code = main(["detect", str(case["model"]), str(case["long"]), *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_detect_bad_recordings_are_one_line(case, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(SR // 2, np.float32) + 0.1, SR)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 3, np.float32), SR)
    for path, message in ((tmp_path / "missing.wav", "no such file"), (short, "too short"), (silent, "zero")):
        code = main(["detect", str(case["model"]), str(path), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really")
    # 0.3 s windows on a model calibrated on 1 s ones would warn: the unreadable file is said first, alone
    code = main(["detect", str(case["model"]), str(corrupt), "--window-s", "0.3", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "not a readable audio file" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_event_settings_defaults_scale_with_the_window(case):
    from earshot.bundle import load_model

    bundle = next(iter(load_model(case["model"]).bundles.values()))
    geo = WindowGeometry.for_bundle(bundle, window_s=2.0, hop_s=0.5)
    tracker, info = EventSettings().tracker(bundle, geo)
    assert info["min_duration_s"] == 6.0 and info["merge_gap_s"] == 2.0
    assert info["threshold"] == bundle.threshold_ and info["release"] < info["threshold"]


def test_train_on_one_long_recording(case, tmp_path, capsys):
    """The AMULET workflow: one long normal wav is windowed into training clips."""
    model = tmp_path / "m"
    with single_torch_thread():
        code = main(["train", str(case["train"] / "normal_0.wav"), "--out", str(model), "--n-mels", "16",
                     "--epochs", "2", "--window-s", "2"])
    assert code == 0, capsys.readouterr().err
    training = json.loads((model / "manifest.json").read_text())["training"]
    assert training["n_clips"] == 1 and training["n_windows"] == 16 and training["window_s"] == 2.0
    code = main(["detect", str(model), str(case["long"]), "--window-s", "2", "--hop-s", "0.5"])
    assert code == 0 and "verdict:" in capsys.readouterr().out


def test_amulet_recordings(shared_data, tmp_path, capsys):
    """Real data: AMULET's 5.5 s good recording (cut into 0.5 s windows) and its defect recording."""
    good, bad = shared_data / "amulet" / "good.wav", shared_data / "amulet" / "test.wav"
    model = tmp_path / "m"
    with single_torch_thread():
        assert main(["train", str(good), "--out", str(model), "--epochs", "10", "--window-s", "0.5"]) == 0
    capsys.readouterr()
    args = ["--window-s", "0.5", "--min-duration-s", "1"]
    assert main(["detect", str(model), str(bad), *args]) == 0
    assert "verdict: ANOMALOUS" in capsys.readouterr().out
    assert main(["detect", str(model), str(bad), "--window-s", "0.5"]) == 0
    assert "allows events of at most" in capsys.readouterr().out  # 1.8 s: too short for 1.5 s events
