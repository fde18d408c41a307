"""The on-disk feature cache: keyed by content and config, safe to damage, and each file
decoded once when several models train on the same data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from earshot.features.cache import FeatureCache, config_key, resolve_cache
from earshot.errors import AudioError, ParameterError
from earshot.features.config import FeatureConfig
from earshot.features.extract import file_log_mel
from helpers.scale import tiny_data, tiny_model

CONFIG = FeatureConfig(n_mels=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory)


@pytest.fixture
def decodes(monkeypatch):
    """Counts audio decodes (every feature computation decodes its file once)."""
    import earshot.features.extract as extract

    calls = []
    real = extract.load

    def counting(path, **kwargs):
        calls.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(extract, "load", counting)
    return calls


def test_hit_equals_computed_and_skips_decoding(data, tmp_path, decodes):
    wav = data / "fan/id_00/normal/00000000.wav"
    cache = FeatureCache(tmp_path / "c")
    first = cache.log_mel(wav, CONFIG)
    assert np.array_equal(first, file_log_mel(wav, CONFIG)) and first.dtype == np.float32
    n = len(decodes)
    again = FeatureCache(tmp_path / "c").log_mel(wav, CONFIG)  # a new process would see the same
    assert np.array_equal(again, first) and len(decodes) == n
    assert (cache.folder(CONFIG, None) / "config.json").exists()


def test_keyed_by_content_and_config(data, tmp_path):
    wav = data / "fan/id_00/normal/00000000.wav"
    cache = FeatureCache(tmp_path / "c")
    cache.log_mel(wav, CONFIG)
    copy = tmp_path / "renamed.wav"
    shutil.copy(wav, copy)
    cache.log_mel(copy, CONFIG)
    assert (cache.hits, cache.misses) == (1, 1)  # a renamed copy is the same content
    shutil.copy(data / "fan/id_00/normal/00000001.wav", copy)  # same name, other bytes
    assert np.array_equal(cache.log_mel(copy, CONFIG), file_log_mel(copy, CONFIG)) and cache.misses == 2
    cache.log_mel(wav, CONFIG.replace(n_mels=16))
    cache.log_mel(wav, CONFIG, channel=0)
    assert cache.misses == 4
    assert len({config_key(CONFIG, None), config_key(CONFIG.replace(n_mels=16), None), config_key(CONFIG, 0)}) == 3


def test_damaged_entry_is_recomputed(data, tmp_path):
    from earshot.features.cache import file_digest

    wav = data / "fan/id_00/normal/00000000.wav"
    cache = FeatureCache(tmp_path / "c")
    expected = cache.log_mel(wav, CONFIG)
    entry = cache.entry(file_digest(wav), CONFIG, None)
    entry.write_bytes(entry.read_bytes()[:100])
    assert np.array_equal(cache.log_mel(wav, CONFIG), expected) and cache.misses == 2
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]


def test_hit_still_checks_the_model_context(data, tmp_path):
    wav = data / "fan/id_00/normal/00000000.wav"  # 1 s: 32 frames
    cache = FeatureCache(tmp_path / "c")
    cache.log_mel(wav, CONFIG)
    with pytest.raises(AudioError, match="too short"):
        cache.log_mel(wav, CONFIG, min_frames=64)


def test_resolve_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EARSHOT_CACHE", raising=False)
    assert resolve_cache(None) is None
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "env"))
    assert resolve_cache(None).root == tmp_path / "env"
    assert resolve_cache(False) is None
    (tmp_path / "file").touch()
    with pytest.raises(ParameterError, match="expected a folder"):
        resolve_cache(tmp_path / "file")


@pytest.mark.slow
def test_two_trainings_decode_each_file_once(data, tmp_path, monkeypatch, decodes):
    from earshot.pipeline import train

    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "cache"))
    train(data, tmp_path / "m1", model="gauss", features=CONFIG)
    first = list(decodes)
    assert first and len(first) == len(set(first))
    train(data, tmp_path / "m2", model="knn", features=CONFIG)
    assert decodes == first  # the second model read every clip from the cache


def test_extract_store_with_cache_and_executor_equals_plain(data, tmp_path, monkeypatch, decodes):
    from earshot.pipeline import extract_store

    monkeypatch.delenv("EARSHOT_CACHE", raising=False)
    paths = sorted(data.rglob("*.wav"))
    plain = extract_store(paths, CONFIG)
    cache = FeatureCache(tmp_path / "c")
    for _ in range(2):
        got = extract_store(paths, CONFIG, cache=cache, executor="serial")
        assert np.array_equal(got.frames, plain.frames) and np.array_equal(got.offsets, plain.offsets)
    assert (cache.misses, cache.hits) == (len(paths), len(paths))
    assert len(decodes) == 2 * len(paths)  # the plain run and the first cached one


def test_batch_scoring_uses_the_cache(tmp_path_factory, data, tmp_path):
    from earshot.pipeline.batch import iter_scores

    model = tiny_model(tmp_path_factory)
    plain = [r for b in iter_scores(model, [data], executor="serial") for r in b]
    cached = [r for b in iter_scores(model, [data], executor="serial", cache=tmp_path / "c") for r in b]
    assert cached == plain
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 32
