"""Frugal detectors (gauss, knn) on clip statistics: features, shrinkage, domains, export."""

from __future__ import annotations

import json
import warnings
from functools import partial

import numpy as np
import pytest

from earshot.detection.frugal import GaussianDetector, KnnDetector, ledoit_wolf
from earshot.errors import ParameterError
from earshot.features.clipstats import MIN_FRAMES, band_matrix, clip_stats, n_clip_stats, stat_names
from earshot.features.config import FeatureConfig

from helpers.spectra import machine_clip

N_MELS = 32
DETECTORS = (GaussianDetector, KnnDetector)


# a noisy machine-like log-mel clip: a spectral slope, a hum at band 6, optional extras
_clip = partial(machine_clip, n_mels=N_MELS, n_time=80, noise_sd=1.5, hum_db=10.0, hum_jitter=0.3, tone_db=8.0)


def _domain_data(rng, n_source=40, n_target=3):
    """Source clips, and target clips recorded 12 dB louder with another slope (a domain shift)."""
    source = [_clip(rng) for _ in range(n_source)]
    target = [_clip(rng, tilt=6.0, gain_db=12.0) for _ in range(n_target)]
    meta = [{"domain": "source"}] * n_source + [{"domain": "target"}] * n_target
    return source + target, meta


# ---------------------------------------------------------------------- features
def test_clip_stats_definition(rng):
    x = _clip(rng)
    f = clip_stats([x], n_bands=4)[0]
    assert f.shape == (n_clip_stats(N_MELS, 4),) == (len(stat_names(N_MELS, 4)),)
    np.testing.assert_allclose(f[:N_MELS], x.mean(axis=1), rtol=1e-6)
    bands = band_matrix(N_MELS, 4)
    np.testing.assert_allclose(f[N_MELS : N_MELS + 4], x.std(axis=1) @ bands, rtol=1e-5)
    e = x.astype(np.float64).mean(axis=0)
    assert f[-3] == pytest.approx(np.sqrt(np.mean((e[1:] - e[:-1]) ** 2)))
    assert bands.sum(axis=0) == pytest.approx(np.ones(4))


def test_clip_stats_torch_twin_matches(rng):
    torch = pytest.importorskip("torch")
    from earshot.models.frugal import ClipStats

    clips = [_clip(rng, n_time=n) for n in (MIN_FRAMES, 80, 80)]
    ref = clip_stats(clips, n_bands=8)
    module = ClipStats(N_MELS, 8)
    for c, r in zip(clips, ref):
        got = module(torch.from_numpy(c.T[None].copy())).numpy()[0]
        np.testing.assert_allclose(got, r, rtol=1e-4, atol=1e-3)


def test_clip_stats_bad_input(rng):
    with pytest.raises(ParameterError, match="frames"):
        clip_stats([np.zeros((N_MELS, MIN_FRAMES - 1))])
    with pytest.raises(ParameterError, match="n_bands"):
        band_matrix(8, 9)


def test_ledoit_wolf_matches_scikit_learn(rng):
    covariance = pytest.importorskip("sklearn.covariance")
    X = rng.normal(size=(12, 30)) @ rng.normal(size=(30, 30))
    X -= X.mean(axis=0)
    cov, a = ledoit_wolf(X)
    ref_cov, ref_a = covariance.ledoit_wolf(X, assume_centered=True)
    assert a == pytest.approx(ref_a, rel=1e-9)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- fitting
@pytest.mark.parametrize("cls", DETECTORS)
def test_fits_ten_clips_without_warnings(cls, rng):
    normal = [_clip(rng) for _ in range(10)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            det = cls().fit(normal)
            s_n = det.score_samples([_clip(rng) for _ in range(10)])
            s_a = det.score_samples([_clip(rng, tone=slice(20, 22)) for _ in range(10)])
    assert np.isfinite(det.threshold_) and det.threshold_source_ == "cross-fit"
    assert det.calibration_scores_.shape == (10,)
    assert s_a.min() > s_n.max()
    assert np.mean(s_n > det.threshold_) <= 0.3, "few false alarms on new normal clips"


@pytest.mark.parametrize("cls", DETECTORS)
def test_two_clips_and_single_target_clip(cls, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls().fit([_clip(rng), _clip(rng)])
        X, meta = _domain_data(rng, n_source=6, n_target=1)
        det = cls().fit(X, metadata=meta)
    assert det.domain_counts_ == {"source": 6, "target": 1}
    assert np.isfinite(det.calibration_scores_).all()
    with pytest.raises(ParameterError, match="at least 2"):
        cls().fit([_clip(rng)])


@pytest.mark.parametrize("cls", DETECTORS)
def test_selective_scoring_handles_a_domain_shift(cls, rng):
    X, meta = _domain_data(rng)
    selective = cls().fit(X, metadata=meta)
    pooled = cls(selective=False).fit(X, metadata=meta)
    target_normal = [_clip(rng, tilt=6.0, gain_db=12.0) for _ in range(10)]
    target_anomaly = [_clip(rng, tilt=6.0, gain_db=12.0, tone=slice(20, 22)) for _ in range(10)]
    s_n, s_a = selective.score_samples(target_normal), selective.score_samples(target_anomaly)
    assert s_a.min() > s_n.max()
    assert np.mean(s_n > selective.threshold_) <= 0.3, "target normals are not taken for anomalies"
    # with three target clips among forty source clips, pooling calls most target normals anomalous
    assert np.mean(pooled.score_samples(target_normal) > pooled.threshold_) > np.mean(s_n > selective.threshold_)


def test_parameters_are_validated(rng):
    X = [_clip(rng) for _ in range(4)]
    with pytest.raises(ParameterError, match="shrinkage"):
        GaussianDetector(shrinkage=2.0).fit(X)
    with pytest.raises(ParameterError, match="n_bands"):
        KnnDetector(n_bands=N_MELS + 1).fit(X)
    with pytest.raises(ParameterError, match="n_neighbors"):
        KnnDetector(n_neighbors=0).fit(X)
    with pytest.raises(ParameterError, match="n_frames"):
        GaussianDetector(n_frames=2).fit(X)
    with pytest.raises(ParameterError, match="metadata"):
        GaussianDetector().fit(X, metadata=[{}])
    det = GaussianDetector(shrinkage=0.5).fit(X)
    assert det.shrinkage_ == 0.5
    with pytest.raises(ParameterError, match="mel bands"):
        det.score_samples([np.zeros((16, 40), np.float32)])


# ---------------------------------------------------------------------- bundles
@pytest.mark.parametrize("cls", DETECTORS)
def test_bundle_scores_like_the_detector(cls, rng, tmp_path):
    pytest.importorskip("torch")
    from earshot.bundle import Bundle, load_detector, save_bundle

    X, meta = _domain_data(rng, n_source=20, n_target=4)
    det = cls().fit(X, metadata=meta)
    path = save_bundle(tmp_path / "m", det, features=FeatureConfig(n_mels=N_MELS))
    bundle = Bundle(path)
    test = [_clip(rng, n_time=n) for n in (MIN_FRAMES, 60, 60, 97)] + [_clip(rng, tone=slice(3, 5))]
    windows = bundle.window_scores(test)
    assert all(w.shape == (1,) for w in windows), "one window per clip"
    np.testing.assert_allclose(bundle.score_samples(test), det.score_samples(test), rtol=2e-3, atol=2e-3)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"]["kind"] == cls.kind and manifest["aggregate"] == "mean"
    assert manifest["scoring"]["min_frames"] == MIN_FRAMES
    assert manifest["threshold"]["source"] == "cross-fit"
    again = load_detector(path)
    # (the reloaded centre, scale and references went through the float32 weights)
    np.testing.assert_allclose(again.score_samples(test), det.score_samples(test), rtol=1e-5)
    assert again.threshold_ == det.threshold_


def test_cli_trains_frugal_models_end_to_end(tmp_path, write_wav, capsys):
    pytest.importorskip("torch")
    from earshot.cli.app import main

    sr = 16000
    rng = np.random.default_rng(1)
    t = np.arange(sr) / sr
    for label, n in (("normal", 12), ("abnormal", 3)):
        for i in range(n):
            y = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.02 * rng.normal(size=t.size)
            if label == "abnormal":
                y += 0.1 * np.sin(2 * np.pi * 2500 * t)
            write_wav(tmp_path / "data" / "pump" / label / f"{i:03d}.wav", (y / 2).astype(np.float32), sr)
    for kind in ("gauss", "knn"):
        out = tmp_path / kind
        assert main(["train", str(tmp_path / "data"), "--out", str(out), "--model", kind, "--n-mels", "32"]) == 0
        assert main(["evaluate", str(out), str(tmp_path / "data"), "--json", str(tmp_path / f"{kind}.json")]) == 0
        report = json.loads((tmp_path / f"{kind}.json").read_text())
        assert report["groups"]["pump"]["auc"] == 1.0
        assert main(["info", str(out)]) == 0
        assert f"detector: {kind}" in capsys.readouterr().out


def test_scoring_a_bundle_imports_no_torch(rng, tmp_path):
    pytest.importorskip("torch")
    import subprocess
    import sys

    from earshot.bundle import save_bundle

    det = KnnDetector().fit([_clip(rng) for _ in range(6)])
    path = save_bundle(tmp_path / "m", det, features=FeatureConfig(n_mels=N_MELS))
    np.save(tmp_path / "x.npy", _clip(rng))
    code = (f"import sys, numpy as np; from earshot.bundle import Bundle; "
            f"s = Bundle({str(path)!r}).score_samples([np.load({str(tmp_path / 'x.npy')!r})]); "
            f"assert s.shape == (1,) and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- two heads (issue 14)
def test_pooled_mean_and_peak_and_their_torch_twin(rng):
    torch = pytest.importorskip("torch")
    from earshot.models.frugal import ClipStats

    clips = [_clip(rng, n_time=n) for n in (MIN_FRAMES, 80)]
    f = clip_stats(clips, n_bands=4, n_mean_bands=8, peak=True)
    assert f.shape == (2, n_clip_stats(N_MELS, 4, 8, True)) == (2, len(stat_names(N_MELS, 4, 8, True)))
    np.testing.assert_allclose(f[1, :8], clips[1].mean(axis=1) @ band_matrix(N_MELS, 8), rtol=1e-5)
    assert f[1, -1] == pytest.approx(float(clips[1].max()))
    module = ClipStats(N_MELS, 4, n_mean_bands=8, peak=True)
    for c, r in zip(clips, f):
        np.testing.assert_allclose(module(torch.from_numpy(c.T[None].copy())).numpy()[0], r, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_bundle_of_the_first_layout_still_loads_and_scores(cls, rng, tmp_path):
    """A bundle written before ``heads``/``n_mean_bands`` existed is the one-head layout."""
    pytest.importorskip("torch")
    from earshot.bundle import Bundle, load_detector, save_bundle

    X, meta = _domain_data(rng, n_source=12, n_target=3)
    det = cls(heads=1, n_mean_bands=None).fit(X, metadata=meta)
    path = save_bundle(tmp_path / "m", det, features=FeatureConfig(n_mels=N_MELS))
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    params = manifest["model"]["params"]
    assert params.pop("heads") == 1 and params.pop("n_mean_bands") is None
    manifest_path.write_text(json.dumps(manifest))
    test = [_clip(rng) for _ in range(3)] + [_clip(rng, tone=slice(3, 5))]
    old = load_detector(path)
    assert old.heads == 1 and old.n_mean_bands is None
    np.testing.assert_allclose(old.score_samples(test), det.score_samples(test), rtol=1e-6)
    np.testing.assert_allclose(Bundle(path).score_samples(test), det.score_samples(test), rtol=2e-3, atol=2e-3)


def test_the_level_is_the_mean_power_and_its_torch_twin_agrees(rng):
    torch = pytest.importorskip("torch")
    from earshot.models.frugal import ClipStats

    clips = [_clip(rng, n_time=n) for n in (MIN_FRAMES, 80)]
    f = clip_stats(clips, n_bands=4, n_mean_bands=8, peak=True, level="leq")
    for c, r in zip(clips, f):
        assert r[-1] == pytest.approx(10 * np.log10(np.mean(10 ** (c.astype(np.float64) / 10))))
    assert stat_names(N_MELS, 4, 8, True, level="leq")[-1] == "leq"
    # one cell 10 dB above the loudest moves the loudest-cell level by 10 dB, the mean power by far less
    loud = clips[1].copy()
    loud[0, 0] = loud.max() + 10.0
    by_max = clip_stats([clips[1], loud], n_bands=4, n_mean_bands=8, peak=True, level="max")[:, -1]
    by_leq = clip_stats([clips[1], loud], n_bands=4, n_mean_bands=8, peak=True, level="leq")[:, -1]
    assert by_max[1] - by_max[0] == pytest.approx(10.0)
    assert 0.0 < by_leq[1] - by_leq[0] < 2.0
    module = ClipStats(N_MELS, 4, n_mean_bands=8, peak=True, level="leq")
    for c, r in zip(clips, f):
        np.testing.assert_allclose(module(torch.from_numpy(c.T[None].copy())).numpy()[0], r, rtol=1e-4, atol=1e-3)
    with pytest.raises(ParameterError, match="level"):
        clip_stats(clips, peak=True, level="rms")


@pytest.mark.parametrize("cls", DETECTORS)
def test_a_two_head_bundle_without_level_is_the_loudest_cell(cls, rng, tmp_path):
    """A two-head bundle written before ``level`` existed measured the level as the maximum."""
    pytest.importorskip("torch")
    from earshot.bundle import Bundle, load_detector, save_bundle

    X, meta = _domain_data(rng, n_source=12, n_target=3)
    det = cls(level="max").fit(X, metadata=meta)
    assert cls().level == "leq"
    path = save_bundle(tmp_path / "m", det, features=FeatureConfig(n_mels=N_MELS))
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["model"]["params"].pop("level") == "max"
    manifest_path.write_text(json.dumps(manifest))
    test = [_clip(rng) for _ in range(3)] + [_clip(rng, gain_db=6.0)]
    old = load_detector(path)
    assert old.level == "max"
    np.testing.assert_allclose(old.score_samples(test), det.score_samples(test), rtol=1e-6)
    np.testing.assert_allclose(Bundle(path).score_samples(test), det.score_samples(test), rtol=2e-3, atol=2e-3)
    with pytest.raises(ParameterError, match="level"):
        cls(level="peak").fit(X, metadata=meta)
