"""The dynamic-int8 scoring graph of a bundle: stored at save time only when exact enough,
run by default, float32 on request, older bundles unchanged, nothing of it on the scoring path."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from earshot.bundle import Bundle, load_model, save_bundle
from earshot.bundle.format import ONNX_FILE, ONNX_INT8_FILE
from earshot.bundle.quantize import INT8_TOLERANCE, MAX_CHECK_CLIPS, check_subset, store_int8_graph
from earshot.bundle.scorer import PRECISION_ENV
from earshot.detection.autoencoder import AutoencoderDetector
from earshot.detection.gauss import GaussianDetector
from earshot.errors import BundleError, ParameterError
from earshot.features.config import FeatureConfig

from helpers.spectra import flat_clips

N_MELS = 24
_clips = partial(flat_clips, n_mels=N_MELS, n_time=60, sd=3)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    train = _clips(rng, 30)
    det = AutoencoderDetector(epochs=3, hidden=32, n_layers=2, batch_size=256).fit(train)
    return det, train, _clips(rng, 5) + _clips(rng, 2, n_time=31)


@pytest.fixture()
def with_int8(tmp_path, fitted):
    det, train, _ = fitted
    return save_bundle(tmp_path / "model", det, features=FeatureConfig(n_mels=N_MELS), check_clips=train)


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_int8_graph_is_stored_checked_and_run_by_default(with_int8, fitted):
    _, train, test = fitted
    record = _manifest(with_int8)["scoring"]["int8"]
    assert record["graph"] == ONNX_INT8_FILE and (with_int8 / ONNX_INT8_FILE).is_file()
    assert record["op_types"] == ["Gemm"] and record["n_check_clips"] == min(len(train), MAX_CHECK_CLIPS)
    assert 0 <= record["max_rel_diff"] <= record["tolerance"] == INT8_TOLERANCE
    q8, f32 = Bundle(with_int8), Bundle(with_int8, precision="float32")
    assert (q8.graph, f32.graph) == (ONNX_INT8_FILE, ONNX_FILE)
    s_q8, s_f32 = q8.score_samples(test), f32.score_samples(test)
    assert not np.array_equal(s_q8, s_f32), "the int8 graph really runs"
    np.testing.assert_allclose(s_q8, s_f32, rtol=5 * INT8_TOLERANCE)
    assert load_model(with_int8, precision="float32").bundles["all"].graph == ONNX_FILE


def test_lanes_and_one_call_use_the_same_graph(with_int8, fitted, tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], (0.1 * rng.normal(size=16000)).astype(np.float32), 16000)
    b = Bundle(with_int8)
    expected = b.score_samples([b.extract(p) for p in paths])
    np.testing.assert_allclose(b.score_files(paths), expected, rtol=0, atol=1e-6)


def test_not_stored_when_over_tolerance(tmp_path, fitted):
    det, train, test = fitted
    path = save_bundle(tmp_path / "model", det, features=FeatureConfig(n_mels=N_MELS))
    record = store_int8_graph(path, train, how="mean", tolerance=0.0)  # any int8 rounding is over 0
    assert record["graph"] is None and record["max_rel_diff"] > 0
    assert not (path / ONNX_INT8_FILE).exists()


def test_no_clips_no_int8_and_older_bundles_score_as_before(tmp_path, fitted):
    det, _, test = fitted
    path = save_bundle(tmp_path / "model", det, features=FeatureConfig(n_mels=N_MELS))
    assert "int8" not in _manifest(path)["scoring"] and not (path / ONNX_INT8_FILE).exists()
    b = Bundle(path)
    assert b.graph == ONNX_FILE
    np.testing.assert_allclose(b.score_samples(test), det.score_samples(test), rtol=0, atol=1e-5)
    with pytest.raises(ParameterError, match="no int8 graph"):
        Bundle(path, precision="int8")


def test_models_without_matmul_or_unchecked_int8_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    clips = _clips(rng, 12)
    gauss = GaussianDetector().fit(clips)
    path = save_bundle(tmp_path / "gauss", gauss, features=FeatureConfig(n_mels=N_MELS), check_clips=clips)
    record = _manifest(path)["scoring"].get("int8")
    # gauss's Mahalanobis graph has a MatMul: it is tried, and stored only if within tolerance
    assert record is not None and (record["graph"] is not None) == (record["max_rel_diff"] <= INT8_TOLERANCE)
    assert (path / ONNX_INT8_FILE).exists() == (record["graph"] is not None)


def test_missing_int8_file_and_bad_precision_are_one_line_errors(with_int8, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "float32")
    assert Bundle(with_int8).graph == ONNX_FILE
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ParameterError, match=r"precision: expected one of auto, float32, int8, got 'half' \(from "):
        Bundle(with_int8)
    monkeypatch.delenv(PRECISION_ENV)
    (with_int8 / ONNX_INT8_FILE).unlink()
    with pytest.raises(BundleError, match="incomplete bundle .*model.int8.onnx"):
        Bundle(with_int8)


def test_check_subset_spreads_and_copies():
    clips = [np.full((2, 3), i, dtype=np.float32) for i in range(100)]
    sub = check_subset(clips)
    assert len(sub) == MAX_CHECK_CLIPS and sub[0][0, 0] == 0 and sub[-1][0, 0] == 99
    assert not np.shares_memory(sub[0], clips[0])
    assert check_subset([]) == []


def test_scoring_an_int8_bundle_imports_no_quantisation_module(with_int8, fitted):
    _, _, test = fitted
    np.save(with_int8.parent / "x.npy", test[0])
    code = ("import sys, numpy as np\nfrom earshot.bundle import load_model\n"
            f"b = load_model({str(with_int8)!r}).bundles['all']\nassert b.graph == {ONNX_INT8_FILE!r}\n"
            f"b.score_samples([np.load({str(with_int8.parent / 'x.npy')!r})])\n"
            "print([m for m in ('onnx', 'onnxruntime.quantization', 'sympy', 'torch') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"
