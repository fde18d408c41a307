"""The monitoring store: the database engine and sessions, content-addressed audio on disk.

SQLite (WAL journal, ``synchronous=FULL``) is the default; any PostgreSQL URL works (the SQL
is portable; machine rows are locked with ``SELECT ... FOR UPDATE`` there). Audio bytes are
written to ``<data>/audio/<sha256[:2]>/<sha256>.<ext>``, fsynced, renamed into place and the
folder fsynced *before* the row that names them is committed, and the commit happens before
the service answers: an acknowledged snippet survives ``kill -9`` and a power cut.

The tables (SQLAlchemy 2 mapped classes) are in :mod:`earshot.service.tables`, the schema's
version and the steps between versions in :mod:`earshot.service.migrations` (run when a
:class:`Store` opens its database); the public names of both can still be imported from here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Optional

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from earshot.service import migrations
from earshot.service.engines import sqlite_pragmas, transactional_sqlite_engine
from earshot.service.tables import (  # noqa: F401 (re-exported)
    Alert,
    Base,
    DriftCheck,
    Job,
    Machine,
    Meta,
    Notification,
    Snippet,
)

log = logging.getLogger(__name__)

#: Stored audio no snippet names is removed at start-up once this old (s): see :meth:`Store.collect_orphans`.
ORPHAN_GRACE_S = 3600.0

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
    "DriftCheck",
    "Store",
    "utcnow",
    "iso",
    *_MIGRATION_NAMES,
]


def __getattr__(name: str) -> Any:
    """The names of :data:`_MIGRATION_NAMES`, read from :mod:`earshot.service.migrations` when asked for.

    Each access reads the value the migrations module holds now: patch ``SCHEMA_VERSION`` there.
    """
    if name in _MIGRATION_NAMES:
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
            event.listen(self.engine, "connect", sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; taking turns in-process avoids SQLITE_BUSY when a
        # read transaction would have to be upgraded. PostgreSQL relies on row locks instead.
        self._write_lock = threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        try:
            if self.is_sqlite:
                schema_engine = transactional_sqlite_engine(url)
                try:
                    self.schema_version = migrations.migrate(schema_engine, url)
                finally:
                    schema_engine.dispose()
            else:
                self.schema_version = migrations.migrate(self.engine, url)
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

    def collect_orphans(self, grace_s: float = ORPHAN_GRACE_S) -> int:
        """Remove stored audio that no snippet names (left by a crash between the rename and the
        commit), once older than ``grace_s`` (an upload of another server sharing the folder may
        be between its rename and its commit). Run at start-up; returns how many were removed.
        """
        cutoff = time.time() - grace_s
        removed = 0
        for folder in sorted(p for p in self.audio_dir.iterdir() if p.is_dir()):
            old = [f for f in folder.iterdir() if f.is_file() and f.stat().st_mtime < cutoff]
            if not old:
                continue
            prefix = f"audio/{folder.name}/"
            with self.read() as s:
                named = set(s.scalars(select(Snippet.audio_path).where(Snippet.audio_path.startswith(prefix, autoescape=True))))
            for f in old:
                if prefix + f.name not in named:
                    with contextlib.suppress(FileNotFoundError):
                        f.unlink()
                        removed += 1
                        log.info("removed orphan audio %s (no snippet names it)", f)
        if removed:
            log.warning("removed %d orphan audio file(s) left by an interrupted upload", removed)
        return removed

    def audio_file(self, rel: str) -> Path:
        """The absolute path of a stored audio file (``rel`` comes from the database only)."""
        return self.data_dir / rel
