"""Training from the team's labels through the API: ``POST /machines/{m}/train`` with
``"model": "supervised" | "auto"`` (a CNN on labelled snippets, compared with the current model
on held-out labelled snippets, swapped in only when its AUC is higher)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from helpers.postgres import fresh_database  # noqa: E402
from helpers.service import tiny_model, wav_bytes  # noqa: E402
from helpers.signals import hum  # noqa: E402

#: A small, quick CNN job (the machine's current model has 32 mel bands: the candidate takes them).
JOB = {"model": "supervised", "epochs": 8, "seed": 0}


@pytest.fixture
def make_client(tmp_path_factory, tmp_path, service_db):
    """``make_client()`` -> (a started TestClient, its data folder) with the tiny service model (a dense autoencoder
    trained on plain hum: the default model of every machine), on SQLite or PostgreSQL."""
    model = tiny_model(tmp_path_factory)
    stack = contextlib.ExitStack()

    def make():
        values = {"models_dir": model, "data_dir": tmp_path / "data"}
        if service_db:
            fresh_database(service_db)
            values["db_url"] = service_db
        return stack.enter_context(TestClient(create_app(Settings(**values)))), values["data_dir"]

    with stack:
        yield make


def _labelled(client, machine: str, normal, anomaly, *, n_normal: int, n_anomaly: int, seed: int = 0) -> None:
    """Post ``n_normal`` normal and ``n_anomaly`` anomalous clips, interleaved in time, all labelled."""
    rng = np.random.default_rng(seed)
    kinds = ["normal"] * n_normal + ["anomaly"] * n_anomaly
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        y = normal(rng) if kind == "normal" else anomaly(rng)
        r = client.post(f"/machines/{machine}/snippets", files={"file": ("c.wav", wav_bytes(y), "audio/wav")},
                        data={"snippet_id": f"{machine}-{i}", "recorded_at": f"2026-03-01T10:{i:02d}:00Z"})
        assert r.status_code == 201, r.text
        assert client.post(f"/snippets/{r.json()['id']}/label", json={"label": kind}).status_code == 200


def _finished(client, job: dict, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/jobs/{job['id']}").json()
    return job


def _whine(rng):  # this machine's normal sound: hum with a pulsed 2.3 kHz whine
    return hum(rng, fault="whine")


def _plain(rng):  # and its fault: the whine is gone (the hum model hears plain hum as normal)
    return hum(rng)


def test_a_label_trained_model_is_swapped_in_when_better_on_held_out_labels(make_client):
    """The default model (trained on plain hum) ranks this machine backwards: its normal sound
    (hum + whine) scores high, its fault (plain hum) low. A CNN trained on the older labels
    ranks the newest held-out labels right: it replaces the model, without a restart."""
    client, data = make_client()
    _labelled(client, "press_1", _whine, _plain, n_normal=10, n_anomaly=8)
    before = client.get("/machines/press_1").json()
    assert before["model"] == "fan_id_00" and before["labels"] == {"normal": 10, "anomaly": 8}
    r = client.post("/machines/press_1/train", json={**JOB, "model": "auto"})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["model"] == "supervised" and r.json()["params"]["labels"] == {"anomaly": 8, "normal": 10}
    job = _finished(client, r.json())
    assert job["state"] == "succeeded", job
    c = job["result"]["comparison"]
    # the newest 30% of each label (ceil: 3 of 8 anomalies, 3 of 10 normal) were held out, never trained on
    assert c["held_out"] == {"anomaly": 3, "normal": 3, "not_scorable": 0}
    assert job["result"]["n_anomalies"] == 5 and job["result"]["n_normal"] == 7
    items = client.get("/machines/press_1/snippets").json()["items"]
    newest = {kind: sorted((s for s in items if s["label"] == kind), key=lambda s: s["recorded_at"])[-3:]
              for kind in ("anomaly", "normal")}
    assert c["held_out_ids"] == sorted(s["id"] for s in newest["anomaly"] + newest["normal"])
    trained_on = {Path(f).stem for f in json.loads((data / "models" / "press_1" / "manifest.json").read_text())
                  ["training"]["files"]}
    assert trained_on == {s["sha256"] for s in items if s["id"] not in c["held_out_ids"]}  # never a held-out one
    assert c["current"]["model"] == "fan_id_00" and c["current"]["kind"] == "dense-ae"
    assert c["candidate"]["kind"] == "cnn" and c["candidate"]["auc"] > c["current"]["auc"], c
    assert c["swapped"] is True and "held-out AUC" in c["reason"]
    assert "swapped in" in job["message"]
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["press_1"]["kind"] == "cnn" and models["press_1"]["source"] == "trained"
    assert client.get("/machines/press_1").json()["model"] == "press_1"
    rng = np.random.default_rng(99)  # new snippets are scored by the label-trained model
    s = client.post("/machines/press_1/snippets", files={"file": ("c.wav", wav_bytes(_plain(rng)), "audio/wav")}).json()
    assert s["model"] == "press_1"


def test_a_candidate_no_better_than_the_current_model_is_not_swapped(tmp_path_factory, tmp_path):
    """Plain hum vs loud clicks: the current model ranks every held-out label right (AUC 1.0).
    The candidate cannot be higher; equal is not better: the machine keeps its model."""
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        _labelled(client, "fan_2", hum, lambda rng: hum(rng, fault="clicks"), n_normal=8, n_anomaly=8, seed=1)
        job = _finished(client, client.post("/machines/fan_2/train", json=JOB).json())
        assert job["state"] == "succeeded", job
        c = job["result"]["comparison"]
        assert c["current"]["auc"] == 1.0 and c["held_out"]["anomaly"] == 3 and c["held_out"]["normal"] == 3
        assert c["swapped"] is False and "not higher" in c["reason"], c
        assert job["result"]["model"] == "fan_id_00" and "current model kept" in job["message"]
        assert "fan_2" not in {m["name"] for m in client.get("/models").json()["models"]}
        assert client.get("/machines/fan_2").json()["model"] == "fan_id_00"
        assert not (tmp_path / "data" / "models" / "fan_2").exists()
        assert [p.name for p in (tmp_path / "data" / "models").iterdir() if p.name.startswith(".")] == []


def test_too_few_labels_is_409_with_the_counts_and_auto_falls_back(tmp_path_factory, tmp_path):
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path / "data", train_min_snippets=3)
    with TestClient(create_app(settings)) as client:
        _labelled(client, "pump_3", hum, lambda rng: hum(rng, fault="clicks"), n_normal=4, n_anomaly=3)
        r = client.post("/machines/pump_3/train", json=JOB)
        assert r.status_code == 409
        detail = r.json()["detail"]
        assert "3 confirmed anomalies and 4 snippets labelled normal" in detail and "at least 8 and 4" in detail
        assert client.post("/machines/pump_3/train", json={**JOB, "model": "cnn"}).status_code == 422
        assert client.post("/machines/nobody/train", json=JOB).status_code == 404
        # auto: too few labels for supervised training, so the autoencoder job on normal snippets
        r = client.post("/machines/pump_3/train", json={**JOB, "model": "auto", "epochs": 1})
        assert r.status_code == 202 and r.json()["params"]["model"] == "autoencoder"
        assert r.json()["params"]["requested_model"] == "auto"
        assert _finished(client, r.json())["state"] == "succeeded"
