"""``earshot train --labels`` with a fault column: fault signatures stored in the bundle, and the
fault columns of ``earshot score`` (stdout and ``--out``); models without them score as before."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import Bundle
from earshot.errors import BundleError
from earshot.synth import render_clip
from helpers.cli import one_line_error, run

SR = 16000
FAULTS = ("imbalance", "blade_damage")
OLD_FIELDS = ["path", "group", "score", "threshold", "is_anomalous"]
FAULT_COLUMNS = ["fault", "fault_distance", "fault_known"]


def clip(fault, rng):
    return render_clip("fan", machine_id=0, fault=fault, severity=0.0 if fault is None else 1.0, duration_s=1.0,
                       sr=SR, snr_db=0.0, rng=rng)


def write_labels(path, rows, fields=("path", "label", "fault")):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A fan: 16 normal clips and 5 confirmed anomalies of each of two fault types (in the data
    set), a labels CSV giving those their fault, and new clips: 6 of each fault, 3 normal."""
    root = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(5)
    (root / "data" / "normal").mkdir(parents=True)
    (root / "data" / "abnormal").mkdir()
    (root / "new").mkdir()
    for i in range(16):
        sf.write(root / "data" / "normal" / f"{i:02d}.wav", clip(None, rng), SR)
    rows = [{"path": "data/normal/00.wav", "label": "0", "fault": ""}]
    for f in FAULTS:
        for i in range(5):
            sf.write(root / "data" / "abnormal" / f"{f}{i}.wav", clip(f, rng), SR)
            rows.append({"path": f"data/abnormal/{f}{i}.wav", "label": "1", "fault": f})
        for i in range(6):
            sf.write(root / "new" / f"{f}{i}.wav", clip(f, rng), SR)
    for i in range(3):
        sf.write(root / "new" / f"normal{i}.wav", clip(None, rng), SR)
    write_labels(root / "labels.csv", rows)
    return root, rows


def train_args(root, out, labels):
    return ["train", root / "data", "--out", out, "--model", "gauss", "--group-by", "none", "--n-mels", "32",
            "--labels", labels]


def score_csv(model, folder, capsys):
    code, stdout, err = run(["score", model, folder, "--format", "csv", "--executor", "serial"], capsys)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(stdout)))


@pytest.mark.slow
def test_train_stores_fault_signatures_and_score_names_the_closest_fault(case, tmp_path, capsys):
    root, rows = case
    model = tmp_path / "model"
    code, stdout, err = run(train_args(root, model, root / "labels.csv"), capsys)
    assert code == 0, err
    assert "fault signatures of 10 anomalies stored (blade_damage, imbalance)" in stdout
    manifest = json.loads((model / "manifest.json").read_text())
    entry = manifest["faults"]
    assert entry["file"] == "faults.json" and entry["n_clips"] == 10 and entry["faults"] == sorted(FAULTS)
    assert entry["scale_source"] == "normal reference" and entry["threshold"] > 0
    stored = json.loads((model / "faults.json").read_text())
    assert stored["embedding"]["kind"] == "clipstats" and len(stored["files"]) == 10
    # the unsupervised model never trained on the labelled anomalies: they only made the signatures
    assert manifest["training"]["files"] and not any("abnormal" in f for f in manifest["training"]["files"])
    assert str((root / "data" / "normal" / "00.wav").resolve()) in manifest["training"]["files"]

    scored = score_csv(model, root / "new", capsys)
    assert list(scored[0]) == OLD_FIELDS + FAULT_COLUMNS
    flagged = [r for r in scored if r["is_anomalous"] == "True"]
    faulty = [r for r in flagged if not r["path"].split("/")[-1].startswith("normal")]
    assert len(faulty) >= 9  # of 12 faulty clips
    for r in scored:
        if r["is_anomalous"] == "False":
            assert r["fault"] == r["fault_distance"] == r["fault_known"] == ""
        else:
            assert float(r["fault_distance"]) >= 0 and r["fault_known"] in ("True", "False")
            assert (r["fault"] != "") == (r["fault_known"] == "True")  # unlike any confirmed fault: empty
    right = [r for r in faulty if r["path"].split("/")[-1].startswith(r["fault"] or "-")]
    named = [r for r in faulty if r["fault"]]
    assert len(right) == len(named) and len(right) >= len(faulty) / 2, faulty  # named right, most named
    # the stored signatures answer as earshot would from the library
    bundle = Bundle(model)
    some = next(r for r in faulty if r["fault"])
    m = bundle.faults.match(bundle.extract(some["path"]))
    assert m.fault == some["fault"] and m.distance == pytest.approx(float(some["fault_distance"]), abs=1e-6)

    # JSON rows carry the same keys; --out files add the columns after error and resume
    code, stdout, err = run(["score", model, root / "new", "--executor", "serial"], capsys)
    assert code == 0, err
    assert list(json.loads(stdout)[0]) == OLD_FIELDS + FAULT_COLUMNS
    out = tmp_path / "results.csv"
    for _ in range(2):
        code, stdout, err = run(["score", model, root / "new", "--out", out, "--executor", "serial"], capsys)
        assert code == 0, err
    assert "skipped 15 already in the output" in stdout
    with open(out, newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == OLD_FIELDS + ["error"] + FAULT_COLUMNS and len(written) == 15
    assert [r["fault"] for r in written] == [r["fault"] for r in scored]

    # earshot faults MODEL FOLDER: the stored signatures, the same answers
    code, stdout, err = run(["faults", model, root / "new", "--json", tmp_path / "f.json"], capsys)
    assert code == 0, err
    assert "10 confirmed clips of 2 faults" in stdout
    answers = {c["path"]: c for c in json.loads((tmp_path / "f.json").read_text())["clips"]}
    for r in faulty:
        c = answers[r["path"]]
        assert (c["fault"] if c["known"] else "") == r["fault"]
        assert c["distance"] == pytest.approx(float(r["fault_distance"]), abs=1e-6)

    # Parquet output (optional extra) holds the same columns, typed
    pq = pytest.importorskip("pyarrow.parquet")
    code, _, err = run(["score", model, root / "new", "--out", tmp_path / "r.parquet", "--executor", "serial"], capsys)
    assert code == 0, err
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names == OLD_FIELDS + ["error"] + FAULT_COLUMNS
    assert str(table.schema.field("fault_known").type) == "bool"
    assert table.column("fault").to_pylist() == [r["fault"] or None for r in scored]


def test_a_model_without_fault_labels_scores_as_before(case, tmp_path, capsys):
    root, rows = case
    write_labels(tmp_path / "plain.csv", [{**r, "path": str(root / r["path"])} for r in rows], fields=("path", "label"))
    model = tmp_path / "model"
    code, stdout, err = run(train_args(root, model, tmp_path / "plain.csv"), capsys)
    assert code == 0, err
    assert "fault signatures" not in stdout
    assert not (model / "faults.json").exists()
    assert "faults" not in json.loads((model / "manifest.json").read_text())
    assert Bundle(model).faults is None
    scored = score_csv(model, root / "new", capsys)
    assert list(scored[0]) == OLD_FIELDS
    out = tmp_path / "results.csv"
    code, _, err = run(["score", model, root / "new", "--out", out, "--executor", "serial"], capsys)
    assert code == 0, err
    assert out.read_text().splitlines()[0] == "path,group,score,threshold,is_anomalous,error"
    # an output file of a model without faults is not resumed by one with them (other columns)
    code, _, err = run(train_args(root, tmp_path / "faulted", root / "labels.csv"), capsys)
    assert code == 0, err
    code, _, err = run(["score", tmp_path / "faulted", root / "new", "--out", out, "--executor", "serial"], capsys)
    one_line_error(code, err, "results.csv", "header")
    code, _, err = run(["faults", model, root / "new"], capsys)
    one_line_error(code, err, "stores no fault signatures")


@pytest.mark.parametrize("bad, needles", [
    ({"path": "data/normal/01.wav", "label": "0", "fault": "bearing"}, ["row 12", "label 1"]),
    ({"path": "data/normal/01.wav", "label": "1", "fault": "x" * 65}, ["row 12", "at most 64 characters"]),
    ({"path": "data/normal/01.wav", "label": "1", "fault": "belt\nslip"}, ["row 12", "one line"]),
])
def test_a_bad_fault_column_is_one_line_naming_the_file_and_row(case, tmp_path, capsys, bad, needles):
    root, rows = case
    write_labels(tmp_path / "bad.csv", [{**r, "path": str(root / r["path"])} for r in rows] + [
        {**bad, "path": str(root / bad["path"])}])
    code, _, err = run(train_args(root, tmp_path / "model", tmp_path / "bad.csv"), capsys)
    one_line_error(code, err, "bad.csv", *needles)
    assert not (tmp_path / "model").exists()


def test_a_single_fault_label_is_refused(case, tmp_path, capsys):
    root, rows = case
    one = [dict(r, fault="") for r in rows]
    one[1]["fault"] = "imbalance"
    write_labels(tmp_path / "one.csv", [{**r, "path": str(root / r["path"])} for r in one])
    code, _, err = run(train_args(root, tmp_path / "model", tmp_path / "one.csv"), capsys)
    one_line_error(code, err, "one.csv", "at least two anomalies with a fault")
    assert not (tmp_path / "model").exists()


def test_a_damaged_faults_file_is_refused_on_load(case, tmp_path, capsys):
    root, _ = case
    model = tmp_path / "model"
    code, _, err = run(train_args(root, model, root / "labels.csv"), capsys)
    assert code == 0, err
    stored = json.loads((model / "faults.json").read_text())
    stored["signatures"]["scale"] = stored["signatures"]["scale"][:-1]
    (model / "faults.json").write_text(json.dumps(stored))
    with pytest.raises(BundleError, match="faults.json"):
        Bundle(model)
    (model / "faults.json").unlink()
    code, _, err = run(["score", model, root / "new", "--executor", "serial"], capsys)
    one_line_error(code, err, "faults.json", "missing")
