"""Models that cannot do what is asked of them say so in one line: a NaN threshold, an export
folder, a clip-level model asked for a timeline, a clip of another machine; and orphan audio
is collected when the service starts."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from earshot.bundle import load_model
from earshot.errors import BundleError

from helpers.cli import one_line_error, run
from helpers.datasets import write_hum_clips, write_hum_dataset
from helpers.service import tiny_model
from helpers.signals import SR, hum


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory)  # one bundle, group fan/id_00


@pytest.fixture(scope="module")
def gauss(tmp_path_factory):
    from earshot.cli.app import main

    root = write_hum_dataset(tmp_path_factory.mktemp("g-data"), np.random.default_rng(1), n_normal=14, n_abnormal=2)
    out = tmp_path_factory.mktemp("g") / "gauss"
    assert main(["train", str(root), "--out", str(out), "--model", "gauss", "--n-mels", "32"]) == 0
    return out


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, hum(np.random.default_rng(2), 4.0), SR, subtype="PCM_16")
    return path


def _edited(model, tmp_path, edit):
    copy = tmp_path / "edited"
    shutil.copytree(model, copy)
    manifest = copy / "manifest.json"
    data = json.loads(manifest.read_text())
    edit(data)
    manifest.write_text(json.dumps(data))  # json writes NaN / Infinity as Python reads them back
    return copy


# ---------------------------------------------------------------------- item 8: threshold
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "0.5", None, True])
def test_a_threshold_that_is_not_a_finite_number_is_refused_on_load(model, tmp_path, clip, capsys, value):
    bad = _edited(model, tmp_path, lambda m: m["threshold"].update(value=value))
    with pytest.raises(BundleError, match=r"manifest\.json: threshold\.value: expected a finite number"):
        load_model(bad)
    code, out, err = run(["score", bad, clip], capsys)
    one_line_error(code, err, bad / "manifest.json", "threshold.value")
    assert out == ""


def test_a_threshold_without_method_is_one_line_in_info(model, tmp_path, capsys):
    bad = _edited(model, tmp_path, lambda m: m["threshold"].pop("method"))
    code, _, err = run(["info", bad], capsys)
    one_line_error(code, err, "threshold.method")


def test_score_prints_strict_json(model, clip, capsys):
    code, out, _ = run(["score", model, clip], capsys)
    assert code == 0
    rows = json.loads(out, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert np.isfinite(rows[0]["threshold"])


# ---------------------------------------------------------------------- item 11: export folders
@pytest.mark.parametrize("verb", ["info", "score", "detect"])
def test_an_export_folder_given_as_a_model_is_one_line(model, tmp_path_factory, clip, capsys, verb):
    exported = tmp_path_factory.getbasetemp() / "exported"
    if not exported.exists():
        code, _, err = run(["export", model, "--out", exported, "--logmel"], capsys)
        assert code == 0, err
    args = {"info": [exported], "score": [exported, clip], "detect": [exported, clip]}[verb]
    code, _, err = run([verb, *args], capsys)
    one_line_error(code, err, "is an export folder (kind edge-export)", "the model folder it came from")


# ---------------------------------------------------------------------- item 12: clip-level models
def test_detect_with_a_clip_level_model_says_which_models_stream(gauss, model, clip, tmp_path, capsys):
    code, _, err = run(["detect", gauss, clip, "--out", tmp_path / "d"], capsys)
    one_line_error(code, err, "gauss model scores whole clips", "dense-ae")
    assert load_model(gauss).bundles and not next(iter(load_model(gauss).bundles.values())).streams
    assert next(iter(load_model(model).bundles.values())).streams


def test_service_timeline_with_a_clip_level_model_is_a_422(gauss, clip, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from earshot.service.app import create_app
    from earshot.service.settings import Settings

    with TestClient(create_app(Settings(models_dir=gauss, data_dir=tmp_path / "data"))) as client:
        files = {"file": ("c.wav", clip.read_bytes(), "audio/wav")}
        assert client.post("/score", files=files).status_code == 200
        r = client.post("/score?timeline=true", files=files)
        assert r.status_code == 422 and "scores whole clips" in r.json()["detail"], r.text
        assert [m["streams"] for m in client.get("/models").json()["models"]] == [False]  # the web page asks no timeline


# ---------------------------------------------------------------------- item 13: another machine's clip
def test_a_one_group_model_refuses_a_clip_of_another_group_like_a_model_set(model, tmp_path, capsys):
    write_hum_clips(tmp_path / "fan" / "id_02" / "normal", 1, np.random.default_rng(4))
    other = tmp_path / "fan" / "id_02" / "normal" / "00000000.wav"
    code, out, err = run(["score", model, other], capsys)
    one_line_error(code, err, "'fan/id_02' clip", "fan/id_00", "--group")
    code, out, err = run(["score", model, other, "--group", "fan/id_00"], capsys)
    assert code == 0 and json.loads(out)[0]["group"] == "fan/id_00"
    write_hum_clips(tmp_path / "fan" / "id_00" / "normal", 1, np.random.default_rng(4))
    code, _, err = run(["score", model, tmp_path / "fan" / "id_00" / "normal" / "00000000.wav"], capsys)
    assert code == 0, err


# ---------------------------------------------------------------------- item 9: orphan audio
def test_orphan_audio_is_collected_at_start_once_past_the_grace(model, tmp_path, caplog):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from earshot.service.app import create_app
    from earshot.service.settings import Settings

    data = tmp_path / "data"
    settings = Settings(models_dir=model, data_dir=data)
    with TestClient(create_app(settings)) as client:
        wav = (tmp_path / "c.wav")
        sf.write(wav, hum(np.random.default_rng(5), 2.0), SR, subtype="PCM_16")
        r = client.post("/machines/fan/snippets", files={"file": ("c.wav", wav.read_bytes(), "audio/wav")})
        assert r.status_code == 201
    (kept,) = [p for p in (data / "audio").rglob("*") if p.is_file()]
    old = time.time() - 2 * 3600
    orphan = data / "audio" / "ab" / ("ab" + "0" * 62 + ".wav")
    fresh = data / "audio" / "cd" / ("cd" + "0" * 62 + ".wav")
    for f in (orphan, fresh):
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"RIFF")
    os.utime(orphan, (old, old))
    os.utime(kept, (old, old))
    with caplog.at_level("WARNING", logger="earshot"), TestClient(create_app(settings)):
        pass
    assert not orphan.exists() and fresh.exists() and kept.exists()
    assert any("1 orphan audio" in r.getMessage() for r in caplog.records)
