"""earshot.features: librosa parity (filterbank, log-mel), batches, context frames, config."""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse

from earshot.errors import ParameterError
from earshot.features import (
    FeatureConfig,
    context_frames,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    power_spectrogram,
)

librosa = pytest.importorskip("librosa")

SR = 16000
TOL_DB = 1e-3
MIMII = "mimii-fan/fan/id_00/abnormal/00000000.wav"


def librosa_log_mel(y, **kw):
    """The reference definition (docs/design.md)."""
    cfg = FeatureConfig(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_fft too large for input signal"
        mel = librosa.feature.melspectrogram(
            y=y,
            sr=cfg.sr,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window="hann",
            center=True,
            pad_mode="constant",
            power=cfg.power,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
        )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


PARAMS = [
    {},
    {"n_mels": 64},
    {"power": 1.0},
    {"n_mels": 64, "fmin": 50.0, "fmax": 8000.0},
    {"hop_length": 256},
    {"win_length": 800, "n_mels": 64},
    {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "fmax": 7000.0},
    {"sr": 22050, "n_fft": 512, "hop_length": 128, "n_mels": 40},
]


def _ids(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"


@pytest.fixture
def noise(rng):
    return (0.1 * rng.standard_normal(SR * 3)).astype(np.float32)


def tones(n, sr=SR):
    t = np.arange(n) / sr
    return (0.5 * np.sin(2 * np.pi * 441.3 * t) + 0.2 * np.sin(2 * np.pi * 2987.0 * t)).astype(
        np.float32
    )


# ---------------------------------------------------------------- filterbank


@pytest.mark.parametrize(
    "kw",
    [
        {"sr": 16000, "n_fft": 1024, "n_mels": 128},
        {"sr": 16000, "n_fft": 1024, "n_mels": 64, "fmin": 50.0, "fmax": 8000.0},
        {"sr": 22050, "n_fft": 2048, "n_mels": 256},
        {"sr": 44100, "n_fft": 511, "n_mels": 40, "fmin": 20.0, "fmax": 16000.0},
    ],
)
def test_filterbank_matches_librosa(kw):
    fb = mel_filterbank(**kw)
    ref = librosa.filters.mel(**kw)
    assert scipy.sparse.issparse(fb) and fb.format == "csr"
    assert fb.dtype == np.float32 and fb.shape == ref.shape == (kw["n_mels"], 1 + kw["n_fft"] // 2)
    np.testing.assert_allclose(fb.toarray(), ref, rtol=1e-6, atol=1e-9)


def test_filterbank_cached_and_read_only():
    a = mel_filterbank(sr=16000, n_fft=1024, n_mels=64)
    assert mel_filterbank(sr=16000, n_fft=1024, n_mels=64) is a
    with pytest.raises(ValueError):
        a.data[0] = 1.0


def test_filterbank_too_many_mels():
    with pytest.raises(ParameterError, match="n_mels=256 is too many for n_fft=256"):
        mel_filterbank(sr=16000, n_fft=256, n_mels=256)


# ---------------------------------------------------------------- log-mel parity


@pytest.mark.parametrize("kw", PARAMS, ids=_ids)
def test_log_mel_matches_librosa_on_noise(noise, kw):
    for y in (noise, noise[:12345]):  # odd length
        ours = log_mel(y, **kw)
        ref = librosa_log_mel(y, **kw)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL_DB)


@pytest.mark.parametrize("kw", PARAMS[:5], ids=_ids)
def test_log_mel_matches_librosa_on_tones(kw):
    """Pure tones: 1e-3 dB wherever a band is within 60 dB (power) of the loudest band.

    Far below that, float32 round-off (~-120 dB re the peak) differs from librosa, whose STFT
    runs in float64 (numpy 2 promotes its float64 window); see earshot.features.mel.
    """
    y = tones(SR * 2 + 77)
    ours = log_mel(y, **kw)
    ref = librosa_log_mel(y, **kw)
    power = kw.get("power", 2.0)
    in_range = (ref - ref.max()) * (2.0 / power) > -60.0
    assert in_range.mean() > 0.08
    np.testing.assert_allclose(ours[in_range], ref[in_range], rtol=0, atol=TOL_DB)
    # Below the range the two still agree roughly (float32 floor), never wildly.
    assert np.abs(ours - ref).max() < (1.0 if power == 2.0 else 10.0)


@pytest.mark.parametrize("kw", [{}, {"n_mels": 64, "power": 1.0}])
def test_log_mel_matches_librosa_on_real_mimii_clip(shared_data, kw):
    from earshot.io import load

    y, sr = load(shared_data / MIMII, channel=0)
    ours = log_mel(y, **kw)
    ref = librosa_log_mel(y, **kw)
    assert ours.shape == ref.shape == (kw.get("n_mels", 128), 313)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL_DB)


@pytest.mark.parametrize("n", [1, 300, 511, 512, 513, 1023, 1025])
def test_short_signals_behave_like_librosa(noise, n):
    """Shorter than n_fft: zero-padded by center=True, as librosa (1 + n // hop frames)."""
    y = noise[:n]
    ours = log_mel(y, n_mels=64)
    ref = librosa_log_mel(y, n_mels=64)
    assert ours.shape == ref.shape == (64, 1 + n // 512)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL_DB)


def test_all_zero_clip_is_finite():
    out = log_mel(np.zeros(SR, dtype=np.float32), n_mels=64)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, -100.0, atol=1e-4)


def test_float64_input_and_multichannel_shapes(noise):
    ref = log_mel(noise, n_mels=64)
    np.testing.assert_array_equal(log_mel(noise.astype(np.float64), n_mels=64), ref)
    stacked = log_mel(np.stack([noise, noise[::-1]])[None], n_mels=64)
    assert stacked.shape == (1, 2, 64, ref.shape[1])
    np.testing.assert_array_equal(stacked[0, 0], ref)


def test_bad_input():
    with pytest.raises(ParameterError, match="floating"):
        log_mel(np.zeros(1000, dtype=np.int16))
    with pytest.raises(ParameterError, match="at least one sample"):
        log_mel(np.zeros(0, dtype=np.float32))
    y = np.zeros(4000, dtype=np.float32)
    y[1234] = np.nan
    with pytest.raises(ParameterError, match="finite"):
        log_mel(y)
    with pytest.raises(ParameterError, match="n_mel"):
        log_mel(np.zeros(4000, np.float32), n_mel=64)  # typo of n_mels
    with pytest.raises(ParameterError, match="workers"):
        log_mel(np.zeros(4000, np.float32), workers=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30])  # 1e30: power overflows float32
@pytest.mark.parametrize("fn", ["log_mel", "log_mel_batch", "power_spectrogram"])
def test_non_finite_audio_or_power_is_refused(fn, bad):
    Y = np.zeros((3, 20000), dtype=np.float32)
    Y[1, 777] = bad
    call = {
        "log_mel": lambda: log_mel(Y, n_mels=64, workers=1),
        "log_mel_batch": lambda: log_mel_batch(Y, n_mels=64, workers=2),
        "power_spectrogram": lambda: power_spectrogram(Y, n_fft=1024, hop_length=512),
    }[fn]
    with pytest.raises(ParameterError, match="finite"):
        call()


def test_power_spectrogram_matches_librosa_stft(noise):
    for power, kw in [(2.0, {}), (1.0, {"win_length": 600})]:
        ours = power_spectrogram(noise, n_fft=1024, hop_length=256, power=power, **kw)
        ref = np.abs(
            librosa.stft(noise, n_fft=1024, hop_length=256, center=True, pad_mode="constant", **kw)
        ) ** power
        assert ours.shape == ref.shape and ours.flags.c_contiguous
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * ref.max())


# ---------------------------------------------------------------- batches and threads


def test_batch_equals_per_clip(rng):
    Y = (0.1 * rng.standard_normal((9, 20000))).astype(np.float32)
    Y[4] = 0.0
    cfg = FeatureConfig(n_mels=64)
    ref = np.stack([log_mel(y, cfg, workers=1) for y in Y])
    for workers in (1, 2, 3):
        out = log_mel_batch(Y, cfg, workers=workers)
        assert out.shape == (9, 64, 40) and out.dtype == np.float32
        np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(log_mel_batch(Y.astype(np.float64), cfg), ref)
    assert log_mel_batch(Y[:0], cfg).shape == (0, 64, 40)
    with pytest.raises(ParameterError, match="2-D"):
        log_mel_batch(Y[0], cfg)


def test_reused_buffers_do_not_leak_between_calls(noise):
    """Per-thread buffers are reused across calls; other configs/lengths must not see them."""
    first = log_mel(noise, n_mels=64)
    shifted = log_mel(noise, n_mels=64, fmin=30.0)  # same sizes, other filterbank
    short = log_mel(noise[:5000], n_mels=64)
    assert not np.array_equal(first, shifted)
    np.testing.assert_array_equal(log_mel(noise, n_mels=64), first)
    np.testing.assert_array_equal(short, log_mel(noise[:5000].copy(), n_mels=64, workers=1))
    np.testing.assert_allclose(short, librosa_log_mel(noise[:5000], n_mels=64), atol=TOL_DB)


def test_long_recording_split_across_threads(rng):
    y = (0.1 * rng.standard_normal(SR * 70)).astype(np.float32)  # > 2048 frames
    one = log_mel(y, n_mels=64, workers=1)
    two = log_mel(y, n_mels=64, workers=2)
    assert one.shape == (64, 1 + y.size // 512)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, librosa_log_mel(y, n_mels=64), rtol=0, atol=TOL_DB)



def test_thread_pool_is_kept_between_calls_and_honours_workers(monkeypatch, rng):
    """The pool threads (and their buffers) outlive a call; a pool grown to 3 threads by one
    call runs at most 2 clips at once for ``workers=2``."""
    from earshot.features import stft

    lock, active, peak, threads = threading.Lock(), [0], [0], []
    real = stft._process_clip

    def spy(*args):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            threads[-1].add(threading.current_thread())
        time.sleep(0.005)  # let the other threads catch up, to see how many run at once
        real(*args)
        with lock:
            active[0] -= 1

    Y = (0.1 * rng.standard_normal((12, 4000))).astype(np.float32)
    ref = np.stack([log_mel(y, n_mels=64, workers=1) for y in Y])
    monkeypatch.setattr(stft, "_process_clip", spy)
    for workers in (3, 2, 2):
        threads.append(set())
        peak[0] = 0
        np.testing.assert_array_equal(log_mel_batch(Y, n_mels=64, workers=workers), ref)
        assert peak[0] <= workers
    # The same thread objects as the first call's: no thread (nor its buffers) made afresh.
    assert threads[1] | threads[2] <= threads[0]


def test_pool_works_in_a_forked_child(rng):
    """A child forked after the pool started gets its own (the parent's threads are not there)."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    Y = (0.1 * rng.standard_normal((8, 4000))).astype(np.float32)
    ref = log_mel_batch(Y, n_mels=64, workers=2)  # the parent's pool is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only with the same result
        ok = False
        try:
            ok = np.array_equal(log_mel_batch(Y, n_mels=64, workers=2), ref)
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("log_mel_batch hung in a forked child")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0

# ---------------------------------------------------------------- context frames


def test_context_frames_layout_and_no_copy(rng):
    n_mels, n_time, n_frames = 4, 9, 3
    logmel = rng.standard_normal((n_mels, n_time)).astype(np.float32)
    ctx = context_frames(logmel, n_frames)
    assert ctx.shape == (n_time - n_frames + 1, n_frames * n_mels)
    naive = np.stack(
        [np.concatenate([logmel[:, t + k] for k in range(n_frames)]) for t in range(ctx.shape[0])]
    )
    np.testing.assert_array_equal(ctx, naive)
    assert not ctx.flags.writeable
    # Only one (n_time, n_mels) contiguous transpose is made; rows are views into it.
    base = ctx
    while getattr(base, "base", None) is not None:  # as_strided -> DummyArray -> owner
        base = base.base
    assert isinstance(base, np.ndarray)
    assert base.shape == (n_time, n_mels) and base.flags.c_contiguous
    assert np.shares_memory(ctx, base) and not np.shares_memory(ctx, logmel)
    assert base.nbytes == logmel.nbytes  # not a stacked (n_rows * n_frames * n_mels) copy
    # Already-transposed input is used in place.
    frames = np.ascontiguousarray(logmel.T)
    assert np.shares_memory(context_frames(frames.T, n_frames), frames)


def test_context_frames_errors():
    with pytest.raises(ParameterError, match="n_time=4.*n_frames=5"):
        context_frames(np.zeros((8, 4), np.float32), 5)
    with pytest.raises(ParameterError, match="n_frames"):
        context_frames(np.zeros((8, 10), np.float32), 0)
    with pytest.raises(ParameterError, match="2-D"):
        context_frames(np.zeros(10, np.float32), 2)


# ---------------------------------------------------------------- config


def test_config_defaults_and_round_trip():
    cfg = FeatureConfig()
    assert cfg.to_dict() == {
        "sr": 16000, "n_fft": 1024, "hop_length": 512, "win_length": None, "n_mels": 128,
        "fmin": 0.0, "fmax": None, "power": 2.0, "n_frames": 5,
    }
    custom = FeatureConfig(n_mels=np.int64(64), fmax=8000, power=1)
    assert type(custom.n_mels) is int and type(custom.fmax) is float
    assert FeatureConfig.from_dict(custom.to_dict()) == custom
    assert FeatureConfig.from_dict({"n_mels": 64}) == FeatureConfig(n_mels=64)
    assert custom.replace(n_frames=3).n_frames == 3


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"sr": 0}, "sr must be a positive int, got 0"),
        ({"n_fft": 1000.5}, "n_fft must be a positive int"),
        ({"hop_length": True}, "hop_length"),
        ({"n_mels": -1}, "n_mels"),
        ({"n_frames": 0}, "n_frames"),
        ({"win_length": 2048}, "win_length must be None or an int in [1, n_fft=1024]"),
        ({"fmax": 9000.0}, "fmax must be None or a number in (fmin=0, sr/2=8000]"),
        ({"fmin": 100.0, "fmax": 50.0}, "fmax"),
        ({"fmin": -1.0}, "fmin"),
        ({"power": 0}, "power must be a number > 0"),
        ({"n_fft": 256, "n_mels": 256}, "too many"),
    ],
)
def test_config_validation(kw, fragment):
    with pytest.raises(ParameterError) as exc:
        FeatureConfig(**kw)
    assert fragment in str(exc.value)


def test_config_from_dict_unknown_keys():
    with pytest.raises(ParameterError, match="unknown feature config key.*'nmels'"):
        FeatureConfig.from_dict({"nmels": 64})
    with pytest.raises(ParameterError, match="dict"):
        FeatureConfig.from_dict([("n_mels", 64)])
