"""`earshot demo --quick`: the README's main job, end to end, in the test suite."""

from __future__ import annotations

import json

import pytest

from earshot.cli.app import main


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    groups = report["groups"]
    assert sorted(groups) == ["bearing/id_00", "bearing/id_02", "fan/id_00", "fan/id_02"]
    for name, g in groups.items():
        assert name in printed
        assert g["n_anomaly"] == 10 and g["n_normal"] == 10  # held-out clips only
        assert g["tp"] + g["fn"] == 10 and g["fp"] + g["tn"] == 10
    assert report["mean"]["auc"] > 0.7, report["mean"]  # the faults are learnable, not perfect
    assert {row["fault"] for row in report["by_fault"]} >= {"outer_race", "blade_damage"}
    assert (out / "model" / "index.json").exists() and (out / "report" / "report.html").exists()


def test_demo_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 1
    assert "--out" in capsys.readouterr().err and (tmp_path / "mine.txt").exists()
