"""``GET /machines/{m}/drift`` through the API (in process, SQLite, the tiny service model)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from helpers.service import tiny_model, wav_bytes  # noqa: E402
from helpers.signals import hum  # noqa: E402


@pytest.fixture
def client(tmp_path_factory, tmp_path):
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client, y, machine="fan_id_00"):
    r = client.post(f"/machines/{machine}/snippets", files={"file": ("clip.wav", wav_bytes(y), "audio/wav")})
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.mark.slow
def test_drift_of_a_steady_and_a_shifted_machine(client):
    rng = np.random.default_rng(5)
    assert client.get("/machines/nobody/drift").status_code == 404
    for _ in range(3):
        _post(client, hum(rng))
    r = client.get("/machines/fan_id_00/drift")
    assert r.status_code == 409 and "at least 5" in r.json()["detail"]
    for _ in range(9):
        _post(client, hum(rng))
    steady = client.get("/machines/fan_id_00/drift").json()
    assert steady["window"]["n"] == 12 and steady["drifted"] is False, steady
    assert steady["threshold"] > steady["score"] and len(steady["bands"]) == 5
    # the same hum under a loud broadband background (no fault): scores and high bands move
    shifted = [_post(client, hum(rng) + 0.05 * rng.standard_normal(2 * 16000).astype(np.float32), "fan_id_00")
               for _ in range(12)]
    moved = client.get("/machines/fan_id_00/drift?n=12").json()
    assert moved["window"]["n"] == 12 and moved["drifted"] is True, moved
    assert moved["mean_shift"] > 0 and moved["bands"][0]["shift_db"] > 3.0
    # a confirmed anomaly is left out of the window (a fault is not drift)
    sid = shifted[-1]["id"]
    assert client.post(f"/snippets/{sid}/label", json={"label": "anomaly"}).status_code == 200
    assert client.get("/machines/fan_id_00/drift?n=12&bands=false").json()["window"]["n"] == 12
    assert client.get("/machines/fan_id_00/drift?n=30&bands=false").json()["window"]["n"] == 23
    assert client.get("/machines/fan_id_00/drift?alpha=0").status_code == 422
