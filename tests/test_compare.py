"""`earshot evaluate MODEL MODEL... DATA`: several models on the same clips, none trained on by any."""

from __future__ import annotations

import json

import pytest

from earshot.cli.app import main

QUICK = ["--epochs", "2", "--n-mels", "16"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Synthetic fans (2 ids) and two models trained on different clips (other seed, other grouping)."""
    from earshot.synth import synthesize

    root = tmp_path_factory.mktemp("cmp")
    data = root / "data"
    synthesize(data, machines=("fan",), n_ids=2, n_normal=12, n_abnormal=4, duration_s=1.0, seed=2)
    a, b = root / "a", root / "b"
    assert main(["train", str(data), "--out", str(a), *QUICK, "--seed", "0"]) == 0
    assert main(["train", str(data), "--out", str(b), *QUICK, "--seed", "1", "--group-by", "machine"]) == 0
    return data, a, b


def _trained(model_dir):
    files = set()
    for manifest in model_dir.rglob("manifest.json"):
        files |= set(json.loads(manifest.read_text())["training"]["files"])
    return files


def test_compare_on_the_intersection(setup, tmp_path, capsys):
    data, a, b = setup
    capsys.readouterr()
    code = main(["evaluate", str(a), str(b), str(data), "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert code == 0 and str(a) in out and str(b) in out and "none of the models trained on" in out
    result = json.loads((tmp_path / "c.json").read_text())
    scored = {c["path"] for c in result["clips"]}
    trained_a, trained_b = _trained(a), _trained(b)
    assert trained_a != trained_b, "the two models trained on different clips"
    all_clips = {str(p.resolve()) for p in data.rglob("*.wav")}
    assert scored == all_clips - trained_a - trained_b, "exactly the clips neither model trained on"
    assert result["n_clips"] == len(scored) and result["models"] == [str(a), str(b)]
    assert result["excluded"][str(a)]["trained on by another model"] > 0
    for group, per_model in result["groups"].items():
        n = {name: m["n_normal"] + m["n_anomaly"] for name, m in per_model.items()}
        assert len(set(n.values())) == 1, "every model is scored on the same clips"
    assert set(result["mean"]) == {str(a), str(b)}


def test_single_model_evaluate_is_unchanged(setup, tmp_path, capsys):
    data, a, _ = setup
    code = main(["evaluate", str(a), str(data), "--json", str(tmp_path / "r.json")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["groups"]) == {"fan/id_00", "fan/id_02"} and "hmean" in report


def test_compare_report_and_usage_errors(setup, tmp_path, capsys):
    data, a, b = setup
    code = main(["evaluate", str(a), str(b), str(data), "--report", str(tmp_path / "rep")])
    assert code == 0
    page = (tmp_path / "rep" / "compare.html").read_text()
    assert "id='compare-table'" in page and f"data-model='{b}'" in page and "data:image/png;base64," in page
    assert json.loads((tmp_path / "rep" / "compare.json").read_text())["n_clips"] > 0
    capsys.readouterr()
    code = main(["evaluate", str(a)])
    assert code == 2 and "MODEL" in capsys.readouterr().err
    code = main(["evaluate", str(a), str(a), str(data)])
    err = capsys.readouterr().err
    assert code == 1 and "names must differ" in err and len(err.strip().splitlines()) == 1
    code = main(["evaluate", str(a), str(tmp_path / "missing"), str(data)])
    err = capsys.readouterr().err
    assert code == 1 and "missing" in err and len(err.strip().splitlines()) == 1
