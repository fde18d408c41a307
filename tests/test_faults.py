"""Fault signatures: nearest confirmed fault, the self-calibrated "unlike" threshold, the pipeline."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from earshot.errors import DatasetError, ParameterError
from earshot.evaluation.faults import UNLIKE, FaultSignatures, confusion_matrix
from earshot.features.config import FeatureConfig
from earshot.features.mel import log_mel
from earshot.pipeline.faults import closest_faults, fault_embeddings
from earshot.synth import render_clip
from helpers.cli import one_line_error, run

SR = 16000


def clusters(rng, n=6):
    """Three tight clusters in 4-D, far apart, with their labels."""
    centres = {"bearing": [0, 0, 0, 0], "belt slip": [10, 0, 0, 0], "leak": [0, 10, 0, 0]}
    X = np.vstack([np.asarray(c, float) + 0.3 * rng.standard_normal((n, 4)) for c in centres.values()])
    return X, [f for f in centres for _ in range(n)], centres


def test_nearest_fault_and_unlike_far_point():
    rng = np.random.default_rng(0)
    X, labels, centres = clusters(rng)
    sig = FaultSignatures(quantile=1.0).fit(X, labels)
    new = np.asarray(list(centres.values()), dtype=float)  # each cluster's centre: inside its spread
    matches = sig.match(np.vstack([new, [[0, 0, 10, 10]]]))
    assert [m.answer for m in matches[:3]] == list(centres)
    assert all(m.known and m.distance <= sig.threshold_ for m in matches[:3])
    assert matches[3].answer == UNLIKE and not matches[3].known and matches[3].distance > sig.threshold_
    assert matches[3].fault in centres  # the closest fault is still named
    assert sig.threshold_source_ == "same fault" and sig.loo_accuracy() == 1.0


def test_threshold_is_quantile_of_within_fault_leave_one_out_distances():
    X = np.array([[0.0], [1.0], [10.0], [13.0]])
    sig = FaultSignatures(quantile=1.0).fit(X, ["a", "a", "b", "b"])
    # standardised by the set's own sd: within-fault nearest distances are 1 / sd (twice) and 3 / sd (twice)
    sd = X.std()
    assert sig.threshold_ == pytest.approx(3.0 / sd)
    assert sorted(sig.loo_distances_) == pytest.approx([1 / sd, 1 / sd, 3 / sd, 3 / sd])
    ref = FaultSignatures(quantile=1.0).fit(X, ["a", "a", "b", "b"], reference=[[0.0], [2.0]])
    assert ref.threshold_ == pytest.approx(3.0) and ref.scale_source_ == "normal reference"


def test_round_trip_and_bad_input():
    rng = np.random.default_rng(1)
    X, labels, _ = clusters(rng)
    sig = FaultSignatures().fit(X, labels)
    back = FaultSignatures.from_dict(sig.to_dict())
    assert [m.to_dict() for m in back.match(X)] == [m.to_dict() for m in sig.match(X)]
    with pytest.raises(ParameterError, match="empty"):
        FaultSignatures().fit(X, labels[:-1] + [" "])
    with pytest.raises(ParameterError, match="at least two"):
        FaultSignatures().fit(X[:1], labels[:1])
    with pytest.raises(ParameterError, match="features per clip"):
        sig.match(X[:, :3])
    with pytest.raises(ParameterError, match="quantile"):
        FaultSignatures(quantile=0)
    with pytest.raises(ParameterError, match="not fitted"):
        FaultSignatures().match(X)


def test_confusion_matrix_counts():
    names, counts = confusion_matrix(["a", "a", "b", "b"], ["a", "b", "b", UNLIKE], ["a", "b"])
    assert names == ["a", "b", UNLIKE]
    assert counts.tolist() == [[1, 1, 0], [0, 1, 1]]


def synth_clip(fault, rng, severity=1.0):
    y = render_clip("fan", machine_id=0, fault=fault, severity=severity, duration_s=1.0, sr=SR, snr_db=0.0, rng=rng)
    return y


def test_synthetic_fan_faults_are_told_apart():
    rng = np.random.default_rng(3)
    cfg = FeatureConfig(sr=SR, n_mels=32)
    emb = {f: fault_embeddings([log_mel(synth_clip(f, rng), cfg) for _ in range(8)])
           for f in ("imbalance", "blade_damage")}
    normal = fault_embeddings([log_mel(synth_clip(None, rng, 0.0), cfg) for _ in range(10)])
    sig = FaultSignatures().fit(np.vstack([emb["imbalance"][:4], emb["blade_damage"][:4]]),
                                ["imbalance"] * 4 + ["blade_damage"] * 4, reference=normal)
    answers = [(f, m.fault) for f in emb for m in sig.match(emb[f][4:])]
    assert sum(t == p for t, p in answers) >= 7  # of 8; chance is 4


@pytest.mark.slow
def test_closest_faults_through_a_model_and_the_cli(tmp_path, capsys):
    from earshot.pipeline import train  # deferred: training pulls in the detectors (start-up speed)

    rng = np.random.default_rng(5)
    (tmp_path / "train" / "normal").mkdir(parents=True)
    for i in range(12):
        sf.write(tmp_path / "train" / "normal" / f"{i:02d}.wav", synth_clip(None, rng, 0.0), SR)
    train(tmp_path / "train", tmp_path / "model", model="gauss", group_by="none",
          features=FeatureConfig(n_mels=32), seed=0)
    rows = []
    for where, n in (("confirmed", 4), ("new", 3)):
        (tmp_path / where).mkdir()
        for f in ("imbalance", "blade_damage"):
            for i in range(n):
                sf.write(tmp_path / where / f"{f}{i}.wav", synth_clip(f, rng), SR)
                rows.append({"path": f"{where}/{f}{i}.wav", "fault": f})
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "fault"])
        w.writeheader()
        w.writerows(rows)
    out = closest_faults(tmp_path / "model", tmp_path / "labels.csv", tmp_path / "new")
    assert out["n_labelled"] == 8 and out["scale_source"] == "normal reference"
    assert len(out["clips"]) == 6 and all("true_fault" in c for c in out["clips"])
    assert out["confusion"]["names"][:2] == ["blade_damage", "imbalance"]
    assert np.asarray(out["confusion"]["counts"]).sum() == 6
    assert out["accuracy"] >= 5 / 6
    (tmp_path / "bad.csv").write_text("path,label\nx.wav,1\n")
    with pytest.raises(DatasetError, match="no .fault. column"):
        closest_faults(tmp_path / "model", tmp_path / "bad.csv", tmp_path / "new")

    code, stdout, err = run(["faults", tmp_path / "model", tmp_path / "labels.csv", tmp_path / "new",
                             "--json", tmp_path / "f.json"], capsys)
    assert code == 0, err
    assert "confusion matrix of fault types" in stdout and "imbalance" in stdout
    assert (tmp_path / "f.json").is_file()
    code, _, err = run(["faults", tmp_path / "model", tmp_path / "bad.csv", tmp_path / "new",
                        "--json", tmp_path / "g.json"], capsys)
    one_line_error(code, err, "bad.csv", "fault")
    assert not (tmp_path / "g.json").exists()
    code, _, err = run(["faults", tmp_path / "model", tmp_path / "labels.csv", tmp_path / "new", "--quantile", "2"],
                       capsys)
    one_line_error(code, err, "quantile")


@pytest.mark.slow
def test_evaluate_reports_a_confusion_matrix_of_fault_types(tmp_path, capsys):
    from earshot.pipeline import train  # deferred: training pulls in the detectors (start-up speed)

    rng = np.random.default_rng(6)
    (tmp_path / "train" / "normal").mkdir(parents=True)
    for i in range(12):
        sf.write(tmp_path / "train" / "normal" / f"{i:02d}.wav", synth_clip(None, rng, 0.0), SR)
    train(tmp_path / "train", tmp_path / "model", model="gauss", group_by="none",
          features=FeatureConfig(n_mels=32), seed=0)
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(4):
        sf.write(data / f"normal{i}.wav", synth_clip(None, rng, 0.0), SR)
        rows.append({"path": f"normal{i}.wav", "label": "0", "split": "test", "fault": ""})
    for f in ("imbalance", "blade_damage"):
        for i in range(4):
            sf.write(data / f"{f}{i}.wav", synth_clip(f, rng), SR)
            rows.append({"path": f"{f}{i}.wav", "label": "1", "split": "test", "fault": f})

    def write(path, fields):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    # the fault column of a manifest (as earshot synth writes it)
    write(data / "manifest.csv", ["path", "label", "split", "fault"])
    code, stdout, err = run(["evaluate", tmp_path / "model", data, "--json", tmp_path / "r.json",
                             "--report", tmp_path / "report"], capsys)
    assert code == 0, err
    assert "fault types of 8 anomalies" in stdout and "blade_damage" in stdout
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h3>Fault types</h3>" in page and "class='fault-confusion'" in page
    with open(tmp_path / "r.json") as fh:
        (group,) = json.load(fh)["groups"].values()
    faults = group["faults"]
    assert faults["method"] == "leave-one-out" and faults["n_labelled"] == 8
    assert faults["confusion"]["names"][:2] == ["blade_damage", "imbalance"]
    assert np.asarray(faults["confusion"]["counts"]).sum() == 8
    assert faults["accuracy"] >= 6 / 8, faults["confusion"]
    assert {c["true_fault"] for c in faults["clips"]} == {"imbalance", "blade_damage"}
    # the same from a split file's fault column, the manifest without one
    write(data / "manifest.csv", ["path", "label", "split"])
    write(data / "split.csv", ["path", "split", "label", "fault"])
    code, _, err = run(["evaluate", tmp_path / "model", data, "--split-file", data / "split.csv",
                        "--json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    with open(tmp_path / "s.json") as fh:
        (again,) = json.load(fh)["groups"].values()
    assert again["faults"]["confusion"] == faults["confusion"]
    # without fault labels: no fault report
    code, stdout, err = run(["evaluate", tmp_path / "model", data, "--json", tmp_path / "n.json"], capsys)
    assert code == 0 and "fault types" not in stdout
