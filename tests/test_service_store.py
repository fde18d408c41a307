"""The service's store: durability across kill -9, SQLite settings, hysteresis, restart recovery."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

import httpx  # noqa: E402

from earshot.service.alerts import Hysteresis, events  # noqa: E402
from earshot.service.store import Job, Notification, Store, utcnow  # noqa: E402
from service_support import Server, hum, tiny_model, wav_bytes  # noqa: E402


DB_URL = os.environ.get("EARSHOT_TEST_DB_URL")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory)


# ---------------------------------------------------------------------- hysteresis
def test_hysteresis_opens_after_a_run_and_closes_after_recovery():
    h = Hysteresis()
    seq = [True, False, True, True, False, True, False, False, True]
    got = [h.step(x, open_after=2, close_after=2) for x in seq]
    assert got == [None, None, None, "open", None, None, None, "close", None]
    assert events([0, 5, 0, 5, 5, 0, 5, 0, 0, 5], 1.0, open_after=2, close_after=2) == [(3, 7, 3)]
    assert events([2, 3, 0, 0, 9], 1.0) == [(0, 2, 1), (4, 5, 4)]
    assert events([0, 0], 1.0) == []


# ---------------------------------------------------------------------- the store
def test_sqlite_is_in_wal_mode_with_full_sync_and_audio_is_content_addressed(tmp_path):
    from sqlalchemy import text

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with store.read() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    import io

    data = b"RIFF....WAVEfmt fake bytes"
    tmp, sha, size = store.temp_upload(io.BytesIO(data), max_bytes=1000)
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    rel = store.keep_audio(tmp, sha, "wav")
    assert rel == f"audio/{sha[:2]}/{sha}.wav" and (tmp_path / rel).read_bytes() == data
    tmp2, sha2, _ = store.temp_upload(io.BytesIO(data), max_bytes=1000)
    assert store.keep_audio(tmp2, sha2, "wav") == rel and not tmp2.exists()  # stored once
    big, _, size = store.temp_upload(io.BytesIO(bytes(5000)), max_bytes=1000)
    assert big is None and size > 1000 and list((tmp_path / "tmp").iterdir()) == []
    store.close()


def test_restart_marks_cut_off_jobs_failed_and_resumes_pending_webhooks(model_dir, tmp_path):
    """What was in flight when the server died: jobs end as failed, webhooks are still sent."""
    import http.server

    from fastapi.testclient import TestClient

    from earshot.service.app import create_app
    from earshot.service.settings import Settings

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    data = tmp_path / "data"
    store = Store(f"sqlite:///{(data / 'earshot.db').resolve()}", data)
    with store.write() as s:
        s.add(Job(id="j1", kind="train", machine="m", state="running", progress=0.4, params={}, created_at=utcnow()))
        s.add(Notification(alert_id=1, event="alert.opened", url=f"http://127.0.0.1:{hook.server_address[1]}/",
                           payload={"event": "alert.opened"}, state="pending", attempts=1, created_at=utcnow(),
                           next_attempt_at=utcnow()))
    store.close()
    try:
        with TestClient(create_app(Settings(models_dir=model_dir, data_dir=data))) as client:
            job = client.get("/jobs/j1").json()
            assert job["state"] == "failed" and "restarted" in job["message"]
            deadline = time.monotonic() + 10
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
            assert received == [b'{"event": "alert.opened"}']
    finally:
        hook.shutdown()
        hook.server_close()


# ---------------------------------------------------------------------- kill -9
def test_nothing_acknowledged_is_lost_when_the_server_is_killed(model_dir, tmp_path):
    """Post snippets from 6 threads, kill -9 the server in the middle, restart: every snippet
    that was answered 201 is there with its exact bytes, and a retry is recognised."""
    data = tmp_path / "data"
    rng = np.random.default_rng(5)
    clips = [wav_bytes(hum(rng, seconds=1.0)) for _ in range(8)]
    db = []
    if DB_URL:  # the same proof on PostgreSQL (see test_service_api.py)
        from sqlalchemy import create_engine

        from earshot.service.store import Base

        engine = create_engine(DB_URL)
        Base.metadata.drop_all(engine)
        engine.dispose()
        db = ["--db", DB_URL]
    server = Server("--models", str(model_dir), "--data", str(data), "--alert-open-after", "1", *db).start()
    acked: dict[str, dict] = {}
    sent: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                sid = f"c{n}-{i}"
                body = clips[(n + i) % len(clips)]
                with lock:
                    sent[sid] = body
                try:
                    r = http.post("/machines/press_1/snippets", files={"file": ("s.wav", body)}, data={"snippet_id": sid})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acked[sid] = r.json()
                i += 1

    try:
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(client, n) for n in range(6)]
            deadline = time.monotonic() + 20
            while len(acked) < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            server.kill()  # SIGKILL while requests are in flight
            stop.set()
            for f in futures:
                f.result()
        assert len(acked) >= 30
        server = Server("--models", str(model_dir), "--data", str(data), *db, port=server.port).start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            stored = {}
            url = "/machines/press_1/snippets?limit=500"
            while url:
                page = http.get(url).json()
                stored.update({s["snippet_id"]: s for s in page["items"]})
                url = page["next"]
            missing = sorted(set(acked) - set(stored))
            assert not missing, f"acknowledged but lost: {missing}"
            for sid, ack in acked.items():
                s = stored[sid]
                assert s["id"] == ack["id"] and s["sha256"] == hashlib.sha256(sent[sid]).hexdigest()
                assert s["score"] == pytest.approx(ack["score"])
            for sid in list(acked)[:3]:
                assert http.get(f"/snippets/{stored[sid]['id']}/audio").content == sent[sid]
                retry = http.post("/machines/press_1/snippets", files={"file": ("s.wav", sent[sid])},
                                  data={"snippet_id": sid})
                assert retry.status_code == 200 and retry.json()["duplicate"] is True
            # a snippet cut off before its answer may or may not be there, but never half-written
            for sid, s in stored.items():
                assert s["sha256"] == hashlib.sha256(sent[sid]).hexdigest()
            machine = http.get("/machines/press_1").json()
            assert machine["n_snippets"] == len(stored)
        assert not list((data / "tmp").iterdir())  # interrupted uploads cleaned at start
    finally:
        server.kill()
