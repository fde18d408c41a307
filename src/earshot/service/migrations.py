"""Schema versions of the monitoring store, and the steps that bring an older database up to date.

The schema carries a version (``earshot_meta.schema_version``). A new database is created at
:data:`SCHEMA_VERSION`; an older one is brought up to it at start-up by the steps of
:data:`MIGRATIONS` (``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``), each in one
transaction that also records the new version, so a step that fails leaves the database at
the version before it. A database newer than this code is refused
(:class:`SchemaVersionError`), never opened.

The tables themselves are in :mod:`earshot.service.tables`; a
:class:`~earshot.service.store.Store` runs :func:`migrate` when it opens its database
(and :mod:`earshot.service.store` re-exports these names).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Optional

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from earshot.errors import ParameterError
from earshot.service.tables import Base, Meta

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "Migration",
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
SCHEMA_VERSION = 3

#: One schema step: runs inside the transaction that records the new version.
Migration = Callable[[Connection], None]

#: The schema's history: ``MIGRATIONS[n]`` upgrades a database at version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Migration] = {}


class SchemaVersionError(ParameterError):
    """The database's schema cannot be used by this code (newer than it, or no way up to it)."""


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


# Version 2's notifications table as SQLite holds it, with alert_id nullable and drift_check_id
# added: SQLite cannot drop a NOT NULL, so version 3 rebuilds the table (plain SQL: steps outlive
# the models).
_NOTIFICATIONS_V3_SQLITE = (
    "CREATE TABLE notifications (id INTEGER NOT NULL PRIMARY KEY, alert_id INTEGER, drift_check_id INTEGER, "
    "event VARCHAR(32) NOT NULL, url VARCHAR(2048) NOT NULL, payload JSON NOT NULL, state VARCHAR(8) NOT NULL, "
    "attempts INTEGER NOT NULL, created_at DATETIME NOT NULL, next_attempt_at DATETIME NOT NULL, "
    "sent_at DATETIME, last_error TEXT)"
)
_NOTIFICATION_COLUMNS = ("id, alert_id, event, url, payload, state, attempts, created_at, next_attempt_at, sent_at, "
                         "last_error")


@migration(2)
def _faults_and_drift(conn: Connection) -> None:
    """fault labels (snippets.fault, alerts.fault*), drift_checks, and notifications not tied to an alert."""
    add_column(conn, "snippets", Column("fault", String(64)))
    add_column(conn, "alerts", Column("fault", String(64)))
    add_column(conn, "alerts", Column("fault_distance", Float()))
    add_column(conn, "alerts", Column("fault_known", Boolean()))
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP INDEX IF EXISTS ix_notifications_alert_id"))
        conn.execute(text("DROP INDEX IF EXISTS ix_notifications_state"))
        conn.execute(text("ALTER TABLE notifications RENAME TO notifications_v2"))
        conn.execute(text(_NOTIFICATIONS_V3_SQLITE))
        conn.execute(text(f"INSERT INTO notifications ({_NOTIFICATION_COLUMNS}) "
                          f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications_v2"))
        conn.execute(text("DROP TABLE notifications_v2"))
        conn.execute(text("CREATE INDEX ix_notifications_alert_id ON notifications (alert_id)"))
        conn.execute(text("CREATE INDEX ix_notifications_state ON notifications (state)"))
    else:
        conn.execute(text("ALTER TABLE notifications ALTER COLUMN alert_id DROP NOT NULL"))
        add_column(conn, "notifications", Column("drift_check_id", Integer()))
    # drift_checks is a new table: created by migrate()'s create_all after the steps


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
    :func:`earshot.service.engines.transactional_sqlite_engine`).

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
