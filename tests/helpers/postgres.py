"""A throw-away PostgreSQL server for the test session, and the service tests' database fixture.

The session starts one server (Debian's ``postgresql`` package, installed by the set-up from
``apt-packages.txt``): ``initdb`` into a fresh folder under the system temp dir, ``pg_ctl
start`` on a free port of 127.0.0.1 (its Unix socket in the same folder), with durability
settings off (``fsync``, ``synchronous_commit``, ``full_page_writes``) since nothing in it is
kept. PostgreSQL refuses to run as root, so as root (CI) the server runs as the ``postgres``
user that the Debian package creates (``runuser -u postgres``), else as ``nobody``. The server
is stopped (``pg_ctl stop -m immediate``) and its folder removed at the end of the session.

``EARSHOT_TEST_DB_URL=postgresql+psycopg://...`` uses that server instead of starting one.
Where no server can start (no PostgreSQL binaries, no ``psycopg``, initdb or start failing),
the PostgreSQL cases are skipped with one line saying why; the SQLite ones still run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest


#: The two databases the service's store and API tests run on (parametrized ids).
BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Postgres:
    """A started server: its SQLAlchemy URL, folder and the command prefix that runs as its user."""

    url: str
    folder: Path
    as_user: list[str]
    pg_ctl: str

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binaries() -> Optional[tuple[str, str]]:
    """``(initdb, pg_ctl)``: on PATH, else Debian's ``/usr/lib/postgresql/<version>/bin`` (newest)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name.split(".")[0]))
    for d in reversed(dirs):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK):
            return f"{d}/initdb", f"{d}/pg_ctl"
    return None


def _run_as() -> tuple[list[str], Optional[str]]:
    """The command prefix that runs the server unprivileged, and that user's name (None: ourselves)."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    return [], None


def start_postgres() -> Postgres | str:
    """Start a throw-away server; the server, or one line saying why none could start."""
    try:
        import psycopg  # noqa: F401  # only to say why PostgreSQL cases are skipped
    except ImportError:
        return "psycopg is not installed (pip install 'earshot[postgres]')"
    found = _binaries()
    if found is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
    initdb, pg_ctl = found
    as_user, user = _run_as()
    if os.geteuid() == 0 and user is None:
        return "running as root and neither a 'postgres' nor a 'nobody' user exists to run the server"
    folder = Path(tempfile.mkdtemp(prefix="earshot-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    steps = [
        [initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "earshot", "-E", "UTF8", "--no-sync"],
        [pg_ctl, "start", "-D", str(folder / "data"), "-w", "-t", "60", "-l", str(folder / "server.log"), "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
         "-c full_page_writes=off"],
    ]
    for cmd in steps:
        try:
            done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return f"{Path(cmd[0]).name} could not run: {exc}"
        if done.returncode != 0:
            log = folder / "server.log"
            lines = (done.stderr + done.stdout + (log.read_text(errors="replace") if log.exists() else "")).strip()
            shutil.rmtree(folder, ignore_errors=True)
            return f"{Path(cmd[0]).name} failed: {lines.splitlines()[-1] if lines else f'exit {done.returncode}'}"
    server = Postgres(f"postgresql+psycopg://earshot@127.0.0.1:{port}/postgres", folder, as_user, pg_ctl)
    _stop_when_gone(os.getpid(), server)
    return server


def _stop_when_gone(pid: int, server: Postgres) -> None:
    """A detached watcher that stops the server and removes its folder once process ``pid`` is
    gone, so a test run killed before its teardown (timeout, Ctrl-C twice, kill -9) leaves no server."""
    stop = " ".join([*server.as_user, server.pg_ctl, "stop", "-D", str(server.folder / "data"), "-m", "immediate"])
    script = f"while kill -0 {pid} 2>/dev/null; do sleep 2; done; {stop} >/dev/null 2>&1; rm -rf {server.folder}"
    subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the session's PostgreSQL (started on first use, stopped at the end); skips if none."""
    given = os.environ.get("EARSHOT_TEST_DB_URL")
    if given:
        yield given
        return
    server = start_postgres()
    if isinstance(server, str):
        pytest.skip(f"PostgreSQL server could not start: {server}")
    try:
        yield server.url
    finally:
        server.stop()


def fresh_database(url: str) -> None:
    """Drop the service's tables so the next store starts on an empty database."""
    from sqlalchemy import create_engine  # deferred: sqlalchemy is the optional 'serve' extra

    from earshot.service.store import Base  # deferred: imports sqlalchemy

    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def service_db(request) -> Optional[str]:
    """The database a service test runs on: None (SQLite in its data folder) or an emptied
    PostgreSQL URL; every test that uses it runs once per backend (ids ``[sqlite]``, ``[postgresql]``)."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    fresh_database(url)
    return url
