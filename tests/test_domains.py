"""Per-domain metrics (source / target) counted the DCASE 2022-2024 way, in evaluate and compare."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from earshot.cli.app import main
from earshot.errors import ParameterError
from earshot.evaluation.domains import domain_metrics, domain_summary
from earshot.evaluation.metrics import roc_auc


def test_target_auc_counts_every_anomaly_of_the_group():
    # source normals 0..3, source anomalies 10..13; target normals 20..23 (a domain-wide offset),
    # target anomalies 30..33: within each domain the ranking is perfect ...
    y = np.array([0] * 4 + [1] * 4 + [0] * 4 + [1] * 4)
    s = np.array([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33], dtype=float)
    dom = ["source"] * 8 + ["target"] * 8
    m = domain_metrics(y, s, dom, threshold=5.0)
    assert set(m) == {"source", "target"}
    assert m["source"]["auc_within"] == 1.0 and m["target"]["auc_within"] == 1.0
    # ... but the target normals outrank the 4 source anomalies: 16 of 32 pairs lost
    assert m["target"]["auc"] == pytest.approx(0.5)
    assert m["source"]["auc"] == 1.0
    assert m["target"]["auc"] == roc_auc(y[[8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15]],
                                         s[[8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15]])
    # decisions at the one threshold, on the domain's own clips
    assert m["target"]["false_alarm_rate"] == 1.0 and m["target"]["fp"] == 4 and m["target"]["tp"] == 4
    assert m["source"]["false_alarm_rate"] == 0.0 and m["source"]["recall"] == 1.0
    assert m["target"]["n_normal"] == 4 and m["target"]["n_anomaly"] == 8 and m["target"]["n_anomaly_in_domain"] == 4


def test_no_per_domain_metrics_without_two_known_domains():
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    assert domain_metrics(y, s, ["source"] * 4, 0.25) == {}
    assert domain_metrics(y, s, [None] * 4, 0.25) == {}
    assert domain_metrics(y, s, ["source", None, "target", "target"], 0.25) == {}
    with pytest.raises(ParameterError, match="domains"):
        domain_metrics(y, s, ["source"] * 3, 0.25)


def test_a_domain_without_anomalies_still_has_an_auc_against_the_others():
    y = np.array([0, 0, 1, 1, 0, 0])
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.5, 0.95])
    m = domain_metrics(y, s, ["source"] * 4 + ["target"] * 2, 0.6)
    assert m["target"]["auc"] == pytest.approx(0.5)  # 0.5 < both anomalies, 0.95 > both: 2 of 4 pairs
    assert np.isnan(m["target"]["auc_within"]) and m["target"]["n_anomaly_in_domain"] == 0
    summary = domain_summary({"g": {"domains": m}})
    assert summary["target"]["mean"]["auc"] == pytest.approx(0.5)
    assert np.isnan(summary["target"]["mean"]["auc_within"])


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Synthetic fans with a target domain, a gauss and a knn model."""
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("dom")
    data = root / "data"
    synthesize(data, machines=("fan",), n_ids=1, n_normal=24, n_abnormal=6, domain_shift=True, n_target=12,
               duration_s=2.0, seed=4)
    for kind in ("gauss", "knn"):
        assert main(["train", str(data), "--out", str(root / kind), "--model", kind]) == 0
    return data, root


def test_evaluate_reports_source_and_target(shifted, tmp_path, capsys):
    data, root = shifted
    capsys.readouterr()
    assert main(["evaluate", str(root / "gauss"), str(data), "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "per domain" in out and "target" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    g = report["groups"]["fan/id_00"]
    clips = g["clips"]
    target_normal = [c["score"] for c in clips if c["domain"] == "target" and c["label"] == 0]
    anomalies = [c["score"] for c in clips if c["label"] == 1]
    assert target_normal and anomalies
    y = np.r_[np.zeros(len(target_normal)), np.ones(len(anomalies))]
    assert g["domains"]["target"]["auc"] == pytest.approx(roc_auc(y, np.r_[target_normal, anomalies]))
    assert report["domains"]["target"]["mean"]["auc"] == pytest.approx(g["domains"]["target"]["auc"])
    assert "domain auc" in report["definitions"]
    page = (tmp_path / "r" / "report.html").read_text()
    cell = re.search(r"<tr[^>]*data-group='fan/id_00' data-domain='target'>.*?data-key='auc'>([0-9.]+)<", page)
    assert cell and float(cell.group(1)) == pytest.approx(g["domains"]["target"]["auc"], abs=5e-4)


def test_compare_reports_every_model_per_domain(shifted, tmp_path, capsys):
    data, root = shifted
    assert main(["evaluate", str(root / "gauss"), str(root / "knn"), str(data), "--report", str(tmp_path / "c")]) == 0
    result = json.loads((tmp_path / "c" / "compare.json").read_text())
    names = result["models"]
    for name in names:
        assert set(result["groups"]["fan/id_00"][name]["domains"]) == {"source", "target"}
        assert set(result["domains"][name]) == {"source", "target"}
    page = (tmp_path / "c" / "compare.html").read_text()
    for name in names:
        assert f"data-model='{name}' data-key='auc'" in page
    assert "data-domain='target'" in page


def test_data_without_domains_has_no_domain_section(tmp_path, capsys):
    from earshot.synth import synthesize

    data = tmp_path / "data"
    synthesize(data, machines=("pump",), n_ids=1, n_normal=16, n_abnormal=4, duration_s=1.0, seed=5)
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--model", "gauss"]) == 0
    assert main(["evaluate", str(tmp_path / "m"), str(data), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert "domains" not in report and all("domains" not in g for g in report["groups"].values())
    assert "per domain" not in capsys.readouterr().out


def test_metrics_csv_has_a_row_per_model_group_and_domain(shifted, tmp_path, capsys):
    import csv

    data, root = shifted
    assert main(["evaluate", str(root / "gauss"), str(data), "--csv", str(tmp_path / "m.csv"),
                 "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "m.csv", newline="")))
    assert [(r["group"], r["domain"]) for r in rows] == [
        ("fan/id_00", "all"), ("fan/id_00", "source"), ("fan/id_00", "target"), ("mean", "all"),
        ("mean", "source"), ("mean", "target"), ("hmean", "all"), ("hmean", "source"), ("hmean", "target")]
    g = report["groups"]["fan/id_00"]
    assert float(rows[0]["auc"]) == pytest.approx(g["auc"]) and int(rows[0]["tp"]) == g["tp"]
    assert float(rows[2]["auc"]) == pytest.approx(g["domains"]["target"]["auc"])
    assert float(rows[2]["threshold"]) == pytest.approx(g["threshold"])
    assert rows[3]["tp"] == "" and float(rows[3]["auc"]) == pytest.approx(report["mean"]["auc"])

    assert main(["evaluate", str(root / "gauss"), str(root / "knn"), str(data), "--csv", str(tmp_path / "c.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "c.csv", newline="")))
    assert {r["model"] for r in rows} == {str(root / "gauss"), str(root / "knn")} and len(rows) == 18
    capsys.readouterr()
    assert main(["evaluate", str(root / "gauss"), str(data), "--csv", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--csv" in err[0] and "folder" in err[0]
