"""Model bundles: save/load, ONNX parity, format checks, atomic writes, model-set routing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from earshot.bundle import Bundle, load_detector, load_model, save_bundle
from earshot.bundle.format import FORMAT_VERSION
from earshot.detection.autoencoder import AutoencoderDetector
from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig

from helpers.spectra import flat_clips

N_MELS = 24
SMALL = {"epochs": 3, "hidden": 32, "n_layers": 2, "batch_size": 256}


_clips = partial(flat_clips, n_mels=N_MELS, n_time=50, sd=3)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    return AutoencoderDetector(**SMALL).fit(_clips(rng, 30)), _clips(rng, 6) + _clips(rng, 3, n_time=23)


@pytest.fixture()
def bundle_dir(tmp_path, fitted):
    det, _ = fitted
    return save_bundle(tmp_path / "model", det, features=FeatureConfig(n_mels=N_MELS),
                       training={"group": "fan/id_00", "group_by": "id"})


def test_bundle_files_and_manifest(bundle_dir, fitted):
    det, _ = fitted
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["manifest.json", "model.onnx", "weights.pt"]
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["format_version"] == FORMAT_VERSION
    assert m["score_direction"] == "higher-is-anomalous"
    assert m["threshold"] == {"value": det.threshold_, "method": "gamma:0.9", "source": det.threshold_source_,
                              "n_clips": det.n_calibration_clips_}
    assert m["features"]["n_mels"] == N_MELS and m["features"]["channel"] is None
    assert m["model"] == {"kind": "dense-ae", "params": det.get_params()}
    assert len(m["normalisation"]["mean"]) == N_MELS
    assert {"earshot", "numpy", "torch"} <= set(m["versions"])
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".")], "no temporary left"


def test_onnx_scores_match_torch(bundle_dir, fitted):
    det, X = fitted
    b = Bundle(bundle_dir)
    np.testing.assert_allclose(b.score_samples(X), det.score_samples(X), rtol=0, atol=1e-5)
    assert b.threshold_ == det.threshold_
    np.testing.assert_array_equal(b.predict(X), (b.score_samples(X) > b.threshold_).astype(int))
    for w_onnx, w_torch in zip(b.window_scores(X), det.window_scores(X)):
        np.testing.assert_allclose(w_onnx, w_torch, atol=1e-5)


def test_reloaded_detector_scores_identically(bundle_dir, fitted):
    det, X = fitted
    again = load_detector(bundle_dir)
    np.testing.assert_array_equal(again.score_samples(X), det.score_samples(X))
    assert again.threshold_ == det.threshold_ and again.history_ == det.history_


def test_bundle_refuses_refit_and_wrong_shapes(bundle_dir, rng):
    b = Bundle(bundle_dir)
    with pytest.raises(ParameterError, match="refit"):
        b.fit([])
    with pytest.raises(ParameterError, match="mel bands"):
        b.score_samples([np.zeros((N_MELS + 1, 40), np.float32)])
    with pytest.raises(ParameterError, match="frames"):
        b.score_samples([np.zeros((N_MELS, 3), np.float32)])


def test_unknown_format_version(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    m["format_version"] = 99
    (bundle_dir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown model format_version 99"):
        load_model(bundle_dir)


@pytest.mark.parametrize("damage", ["missing", "file", "empty", "no-onnx", "bad-json"])
def test_broken_model_directories(tmp_path, bundle_dir, damage):
    target = bundle_dir
    if damage == "missing":
        target = tmp_path / "nope"
    elif damage == "file":
        target = tmp_path / "file"
        target.write_text("x")
    elif damage == "empty":
        target = tmp_path / "empty"
        target.mkdir()
    elif damage == "no-onnx":
        (bundle_dir / "model.onnx").unlink()
    else:
        (bundle_dir / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=str(target.name)):
        load_model(target)


def test_failed_save_leaves_nothing(tmp_path, fitted, monkeypatch):
    import earshot.bundle.save as save_mod

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(save_mod, "export_onnx", boom)
    with pytest.raises(RuntimeError):
        save_bundle(tmp_path / "model", fitted[0], features=FeatureConfig(n_mels=N_MELS))
    assert list(tmp_path.iterdir()) == []


def test_scoring_imports_no_torch(bundle_dir, fitted, tmp_path):
    np.save(tmp_path / "x.npy", np.stack(fitted[1][:4]))
    code = (
        "import sys, numpy as np\n"
        "from earshot.bundle import load_model\n"
        f"m = load_model({str(bundle_dir)!r})\n"
        "b = m.bundles[m.groups[0]]\n"
        f"s = b.score_samples(list(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "assert s.shape == (4,)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'matplotlib', 'sklearn')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_score_files_in_lanes_keeps_scores_and_order(bundle_dir, tmp_path, monkeypatch):
    """More files than one lane step: same scores, same order, one on_file call per file."""
    import soundfile as sf

    from earshot.bundle import scorer
    from earshot.errors import AudioError

    rng = np.random.default_rng(5)
    paths = []
    for i in range(scorer._LANE_FILES * 5 + 3):
        p = tmp_path / f"c{i:03d}.wav"
        sf.write(p, (rng.normal(0, 0.05 * (1 + i % 7), 8000)).astype(np.float32), 16000)
        paths.append(p)
    b = Bundle(bundle_dir)
    calls = []
    scores = b.score_files(paths, on_file=lambda: calls.append(1))
    expected = b.score_samples([b.extract(p) for p in paths])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert len(calls) == len(paths) and len(set(np.round(scores, 4))) > 5, "the loudness differences show"
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="broken.wav"):
        b.score_files(paths[:40] + [tmp_path / "broken.wav"] + paths[40:])
    assert b.score_files([]).shape == (0,)
    monkeypatch.setattr(scorer, "usable_cores", lambda: 1)  # one core: no lanes, the same scores
    np.testing.assert_allclose(b.score_files(paths), expected, rtol=0, atol=1e-6)
