"""The command line end to end on a tiny synthetic MIMII-layout folder, and every bad input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot.cli.app import app, main

from helpers.cli import one_line_error, run
from helpers.datasets import write_hum_dataset
from helpers.signals import SR, hum

QUICK = ["--epochs", "3", "--n-mels", "32"]


@pytest.fixture(scope="module")
def mimii(tmp_path_factory):
    """fan/id_00 and fan/id_02, 14 normal + 4 abnormal clips each, 2 s."""
    return write_hum_dataset(tmp_path_factory.mktemp("data"), np.random.default_rng(0), ids=("id_00", "id_02"),
                             n_normal=14, n_abnormal=4)


@pytest.fixture(scope="module")
def model(mimii, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model"
    assert main(["train", str(mimii), "--out", str(out), *QUICK]) == 0
    return out


def test_every_command_has_help(capsys):
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0 and "Usage" in out, name
        assert cmd.help, f"{name} has no help text"


def test_console_script_help():
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([bin_dir / "earshot", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


def test_train_writes_a_model_set(model):
    index = json.loads((model / "index.json").read_text())
    assert index["group_by"] == "id" and sorted(index["groups"]) == ["fan/id_00", "fan/id_02"]
    for sub in index["groups"].values():
        assert (model / sub / "model.onnx").exists()


def test_info(model, capsys):
    code, out, _ = run(["info", model], capsys)
    assert code == 0 and "fan/id_00" in out and "gamma:0.9" in out
    code, out, _ = run(["info", model, "--json"], capsys)
    assert json.loads(out)["groups"]["fan/id_02"]["threshold"]["method"] == "gamma:0.9"


def test_score_routes_files_by_layout(model, mimii, capsys):
    files = [mimii / "fan/id_00/abnormal/00000000.wav", mimii / "fan/id_02/normal/00000000.wav"]
    code, out, _ = run(["score", model, *files], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["group"] for r in rows] == ["fan/id_00", "fan/id_02"]
    assert rows[0]["is_anomalous"] is True and rows[0]["score"] > rows[0]["threshold"]
    code, out, _ = run(["score", model, files[0], "--format", "csv"], capsys)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert set(row) == {"path", "group", "score", "threshold", "is_anomalous"}


def test_score_unknown_group_is_one_line(model, tmp_path, capsys):
    stray = tmp_path / "stray.wav"
    sf.write(stray, hum(np.random.default_rng(1)), SR)
    code, _, err = run(["score", model, stray], capsys)
    assert code == 1 and "cannot tell which group" in err and str(stray) in err and len(err.splitlines()) == 1
    code, out, _ = run(["score", model, stray, "--group", "fan/id_00"], capsys)
    assert code == 0 and json.loads(out)[0]["group"] == "fan/id_00"


def test_evaluate_json_and_no_training_clip(model, mimii, tmp_path, capsys):
    code, out, _ = run(["evaluate", model, mimii, "--json", tmp_path / "r.json"], capsys)
    assert code == 0 and "fan/id_00" in out
    report = json.loads((tmp_path / "r.json").read_text())
    g = report["groups"]["fan/id_00"]
    assert g["n_anomaly"] == 4 and g["n_normal"] == 4  # held-out normals only
    assert g["auc"] >= 0.9 and g["tp"] + g["fn"] == 4
    assert report["excluded"]["used in training"] == 20
    assert set(report["mean"]) >= {"auc", "pauc", "f1"} and "hmean" in report
    trained = set(json.loads((model / "fan_id_00" / "manifest.json").read_text())["training"]["files"])
    assert not trained & {c["path"] for c in g["clips"]}


# ---------------------------------------------------------------------- bad input
def _folder_with(tmp_path, bad_name, content: bytes | None = None, y=None, sr=SR):
    rng = np.random.default_rng(2)
    d = tmp_path / "data" / "pump" / "id_00" / "normal"
    d.mkdir(parents=True)
    for i in range(4):
        sf.write(d / f"{i:08d}.wav", hum(rng), SR)
    bad = d / bad_name
    if content is not None:
        bad.write_bytes(content)
    else:
        sf.write(bad, y, sr)
    return tmp_path / "data", bad


def _train_fails(tmp_path, data, capsys, *needles):
    out = tmp_path / "model"
    code, _, err = run(["train", data, "--out", out, *QUICK], capsys)
    one_line_error(code, err, *needles)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]


def test_truncated_wav(tmp_path, capsys):
    buf = io.BytesIO()
    sf.write(buf, hum(np.random.default_rng(3)), SR, format="WAV")
    data, bad = _folder_with(tmp_path, "zz.wav", content=buf.getvalue()[:30])
    _train_fails(tmp_path, data, capsys, bad)


def test_text_file_named_wav(tmp_path, capsys):
    data, bad = _folder_with(tmp_path, "notes.wav", content=b"this is not audio\n" * 10)
    _train_fails(tmp_path, data, capsys, bad)


def test_all_zero_clip(tmp_path, capsys):
    data, bad = _folder_with(tmp_path, "silent.wav", y=np.zeros(SR, np.float32))
    _train_fails(tmp_path, data, capsys, bad, "zero")


def test_clip_shorter_than_one_window(tmp_path, capsys):
    data, bad = _folder_with(tmp_path, "short.wav", y=hum(np.random.default_rng(4), seconds=0.05))
    _train_fails(tmp_path, data, capsys, bad, "too short")


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _train_fails(tmp_path, tmp_path / "empty", capsys, tmp_path / "empty")


def test_no_normal_clips(tmp_path, capsys):
    d = tmp_path / "data" / "valve" / "id_00" / "abnormal"
    d.mkdir(parents=True)
    sf.write(d / "a.wav", hum(np.random.default_rng(5)), SR)
    _train_fails(tmp_path, tmp_path / "data", capsys, "no normal clips")


def test_other_sample_rate_is_resampled_with_a_warning(tmp_path, capsys):
    data, bad = _folder_with(tmp_path, "44k.wav", y=hum(np.random.default_rng(6), sr=44100), sr=44100)
    code, _, err = run(["train", data, "--out", tmp_path / "m", *QUICK], capsys)
    assert code == 0, err
    assert "warning" in err and "44100" in err and "Traceback" not in err


@pytest.mark.parametrize("what", ["missing", "unknown-version"])
def test_bad_model_directory(model, tmp_path, capsys, what, mimii):
    target = tmp_path / "nope"
    if what == "unknown-version":
        import shutil

        target = tmp_path / "m"
        shutil.copytree(model / "fan_id_00", target)
        m = json.loads((target / "manifest.json").read_text())
        m["format_version"] = 42
        (target / "manifest.json").write_text(json.dumps(m))
    wav = mimii / "fan/id_00/normal/00000000.wav"
    for args in (["info", target], ["score", target, wav], ["evaluate", target, mimii]):
        code, _, err = run(args, capsys)
        one_line_error(code, err, target)


def test_usage_error_exit_2(capsys):
    code, _, err = run(["train"], capsys)
    assert code == 2 and "Missing" in err


def test_extra_detector_parameters(mimii, tmp_path, capsys):
    out = tmp_path / "m"
    code, _, err = run(["train", mimii, "--out", out, *QUICK, "-p", "hidden=16", "-p", "bottleneck=4",
                        "--group-by", "machine"], capsys)
    assert code == 0, err
    params = json.loads((out / "manifest.json").read_text())["model"]["params"]
    assert params["hidden"] == 16 and params["bottleneck"] == 4
    code, _, err = run(["train", mimii, "--out", tmp_path / "m2", "-p", "width=3"], capsys)
    one_line_error(code, err, "width")
    assert not (tmp_path / "m2").exists()


def test_missing_optional_extra_is_one_line(monkeypatch, mimii, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    code, _, err = run(["train", mimii, "--out", tmp_path / "m", *QUICK], capsys)
    one_line_error(code, err, "earshot[train]")
