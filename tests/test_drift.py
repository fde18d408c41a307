"""Drift: the statistics (evaluation.drift), the workflow on synthetic machines (pipeline.drift)
and ``earshot drift``.

A drifted machine is the same synthetic machine rendered in its target domain (another speed or
factory background, no fault); a steady one is new clips of its source domain.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import Bundle
from earshot.errors import ParameterError
from earshot.evaluation.drift import band_shifts, binomial_tail, drift_test, ks_statistic, ks_threshold
from earshot.features.config import FeatureConfig
from earshot.pipeline import train
from earshot.pipeline.drift import drift_report, reference_scores
from earshot.synth import render_clip
from helpers.cli import one_line_error, run

SR = 16000


# ---------------------------------------------------------------------- statistics
def test_ks_statistic_is_the_largest_cdf_gap():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11]) == 1.0
    # a: 1,2,3,4 ; b: 3,4,5,6 -> at x=2 F_a=0.5, F_b=0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_ks_threshold_matches_the_asymptotic_critical_value():
    n, m = 400, 300
    asymptotic = 1.628 * np.sqrt((n + m) / (n * m))  # c(0.01) of the two-sample KS
    assert ks_threshold(n, m, 0.01) == pytest.approx(asymptotic, rel=0.08)
    assert ks_threshold(n, m, 0.05) < ks_threshold(n, m, 0.01)
    assert ks_threshold(50, 20, 0.01) > ks_threshold(n, m, 0.01)  # fewer scores, more room


def test_binomial_tail_exact_values():
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_tail(9, 10, 0.5) == pytest.approx(11 / 1024)
    assert binomial_tail(11, 10, 0.5) == 0.0


def test_steady_scores_show_no_drift_and_shifted_ones_do():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=80)
    steady = drift_test(rng.normal(size=200), reference, model_threshold=1.3)
    assert not steady.drifted and steady.reasons == []
    up = drift_test(rng.normal(0.8, 1.0, size=200), reference, model_threshold=1.3)
    assert up.drifted and up.mean_shift > 0.5 and up.exceed_rate_recent > up.exceed_rate_reference
    deaf = drift_test(rng.normal(-0.8, 1.0, size=200), reference, model_threshold=1.3)
    assert deaf.drifted and deaf.mean_shift < -0.5


def test_false_drift_alarm_rate_is_near_alpha_on_exchangeable_scores():
    rng = np.random.default_rng(2)
    alarms = [drift_test(rng.gamma(2.0, size=100), rng.gamma(2.0, size=60), model_threshold=4.0, alpha=0.05).drifted
              for _ in range(400)]
    assert np.mean(alarms) < 0.09  # 0.05 expected; 400 draws, 3 sd above is 0.083


def test_rejected_false_alarms_are_evidence_of_drift():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=60)
    recent = rng.normal(size=100)
    threshold = float(np.quantile(reference, 0.9))
    expected = int(np.sum(recent > threshold))
    assert not drift_test(recent, reference, model_threshold=threshold, n_rejected=min(expected, 10)).drifted
    many = drift_test(recent, reference, model_threshold=threshold, n_rejected=40)
    assert many.drifted and many.rejected_p_value < 0.005 and "rejected" in many.reasons[0]


@pytest.mark.parametrize("kwargs, needle", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"recent": [1.0, 2.0]}, "recent"),
    ({"recent": [1.0, np.nan, 2, 3, 4]}, "finite"), ({"n_rejected": 99}, "n_rejected"),
])
def test_bad_drift_input_names_the_parameter(kwargs, needle):
    args = {"recent": np.arange(10.0), "reference": np.arange(10.0), "model_threshold": 5.0, **kwargs}
    with pytest.raises(ParameterError, match=needle):
        drift_test(args.pop("recent"), args.pop("reference"), **args)


def test_band_shifts_rank_the_moved_bands():
    ref = np.zeros(8)
    recent = np.zeros((5, 8))
    recent[:, 6] = 4.0
    recent[:, 2] = -1.0
    edges = np.linspace(0, 900, 10)
    bands = band_shifts(recent, ref, np.full(8, 0.5), edges_hz=edges, top=2)
    assert [b["band"] for b in bands] == [6, 2]
    assert bands[0]["shift_db"] == 4.0 and bands[0]["z"] == 8.0
    assert (bands[0]["lo_hz"], bands[0]["hi_hz"]) == (600, 800)


# ---------------------------------------------------------------------- synthetic machines
def _write(folder: Path, machine: str, machine_id: int, n: int, *, domain: str, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        y = render_clip(machine, machine_id=machine_id, domain=domain, duration_s=1.0, sr=SR, snr_db=0.0, rng=rng)
        sf.write(folder / f"{i:04d}.wav", y, SR)
    return folder


@pytest.fixture(scope="module", params=[("fan", 0), ("pump", 0)], ids=["fan-background", "pump-speed"])
def machine(request, tmp_path_factory):
    """A gauss model of one machine's normal source clips, new steady clips, and target-domain clips."""
    name, machine_id = request.param
    root = tmp_path_factory.mktemp(f"drift-{name}")
    _write(root / "train" / "normal", name, machine_id, 48, domain="source", seed=10)
    train(root / "train", root / "model", model="gauss", group_by="none", features=FeatureConfig(n_mels=32))
    return {"model": root / "model", "steady": _write(root / "steady", name, machine_id, 60, domain="source", seed=11),
            "shifted": _write(root / "shifted", name, machine_id, 60, domain="target", seed=12), "root": root}


@pytest.mark.slow
def test_a_shifted_machine_drifts_and_a_steady_one_does_not(machine):
    steady = drift_report(machine["model"], machine["steady"])
    shifted = drift_report(machine["model"], machine["shifted"])
    assert not steady["drifted"], steady
    assert shifted["drifted"], shifted
    assert shifted["score"] > 2 * steady["score"]
    assert steady["reference_source"] == "cross-fit" and steady["band_reference"] == "training files"
    # what moved: the top band of the shifted machine moved by more than any band of the steady one
    assert abs(shifted["bands"][0]["shift_db"]) > 1.0
    assert abs(shifted["bands"][0]["z"]) > 3 * max(abs(b["z"]) for b in steady["bands"])


@pytest.mark.slow
def test_confirmed_anomalies_are_left_out_and_rejected_alarms_counted(machine, tmp_path):
    recent = machine["steady"]
    paths = sorted(recent.glob("*.wav"))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{p},1\n" for p in paths[:5]) + "".join(f"{p},0\n" for p in paths[5:]))
    res = drift_report(machine["model"], recent, labels=labels)
    assert res["n_confirmed_left_out"] == 5 and res["n_recent"] == len(paths) - 5
    reference, _ = reference_scores(Bundle(machine["model"]))
    assert res["n_rejected"] == round(res["exceed_rate_recent"] * res["n_recent"])
    assert res["rejected_p_value"] is not None and not res["drifted"]
    assert len(reference) == 48


@pytest.mark.slow
def test_cli_prints_the_verdict_and_writes_json(machine, capsys, tmp_path):
    out = tmp_path / "drift.json"
    code, stdout, _ = run(["drift", machine["model"], machine["shifted"], "--json", out], capsys)
    assert code == 0
    assert "DRIFTED" in stdout and "threshold" in stdout and " Hz " in stdout and " dB" in stdout
    data = json.loads(out.read_text())
    assert data["drifted"] is True and len(data["bands"]) == 5
    code, stdout, _ = run(["drift", machine["model"], machine["steady"]], capsys)
    assert code == 0 and "no drift" in stdout


@pytest.mark.parametrize("case", ["no-folder", "alpha", "no-model"])
def test_cli_bad_input_is_one_line(case, tmp_path, capsys):
    (tmp_path / "recent").mkdir()
    model = tmp_path / "nomodel"
    args, needle = {"no-folder": ([model, tmp_path / "nope"], "nope"),
                    "alpha": ([model, tmp_path / "recent", "--alpha", "0"], "alpha"),
                    "no-model": ([model, tmp_path / "recent"], "nomodel")}[case]
    code, _, err = run(["drift", *args, "--json", tmp_path / "drift.json"], capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "drift.json").exists()


@pytest.mark.slow
def test_cli_empty_folder_is_one_line(machine, tmp_path, capsys):
    (tmp_path / "recent").mkdir()
    code, _, err = run(["drift", machine["model"], tmp_path / "recent"], capsys)
    one_line_error(code, err, "no audio clips")
