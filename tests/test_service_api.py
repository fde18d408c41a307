"""The monitoring service's REST API, in process (FastAPI TestClient) with a tiny trained model."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import subprocess
import sys
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
from helpers.service import hook_server, tiny_model, wait_until, wav_bytes  # noqa: E402
from helpers.signals import SR, hum  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture
def make_client(model_dir, tmp_path, service_db):
    """``make_client(**settings)`` -> a started TestClient on a fresh data folder and database.

    Every test that uses it runs twice: on SQLite in the test's folder (``[sqlite]``) and on the
    session's throw-away PostgreSQL (``[postgresql]``, tables dropped first; see helpers/postgres.py).
    """
    stack = contextlib.ExitStack()

    def make(**overrides):
        # the test webhook receivers listen on 127.0.0.1, which webhooks reach only when allowed
        values = {"models_dir": model_dir, "data_dir": tmp_path / "data", "webhook_allow": ("127.0.0.1",), **overrides}
        if service_db:
            fresh_database(service_db)
            values["db_url"] = service_db
        return stack.enter_context(TestClient(create_app(Settings(**values))))

    with stack:
        yield make


@pytest.fixture
def client(make_client):
    return make_client(alert_open_after=1, alert_close_after=1)


@pytest.fixture
def clips():
    rng = np.random.default_rng(7)
    return {"normal": [wav_bytes(hum(rng)) for _ in range(6)], "fault": [wav_bytes(hum(rng, fault=True)) for _ in range(3)]}


def post_snippet(client, data: bytes, machine="fan_id_00", snippet_id=None, name="clip.wav", headers=None):
    form = {"snippet_id": snippet_id} if snippet_id else {}
    return client.post(f"/machines/{machine}/snippets", files={"file": (name, data, "audio/wav")}, data=form,
                       headers=headers or {})


# ---------------------------------------------------------------------- system and models
def test_health_models_and_docs(client, service_db):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["models"] == 1 and h["api_key_required"] is False
    assert h["database"] == ("postgresql" if service_db else "sqlite")
    models = client.get("/models").json()
    assert models["default"] == "fan_id_00"
    (m,) = models["models"]
    assert m["group"] == "fan/id_00" and m["source"] == "models-dir" and m["features"]["n_mels"] == 32
    detail = client.get("/models/fan_id_00").json()
    assert detail["manifest"]["threshold"]["value"] == pytest.approx(m["threshold"])
    assert "files" not in detail["manifest"]["training"]  # no server paths
    r = client.get("/models/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    spec = client.get("/openapi.json").json()
    for path in ("/score", "/machines/{machine}/snippets", "/snippets/{snippet_id}/label", "/alerts", "/jobs/{job_id}",
                 "/machines/{machine}/train", "/models/{name}"):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "earshot" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


# ---------------------------------------------------------------------- scoring
def test_score_verdicts_timeline_and_spectrogram(client, clips):
    normal = client.post("/score", files={"file": ("n.wav", clips["normal"][0])}).json()
    fault = client.post("/score?timeline=true&spectrogram=true", files={"file": ("f.wav", clips["fault"][0])}).json()
    assert fault["score"] > normal["score"]
    assert fault["verdict"] == "anomalous" and fault["is_anomalous"] is True
    assert normal["threshold"] == fault["threshold"] and normal["model"] == "fan_id_00"
    assert normal["duration_s"] == pytest.approx(2.0) and normal["sr"] == SR and "timeline" not in normal
    tl = fault["timeline"]
    assert len(tl["points"]) == 2 and all(p["is_anomalous"] for p in tl["points"])
    assert tl["events"] and tl["events"][0]["start_s"] == 0.0
    assert fault["spectrogram_png"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("window_hop", [1, 2, 8])
def test_timeline_bins_windows_by_their_start_whatever_the_models_window_hop(window_hop):
    """A model whose windows start every ``window_hop`` frames (dense-ae -p window_hop=2,
    lstm-ae's 8) gives its window scores at those starts: a 2 s clip still spans 2 bins."""
    from types import SimpleNamespace

    from earshot.features import FeatureConfig
    from earshot.service.audio import _timeline

    f = FeatureConfig()
    frame_s = f.hop_length / f.sr
    n_frames = 63  # 2 s at 16 kHz, hop 512
    starts = np.arange(0, n_frames - 5 + 1, window_hop) * frame_s
    bundle = SimpleNamespace(features=f, min_frames=5, aggregate="mean", threshold_=1.2,
                             manifest={"model": {"params": {"window_hop": window_hop}}})
    tl = _timeline(starts.copy(), bundle, 1.0)  # each window's score is its start time
    assert [p["start_s"] for p in tl["points"]] == [0.0, 1.0]
    assert tl["points"][0]["score"] == pytest.approx(starts[starts < 1.0].mean())
    assert tl["points"][1]["score"] == pytest.approx(starts[starts >= 1.0].mean())
    assert [(e["start_s"], e["end_s"]) for e in tl["events"]] == [(1.0, pytest.approx(min(2.0, starts[-1] + 5 * frame_s), abs=1e-4))]


def test_score_unknown_model_is_422(client, clips):
    r = client.post("/score", files={"file": ("n.wav", clips["normal"][0])}, data={"model": "pump"})
    assert r.status_code == 422 and "fan_id_00" in r.json()["detail"]


# ---------------------------------------------------------------------- ingest
def test_ingest_is_idempotent_and_content_addressed(client, clips, tmp_path):
    data = clips["normal"][0]
    first = post_snippet(client, data, snippet_id="m1-0001")
    assert first.status_code == 201
    s = first.json()
    assert s["duplicate"] is False and s["snippet_id"] == "m1-0001" and s["model"] == "fan_id_00"
    retry = post_snippet(client, data, snippet_id="m1-0001")
    assert retry.status_code == 200 and retry.json()["duplicate"] is True and retry.json()["id"] == s["id"]
    conflict = post_snippet(client, clips["normal"][1], snippet_id="m1-0001")
    assert conflict.status_code == 409 and "m1-0001" in conflict.json()["detail"]
    # the header form of the id, and the default id (the content hash)
    assert post_snippet(client, clips["normal"][2], headers={"Idempotency-Key": "k-2"}).status_code == 201
    assert post_snippet(client, clips["normal"][2], headers={"Idempotency-Key": "k-2"}).status_code == 200
    assert post_snippet(client, clips["normal"][3]).status_code == 201
    again = post_snippet(client, clips["normal"][3])
    assert again.status_code == 200 and again.json()["snippet_id"] == "sha256-" + hashlib.sha256(clips["normal"][3]).hexdigest()
    page = client.get("/machines/fan_id_00/snippets").json()
    assert page["total"] == 3
    sha = hashlib.sha256(data).hexdigest()
    stored = tmp_path / "data" / "audio" / sha[:2] / f"{sha}.wav"
    assert stored.read_bytes() == data
    assert client.get(f"/snippets/{s['id']}/audio").content == data
    png = client.get(f"/snippets/{s['id']}/spectrogram.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert post_snippet(client, data, snippet_id="../../etc/passwd").status_code == 422


def test_history_is_paginated_newest_first(client, clips):
    ids = [post_snippet(client, c, snippet_id=f"p{i}").json()["id"] for i, c in enumerate(clips["normal"][:5])]
    seen, url = [], "/machines/fan_id_00/snippets?limit=2"
    while url:
        page = client.get(url).json()
        assert page["total"] == 5 and len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        url = page["next"]
    assert seen == sorted(ids, reverse=True)
    assert client.get("/machines/fan_id_00/snippets?label=unlabelled").json()["total"] == 5
    assert client.get("/machines/fan_id_00/snippets?label=maybe").status_code == 422
    assert client.get("/machines/pump_9/snippets").status_code == 404


def test_machines_status_and_configuration(client, clips):
    post_snippet(client, clips["fault"][0], snippet_id="f0")
    (m,) = client.get("/machines").json()["machines"]
    assert m["name"] == "fan_id_00" and m["status"] == "alert" and m["open_alert"]["state"] == "open"
    assert len(m["history"]) == 1 and m["history"][0]["is_anomalous"] is True
    one = client.get("/machines/fan_id_00").json()
    assert one["labels"] == {"unlabelled": 1} and one["model"] == "fan_id_00"
    assert client.get("/machines/nope").status_code == 404
    for bad in ("bad name", "x" * 65, ".hidden"):
        assert client.get(f"/machines/{bad}").status_code == 422, bad
    assert client.put("/machines/pump_1", json={"model": "nope"}).status_code == 422
    assert client.put("/machines/pump_1", json={"webhook_url": "file:///etc/passwd"}).status_code == 422
    r = client.put("/machines/pump_1", json={"model": "fan_id_00", "webhook_url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 200 and r.json()["model"] == "fan_id_00" and r.json()["status"] == "no data"


def test_labels_confirm_reject_and_reach_the_alert(client, clips):
    s = post_snippet(client, clips["fault"][0], snippet_id="f0").json()
    assert s["alert_event"] == "open" and s["alert_id"] is not None
    r = client.post(f"/snippets/{s['id']}/label", json={"label": "anomaly", "by": "ana"})
    assert r.status_code == 200 and r.json()["label"] == "anomaly" and r.json()["labelled_by"] == "ana"
    (alert,) = client.get("/alerts").json()["alerts"]
    assert alert["label"] == "confirmed"
    client.post(f"/snippets/{s['id']}/label", json={"label": "normal"})
    assert client.get("/alerts").json()["alerts"][0]["label"] == "rejected"
    assert client.get(f"/snippets/{s['id']}").json()["label"] == "normal"
    cleared = client.post(f"/snippets/{s['id']}/label", json={"label": None}).json()
    assert cleared["label"] is None and cleared["labelled_at"] is None
    assert client.post(f"/snippets/{s['id']}/label", json={"label": "broken"}).status_code == 422
    assert client.post("/snippets/999/label", json={"label": "normal"}).status_code == 404


def test_alerts_open_and_close_with_hysteresis(make_client, clips):
    client = make_client(alert_open_after=2, alert_close_after=2)
    n, f = clips["normal"], clips["fault"]
    # the tiny model flags every fault clip; normal clips are all kept under its threshold here
    normal_ok = [c for c in n if not client.post("/score", files={"file": ("n.wav", c)}).json()["is_anomalous"]]
    assert len(normal_ok) >= 3
    seq = [("f", f[0]), ("n", normal_ok[0]), ("f", f[1]), ("f", f[2]), ("n", normal_ok[1]), ("f", f[0]),
           ("n", normal_ok[2]), ("n", normal_ok[0])]
    events = [post_snippet(client, c, snippet_id=f"s{i}").json()["alert_event"] for i, (_, c) in enumerate(seq)]
    # one anomalous snippet opens nothing; two in a row open; one normal in between does not close
    assert events == [None, None, None, "open", None, None, None, "close"]
    (alert,) = client.get("/alerts").json()["alerts"]
    assert alert["state"] == "closed" and alert["n_anomalous"] == 3 and alert["first_snippet_id"] == 3
    assert alert["close_snippet_id"] == 8
    assert client.get("/alerts?state=open").json()["alerts"] == []
    assert client.get("/alerts?state=closed&machine=fan_id_00").json()["alerts"][0]["id"] == alert["id"]
    assert client.get("/alerts?state=weird").status_code == 422


class _Receiver(http.server.BaseHTTPRequestHandler):
    fail_first = 1
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
        else:
            cls.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def receiver(fail_first: int):
    handler = type("Receiver", (_Receiver,), {"fail_first": fail_first, "received": []})
    with hook_server(handler) as url:
        yield url, handler


def test_webhook_is_retried_with_backoff_until_delivered(make_client, clips):
    client = make_client(alert_open_after=1, alert_close_after=1, webhook_backoff_s=0.1)
    with receiver(fail_first=2) as (url, handler):
        assert client.put("/machines/fan_id_00", json={"webhook_url": url}).status_code == 200
        s = post_snippet(client, clips["fault"][0], snippet_id="f0").json()
        assert s["alert_event"] == "open"
        assert wait_until(lambda: len(handler.received) == 1), "webhook not delivered"
        (event,) = handler.received
        assert event["event"] == "alert.opened" and event["alert"]["machine"] == "fan_id_00"
        assert event["snippet_id"] == s["id"]
    st = client.app.state.earshot
    from earshot.service.store import Notification

    with st.store.read() as sess:
        (n,) = sess.query(Notification).all()
    assert n.state == "sent" and n.attempts == 3 and n.last_error is None


def test_webhook_gives_up_after_the_retries(make_client, clips):
    client = make_client(alert_open_after=1, webhook_backoff_s=0.05, webhook_retries=2)
    with receiver(fail_first=100) as (url, handler):
        client.put("/machines/fan_id_00", json={"webhook_url": url})
        post_snippet(client, clips["fault"][0], snippet_id="f0")
        from earshot.service.store import Notification

        st = client.app.state.earshot

        def failed():
            with st.store.read() as sess:
                return [n.state for n in sess.query(Notification).all()] == ["failed"]

        assert wait_until(failed)
        assert handler.received == []


# ---------------------------------------------------------------------- bad uploads
def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


def test_bad_uploads_get_4xx_json_with_a_clear_message(make_client, clips):
    import soundfile as sf

    client = make_client(max_upload_bytes=200_000, max_duration_s=5.0)
    rng = np.random.default_rng(0)
    cases = {
        "empty": (b"", 422, "empty"),
        "truncated": (_truncated(clips["normal"][0]), 422, "truncated"),
        "not audio": (b"this is a text file, not a recording\n" * 50, 422, "not a readable audio file"),
        "png named wav": (b"\x89PNG\r\n\x1a\n" + bytes(2000), 422, "not a readable audio file"),
        "8 kHz": (wav_bytes(hum(rng, sr=8000), sr=8000), 422, "8000 Hz"),
        "silence": (wav_bytes(np.zeros(SR, np.float32)), 422, "zero"),
        "too short": (wav_bytes(hum(rng, seconds=0.01)), 422, "too short"),
        "too long": (wav_bytes(hum(rng, seconds=6.0), subtype="PCM_U8", fmt="WAV"), 413, "at most 5 s"),
        "huge": (bytes(300_000), 413, "limit"),
    }
    assert "PCM_U8" in sf.available_subtypes("WAV")
    for name, (data, status, words) in cases.items():
        for path in ("/score", "/machines/fan_id_00/snippets"):
            r = client.post(path, files={"file": ("clip.wav", data, "audio/wav")})
            assert r.status_code == status, (name, path, r.status_code, r.text)
            detail = r.json()["detail"]
            assert isinstance(detail, str) and words in detail, (name, detail)
            assert "/tmp" not in detail and "upload-" not in detail, detail  # no server paths
    assert client.get("/machines").json()["machines"] == []  # nothing stored
    r = client.post("/score", data={"model": "fan_id_00"})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    r = client.post("/score", content=b"x" * 10, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 422


def test_higher_sample_rates_are_resampled(client):
    rng = np.random.default_rng(1)
    r = client.post("/score", files={"file": ("c.flac", wav_bytes(hum(rng, sr=44100), sr=44100, fmt="FLAC", subtype="PCM_16"))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resampled_from"] == 44100 and body["format"] == "flac" and body["sr"] == 44100
    stored = post_snippet(client, wav_bytes(hum(rng, sr=48000), sr=48000), snippet_id="hi")
    assert stored.status_code == 201 and stored.json()["sr"] == 48000 and stored.json()["score"] is not None


def test_body_limit_without_content_length(make_client):
    client = make_client(max_upload_bytes=1000)

    def chunks():
        for _ in range(200):
            yield b"x" * 1000

    r = client.post("/score", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


# ---------------------------------------------------------------------- security
def test_write_endpoints_need_the_api_key(make_client, clips):
    client = make_client(api_key="s3cret", alert_open_after=1)
    file = {"file": ("n.wav", clips["normal"][0])}
    writes = [
        lambda h: client.post("/score", files=file, headers=h),
        lambda h: client.post("/machines/fan_id_00/snippets", files=file, headers=h),
        lambda h: client.put("/machines/fan_id_00", json={}, headers=h),
        lambda h: client.post("/snippets/1/label", json={"label": "normal"}, headers=h),
        lambda h: client.post("/machines/fan_id_00/train", json={}, headers=h),
    ]
    for call in writes:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}):
            r = call(headers)
            assert r.status_code == 401 and "API key" in r.json()["detail"], r.text
    assert client.get("/health").json()["api_key_required"] is True
    assert client.get("/machines").status_code == 200  # reads stay open
    assert client.post("/score", files=file, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.post("/machines/fan_id_00/snippets", files=file, headers={"Authorization": "Bearer s3cret"}).status_code == 201


def test_serve_warns_when_exposed_without_a_key(monkeypatch, tmp_path, capsys):
    import uvicorn

    from earshot.cli.app import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--data", str(tmp_path / "d")]) == 0
    assert calls and calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == 8123
    assert "without an API key" in capsys.readouterr().err
    assert main(["serve", "--host", "127.0.0.1", "--data", str(tmp_path / "d")]) == 0
    assert "without an API key" not in capsys.readouterr().err
    assert main(["serve", "--port", "70000", "--data", str(tmp_path / "d")]) == 1
    assert "port" in capsys.readouterr().err


# ---------------------------------------------------------------------- training jobs
def test_train_a_machine_model_in_the_background_and_hot_swap_it(make_client, clips):
    client = make_client(train_min_snippets=5)
    rng = np.random.default_rng(3)
    # a new machine with no model of its own is scored by the default model...
    for i in range(6):
        post_snippet(client, wav_bytes(hum(rng)), machine="pump_7", snippet_id=f"t{i}")
    flagged = [s for s in client.get("/machines/pump_7/snippets").json()["items"] if s["is_anomalous"]]
    for s in flagged:  # a human says these were fine
        client.post(f"/snippets/{s['id']}/label", json={"label": "normal"})
    assert client.post("/machines/nope/train", json={}).status_code == 404
    assert client.post("/machines/pump_7/train", json={"min_snippets": 50}).status_code == 409
    assert client.post("/machines/pump_7/train", json={"threshold": "magic"}).status_code == 422
    r = client.post("/machines/pump_7/train", json={"epochs": 2})
    assert r.status_code == 202
    job = r.json()
    assert job["state"] in ("queued", "running") and job["url"] == f"/jobs/{job['id']}"
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/jobs/{job['id']}").json()
        assert 0.0 <= job["progress"] <= 1.0
    assert job["state"] == "succeeded", job
    assert job["result"]["n_snippets"] == 6 and job["result"]["model"] == "pump_7"
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["pump_7"]["source"] == "trained" and models["pump_7"]["features"]["n_mels"] == 32
    # ...and from now on by its own model, without a restart
    s = post_snippet(client, clips["fault"][0], machine="pump_7", snippet_id="after").json()
    assert s["model"] == "pump_7" and s["is_anomalous"] is True
    assert client.get("/jobs?machine=pump_7").json()["jobs"][0]["id"] == job["id"]
    assert client.get("/jobs/unknown").status_code == 404



# ---------------------------------------------------------------------- the backlog of unscored snippets
def _finished(client, job_id: str, timeout: float = 90.0) -> dict:
    job = client.get(f"/jobs/{job_id}").json()
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/jobs/{job_id}").json()
    return job


def test_snippets_stored_without_a_model_are_scored_late_and_open_no_alert(make_client):
    """No model scores pump_9 or press_2: their snippets are stored unscored. Training pump_9's
    model scores its backlog in the same job, late and without touching the alert state (with
    a threshold every verdict exceeds, live snippets would open an alert at once); setting that
    model for press_2 scores press_2's backlog in a job of its own."""
    client = make_client(models_dir=None, train_min_snippets=5, alert_open_after=2, alert_close_after=1)
    rng = np.random.default_rng(11)
    with receiver(fail_first=0) as (url, handler):
        assert client.put("/machines/pump_9", json={"webhook_url": url}).json()["backlog_job"] is None
        short = post_snippet(client, wav_bytes(hum(rng, seconds=0.05)), machine="pump_9", snippet_id="short")
        assert short.status_code == 201 and short.json()["score"] is None
        client.post(f"/snippets/{short.json()['id']}/label", json={"label": "anomaly"})  # not trained on
        for i in range(6):
            assert post_snippet(client, wav_bytes(hum(rng)), machine="pump_9", snippet_id=f"u{i}").status_code == 201
        for i in range(3):
            post_snippet(client, wav_bytes(hum(rng)), machine="press_2", snippet_id=f"p{i}")
        items = client.get("/machines/pump_9/snippets").json()["items"]
        assert [(s["score"], s["scored_at"], s["scored_late"]) for s in items] == [(None, None, False)] * 7
        assert client.get("/machines/pump_9").json()["status"] == "unscored"

        job = client.post("/machines/pump_9/train", json={"epochs": 2, "threshold": "value:0"}).json()
        job = _finished(client, job["id"])
        assert job["state"] == "succeeded", job
        assert job["result"]["n_snippets"] == 6
        assert job["result"]["n_scored_late"] == 6 and job["result"]["n_not_scorable"] == 1
        assert "6 stored snippets scored late" in job["message"]
        items = {s["snippet_id"]: s for s in client.get("/machines/pump_9/snippets").json()["items"]}
        for i in range(6):
            s = items[f"u{i}"]
            assert s["model"] == "pump_9" and s["is_anomalous"] is True and s["scored_late"] is True, s
            assert s["scored_at"] > s["received_at"] and s["alert_id"] is None
        assert items["short"]["score"] is None  # too short for the model: left unscored
        assert client.get(f"/snippets/{items['u0']['id']}").json()["scored_late"] is True
        # six anomalous verdicts, and no alert: old audio is history, not news
        m = client.get("/machines/pump_9?history=10").json()
        assert m["open_alert"] is None and client.get("/alerts").json()["alerts"] == []
        assert m["status"] == "warning" and m["last_is_anomalous"] is True  # its newest snippet's verdict
        assert [h["scored_late"] for h in m["history"]] == [False] + [True] * 6

        # live verdicts count as before, from a clean run: the first anomalous one opens nothing
        first = post_snippet(client, wav_bytes(hum(rng)), machine="pump_9", snippet_id="live0").json()
        assert first["is_anomalous"] is True and first["alert_event"] is None
        assert first["scored_late"] is False and first["scored_at"] == first["received_at"]
        second = post_snippet(client, wav_bytes(hum(rng)), machine="pump_9", snippet_id="live1").json()
        assert second["alert_event"] == "open"
        (alert,) = client.get("/alerts").json()["alerts"]
        assert alert["first_snippet_id"] == first["id"] and alert["n_anomalous"] == 2  # no backlog snippet in it
        assert wait_until(lambda: len(handler.received) == 1)
        time.sleep(0.3)
        assert [e["event"] for e in handler.received] == ["alert.opened"]

    # another machine set to use a model: its backlog is scored in a job of its own
    r = client.put("/machines/press_2", json={"model": "pump_9"}).json()
    assert r["backlog_job"]["kind"] == "score" and r["backlog_job"]["url"] == f"/jobs/{r['backlog_job']['id']}"
    job = _finished(client, r["backlog_job"]["id"])
    assert job["state"] == "succeeded" and job["machine"] == "press_2", job
    assert job["result"] == {"model": "pump_9", "n_scored": 3, "n_anomalous": 3, "n_not_scorable": 0}
    press = client.get("/machines/press_2/snippets").json()["items"]
    assert all(s["model"] == "pump_9" and s["scored_late"] and s["alert_id"] is None for s in press)
    assert client.get("/machines/press_2").json()["open_alert"] is None
    assert client.put("/machines/press_2", json={"model": "pump_9"}).json()["backlog_job"] is None  # nothing left
    assert len(client.get("/alerts").json()["alerts"]) == 1


def test_a_model_loaded_at_start_up_scores_the_backlog(model_dir, tmp_path, service_db):
    """Snippets stored by a server without models are scored when a restart brings a model."""
    values = {"data_dir": tmp_path / "data", "alert_open_after": 1}
    if service_db:
        values["db_url"] = service_db  # emptied by the fixture
    rng = np.random.default_rng(12)
    with TestClient(create_app(Settings(**values))) as client:
        for i in range(3):
            post_snippet(client, wav_bytes(hum(rng, fault=i == 0)), machine="fan_new", snippet_id=f"s{i}")
        assert client.get("/machines/fan_new").json()["status"] == "unscored"
    with TestClient(create_app(Settings(models_dir=model_dir, **values))) as client:
        (job,) = client.get("/jobs?machine=fan_new").json()["jobs"]
        job = _finished(client, job["id"])
        assert job["kind"] == "score" and job["state"] == "succeeded", job
        assert job["result"]["model"] == "fan_id_00" and job["result"]["n_scored"] == 3
        items = {s["snippet_id"]: s for s in client.get("/machines/fan_new/snippets").json()["items"]}
        assert all(s["scored_late"] and s["model"] == "fan_id_00" for s in items.values())
        assert items["s0"]["is_anomalous"] is True  # the fault clip is flagged...
        assert client.get("/alerts").json()["alerts"] == []  # ...and opens no alert, even at open_after=1
    with TestClient(create_app(Settings(models_dir=model_dir, **values))) as client:
        assert len(client.get("/jobs?machine=fan_new").json()["jobs"]) == 1  # nothing left to score


# ---------------------------------------------------------------------- torch stays out of scoring
def test_scoring_service_does_not_import_torch(model_dir, tmp_path, clips):
    (tmp_path / "c.wav").write_bytes(clips["fault"][0])
    code = f"""
import sys
from fastapi.testclient import TestClient
from earshot.service.app import create_app
from earshot.service.settings import Settings
with TestClient(create_app(Settings(models_dir={str(model_dir)!r}, data_dir={str(tmp_path / 'd')!r}))) as c:
    r = c.post('/machines/m1/snippets', files={{'file': ('c.wav', open({str(tmp_path / 'c.wav')!r}, 'rb').read())}})
    assert r.status_code == 201, r.text
    assert c.get('/snippets/1/spectrogram.png').status_code == 200
print('torch' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
