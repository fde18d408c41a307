"""The LSTM autoencoder: a pure module with real time steps, scored through ONNX like the dense AE."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from earshot.cli.app import main
from earshot.detection import make_detector

from helpers.datasets import write_hum_dataset
from helpers.long_case import FAULT, long_case, read_events
from helpers.spectra import sloped_clips
from helpers.torch_threads import single_torch_thread

torch = pytest.importorskip("torch")

SMALL = {"epochs": 4, "n_frames": 8, "window_hop": 4, "hidden": 16, "bottleneck": 8, "batch_size": 64}


_clips = partial(sloped_clips, n_mels=24, n_time=50)


def test_module_shapes_and_windows():
    from earshot.models import LstmAutoencoder, SequenceErrorModel

    ae = LstmAutoencoder(12, 6, hidden=8, bottleneck=4)
    assert ae(torch.zeros(3, 6, 12)).shape == (3, 6, 12)
    model = SequenceErrorModel(ae, torch.zeros(12), torch.ones(12), 6, 3).eval()
    for n_time, n_windows in ((6, 1), (8, 1), (9, 2), (30, 9)):
        assert model(torch.zeros(2, n_time, 12)).shape == (2, n_windows)
    x = torch.randn(1, 15, 12)
    w = model.windows(x)
    assert w.shape == (1, 4, 6, 12)
    torch.testing.assert_close(w[0, 2], x[0, 6:12])  # window i starts at frame i * window_hop
    with torch.no_grad():  # each window's error is that of the sequence on its own
        direct = ((ae(x[:, 3:9]) - x[:, 3:9]) ** 2).mean()
        torch.testing.assert_close(model(x)[0, 1], direct)


def test_real_time_steps_matter(rng):
    """A sequence model: reversing each clip in time changes its score (AMULET's one-step
    sequences could not tell)."""
    with single_torch_thread():
        X = []
        t = np.arange(50)
        for _ in range(16):  # a rising sweep along time in every clip
            x = np.full((24, 50), -60.0, np.float32) + rng.normal(0, 0.5, (24, 50)).astype(np.float32)
            x[(t * 23) // 49, t] = -10.0
            X.append(x)
        det = make_detector("lstm-ae", **{**SMALL, "epochs": 30}).fit(X)
    s_fwd = det.score_samples(X[:4])
    s_rev = det.score_samples([x[:, ::-1].copy() for x in X[:4]])
    assert s_rev.min() > s_fwd.max()


def test_bundle_scores_through_onnx_like_torch(rng, tmp_path):
    from earshot.bundle import Bundle, load_detector, save_bundle
    from earshot.features import FeatureConfig

    with single_torch_thread():
        det = make_detector("lstm-ae", **SMALL).fit(_clips(rng, 20))
        save_bundle(tmp_path / "b", det, features=FeatureConfig(n_mels=24, n_frames=8))
    bundle = Bundle(tmp_path / "b")
    test = _clips(rng, 3) + _clips(rng, 2, n_time=37) + _clips(rng, 2, tone=slice(5, 9))
    np.testing.assert_allclose(bundle.score_samples(test), det.score_samples(test), rtol=1e-4)
    assert bundle.threshold_ == det.threshold_ and bundle.kind == "lstm-ae"
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["model"]["params"]["window_hop"] == 4 and manifest["scoring"]["min_frames"] == 8
    again = load_detector(tmp_path / "b")  # weights only, no pickled code
    np.testing.assert_allclose(again.score_samples(test), det.score_samples(test), rtol=1e-5)


def test_train_evaluate_and_score_from_the_command_line(rng, tmp_path, capsys):
    data = write_hum_dataset(tmp_path / "data", rng, n_normal=16, n_abnormal=4, fault="whine")
    model = tmp_path / "model"
    with single_torch_thread():
        code = main(["train", str(data), "--out", str(model), "--model", "lstm-ae", "--n-mels", "32",
                     "--epochs", "5", "-p", "hidden=16"])
    assert code == 0, capsys.readouterr().err
    code = main(["evaluate", str(model), str(data), "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    group = report["groups"]["fan/id_00"]
    assert group["n_anomaly"] == 4 and group["auc"] >= 0.9
    code = main(["score", str(model), str(data / "fan" / "id_00" / "abnormal" / "00000000.wav"), "--format", "csv"])
    assert code == 0 and "fan/id_00" in capsys.readouterr().out


def test_lstm_ae_detects_the_long_recording_fault(tmp_path_factory, tmp_path, capsys):
    case = long_case(tmp_path_factory, model="lstm-ae")
    code = main(["detect", str(case["model"]), str(case["long"]), "--out", str(tmp_path / "d"), "--no-picture"])
    assert code == 0, capsys.readouterr().err
    events = read_events(tmp_path / "d" / "events.csv")
    assert len(events) == 1, events
    assert abs(events[0]["start_s"] - FAULT[0]) <= 1.0 and abs(events[0]["end_s"] - FAULT[1]) <= 1.0
