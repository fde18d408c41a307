"""`earshot demo`: the README's main job, end to end, in the test suite."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import pytest

from earshot.bundle import load_model
from earshot.cli.app import main
from earshot.pipeline.demo import QUICK, threshold_sentence

from helpers.cli import PROGRESS_LINE


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `earshot demo` run (stdout and stderr captured, neither a terminal) for the tests below."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out)])
    assert code == 0, stderr.getvalue()
    return out, SimpleNamespace(out=stdout.getvalue(), err=stderr.getvalue())


@pytest.mark.slow
def test_demo(demo):
    out, captured = demo
    printed = captured.out
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["models"]) == ["dense-ae", "gauss"] == sorted(k for k, _ in QUICK.models)
    for kind, rep in report["models"].items():
        groups = rep["groups"]
        assert sorted(groups) == ["bearing/id_00", "bearing/id_02", "fan/id_00", "fan/id_02"]
        for name, g in groups.items():
            assert name in printed
            assert g["n_anomaly"] == 10 and g["n_normal"] == 10  # clips no model trained on
            assert g["tp"] + g["fn"] == 10 and g["fp"] + g["tn"] == 10
        assert {row["fault"] for row in rep["by_fault"]} >= {"outer_race", "blade_damage"}
        assert (out / "report" / kind / "report.html").exists()
    # the faults are learnable, not perfect; gauss is the stronger of the two here as on real data
    assert report["models"]["gauss"]["mean"]["auc"] > 0.8, report["models"]["gauss"]["mean"]
    assert report["models"]["dense-ae"]["mean"]["auc"] > 0.7, report["models"]["dense-ae"]["mean"]


@pytest.mark.slow
def test_demo_console_says_what_the_manifests_say(demo):
    out, captured = demo
    sources = {}
    for kind in ("gauss", "dense-ae"):
        model = load_model(out / "models" / kind)
        sources[kind] = [b.manifest["threshold"]["source"] for b in model.bundles.values()]
        assert threshold_sentence(kind, sources[kind]) + "." in captured.out.splitlines()
    # honest calibration: the dense AE holds out enough normal clips for a held-out threshold in
    # every group; gauss cross-fits; no group fell back to in-sample scores
    assert set(sources["dense-ae"]) == {"validation"} and set(sources["gauss"]) == {"cross-fit"}, sources
    for line in captured.out.splitlines():  # "held-out" only where a manifest says validation
        if "held-out" in line and "thresholds fitted on" in line:
            assert line.split(":")[0] == "dense-ae", line
    assert "in-sample" not in captured.out
    # the long recording: one event, over the true fault
    long = json.loads((out / "report.json").read_text())["long"]
    events, truth = long["detect"]["events"], long["truth"]
    assert long["detect"]["verdict"] == "anomalous" and len(events) == 1, long["detect"]
    assert events[0]["start_s"] < truth["fault_end_s"] and events[0]["end_s"] > truth["fault_start_s"]
    assert "found 1 event(s)" in captured.out and (out / "detect" / "events.csv").exists()
    # stderr is not a terminal here: progress lines show where the run is
    stages = {m["stage"] for m in map(PROGRESS_LINE.match, captured.err.splitlines()) if m}
    assert {"synthesising clips", "evaluating"} <= stages and any(s.endswith("training") for s in stages), captured.err


def test_demo_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert "--out" in capsys.readouterr().err and (tmp_path / "mine.txt").exists()
