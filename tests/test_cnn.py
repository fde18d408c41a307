"""The supervised spectrogram CNN: augmentation, validation split, quality floor, ONNX bundle, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earshot.detection.augment import SpecAugment, apply_mixup, draw_mixup
from earshot.detection.cnn import CNNDetector, f1_optimal_threshold, stratified_validation_split
from earshot.errors import ParameterError

from helpers.cli import one_line_error

TINY = {"n_frames": 16, "width": 8, "n_blocks": 2, "epochs": 8, "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------- SpecAugment and mixup
def test_specaugment_keeps_shape_and_dtype_and_is_seeded():
    x = np.random.default_rng(0).normal(size=(6, 32, 16)).astype(np.float32)
    aug = SpecAugment(time_masks=2, max_time_frames=4, freq_masks=2, max_freq_bands=6)
    a = aug(x, np.random.default_rng(1))
    b = aug(x, np.random.default_rng(1))
    c = aug(x, np.random.default_rng(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.shares_memory(a, x) and np.isfinite(x).all()  # input untouched
    masked = a != x
    assert np.all(a[masked] == 0.0)
    # each mask is a band of whole rows / columns no wider than asked
    m = aug.draw(np.random.default_rng(1), 6, 32, 16)
    assert (m.time_width <= 4).all() and (m.freq_width <= 6).all()
    assert (m.time_start + m.time_width <= 16).all() and (m.freq_start + m.freq_width <= 32).all()
    np.testing.assert_array_equal(masked, m.boolean(32, 16) & (x != 0))


def test_specaugment_on_torch_matches_numpy_and_keeps_4d_shape():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(4, 1, 20, 12)).astype(np.float32)
    aug = SpecAugment(time_masks=1, max_time_frames=5, freq_masks=1, max_freq_bands=5, fill=-1.0)
    masks = aug.draw(np.random.default_rng(3), 4, 20, 12)
    t = aug.apply(torch.from_numpy(x), masks)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == x.shape
    np.testing.assert_array_equal(t.numpy(), aug.apply(x, masks))
    with pytest.raises(ParameterError, match="x"):
        aug.apply(np.zeros((4, 20)), masks)
    with pytest.raises(ParameterError, match="time_masks"):
        SpecAugment(time_masks=-1)


def test_specaugment_without_masks_is_identity():
    x = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(SpecAugment(time_masks=0, freq_masks=0)(x, np.random.default_rng(0)), x)


def test_mixup_is_seeded_and_blends_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 5)).astype(np.float32)
    y = np.array([0, 1] * 4, np.float32)
    mix = draw_mixup(np.random.default_rng(5), 8, 0.4)
    mx, my = apply_mixup(x, y, mix)
    mx2, my2 = apply_mixup(x, y, draw_mixup(np.random.default_rng(5), 8, 0.4))
    assert mx.shape == x.shape and my.shape == y.shape and mx.dtype == x.dtype
    np.testing.assert_array_equal(mx, mx2)
    assert ((my >= 0) & (my <= 1)).all()
    np.testing.assert_allclose(mx[0], mix.lam[0] * x[0] + (1 - mix.lam[0]) * x[mix.perm[0]], rtol=1e-6)
    same = draw_mixup(rng, 8, 0.0)
    np.testing.assert_array_equal(apply_mixup(x, y, same)[0], x)


# ---------------------------------------------------------------------- validation split and thresholds
def test_validation_split_is_stratified_disjoint_and_covering():
    y = np.array([0] * 20 + [1] * 5)
    tr, va = stratified_validation_split(y, 0.2, np.random.default_rng(0))
    assert not set(tr) & set(va) and sorted(set(tr) | set(va)) == list(range(25))
    assert (y[va] == 0).sum() == 4 and (y[va] == 1).sum() == 1
    small = np.array([0, 0, 0, 1, 1])
    tr, va = stratified_validation_split(small, 0.1, np.random.default_rng(0))
    assert set(small[va]) == {0, 1} and set(small[tr]) == {0, 1}  # one of each class on both sides


def test_f1_optimal_threshold():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
    t = f1_optimal_threshold(y, s)
    pred = s > t
    f1 = 2 * (pred & (y == 1)).sum() / (pred.sum() + (y == 1).sum())
    assert f1 == pytest.approx(0.8)


# ---------------------------------------------------------------------- the detector
def _synth_clips(n_normal, n_abnormal, rng, *, machine="fan", n_mels=32, duration_s=1.5):
    """Log-mel clips of one synthetic machine; abnormal clips cycle through its fault types."""
    from earshot.features.config import FeatureConfig
    from earshot.features.mel import log_mel
    from earshot.synth import FAULTS, render_clip

    cfg = FeatureConfig(n_mels=n_mels)
    faults = FAULTS[machine]
    X = []
    for i in range(n_normal + n_abnormal):
        abnormal = i >= n_normal
        y = render_clip(machine, machine_id=0, fault=faults[i % len(faults)] if abnormal else None,
                        severity=float(rng.uniform(0.5, 1.0)) if abnormal else 0.0, duration_s=duration_s,
                        sr=16000, snr_db=0.0, rng=rng)
        X.append(log_mel(y, cfg))
    return X, np.array([0] * n_normal + [1] * n_abnormal)


@pytest.fixture(scope="module")
def fan_data():
    rng = np.random.default_rng(0)
    train = _synth_clips(30, 24, rng)
    test = _synth_clips(20, 20, rng)
    return train, test


@pytest.fixture(scope="module")
def fitted(fan_data):
    (X, y), _ = fan_data
    return CNNDetector(random_state=0, **TINY).fit(X, y)


def test_cnn_beats_chance_clearly_on_faults_it_was_trained_on(fitted, fan_data):
    from earshot.evaluation.metrics import roc_auc

    _, (X_test, y_test) = fan_data
    scores = fitted.score_samples(X_test)
    assert ((scores >= 0) & (scores <= 1)).all(), "scores are anomaly probabilities"
    assert roc_auc(y_test, scores) >= 0.8
    assert fitted.predict(X_test)[y_test == 1].mean() > fitted.predict(X_test)[y_test == 0].mean()


def test_fit_records_the_validation_split_and_calibration(fitted, fan_data):
    (X, y), _ = fan_data
    tr, va = fitted.train_indices_, fitted.validation_indices_
    assert not set(tr) & set(va) and len(tr) + len(va) == len(X)
    assert set(y[va]) == {0, 1}
    assert fitted.threshold_source_ == "validation"
    assert len(fitted.calibration_scores_) == (y[va] == 0).sum()  # normal validation clips only
    h = fitted.history_
    assert 1 <= h["best_epoch"] <= h["stopped_epoch"] <= TINY["epochs"]
    assert len(h["loss"]) == h["stopped_epoch"] and all(v is not None for v in h["val_loss"])


def test_early_stopping_stops(fan_data):
    (X, y), _ = fan_data
    det = CNNDetector(random_state=0, **{**TINY, "epochs": 30, "patience": 1, "learning_rate": 0.05}).fit(X, y)
    assert det.history_["stopped_epoch"] < 30 and len(det.history_["loss"]) == det.history_["stopped_epoch"]
    assert det.history_["val_loss"][det.history_["best_epoch"] - 1] == min(det.history_["val_loss"])


def test_f1_threshold_only_when_asked(fan_data):
    (X, y), _ = fan_data
    det = CNNDetector(random_state=0, threshold="f1", **{**TINY, "epochs": 2}).fit(X, y)
    assert det.threshold_source_ == "validation-f1"


def test_supervised_fit_needs_both_classes(fan_data):
    (X, y), _ = fan_data
    det = CNNDetector(**TINY)
    with pytest.raises(ParameterError, match="supervised"):
        det.fit(X)
    with pytest.raises(ParameterError, match="both normal"):
        det.fit(X[:10], np.zeros(10, int))
    with pytest.raises(ParameterError, match="shape"):
        det.fit(X, y[:-1])
    with pytest.raises(ParameterError, match="class_weight"):
        CNNDetector(class_weight="auto").fit(X, y)


def test_bundle_scores_through_onnx_like_torch(fitted, fan_data, tmp_path):
    from earshot.bundle import Bundle
    from earshot.bundle.save import load_detector, save_bundle
    from earshot.features.config import FeatureConfig

    _, (X_test, _) = fan_data
    path = save_bundle(tmp_path / "b", fitted, features=FeatureConfig(n_mels=32))
    bundle = Bundle(path)
    # other lengths than training, including exactly one patch and a tail not on the hop grid
    clips = [X_test[0], X_test[1][:, :16], X_test[2][:, :29], np.concatenate([X_test[3], X_test[4]], axis=1)]
    np.testing.assert_allclose(bundle.score_samples(clips), fitted.score_samples(clips), atol=1e-5)
    assert [len(w) for w in bundle.window_scores(clips)] == [len(w) for w in fitted.window_scores(clips)]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "cnn" and manifest["scoring"]["min_frames"] == 16
    again = load_detector(path)
    np.testing.assert_allclose(again.score_samples(clips), fitted.score_samples(clips), atol=1e-6)


# ---------------------------------------------------------------------- command line with a labels CSV
@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, machines=("fan",), n_ids=1, n_normal=24, n_abnormal=16, duration_s=1.5, seed=1)
    return root


def test_train_cnn_without_labels_is_one_clear_error(synth_folder, tmp_path, capsys):
    from earshot.cli.app import main

    code = main(["train", str(synth_folder), "--out", str(tmp_path / "m"), "--model", "cnn", "--n-mels", "32"])
    err = capsys.readouterr().err
    one_line_error(code, err, "supervised", "--labels", "--split-file")
    assert not (tmp_path / "m").exists()


def test_train_cnn_with_labels_then_evaluate(synth_folder, tmp_path, capsys):
    from earshot.cli.app import main

    clips = sorted(synth_folder.glob("fan/id_00/*/*.wav"))
    labelled = [p for p in clips if int(p.stem) % 2 == 0]  # every other clip confirmed by people
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(
        f"{p.relative_to(synth_folder)},{'anomaly' if p.parent.name == 'abnormal' else 'normal'}\n" for p in labelled))
    # paths relative to the CSV's folder
    (tmp_path / "fan").symlink_to(synth_folder / "fan")
    out = tmp_path / "m"
    code = main(["train", str(synth_folder), "--out", str(out), "--model", "cnn", "--n-mels", "32", "--epochs", "3",
                 "--n-frames", "16", "--labels", str(labels), "-p", "width=8", "-p", "n_blocks=2"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    trained = set(manifest["training"]["files"])
    assert {str(p.resolve()) for p in labelled} <= trained
    assert manifest["fitted"]["class_counts"]["anomaly"] == sum(p.parent.name == "abnormal" for p in labelled)
    capsys.readouterr()
    code = main(["evaluate", str(out), str(synth_folder), "--json", str(tmp_path / "r.json")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    scored = {c["path"] for g in report["groups"].values() for c in g["clips"]}
    assert scored and not scored & trained, "evaluate never scores a clip the model trained on"


def test_labels_file_errors(synth_folder, tmp_path, capsys):
    from earshot.cli.app import main

    bad = tmp_path / "labels.csv"
    bad.write_text("path,label\nfan/id_00/normal/99999999.wav,normal\n")
    code = main(["train", str(synth_folder), "--out", str(tmp_path / "m"), "--model", "cnn", "--labels", str(bad)])
    err = capsys.readouterr().err
    one_line_error(code, err, "matches no clip", "99999999")
