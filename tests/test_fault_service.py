"""Fault labels in the service and the closest known fault on alerts, through the API
(in process, the tiny service model; SQLite and, when available, a throw-away PostgreSQL)."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from helpers.service import JsonHook, hook_server, tiny_model, wait_until, wav_bytes  # noqa: E402
from helpers.signals import SR, hum  # noqa: E402

MACHINE = "fan_id_00"


@contextlib.contextmanager
def _client(tmp_path_factory, tmp_path, db_url=None):
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path / "data", db_url=db_url,
                        alert_open_after=1, alert_close_after=1, webhook_allow=("127.0.0.1",))
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client, y, machine=MACHINE):
    r = client.post(f"/machines/{machine}/snippets", files={"file": ("clip.wav", wav_bytes(y), "audio/wav")})
    assert r.status_code == 201, r.text
    return r.json()


def _label(client, sid, label="anomaly", fault=None):
    body = {"label": label} if fault is None else {"label": label, "fault": fault}
    return client.post(f"/snippets/{sid}/label", json=body)


def _new_kind(rng):
    """An anomaly unlike the clicks and the whine: the hum under a loud 6 kHz band of noise."""
    t = np.arange(2 * SR) / SR
    band = np.convolve(rng.standard_normal(t.size), np.sin(2 * np.pi * 6000 * np.arange(64) / SR), "same")
    return (hum(rng) + 0.08 * band / np.abs(band).max()).astype(np.float32)


def _alert(client, snippet):
    """The alert a snippet opened (after a normal one closed the previous alert)."""
    assert snippet["alert_event"] == "open", snippet
    return next(a for a in client.get(f"/alerts?machine={MACHINE}").json()["alerts"] if a["id"] == snippet["alert_id"])


def _calm(client, rng):
    """Post normal hums until the machine has no open alert (the tiny model has a few false alarms)."""
    for _ in range(6):
        r = _post(client, hum(rng))
        if not r["is_anomalous"] and (r["alert_event"] == "close" or r["alert_id"] is None):
            return
    raise AssertionError("the machine kept its alert open through six normal hums")


@pytest.mark.slow
def test_alerts_name_the_closest_confirmed_fault(tmp_path_factory, tmp_path, service_db):
    rng = np.random.default_rng(7)
    hook = type("Hook", (JsonHook,), {"received": []})
    with _client(tmp_path_factory, tmp_path, service_db) as client, hook_server(hook) as url:
        assert client.put(f"/machines/{MACHINE}", json={"webhook_url": url}).status_code == 200
        # before any fault label: an alert has no fault to compare with
        first = _post(client, hum(rng, fault="clicks"))
        assert _alert(client, first)["fault"] is None and _alert(client, first)["fault_known"] is None
        # two confirmed fault types, four snippets each (bearing-like clicks, a switched whine)
        for _ in range(4):
            for fault, kind in (("bearing", "clicks"), ("whine", "whine")):
                _calm(client, rng)
                sn = _post(client, hum(rng, fault=kind))
                r = _label(client, sn["id"], fault=f"  {fault} ")
                assert r.status_code == 200 and r.json()["fault"] == fault and r.json()["label"] == "anomaly"
        known = client.get(f"/machines/{MACHINE}/faults").json()
        assert known["faults"] == [{"fault": "bearing", "n": 4, "last_labelled_at": known["faults"][0]["last_labelled_at"]},
                                   {"fault": "whine", "n": 4, "last_labelled_at": known["faults"][1]["last_labelled_at"]}]
        assert known["n_labelled"] == 8 and known["matching"] is True
        # a new anomaly of a confirmed type gets that fault; a new kind of anomaly is unlike any
        _calm(client, rng)
        bearing = _alert(client, _post(client, hum(rng, fault="clicks")))
        assert bearing["fault"] == "bearing" and bearing["fault_known"] is True, bearing
        _calm(client, rng)
        whine = _alert(client, _post(client, hum(rng, fault="whine")))
        assert whine["fault"] == "whine" and 0 < whine["fault_distance"] < bearing["fault_distance"] * 10, whine
        _calm(client, rng)
        new = _alert(client, _post(client, _new_kind(rng)))
        assert new["fault_known"] is False and new["fault_distance"] > 5 * bearing["fault_distance"], new
        # the webhook of the alert's opening carries the same answer
        assert wait_until(lambda: any(p["alert"]["id"] == new["id"] for p in hook.received), timeout=15)
        opened = next(p["alert"] for p in hook.received if p["alert"]["id"] == new["id"] and p["event"] == "alert.opened")
        assert opened["fault_known"] is False and opened["fault_distance"] == new["fault_distance"]
        # a changed fault label refits the signatures: relabelled as "leak", the whine examples answer "leak"
        whines = client.get(f"/machines/{MACHINE}/snippets?label=anomaly&limit=100").json()
        for sn in whines["items"]:
            if sn["fault"] == "whine":
                assert _label(client, sn["id"], fault="leak").status_code == 200
        _calm(client, rng)
        assert _alert(client, _post(client, hum(rng, fault="whine")))["fault"] == "leak"
        assert [f["fault"] for f in client.get(f"/machines/{MACHINE}/faults").json()["faults"]] == ["bearing", "leak"]


def test_fault_label_validation(tmp_path_factory, tmp_path):
    rng = np.random.default_rng(8)
    with _client(tmp_path_factory, tmp_path) as client:
        sid = _post(client, hum(rng, fault="clicks"))["id"]
        for body, status, words in (
            ({"label": "normal", "fault": "bearing"}, 422, "only a confirmed anomaly"),
            ({"label": None, "fault": "bearing"}, 422, "only a confirmed anomaly"),
            ({"label": "anomaly", "fault": "x" * 65}, 422, "at most 64 characters"),
            ({"label": "anomaly", "fault": "bear\ning"}, 422, "printable"),
            ({"label": "anomaly", "fault": 3}, 422, "fault"),
        ):
            r = client.post(f"/snippets/{sid}/label", json=body)
            assert r.status_code == status and words in r.json()["detail"], (body, r.text)
            assert client.get(f"/snippets/{sid}").json()["label"] is None  # nothing half-written
        assert _label(client, sid, fault=" " + "y" * 64 + " ").json()["fault"] == "y" * 64
        assert _label(client, sid, fault="   ").json()["fault"] is None  # blank: no fault
        assert _label(client, sid, fault="bearing").json()["fault"] == "bearing"
        assert _label(client, sid, label="normal").json()["fault"] is None  # a relabel replaces the fault
        assert client.get("/machines/nobody/faults").status_code == 404
        assert client.get(f"/machines/{MACHINE}/faults").json() == {"machine": MACHINE, "faults": [], "n_labelled": 0,
                                                                     "matching": False}
