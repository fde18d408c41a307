"""The service's store: durability across kill -9, SQLite settings, hysteresis, restart recovery."""

from __future__ import annotations

import hashlib
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
from helpers.service import Server, tiny_model, wav_bytes  # noqa: E402
from helpers.signals import hum  # noqa: E402


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
        with TestClient(create_app(Settings(models_dir=model_dir, data_dir=data, webhook_allow=("127.0.0.1",)))) as client:
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
@pytest.mark.slow
def test_nothing_acknowledged_is_lost_when_the_server_is_killed(model_dir, tmp_path, service_db):
    """Post snippets from 6 threads, kill -9 the server in the middle, restart: every snippet
    that was answered 201 is there with its exact bytes, and a retry is recognised."""
    data = tmp_path / "data"
    rng = np.random.default_rng(5)
    clips = [wav_bytes(hum(rng, seconds=1.0)) for _ in range(8)]
    db = ["--db", service_db] if service_db else []  # [postgresql]: the same proof (emptied by the fixture)
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


# ---------------------------------------------------------------------- schema versions
def _sqlite(path: Path, *statements: str) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()


def _add_machine_and_snippets(store: Store) -> None:
    """Machine ``m`` with a snippet scored on arrival (id 1) and one stored unscored (id 2)."""
    from earshot.service.store import Machine, Snippet

    now = utcnow()
    with store.write() as s:
        m = Machine(name="m", created_at=now, n_snippets=2, run_over=0, run_under=0)
        s.add(m)
        s.flush()
        common = dict(machine_id=m.id, recorded_at=now, received_at=now, audio_format="wav", size_bytes=10, sr=16000,
                      channels=1, duration_s=1.0, audio_path="audio/x.wav")
        s.add(Snippet(client_id="scored", sha256="a" * 64, model="fan", score=1.5, threshold=2.0, is_anomalous=False,
                      **common))
        s.add(Snippet(client_id="unscored", sha256="b" * 64, label=0, **common))


def _version(path: Path) -> str:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT value FROM earshot_meta WHERE key = 'schema_version'").fetchone()
    finally:
        con.close()


def _columns(path: Path, table: str) -> list[str]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


def _tables(path: Path) -> set[str]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


_NOTIFICATIONS_V2 = (
    "CREATE TABLE notifications (id INTEGER NOT NULL PRIMARY KEY, alert_id INTEGER NOT NULL, "
    "event VARCHAR(32) NOT NULL, url VARCHAR(2048) NOT NULL, payload JSON NOT NULL, state VARCHAR(8) NOT NULL, "
    "attempts INTEGER NOT NULL, created_at DATETIME NOT NULL, next_attempt_at DATETIME NOT NULL, "
    "sent_at DATETIME, last_error TEXT)"
)


def _version_2_database(tmp_path: Path, *, name: str = "v2.sqlite") -> Path:
    """A database as version 2 left it: no fault columns, no drift_checks, every notification
    tied to an alert (alert_id NOT NULL, no drift_check_id); one alert with a sent notification."""
    from earshot.service.store import Alert, Notification

    db = tmp_path / name
    store = Store(f"sqlite:///{db}", tmp_path)
    _add_machine_and_snippets(store)
    now = utcnow()
    with store.write() as s:
        s.add(Alert(machine_id=1, state="closed", opened_at=now, first_snippet_id=1, peak_score=3.0,
                    peak_snippet_id=1, n_anomalous=1, label="confirmed"))
        s.add(Notification(alert_id=1, event="alert.opened", url="http://hooks.example/x", payload={"alert": 1},
                           state="sent", attempts=1, created_at=now, next_attempt_at=now, sent_at=now))
    store.close()
    _sqlite(db, "ALTER TABLE snippets DROP COLUMN fault", "ALTER TABLE alerts DROP COLUMN fault",
            "ALTER TABLE alerts DROP COLUMN fault_distance", "ALTER TABLE alerts DROP COLUMN fault_known",
            "DROP TABLE drift_checks", "DROP INDEX ix_notifications_alert_id", "DROP INDEX ix_notifications_state",
            "ALTER TABLE notifications RENAME TO n3", _NOTIFICATIONS_V2,
            "INSERT INTO notifications SELECT id, alert_id, event, url, payload, state, attempts, created_at, "
            "next_attempt_at, sent_at, last_error FROM n3", "DROP TABLE n3",
            "CREATE INDEX ix_notifications_alert_id ON notifications (alert_id)",
            "CREATE INDEX ix_notifications_state ON notifications (state)",
            "UPDATE earshot_meta SET value = '2'")
    assert "fault" not in _columns(db, "snippets") and "drift_checks" not in _tables(db)
    return db


def _version_1_database(tmp_path: Path, *, recorded: bool = True) -> Path:
    """A database as version 1 left it: version 2's without snippets.scored_at/scored_late; with
    ``recorded=False`` as the first service left it, before the schema version was written at all."""
    db = _version_2_database(tmp_path, name="v1.sqlite")
    _sqlite(db, "ALTER TABLE snippets DROP COLUMN scored_at", "ALTER TABLE snippets DROP COLUMN scored_late",
            "UPDATE earshot_meta SET value = '1'" if recorded else "DELETE FROM earshot_meta")
    assert "scored_at" not in _columns(db, "snippets")
    return db


class _Logged(list):
    """INFO records of ``earshot.service.migrations`` (whatever the CLI did to the earshot logger)."""

    def __enter__(self):
        import logging

        self.logger = logging.getLogger("earshot.service.migrations")
        self.level = self.logger.level
        self.handler = logging.Handler(logging.INFO)
        self.handler.emit = lambda record: self.append(record.getMessage())
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


@pytest.mark.parametrize("recorded", [True, False], ids=["version-1", "before-versions"])
def test_a_version_1_database_is_migrated_to_the_current_version_keeping_its_data(tmp_path, recorded):
    from earshot.service.store import SCHEMA_VERSION, Snippet

    assert SCHEMA_VERSION == 3
    db = _version_1_database(tmp_path, recorded=recorded)
    with _Logged() as logged:
        store = Store(f"sqlite:///{db}", tmp_path)
    assert store.schema_version == 3 and _version(db) == ("3",)
    assert [m for m in logged if "migrated from version 1 to 2" in m] and str(db) in logged[-1]
    assert [m for m in logged if "migrated from version 2 to 3" in m]
    assert ("no schema version recorded" in logged[0]) is not recorded
    with store.read() as s:
        scored, unscored = s.get(Snippet, 1), s.get(Snippet, 2)
    # live verdicts of version 1 were given on arrival; the unscored snippet keeps its label
    assert scored.score == 1.5 and scored.scored_at == scored.received_at and scored.scored_late is False
    assert unscored.score is None and unscored.scored_at is None and unscored.scored_late is None
    assert unscored.label == 0 and unscored.client_id == "unscored"
    store.close()
    with _Logged() as logged:
        Store(f"sqlite:///{db}", tmp_path).close()
    assert not [m for m in logged if "migrated" in m]


def test_a_version_2_database_gets_fault_columns_drift_checks_and_alertless_notifications(tmp_path):
    """Version 2 -> 3 keeps every notification and alert, and then takes a drift notification
    (no alert), a drift check and fault labels."""
    from earshot.service.store import Alert, DriftCheck, Notification, Snippet

    db = _version_2_database(tmp_path)
    with _Logged() as logged:
        store = Store(f"sqlite:///{db}", tmp_path)
    assert store.schema_version == 3 and _version(db) == ("3",)
    assert [m for m in logged if "migrated from version 2 to 3 (fault labels" in m]
    assert {"fault_distance", "fault_known"} <= set(_columns(db, "alerts"))
    assert "drift_check_id" in _columns(db, "notifications") and "drift_checks" not in {"n3"} & _tables(db)
    now = utcnow()
    with store.write() as s:
        s.get(Snippet, 1).fault = "bearing"
        check = DriftCheck(machine_id=1, model="fan", computed_at=now, n=50, window_from=now, window_to=now,
                           score=0.4, threshold=0.2, drifted=True, n_rejected=2, details={"bands": []})
        s.add(check)
        s.flush()
        s.add(Notification(alert_id=None, drift_check_id=check.id, event="drift.detected", url="http://hooks.example/x",
                           payload={"drift": check.id}, state="pending", attempts=0, created_at=now,
                           next_attempt_at=now))
    with store.read() as s:
        kept = s.get(Notification, 1)
        assert (kept.alert_id, kept.event, kept.payload, kept.state) == (1, "alert.opened", {"alert": 1}, "sent")
        assert s.get(Alert, 1).label == "confirmed" and s.get(Alert, 1).fault is None
        assert [(n.alert_id, n.drift_check_id, n.event) for n in s.query(Notification).order_by(Notification.id)][1] == \
            (None, 1, "drift.detected")
        assert s.get(Snippet, 1).fault == "bearing"
    store.close()
    with _Logged() as logged:
        Store(f"sqlite:///{db}", tmp_path).close()
    assert not [m for m in logged if "migrated" in m] and "n3" not in _tables(db)


def test_version_2_to_3_on_postgresql(postgres_url, tmp_path):
    """The PostgreSQL branch of the step: alert_id loses NOT NULL in place, the rows stay."""
    from sqlalchemy import create_engine, text

    from earshot.service.store import Notification
    from helpers.postgres import fresh_database

    fresh_database(postgres_url)
    store = Store(postgres_url, tmp_path)
    _add_machine_and_snippets(store)
    now = utcnow()
    with store.write() as s:
        s.add(Notification(alert_id=7, event="alert.opened", url="http://hooks.example/x", payload={}, state="sent",
                           attempts=1, created_at=now, next_attempt_at=now))
    store.close()
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for sql in ("ALTER TABLE snippets DROP COLUMN fault", "ALTER TABLE alerts DROP COLUMN fault",
                    "ALTER TABLE alerts DROP COLUMN fault_distance", "ALTER TABLE alerts DROP COLUMN fault_known",
                    "DROP TABLE drift_checks", "ALTER TABLE notifications DROP COLUMN drift_check_id",
                    "ALTER TABLE notifications ALTER COLUMN alert_id SET NOT NULL",
                    "UPDATE earshot_meta SET value = '2'"):
            conn.execute(text(sql))
    engine.dispose()
    store = Store(postgres_url, tmp_path)
    assert store.schema_version == 3
    with store.write() as s:
        s.add(Notification(alert_id=None, drift_check_id=1, event="drift.detected", url="http://hooks.example/x",
                           payload={}, state="pending", attempts=0, created_at=now, next_attempt_at=now))
    with store.read() as s:
        assert [(n.alert_id, n.event) for n in s.query(Notification).order_by(Notification.id)] == [
            (7, "alert.opened"), (None, "drift.detected")]
    store.close()
    fresh_database(postgres_url)


def test_migration_steps_run_once_record_the_version_and_newer_databases_are_refused(tmp_path, monkeypatch, capsys):
    """The mechanism with a step of the test's own: version 3 -> 4 adds a table and a column."""
    import uvicorn
    from sqlalchemy import text

    from earshot.cli.app import main
    from earshot.errors import EarshotError, ParameterError
    from earshot.service import migrations  # owns SCHEMA_VERSION and MIGRATIONS: patch them there
    from earshot.service.app import preflight
    from earshot.service.settings import Settings
    from earshot.service.store import Machine, SchemaVersionError, Snippet, add_column

    data = tmp_path / "data"
    db = data / "earshot.db"
    url = f"sqlite:///{db.resolve()}"
    store = Store(url, data)  # created by today's code, at version 3
    _add_machine_and_snippets(store)
    store.close()

    calls = []

    def step(conn):
        """machine notes: a table and a column."""
        calls.append(conn)
        conn.execute(text("CREATE TABLE machine_notes (id INTEGER PRIMARY KEY, machine_id INTEGER, note TEXT)"))
        from sqlalchemy import Column, Integer

        add_column(conn, "machines", Column("priority", Integer()))
        conn.execute(text("UPDATE machines SET priority = 7"))

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 4)
    monkeypatch.setitem(migrations.MIGRATIONS, 3, step)
    preflight(Settings(data_dir=data))  # an older database is fine: start-up migrates it
    with _Logged() as logged:
        store = Store(url, data)
    assert len(calls) == 1 and store.schema_version == 4 and _version(db) == ("4",)
    assert logged == [f"database {url}: schema migrated from version 3 to 4 (machine notes: a table and a column.)"]
    assert "machine_notes" in _tables(db) and "priority" in _columns(db, "machines")
    with store.read() as s:  # the data survived, the step's change is there
        assert s.execute(text("SELECT name, priority FROM machines")).all() == [("m", 7)]
        assert [(sn.client_id, sn.score) for sn in s.query(Snippet).order_by(Snippet.id)] == [("scored", 1.5),
                                                                                               ("unscored", None)]
        assert s.query(Machine).one().n_snippets == 2
    store.close()
    Store(url, data).close()  # opened again: nothing to do
    assert len(calls) == 1 and _version(db) == ("4",)

    # the same database opened by code at version 3: refused, one line naming it and both versions
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 3)
    monkeypatch.delitem(migrations.MIGRATIONS, 3)
    with pytest.raises(SchemaVersionError) as info:
        Store(url, data)
    message = str(info.value)
    assert isinstance(info.value, ParameterError) and isinstance(info.value, EarshotError)
    assert "\n" not in message and url in message and "version 4" in message and "earshot's 3" in message
    assert _version(db) == ("4",) and "priority" in _columns(db, "machines")  # untouched
    with pytest.raises(SchemaVersionError):
        preflight(Settings(data_dir=data))
    # `earshot serve` says so in one line and exits 1 (uvicorn is never started)
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    capsys.readouterr()
    assert main(["serve", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert not started and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("earshot: error: database ") and url in err and "version 4" in err


def test_a_failing_migration_step_is_rolled_back_and_the_version_kept(tmp_path, monkeypatch):
    from sqlalchemy import Column, Integer

    from earshot.service import migrations  # owns SCHEMA_VERSION and MIGRATIONS: patch them there
    from earshot.service.store import add_column

    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    store = Store(url, tmp_path)
    _add_machine_and_snippets(store)
    store.close()

    def broken(conn):
        """a step that fails half-way."""
        add_column(conn, "machines", Column("priority", Integer()))
        conn.exec_driver_sql("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 4)
    monkeypatch.setitem(migrations.MIGRATIONS, 3, broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        Store(url, tmp_path)
    # the whole step was rolled back, its DDL included, and the version is unchanged
    assert _version(db) == ("3",)
    assert "priority" not in _columns(db, "machines") and "half_done" not in _tables(db)

    ran = []

    def fixed(conn):
        ran.append(add_column(conn, "machines", Column("priority", Integer())))

    monkeypatch.setitem(migrations.MIGRATIONS, 3, fixed)
    store = Store(url, tmp_path)  # fixed: the next start applies it
    assert ran == [None] and store.schema_version == 4 and "priority" in _columns(db, "machines")
    store.close()


def test_no_migration_path_and_passwords_stay_out_of_messages(tmp_path, monkeypatch):
    from earshot.service import migrations  # owns SCHEMA_VERSION and MIGRATIONS: patch them there
    from earshot.service.store import SchemaVersionError, check_schema_version, safe_url

    shown = safe_url("postgresql+psycopg://earshot:s3cret@db.example/earshot")
    assert "s3cret" not in shown and "db.example/earshot" in shown
    with pytest.raises(SchemaVersionError) as info:
        check_schema_version(5, "postgresql+psycopg://earshot:s3cret@db.example/earshot")
    assert "s3cret" not in str(info.value) and "schema version 5" in str(info.value)
    check_schema_version(1, "sqlite://")  # older: migrated, not refused
    check_schema_version(None, "sqlite://")  # new database
    Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path).close()
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 5)  # code two versions ahead, one step missing
    monkeypatch.setitem(migrations.MIGRATIONS, 3, lambda conn: None)
    with pytest.raises(SchemaVersionError, match="schema version 4 and this earshot .5. has no migration from it"):
        Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    assert _version(tmp_path / "db.sqlite") == ("4",)  # the step that exists was applied


def test_earshot_serve_refuses_a_newer_database_in_one_line(tmp_path):
    """The real command, in a process of its own: exit code 1, one line, no traceback."""
    import subprocess
    import sys

    data = tmp_path / "data"
    Store(f"sqlite:///{(data / 'earshot.db').resolve()}", data).close()
    _sqlite(data / "earshot.db", "UPDATE earshot_meta SET value = '99'")
    out = subprocess.run([sys.executable, "-m", "earshot.cli", "serve", "--data", str(data), "--port", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema version 99" in lines[0] and "earshot's 3" in lines[0], out.stderr
