"""Dense autoencoder specifics: calibration on held-out normals, aggregation, the scoring graph."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from earshot.detection.aggregate import aggregate, parse_aggregate
from earshot.detection.autoencoder import AutoencoderDetector
from earshot.errors import ParameterError
from earshot.features.store import FrameStore

from helpers.spectra import flat_clips

SMALL = {"epochs": 2, "hidden": 32, "n_layers": 2, "batch_size": 256}


_clips = partial(flat_clips, n_mels=16, n_time=40, sd=2)


def test_threshold_from_held_out_normals(rng):
    det = AutoencoderDetector(validation_fraction=0.25, **SMALL).fit(_clips(rng, 40))
    assert det.threshold_source_ == "validation"
    assert det.n_calibration_clips_ == 10 and det.n_train_clips_ == 30
    assert len(det.history_["val_loss"]) == 2 and det.history_["best_epoch"] in (1, 2)


def test_few_clips_fall_back_to_training_scores(rng):
    det = AutoencoderDetector(**SMALL).fit(_clips(rng, 6))
    assert det.threshold_source_ == "train"
    np.testing.assert_array_equal(det.calibration_scores_, det.train_scores_)


def test_threshold_methods_are_applied(rng):
    X = _clips(rng, 20)
    det = AutoencoderDetector(threshold="max", validation_fraction=0.0, **SMALL).fit(X)
    assert det.threshold_ == pytest.approx(det.train_scores_.max())
    det = AutoencoderDetector(threshold="value:1.5", **SMALL).fit(X)
    assert det.threshold_ == 1.5


def test_frame_store_and_list_give_the_same_scores(rng):
    X = _clips(rng, 12)
    det = AutoencoderDetector(**SMALL).fit(X)
    np.testing.assert_allclose(det.score_samples(FrameStore.from_clips(X)), det.score_samples(X), rtol=1e-6)


def test_window_scores_and_aggregation(rng):
    X = _clips(rng, 10, n_time=30)
    det = AutoencoderDetector(aggregate="max", **SMALL).fit(X)
    windows = det.window_scores(X[:2])
    assert [w.shape for w in windows] == [(26,), (26,)]
    np.testing.assert_allclose(det.score_samples(X[:2]), [w.max() for w in windows])


def test_window_hop_scores_every_hop_th_window(rng, tmp_path):
    """window_hop=k scores the windows every k frames: the same errors as the every-frame graph
    at those starts, and the ONNX bundle (float32 and its int8 graph) agrees with torch."""
    import json

    from earshot.bundle import Bundle, load_detector, save_bundle
    from earshot.features import FeatureConfig

    X = _clips(rng, 12, n_time=30)
    every = AutoencoderDetector(**SMALL).fit(X)
    hop3 = AutoencoderDetector(window_hop=3, **SMALL).fit(X)
    assert [w.shape for w in hop3.window_scores(X[:2])] == [(9,), (9,)]  # (30 - 5) // 3 + 1
    hop3.model_.load_state_dict(every.model_.state_dict())  # same network: the windows must match
    for full, strided in zip(every.window_scores(X[:3]), hop3.window_scores(X[:3])):
        np.testing.assert_allclose(strided, full[::3], rtol=1e-5)
    short = _clips(rng, 2, n_time=7)  # (7 - 5) // 3 + 1 = 1 window
    assert [w.shape for w in hop3.window_scores(short)] == [(1,), (1,)]

    det = AutoencoderDetector(window_hop=2, **SMALL).fit(X)
    save_bundle(tmp_path / "b", det, features=FeatureConfig(n_mels=16))
    test = _clips(rng, 3) + _clips(rng, 2, n_time=33)
    for precision in ("float32", "auto"):
        bundle = Bundle(tmp_path / "b", precision=precision)
        np.testing.assert_allclose(bundle.score_samples(test), det.score_samples(test), rtol=2e-3)
    assert [w.shape for w in bundle.window_scores(test[-2:])] == [(15,), (15,)]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["model"]["params"]["window_hop"] == 2
    np.testing.assert_allclose(load_detector(tmp_path / "b").score_samples(test), det.score_samples(test), rtol=1e-5)


def test_the_exported_graph_folds_batch_norm_and_scores_alike(rng, tmp_path):
    """model.onnx has the batch norms folded into the linear layers and no Pow node (both slow
    in onnxruntime); its scores equal torch's, and the fitted torch model keeps its batch norms."""
    import onnx
    import torch

    from earshot.bundle import Bundle, save_bundle
    from earshot.features import FeatureConfig

    X = _clips(rng, 12, n_time=30)
    det = AutoencoderDetector(**SMALL).fit(X)
    save_bundle(tmp_path / "b", det, features=FeatureConfig(n_mels=16))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / "model.onnx")).graph.node}
    assert "Gemm" in ops and not ops & {"BatchNormalization", "Pow"}
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in det.model_.modules())
    test = _clips(rng, 4, n_time=30)
    np.testing.assert_allclose(Bundle(tmp_path / "b", precision="float32").score_samples(test),
                               det.score_samples(test), rtol=1e-5)


def test_a_bundle_saved_before_window_hop_scores_every_window(rng, tmp_path):
    import json

    from earshot.bundle import load_detector, save_bundle
    from earshot.features import FeatureConfig

    X = _clips(rng, 10, n_time=30)
    det = AutoencoderDetector(**SMALL).fit(X)
    save_bundle(tmp_path / "b", det, features=FeatureConfig(n_mels=16))
    path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["model"]["params"]["window_hop"]
    path.write_text(json.dumps(manifest))
    again = load_detector(tmp_path / "b")
    assert again.window_hop == 1 and [w.shape for w in again.window_scores(X[:1])] == [(26,)]
    np.testing.assert_allclose(again.score_samples(X[:3]), det.score_samples(X[:3]), rtol=1e-5)


def test_aggregate_specs():
    w = np.array([1.0, 2.0, 3.0, 10.0])
    assert aggregate(w, "mean") == 4.0
    assert aggregate(w, "max") == 10.0
    assert aggregate(w, "quantile:0.5") == 2.5
    assert parse_aggregate("quantile:1") == ("quantile", 1.0)
    for bad in ("median", "quantile:0", "quantile:x", "quantile:2"):
        with pytest.raises(ParameterError, match="aggregate"):
            parse_aggregate(bad)


@pytest.mark.parametrize("name,value", [("epochs", 0), ("batch_size", -1), ("validation_fraction", 1.0),
                                        ("learning_rate", 0.0), ("aggregate", "median"),
                                        ("window_hop", 0)])
def test_parameter_validation(rng, name, value):
    with pytest.raises(ParameterError, match=name if name != "aggregate" else "aggregate"):
        AutoencoderDetector(**{**SMALL, name: value}).fit(_clips(rng, 6))


# ---------------------------------------------------------------------- the shared training loop
def test_training_loop_keeps_the_best_epoch_and_stops_early():
    torch = pytest.importorskip("torch")
    from earshot.detection._training import run_epochs

    model = torch.nn.Linear(2, 1)
    val_losses = iter([3.0, 1.0, 2.0, 2.5, 0.5])
    seen, events = [], []

    def one_epoch() -> float:  # each epoch leaves a recognisable weight
        with torch.no_grad():
            model.bias.fill_(len(seen) + 1.0)
        seen.append(len(seen) + 1)
        return 10.0 - len(seen)

    run = run_epochs(model, 5, one_epoch, lambda: next(val_losses), patience=2,
                     progress=lambda *a: events.append(a))
    assert run.best_epoch == 2 and run.stopped_epoch == 4 and seen == [1, 2, 3, 4]
    assert model.bias.item() == 2.0 and not model.training, "epoch 2's weights, in eval mode"
    assert run.history() == {"loss": [9.0, 8.0, 7.0, 6.0], "val_loss": [3.0, 1.0, 2.0, 2.5], "best_epoch": 2}
    assert events[-1] == (4, 5, 6.0, 2.5)

    plain = run_epochs(model, 3, lambda: 1.0)  # nothing held out: every epoch runs, the last is kept
    assert plain.val_loss == [None] * 3 and plain.best_epoch == plain.stopped_epoch == 3


def test_training_loop_batches_split_and_calibration():
    torch = pytest.importorskip("torch")
    from earshot.detection._training import calibrate, holdout_split, train_epoch
    from earshot.detection.thresholds import ThresholdSpec

    model = torch.nn.Linear(1, 1, bias=False)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.0)
    sizes: list[int] = []

    def batch_loss(batch):
        sizes.append(len(batch))
        return model.weight.sum() * 0 + float(len(batch))  # a loss with a gradient, worth the batch size

    assert train_epoch(model, optimiser, np.arange(9), batch_loss, batch_size=4, min_batch=2) == 4.0
    assert sizes == [4, 4], "the last batch of one is skipped"

    train, val = holdout_split(20, 0.25, np.random.default_rng(0))
    assert len(val) == 5 and sorted(np.concatenate([train, val]).tolist()) == list(range(20))
    assert len(holdout_split(3, 0.5, np.random.default_rng(0))[1]) == 0, "too few clips: nothing held out"

    spec = ThresholdSpec.parse("max")
    held_out, in_sample = np.arange(5.0), np.arange(9.0)
    source, scores, threshold = calibrate(held_out, in_sample, spec)
    assert source == "validation" and scores is held_out and threshold == 4.0
    source, scores, threshold = calibrate(held_out[:4], in_sample, spec)  # fewer than 5 held out
    assert source == "train" and scores is in_sample and threshold == 8.0
