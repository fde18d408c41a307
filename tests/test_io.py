"""earshot.io: decoding real MIMII/AMULET/DCASE files, resampling, bad input, windows, save."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.errors import AudioError, ParameterError
from earshot.io import AudioInfo, ResampleWarning, frame_signal, info, load, save, segment
from earshot.io import audio as audio_mod

MIMII = "mimii-fan/fan/id_00/normal/00000015.wav"  # 8 channels, WAVE_FORMAT_EXTENSIBLE
AMULET = "amulet/good.wav"  # 96 kHz stereo
DCASE = "dcase2020/unknown/train/normal_id_00_00000002.wav"  # 16 kHz mono


@pytest.fixture
def fresh_resample_warnings(monkeypatch):
    """Forget which (file rate, target rate) pairs have already warned in this process."""
    monkeypatch.setattr(audio_mod, "_warned_rates", set())


# ---------------------------------------------------------------- real files


def test_mimii_8_channels_average_and_pick(shared_data):
    path = shared_data / MIMII
    raw, sr = sf.read(path, dtype="float64", always_2d=True)
    assert raw.shape == (160000, 8) and sr == 16000
    assert info(path) == AudioInfo(
        sr=16000, channels=8, frames=160000, duration_s=10.0, subtype="PCM_16", format="WAVEX"
    )
    y, sr = load(path)
    assert y.dtype == np.float32 and y.shape == (160000,) and sr == 16000
    np.testing.assert_allclose(y, raw.mean(axis=1), atol=1e-6)
    for ch in (0, 7):
        y_ch, _ = load(path, channel=ch)
        np.testing.assert_array_equal(y_ch, raw[:, ch].astype(np.float32))


def test_channel_out_of_range(shared_data):
    path = shared_data / MIMII
    with pytest.raises(ParameterError) as exc:
        load(path, channel=8)
    msg = str(exc.value)
    assert str(path) in msg and "channel=8" in msg and "8 channels" in msg
    with pytest.raises(ParameterError):
        load(path, channel=-1)


def test_96k_stereo_resampled_with_one_warning(shared_data, fresh_resample_warnings):
    path = shared_data / AMULET
    head = sf.info(path)
    assert (head.samplerate, head.channels) == (96000, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, sr = load(path)
        y2, _ = load(path)  # same rate pair again: no new warning
    resample_warnings = [w for w in caught if issubclass(w.category, ResampleWarning)]
    assert len(resample_warnings) == 1
    assert "96000" in str(resample_warnings[0].message)
    assert sr == 16000 and y.dtype == np.float32
    assert y.shape == (int(np.ceil(head.frames / 6)),)
    np.testing.assert_array_equal(y, y2)
    native, native_sr = load(path, sr=None)
    assert native_sr == 96000 and native.shape == (head.frames,)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(native**2)), rel=0.1)


def test_16k_mono(shared_data):
    path = shared_data / DCASE
    y, sr = load(path)
    ref, _ = sf.read(path, dtype="float32")
    assert sr == 16000 and y.shape == (160000,)
    np.testing.assert_array_equal(y, ref)
    assert -1.0 <= y.min() and y.max() < 1.0


# ---------------------------------------------------------------- decode paths


def test_int16_and_float_paths_agree(tmp_path, rng, write_wav):
    pcm = rng.integers(-32768, 32768, size=(4000, 3), dtype=np.int16)
    pcm16 = write_wav(tmp_path / "a16.wav", pcm, 16000, "PCM_16")  # read via int16 + multiply
    flt = write_wav(tmp_path / "af.wav", pcm / 32768.0, 16000, "FLOAT")  # read as float32
    libsndfile_float, _ = sf.read(pcm16, dtype="float32", always_2d=True)
    for channel in (None, 0, 2):
        a, _ = load(pcm16, channel=channel)
        b, _ = load(flt, channel=channel)
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-7)
        ref = libsndfile_float.mean(axis=1) if channel is None else libsndfile_float[:, channel]
        np.testing.assert_allclose(a, ref, atol=1e-7)


def test_flac_and_pcm24(tmp_path, rng, write_wav):
    y = 0.2 * rng.standard_normal(3000)
    a, _ = load(write_wav(tmp_path / "a.flac", y, 16000, "PCM_16"))
    b, _ = load(write_wav(tmp_path / "b.wav", y, 16000, "PCM_24"))
    np.testing.assert_allclose(a, y, atol=1 / 32768)
    np.testing.assert_allclose(b, y, atol=1e-6)


def test_all_zero_clip_is_not_an_error(tmp_path, write_wav):
    y, sr = load(write_wav(tmp_path / "z.wav", np.zeros(1600), 16000))
    assert sr == 16000 and y.shape == (1600,) and not y.any()


def test_resample_to_other_rate(tmp_path, write_wav, fresh_resample_warnings):
    t = np.arange(22050) / 22050
    path = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 22050)
    with pytest.warns(ResampleWarning):
        y, sr = load(path, sr=16000)
    assert sr == 16000 and y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 440  # 1 s at 16 kHz: 1 Hz per bin


# ---------------------------------------------------------------- bad input


def _assert_audio_error(path: Path, fragment: str, *, info_too: bool = True) -> None:
    with pytest.raises(AudioError) as exc:
        load(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)), msg
    assert fragment in msg, msg
    assert "\n" not in msg
    if info_too:
        with pytest.raises(AudioError) as exc:
            info(path)
        assert str(exc.value).startswith(str(path))


def test_missing_file(tmp_path):
    _assert_audio_error(tmp_path / "nope.wav", "no such file")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    _assert_audio_error(path, "not a readable audio file")


def test_truncated_header(tmp_path, rng, write_wav):
    path = write_wav(tmp_path / "t.wav", 0.1 * rng.standard_normal(16000), 16000)
    path.write_bytes(path.read_bytes()[:30])
    _assert_audio_error(path, "not a readable audio file")


def test_truncated_data(tmp_path, rng, write_wav):
    path = write_wav(tmp_path / "t.wav", 0.1 * rng.standard_normal(16000), 16000)
    path.write_bytes(path.read_bytes()[:20000])
    _assert_audio_error(path, "truncated")


def test_zero_sample_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    _assert_audio_error(path, "zero samples", info_too=False)
    assert info(path).frames == 0


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load(tmp_path)


def test_bad_parameters(tmp_path, write_wav):
    path = write_wav(tmp_path / "a.wav", np.zeros(100), 16000)
    with pytest.raises(ParameterError, match="sr"):
        load(path, sr=0)
    with pytest.raises(ParameterError, match="channel"):
        load(path, channel=1.5)


# ---------------------------------------------------------------- windows


def test_frame_signal_is_a_read_only_view():
    y = np.arange(10, dtype=np.float32)
    w = frame_signal(y, frame_length=4, hop_length=3)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    assert np.shares_memory(w, y) and not w.flags.writeable
    with pytest.raises(ParameterError, match="shorter"):
        frame_signal(y, frame_length=11, hop_length=1)
    with pytest.raises(ParameterError, match="hop_length"):
        frame_signal(y, frame_length=4, hop_length=0)


def test_segment_windows_and_start_times():
    sr = 100
    y = np.arange(1000, dtype=np.float32)  # 10 s
    windows, starts = segment(y, sr, window_s=2.0, hop_s=0.5)
    assert windows.shape == (17, 200)
    np.testing.assert_allclose(starts, np.arange(17) * 0.5)
    np.testing.assert_array_equal(windows[3], y[150:350])
    with pytest.raises(ParameterError) as exc:
        segment(y[:150], sr, window_s=2.0, hop_s=1.0)
    assert "window_s=2.0" in str(exc.value) and "150 samples" in str(exc.value)


# ---------------------------------------------------------------- save


def test_save_round_trip_and_atomic(tmp_path, rng):
    y = (0.2 * rng.standard_normal(800)).astype(np.float32)
    path = tmp_path / "out.wav"
    save(path, y, 8000)
    back, sr = load(path, sr=None)
    assert sr == 8000
    np.testing.assert_allclose(back, y, atol=1 / 32768)
    assert os.listdir(tmp_path) == ["out.wav"]  # no temp file left behind
    save(tmp_path / "out.flac", np.stack([y, -y], axis=1), 8000)
    assert info(tmp_path / "out.flac").channels == 2


def test_save_errors_leave_nothing(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        save(tmp_path / "missing" / "x.wav", np.zeros(10), 16000)
    with pytest.raises(ParameterError, match="extension"):
        save(tmp_path / "x.xyz", np.zeros(10), 16000)
    with pytest.raises(ParameterError):
        save(tmp_path / "x.wav", np.zeros(0), 16000)
    assert os.listdir(tmp_path) == []
