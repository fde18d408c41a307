"""Drift as a time series through the API: background checks every K snippets, the history,
``drift.detected`` / ``drift.cleared`` webhooks, and retraining on recent snippets.

Runs on SQLite and on the throw-away PostgreSQL (``service_db``), with the tiny service model.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from earshot.service.app import create_app  # noqa: E402
from earshot.service.drift_watch import DEFAULT_N  # noqa: E402
from earshot.service.settings import Settings  # noqa: E402
from helpers.service import JsonHook, hook_server, tiny_model, wait_until, wav_bytes  # noqa: E402
from helpers.signals import SR, hum  # noqa: E402

EVERY = Settings().drift_check_every  # the default: a check after every 50 newly scored snippets


@contextlib.contextmanager
def _client(tmp_path_factory, tmp_path, db_url=None, **overrides):
    settings = Settings(models_dir=tiny_model(tmp_path_factory), data_dir=tmp_path / "data", db_url=db_url,
                        webhook_allow=("127.0.0.1",), webhook_backoff_s=0.05, **overrides)
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client, y, machine):
    r = client.post(f"/machines/{machine}/snippets", files={"file": ("clip.wav", wav_bytes(y), "audio/wav")})
    assert r.status_code == 201, r.text
    return r.json()


def _shifted(rng):
    """The same hum in a noisier room (a broadband background, no fault)."""
    return (hum(rng) + 0.02 * rng.standard_normal(2 * SR)).astype(np.float32)


def _history(client, machine):
    r = client.get(f"/machines/{machine}/drift/history")
    assert r.status_code == 200, r.text
    return r.json()["checks"]


def _post_block(client, machine, make, rng):
    """Post EVERY snippets, then wait for the background check they trigger; return it."""
    before = len(_history(client, machine))
    for _ in range(EVERY):
        _post(client, make(rng), machine)
    assert wait_until(lambda: len(_history(client, machine)) == before + 1, timeout=60), _history(client, machine)
    return _history(client, machine)[-1]


@pytest.mark.slow
def test_drift_series_steady_and_shifted_machine(tmp_path_factory, tmp_path, service_db):
    rng = np.random.default_rng(11)
    hook = type("Hook", (JsonHook,), {"received": []})
    with _client(tmp_path_factory, tmp_path, service_db) as client, hook_server(hook) as url:
        for name in ("steady", "moved"):
            assert client.put(f"/machines/{name}", json={"webhook_url": url}).status_code == 200
        assert _history(client, "steady") == []
        # a steady machine over the default window (200 snippets): 4 checks, no false drift alarm
        steady = [_post_block(client, "steady", hum, rng) for _ in range(DEFAULT_N // EVERY)]
        assert [c["n"] for c in steady] == [50, 100, 150, 200]
        false_alarms = sum(c["drifted"] for c in steady)
        assert false_alarms == 0, steady
        assert all(c["trigger"] == "auto" and c["threshold"] > c["score"] >= 0 for c in steady)
        # a machine whose room gets noisier: steady first, then drifted within the default window
        before = [_post_block(client, "moved", hum, rng) for _ in range(2)]
        assert not any(c["drifted"] for c in before), before
        after = []
        while len(after) < DEFAULT_N // EVERY and not any(c["drifted"] for c in after):
            after.append(_post_block(client, "moved", _shifted, rng))
        assert after[-1]["drifted"] is True, after
        # a further drifted check is the same episode: no second webhook
        again = _post_block(client, "moved", _shifted, rng)
        assert again["drifted"] is True
        assert wait_until(lambda: any(p["event"] == "drift.detected" for p in hook.received), timeout=15)
        detected = [p for p in hook.received if p["event"] == "drift.detected"]
        assert len(detected) == 1 and detected[0]["machine"] == "moved", hook.received
        assert detected[0]["drift_check"]["id"] == after[-1]["id"] and detected[0]["drift_check"]["bands"]
        assert detected[0]["drift_check"]["bands"][0]["shift_db"] > 0  # the noise lifted the high bands
        # the series: every check in order, with time, score, threshold, verdict, window, bands
        series = _history(client, "moved")
        assert [c["id"] for c in series] == [c["id"] for c in before + after + [again]]
        assert all({"computed_at", "score", "threshold", "drifted", "n", "n_rejected", "bands"} <= set(c) for c in series)
        assert [c["id"] for c in client.get("/machines/moved/drift/history?limit=2").json()["checks"]] == \
            [after[-1]["id"], again["id"]]
        # the outbox lists the drift notification (no alert) under its machine
        notes = client.get("/notifications?machine=moved").json()["notifications"]
        drift_notes = [n for n in notes if n["event"].startswith("drift.")]
        assert len(drift_notes) == 1 and drift_notes[0]["alert_id"] is None
        assert drift_notes[0]["drift_check_id"] == after[-1]["id"] and drift_notes[0]["machine"] == "moved"
        # back in the old room: a check recorded on request over the recent snippets clears the episode
        for _ in range(20):
            _post(client, hum(rng), "moved")
        cleared = client.get("/machines/moved/drift?n=20&record=true").json()
        assert cleared["drifted"] is False and cleared["event"] == "drift.cleared" and cleared["check"]["trigger"] == "request"
        assert wait_until(lambda: any(p["event"] == "drift.cleared" for p in hook.received), timeout=15)
        assert _history(client, "moved")[-1]["id"] == cleared["check"]["id"]
        assert client.get("/machines/nobody/drift/history").status_code == 404


def test_drift_checks_only_when_due_and_on_request(tmp_path_factory, tmp_path):
    rng = np.random.default_rng(12)
    with _client(tmp_path_factory, tmp_path, drift_check_every=0, api_key="k3y") as client:
        client.headers["X-API-Key"] = "k3y"
        for _ in range(8):
            _post(client, hum(rng), "quiet")
        del client.headers["X-API-Key"]
        # storing a check is a write: it needs the key; reading the drift does not
        assert client.get("/machines/quiet/drift?record=true&bands=false").status_code == 401
        client.headers["X-API-Key"] = "k3y"
        # no background checks when they are off; on demand nothing is stored unless asked
        assert client.get("/machines/quiet/drift?bands=false").json()["drifted"] is False
        assert _history(client, "quiet") == []
        r = client.get("/machines/quiet/drift?record=true&bands=false").json()
        assert r["event"] is None and r["check"]["n"] == 8  # no webhook URL, first check steady: nothing to send
        assert [c["id"] for c in _history(client, "quiet")] == [r["check"]["id"]]
        assert client.get("/machines/quiet/drift/history").json()["every"] == 0


def test_retrain_on_recent_snippets_only(tmp_path_factory, tmp_path):
    rng = np.random.default_rng(13)
    with _client(tmp_path_factory, tmp_path) as client:
        old = "2020-01-01T00:00:00Z"
        for i in range(6):
            r = client.post("/machines/m/snippets", files={"file": ("c.wav", wav_bytes(hum(rng)), "audio/wav")},
                            data={"recorded_at": old, "snippet_id": f"old-{i}"})
            assert r.status_code == 201
        for _ in range(3):  # labelled normal: each counts whatever the tiny model said of it
            sid = _post(client, hum(rng), "m")["id"]
            assert client.post(f"/snippets/{sid}/label", json={"label": "normal"}).status_code == 200
        r = client.post("/machines/m/train", json={"since_days": 30, "min_snippets": 4, "epochs": 1})
        assert r.status_code == 409 and "3 normal snippets recorded in the last 30 days" in r.json()["detail"], r.text
        r = client.post("/machines/m/train", json={"since_days": 30, "min_snippets": 3, "epochs": 1})
        assert r.status_code == 202 and r.json()["params"]["since_days"] == 30
        job = r.json()["id"]
        assert wait_until(lambda: client.get(f"/jobs/{job}").json()["state"] in ("succeeded", "failed"), timeout=120)
        done = client.get(f"/jobs/{job}").json()
        assert done["state"] == "succeeded" and done["result"]["n_snippets"] == 3, done
        assert client.post("/machines/m/train", json={"since_days": 0}).status_code == 422
