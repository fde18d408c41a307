"""The Detector contract, run over every registered detector (and a loaded bundle).

Conventions pinned here: higher score = more anomalous; label 1 = anomaly; predict returns 0/1;
decision_function = score_samples - threshold_; scoring before fit raises NotFittedError;
the constructor only stores parameters; same seed, same result.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from earshot.detection import DETECTORS, detector_class, make_detector
from earshot.errors import NotFittedError, ParameterError

from helpers.spectra import sloped_clips

FAST = {"dense-ae": {"epochs": 3, "hidden": 32, "n_layers": 2, "batch_size": 256},
        "cnn": {"epochs": 3, "n_frames": 16, "width": 8, "n_blocks": 2, "batch_size": 16, "patience": 10},
        "lstm-ae": {"epochs": 3, "n_frames": 8, "window_hop": 4, "hidden": 16, "bottleneck": 8, "batch_size": 64},
        "gauss": {"n_bands": 4}, "knn": {"n_neighbors": 2, "n_bands": 4},
        "embed": {"epochs": 3, "width": 16, "embedding_dim": 16, "crop_frames": 16, "batch_size": 16},
        "auto": {"candidates": "gauss,knn"}}


def _training(kind, rng, n):
    """fit() arguments: n normal clips; supervised detectors also get n // 2 labelled anomalies."""
    normal = sloped_clips(rng, n)
    if not detector_class(kind).uses_labels:
        return (normal,)
    return (normal + sloped_clips(rng, n // 2, tone=slice(10, 14)), np.array([0] * n + [1] * (n // 2)))


@pytest.fixture(scope="module")
def tiny_encoder_path(tmp_path_factory):
    """The ONNX encoder (with its contract) that ``encoder`` needs, built in the test run."""
    pytest.importorskip("onnx")
    from helpers.encoder import tiny_encoder

    return tiny_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(params=sorted(DETECTORS))
def kind(request):
    if request.param == "encoder":
        FAST["encoder"] = {"encoder": str(request.getfixturevalue("tiny_encoder_path"))}
    return request.param


def test_constructor_only_stores_parameters(kind):
    cls = detector_class(kind)
    sig = inspect.signature(cls)
    assert all(p.kind is p.KEYWORD_ONLY for p in sig.parameters.values())
    det = cls(**FAST[kind])
    for name, value in FAST[kind].items():
        assert getattr(det, name) == value
    assert not [a for a in vars(det) if a.endswith("_")], "no learned state before fit"
    assert all(det.get_params()[name] == value for name, value in FAST[kind].items())


def test_not_fitted_raises(kind, rng):
    det = make_detector(kind, **FAST[kind])
    X = sloped_clips(rng, 2)
    for method in (det.score_samples, det.decision_function, det.predict):
        with pytest.raises(NotFittedError):
            method(X)


def test_fit_returns_self_and_conventions(kind, rng):
    det = make_detector(kind, **FAST[kind])
    assert det.fit(*_training(kind, rng, 24)) is det
    assert np.isfinite(det.threshold_)
    assert det.train_scores_.ndim == 1
    assert "epochs" not in FAST[kind] or len(det.history_["loss"]) == FAST[kind]["epochs"]
    test_n, test_a = sloped_clips(rng, 8), sloped_clips(rng, 8, tone=slice(10, 14))
    s_n, s_a = det.score_samples(test_n), det.score_samples(test_a)
    assert s_n.shape == (8,) and s_a.shape == (8,)
    # higher = more anomalous: clips with a strong extra tone score above normal clips
    assert s_a.min() > s_n.max()
    X = test_n + test_a
    d = det.decision_function(X)
    np.testing.assert_allclose(d, det.score_samples(X) - det.threshold_)
    pred = det.predict(X)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (d > 0).astype(int))
    assert pred[8:].all(), "the obvious anomalies are predicted as 1"


def test_same_seed_same_result(kind, rng):
    args = _training(kind, rng, 16)
    X = args[0]
    a = make_detector(kind, random_state=3, **FAST[kind]).fit(*args)
    b = make_detector(kind, random_state=3, **FAST[kind]).fit(*args)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.threshold_ == b.threshold_


def test_bad_input(kind, rng):
    det = make_detector(kind, **FAST[kind])
    with pytest.raises(ParameterError, match="at least one clip"):
        det.fit([])
    with pytest.raises(ParameterError, match=r"X\[1\]"):
        det.fit([np.zeros((32, 60), np.float32), np.zeros((16, 60), np.float32)])
    with pytest.raises(ParameterError, match="frames"):
        det.fit([np.zeros((32, 2), np.float32)])
    with pytest.raises(ParameterError, match="threshold"):
        make_detector(kind, threshold="median", **FAST[kind]).fit(sloped_clips(rng, 8))


def test_unknown_kind():
    with pytest.raises(ParameterError, match="model"):
        make_detector("transformer")
