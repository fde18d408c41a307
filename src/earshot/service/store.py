"""The monitoring store: SQLAlchemy 2 tables, content-addressed audio on disk, one repository.

SQLite (WAL journal, ``synchronous=FULL``) is the default; any PostgreSQL URL works (the SQL
is portable; machine rows are locked with ``SELECT ... FOR UPDATE`` there). Audio bytes are
written to ``<data>/audio/<sha256[:2]>/<sha256>.<ext>``, fsynced, renamed into place and the
folder fsynced *before* the row that names them is committed, and the commit happens before
the service answers: an acknowledged snippet survives ``kill -9`` and a power cut.

The schema's version and the steps between versions are in :mod:`earshot.service.migrations`
(run when a :class:`Store` opens its database); its public names can still be imported from
here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Optional

from sqlalchemy import (
    JSON,
    Boolean,
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
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

if TYPE_CHECKING:  # at run time these come from earshot.service.migrations on first use (__getattr__)
    from earshot.service.migrations import (
        MIGRATIONS,
        SCHEMA_VERSION,
        SchemaVersionError,
        add_column,
        check_schema_version,
        migrate,
        migration,
        safe_url,
        stored_schema_version,
    )

#: Names of :mod:`earshot.service.migrations` that were defined here before it existed.
_MIGRATION_NAMES = (
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "migration",
    "add_column",
    "migrate",
    "stored_schema_version",
    "check_schema_version",
    "SchemaVersionError",
    "safe_url",
)

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
    *_MIGRATION_NAMES,
]


def __getattr__(name: str) -> Any:
    """The names of :data:`_MIGRATION_NAMES`, read from :mod:`earshot.service.migrations` when asked for.

    That module imports the tables from this one, so it cannot be imported here at module level
    (whichever of the two were imported first would find the other half-initialised). Each
    access reads the value the migrations module holds now: patch ``SCHEMA_VERSION`` there.
    """
    if name in _MIGRATION_NAMES:
        from earshot.service import migrations

        return getattr(migrations, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        from earshot.service.migrations import _transactional_sqlite_engine, migrate  # it imports this module

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
