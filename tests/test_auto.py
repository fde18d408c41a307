"""``--model auto``: the choice uses training normals only, is recorded, and scores like the chosen one."""

from __future__ import annotations

import csv
import json
from functools import partial

import numpy as np
import pytest

from earshot.detection.auto import CORRUPTIONS, AutoDetector, choose, corrupt, rank_auc
from earshot.errors import ParameterError

from helpers.spectra import machine_clip

N_MELS = 32


_clip = partial(machine_clip, n_mels=N_MELS)  # a hum in band 6, 12 dB up


class NoLabels(dict):
    """Clip metadata that fails the test if anything reads a label from it."""

    def __getitem__(self, key):
        assert key != "label", "auto read a label"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "label", "auto read a label"
        return super().get(key, default)


def test_corruptions_are_seeded_and_change_the_clip(rng):
    x = _clip(rng)
    for kind in CORRUPTIONS:
        a = corrupt(x, kind, np.random.default_rng(1))
        b = corrupt(x, kind, np.random.default_rng(1))
        assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
        changes = [np.abs(corrupt(x, kind, np.random.default_rng(s)) - x).max() for s in range(20)]
        assert min(changes) > 0.0 and max(changes) > 2.5, f"{kind}: from subtle to obvious"
        if kind not in ("tilt", "level", "modulation", "shift"):  # (those four move levels both ways)
            assert (a >= x - 1e-4).all(), f"{kind} adds power, it never removes any"
    with pytest.raises(ParameterError, match="kind"):
        corrupt(x, "hum", rng)


def test_rank_auc_matches_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    n, a = rng.normal(size=30), rng.normal(0.5, 1, size=20)
    a[:3] = n[:3]  # ties
    assert rank_auc(n, a) == pytest.approx(metrics.roc_auc_score([0] * 30 + [1] * 20, np.r_[n, a]))


def test_chooses_from_training_normals_only_and_records_why(rng):
    X = [_clip(rng) for _ in range(20)] + [_clip(rng, gain_db=10.0) for _ in range(4)]
    meta = [NoLabels(domain="source", label=0)] * 20 + [NoLabels(domain="target", label=0)] * 4
    det = AutoDetector(candidates="gauss,knn").fit(X, metadata=meta)
    sel = det.selection_
    assert sel["chosen"] in ("gauss", "knn") and det.detector_.kind == sel["chosen"]
    assert sel["n_holdout"] == 5 + 1 and sel["n_synthetic"] == 6 * len(CORRUPTIONS) and sel["n_fit"] == 18
    for kind in ("gauss", "knn"):
        c = sel["candidates"][kind]
        assert 0.0 <= c["auc"] <= 1.0 and set(c["auc_by_corruption"]) == set(CORRUPTIONS)
    assert sel["chosen"] == choose(sel["candidates"])[0]
    assert "held-out normal" in sel["reason"] and "synthetic" in sel["reason"]
    assert det.threshold_ == det.detector_.threshold_
    np.testing.assert_array_equal(det.score_samples(X[:3]), det.detector_.score_samples(X[:3]))
    again = AutoDetector(candidates="gauss,knn").fit(X, metadata=meta).selection_
    for c in (*again["candidates"].values(), *sel["candidates"].values()):
        c.pop("fit_seconds")
    assert again == sel, "same seed, same comparison"


def _scored(**aucs):
    return {k: {"auc": float(np.mean(v)), "auc_by_corruption": dict(zip(CORRUPTIONS, v))} for k, v in aucs.items()}


def test_the_simplest_candidate_is_kept_unless_beaten_beyond_the_noise():
    noisy = np.array([0.9, 0.5, 0.8, 0.6, 0.95, 0.55, 0.7, 0.75, 0.65])
    # knn higher on average, but by less than the spread of the per-family differences allows
    mixed = noisy + np.array([0.1, -0.1, 0.1, -0.05, 0.03, -0.08, 0.12, 0.02, -0.1]) + 0.01
    chosen, why = choose(_scored(gauss=noisy, knn=mixed))
    assert np.mean(mixed) > np.mean(noisy) and chosen == "gauss"
    assert "simplest" in why and "standard errors" in why
    # knn higher on every family: a real gain
    chosen, why = choose(_scored(gauss=noisy, knn=noisy + 0.08, embed=noisy + 0.02))
    assert chosen == "knn" and "more than 2 standard errors" in why
    # several beat the first: the highest mean among them
    assert choose(_scored(gauss=noisy, knn=noisy + 0.05, embed=noisy + 0.1))[0] == "embed"
    assert choose(_scored(gauss=noisy, knn=noisy))[0] == "gauss", "a tie keeps the simplest"


def test_too_few_clips_take_a_frugal_detector(rng):
    det = AutoDetector().fit([_clip(rng) for _ in range(3)])
    assert det.selection_["chosen"] == "gauss" and "too few" in det.selection_["reason"]


def test_bad_candidates():
    with pytest.raises(ParameterError, match="candidates"):
        AutoDetector(candidates="gauss,auto").fit([np.zeros((8, 10))] * 3)
    with pytest.raises(ParameterError, match="candidates"):
        AutoDetector(candidates="gauss,transformer").fit([np.zeros((8, 10))] * 3)
    with pytest.raises(ParameterError, match="holdout_fraction"):
        AutoDetector(holdout_fraction=1.0).fit([np.zeros((8, 10))] * 3)


def test_train_on_data_whose_test_set_has_no_labels(tmp_path, write_wav, capsys):
    """A manifest whose test clips carry no label: auto trains, and info shows its choice."""
    pytest.importorskip("torch")
    from earshot.bundle import Bundle, load_detector
    from earshot.cli.app import main

    sr = 16000
    rng = np.random.default_rng(2)
    t = np.arange(sr) / sr
    rows = []
    for i in range(24):
        y = 0.2 * np.sin(2 * np.pi * 150 * t) + 0.02 * rng.normal(size=t.size)
        rel = f"clips/{i:03d}.wav"
        write_wav(tmp_path / "data" / rel, (y / 2).astype(np.float32), sr)
        rows.append({"path": rel, "label": "0" if i < 16 else "", "machine": "pump",
                     "split": "train" if i < 16 else "test"})
    with open(tmp_path / "data" / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "machine", "split"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "model"
    code = main(["train", str(tmp_path / "data"), "--out", str(out), "--model", "auto", "--n-mels", "32",
                 "-p", "candidates=gauss,knn"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "auto"
    sel = manifest["fitted"]["selection"]
    assert manifest["training"]["n_clips"] == 16 and sel["n_clips"] == 16, "the unlabelled test clips stay out"
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert f"auto chose {sel['chosen']}" in capsys.readouterr().out
    files = [str(tmp_path / "data" / r["path"]) for r in rows[16:]]
    assert main(["score", str(out), *files]) == 0
    scores = [r["score"] for r in json.loads(capsys.readouterr().out)]
    detector = load_detector(out)
    assert detector.detector_.kind == sel["chosen"]
    bundle = Bundle(out)
    clips = [bundle.extract(f) for f in files]
    np.testing.assert_allclose(scores, detector.score_samples(clips), rtol=2e-3, atol=2e-3)


@pytest.mark.slow
def test_real_dcase2023_clips_with_auto_gauss_and_knn(shared_data, tmp_path):
    """Two training clips per machine: auto (per machine) and knn (all machines) train and score."""
    pytest.importorskip("torch")
    from earshot.bundle import load_model
    from earshot.pipeline import evaluate, train

    data = shared_data / "dcase2023"
    for kind, group_by in (("auto", "machine"), ("knn", "none")):
        result = train(data, tmp_path / kind, model=kind, group_by=group_by)
        if group_by == "machine":
            assert len(result.groups) == 7 and all(g["n_clips"] == 2 for g in result.groups.values())
        model = load_model(tmp_path / kind)
        report = evaluate(model, data)
        assert sum(g["n_normal"] + g["n_anomaly"] for g in report["groups"].values()) == 12
        if kind == "auto":
            sel = model.bundles["ToyCar"].manifest["fitted"]["selection"]
            assert sel["chosen"] == "gauss" and "too few" in sel["reason"]
            assert report["groups"]["ToyCar"]["auto_choice"]["chosen"] == "gauss", "the report says what auto chose"
            from earshot.reports.evaluation import render_html

            page = render_html(report, model, data=data)
            assert "<b>auto chose gauss</b>" in page and "too few" in page, "and so does the HTML page"
