"""The monitoring store: SQLAlchemy 2 tables, content-addressed audio on disk, one repository.

SQLite (WAL journal, ``synchronous=FULL``) is the default; any PostgreSQL URL works (the SQL
is portable; machine rows are locked with ``SELECT ... FOR UPDATE`` there). Audio bytes are
written to ``<data>/audio/<sha256[:2]>/<sha256>.<ext>``, fsynced, renamed into place and the
folder fsynced *before* the row that names them is committed, and the commit happens before
the service answers: an acknowledged snippet survives ``kill -9`` and a power cut.

The schema carries a version (``earshot_meta.schema_version``). A new database is created at
:data:`SCHEMA_VERSION`; an older one is brought up to it at start-up by the steps of
:data:`MIGRATIONS` (``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``), each in one
transaction that also records the new version, so a step that fails leaves the database at
the version before it. A database newer than this code is refused
(:class:`SchemaVersionError`), never opened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from earshot.errors import ParameterError

__all__ = [
    "Base",
    "Machine",
    "Snippet",
    "Alert",
    "Notification",
    "Job",
    "Store",
    "utcnow",
    "iso",
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "migration",
    "add_column",
    "migrate",
    "stored_schema_version",
    "check_schema_version",
    "SchemaVersionError",
    "safe_url",
]

log = logging.getLogger(__name__)

#: Version of the schema this code writes; raised by one with every step added to MIGRATIONS.
SCHEMA_VERSION = 2

#: One schema step: runs inside the transaction that records the new version.
Migration = Callable[[Connection], None]

#: The schema's history: ``MIGRATIONS[n]`` upgrades a database at version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Migration] = {}


class SchemaVersionError(ParameterError):
    """The database's schema cannot be used by this code (newer than it, or no way up to it)."""


def utcnow() -> dt.datetime:
    """Now, as a naive UTC datetime (how every time is stored)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso(value: Optional[dt.datetime]) -> Optional[str]:
    """A stored (naive UTC) time as ISO 8601 with a ``Z``; None stays None."""
    if value is None:
        return None
    return value.replace(microsecond=(value.microsecond // 1000) * 1000).isoformat(timespec="milliseconds") + "Z"


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "earshot_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Machine(Base):
    """A machine that reports snippets, with its alert state (hysteresis counters)."""

    __tablename__ = "machines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[Optional[str]] = mapped_column(String(128))
    webhook_url: Mapped[Optional[str]] = mapped_column(String(2048))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    n_snippets: Mapped[int] = mapped_column(Integer, default=0)
    last_snippet_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    last_score: Mapped[Optional[float]] = mapped_column(Float)
    last_threshold: Mapped[Optional[float]] = mapped_column(Float)
    last_is_anomalous: Mapped[Optional[bool]] = mapped_column(Boolean)
    run_over: Mapped[int] = mapped_column(Integer, default=0)
    run_under: Mapped[int] = mapped_column(Integer, default=0)
    open_alert_id: Mapped[Optional[int]] = mapped_column(Integer)


class Snippet(Base):
    """One reported recording: where its audio lies, its score, and the human label."""

    __tablename__ = "snippets"
    __table_args__ = (
        UniqueConstraint("machine_id", "client_id", name="uq_snippet_client_id"),
        Index("ix_snippets_machine_id_id", "machine_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    client_id: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    audio_path: Mapped[str] = mapped_column(String(256))
    audio_format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sr: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    model: Mapped[Optional[str]] = mapped_column(String(128))
    score: Mapped[Optional[float]] = mapped_column(Float)
    threshold: Mapped[Optional[float]] = mapped_column(Float)
    is_anomalous: Mapped[Optional[bool]] = mapped_column(Boolean)
    alert_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)
    label: Mapped[Optional[int]] = mapped_column(Integer)
    labelled_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    labelled_by: Mapped[Optional[str]] = mapped_column(String(64))
    note: Mapped[Optional[str]] = mapped_column(Text)
    # schema version 2: when the verdict was computed (= received_at for a snippet scored on
    # arrival) and whether it was scored late, from the backlog of a machine that had no model
    # when it arrived (such verdicts never feed the machine's alert state).
    scored_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    scored_late: Mapped[Optional[bool]] = mapped_column(Boolean)


class Alert(Base):
    """An anomaly event of one machine: opened by anomalous snippets, closed on recovery."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    state: Mapped[str] = mapped_column(String(8))  # open | closed
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime)
    closed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    first_snippet_id: Mapped[int] = mapped_column(Integer)
    close_snippet_id: Mapped[Optional[int]] = mapped_column(Integer)
    peak_score: Mapped[float] = mapped_column(Float)
    peak_snippet_id: Mapped[int] = mapped_column(Integer)
    n_anomalous: Mapped[int] = mapped_column(Integer, default=0)
    threshold: Mapped[Optional[float]] = mapped_column(Float)
    model: Mapped[Optional[str]] = mapped_column(String(128))
    label: Mapped[Optional[str]] = mapped_column(String(16))  # confirmed | rejected


class Notification(Base):
    """An outbox row: one webhook delivery (retried with back-off until sent or given up)."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, index=True)
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8), index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    last_error: Mapped[Optional[str]] = mapped_column(Text)


class Job(Base):
    """A background job (``train``: a machine's model; ``score``: its unscored backlog) and its progress."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    machine: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(12))  # queued | running | succeeded | failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[Optional[str]] = mapped_column(String(128))
    message: Mapped[Optional[str]] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)


# ---------------------------------------------------------------------- schema versions
def safe_url(url: str) -> str:
    """A database URL fit for messages: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show no part after a '@'
        return url.rsplit("@", 1)[-1]


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register a schema step from ``from_version`` to ``from_version + 1`` (decorator).

    The step gets the :class:`~sqlalchemy.engine.Connection` of its transaction; DDL and data
    changes made through it are committed together with the new version, or not at all. The
    first line of its docstring is logged when it is applied.
    """

    def register(step: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from schema version {from_version} is already registered")
        MIGRATIONS[from_version] = step
        return step

    return register


def add_column(conn: Connection, table: str, column: Column) -> None:
    """``ALTER TABLE table ADD COLUMN`` for a nullable column, typed for the connection's database."""
    q = conn.dialect.identifier_preparer.quote
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {q(table)} ADD COLUMN {q(column.name)} {kind}"))


@migration(1)
def _scored_at(conn: Connection) -> None:
    """snippets.scored_at and snippets.scored_late: when a verdict was computed, and whether late."""
    add_column(conn, "snippets", Column("scored_at", DateTime()))
    add_column(conn, "snippets", Column("scored_late", Boolean()))
    # version 1 scored a snippet when it arrived, or never (plain SQL: steps outlive the models)
    conn.execute(text("UPDATE snippets SET scored_at = received_at, scored_late = :no WHERE score IS NOT NULL"),
                 {"no": False})


def stored_schema_version(conn: Connection, url: str = "", *, lock: bool = False) -> Optional[int]:
    """The version recorded in the database, or None when none is (a new or pre-version database)."""
    if not inspect(conn).has_table(Meta.__tablename__):
        return None
    stmt = select(Meta.value).where(Meta.key == "schema_version")
    if lock:
        stmt = stmt.with_for_update()
    value = conn.execute(stmt).scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SchemaVersionError(f"database {safe_url(url)}: unreadable schema version {value[:40]!r}") from None


def check_schema_version(stored: Optional[int], url: str) -> None:
    """Refuse a database whose schema is newer than this code's :data:`SCHEMA_VERSION`."""
    if stored is not None and stored > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database {safe_url(url)} has schema version {stored}, newer than this earshot's {SCHEMA_VERSION}: "
            f"it was written by a newer earshot; upgrade earshot (or use another database)")


def _has_data_tables(conn: Connection) -> bool:
    present = set(inspect(conn).get_table_names())
    return any(t.name in present for t in Base.metadata.sorted_tables if t.name != Meta.__tablename__)


def migrate(engine: Engine, url: str = "") -> int:
    """Create the schema in a new database, or bring an older one up to :data:`SCHEMA_VERSION`.

    A database with earshot's tables but no recorded version predates versioning: version 1.
    Each step of :data:`MIGRATIONS` runs in its own transaction, which also records the new
    version (re-read under a lock first, so a second process starting at the same time skips
    a step already done). On SQLite pass an engine whose transactions include DDL (see
    :func:`_transactional_sqlite_engine`).

    Returns
    -------
    int
        The schema version of the database afterwards (:data:`SCHEMA_VERSION`).

    Raises
    ------
    SchemaVersionError
        The database is newer than this code, or no step leads from its version.
    """
    target = SCHEMA_VERSION
    with engine.begin() as conn:
        stored = stored_schema_version(conn, url, lock=True)
        if stored is None:
            if _has_data_tables(conn):
                stored = 1
                log.info("database %s: no schema version recorded; taken as version 1", safe_url(url))
            else:
                Base.metadata.create_all(conn)
                stored = target
            Meta.__table__.create(conn, checkfirst=True)
            conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(stored)))
    check_schema_version(stored, url)
    while stored < target:
        step = MIGRATIONS.get(stored)
        if step is None:
            raise SchemaVersionError(f"database {safe_url(url)} has schema version {stored} and this earshot "
                                     f"({SCHEMA_VERSION}) has no migration from it")
        try:
            with engine.begin() as conn:
                now = stored_schema_version(conn, url, lock=True)
                if now == stored:
                    step(conn)
                    conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(stored + 1)))
        except Exception:
            log.error("database %s: migration of the schema from version %d to %d failed and was rolled back; "
                      "the database is still at version %d", safe_url(url), stored, stored + 1, stored)
            raise
        if now != stored:  # another process got there first
            check_schema_version(now, url)
            stored = now if now is not None else stored
            continue
        what = (step.__doc__ or step.__name__).strip().splitlines()[0]
        log.info("database %s: schema migrated from version %d to %d (%s)", safe_url(url), stored, stored + 1, what)
        stored += 1
    with engine.begin() as conn:  # tables added to the code without a step of their own
        Base.metadata.create_all(conn)
    return stored


def _transactional_sqlite_engine(url: str) -> Engine:
    """An engine on a SQLite URL whose transactions cover DDL too (pysqlite leaves ``ALTER``
    outside them otherwise), beginning with ``BEGIN IMMEDIATE`` so a migration holds the write
    lock from its first statement."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the driver begins nothing itself...

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # ...every transaction begins here

    return engine


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Store:
    """The database and the audio folder of one service.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    data_dir : path-like
        Holds ``audio/`` (content-addressed snippet audio) and ``tmp/`` (uploads being checked).
    """

    def __init__(self, url: str, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.audio_dir = self.data_dir / "audio"
        self.tmp_dir = self.data_dir / "tmp"
        for d in (self.data_dir, self.audio_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; taking turns in-process avoids SQLITE_BUSY when a
        # read transaction would have to be upgraded. PostgreSQL relies on row locks instead.
        self._write_lock = threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        try:
            if self.is_sqlite:
                schema_engine = _transactional_sqlite_engine(url)
                try:
                    self.schema_version = migrate(schema_engine, url)
                finally:
                    schema_engine.dispose()
            else:
                self.schema_version = migrate(self.engine, url)
        except BaseException:
            self.engine.dispose()
            raise
        for leftover in self.tmp_dir.iterdir():  # uploads interrupted by a crash
            with contextlib.suppress(OSError):
                leftover.unlink()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ sessions
    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (nothing is committed)."""
        with self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work is committed (durably) when the block ends without error."""
        with self._write_lock:
            with self._sessions() as session, session.begin():
                yield session

    def lock_machine(self, session: Session, name: str) -> Optional[Machine]:
        """The machine row, locked for this transaction where the database supports it."""
        stmt = select(Machine).where(Machine.name == name)
        if not self.is_sqlite:
            stmt = stmt.with_for_update()
        return session.scalars(stmt).first()

    def ping(self) -> bool:
        with self._sessions() as session:
            session.execute(text("SELECT 1"))
        return True

    # ------------------------------------------------------------------ audio
    def temp_upload(self, source: BinaryIO, *, max_bytes: int) -> tuple[Path, str, int]:
        """Copy an upload into ``tmp/`` (fsynced), hashing it on the way.

        Returns
        -------
        path, sha256, size : Path, str, int
            ``size`` may exceed ``max_bytes`` only by one chunk, and then the file is removed
            and ``(None, "", size)`` returned.
        """
        h = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                while True:
                    chunk = source.read(1 << 20)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        break
                    h.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if size > max_bytes:
            path.unlink(missing_ok=True)
            return None, "", size  # type: ignore[return-value]
        return path, h.hexdigest(), size

    def keep_audio(self, tmp: Path, sha256: str, ext: str) -> str:
        """Move a checked upload to its content-addressed place; return the relative path.

        The bytes were fsynced in :meth:`temp_upload`; the rename is made durable by fsyncing
        the folder. An identical file already stored is kept and ``tmp`` removed.
        """
        rel = Path("audio") / sha256[:2] / f"{sha256}.{ext}"
        final = self.data_dir / rel
        if final.exists() and final.stat().st_size == tmp.stat().st_size:
            tmp.unlink(missing_ok=True)
            return rel.as_posix()
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        _fsync_dir(final.parent.parent)
        return rel.as_posix()

    def audio_file(self, rel: str) -> Path:
        """The absolute path of a stored audio file (``rel`` comes from the database only)."""
        return self.data_dir / rel


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
