"""The store's SQLite connections: the pragmas every connection gets, and the engine a schema
migration runs on (used by :mod:`earshot.service.store`)."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

__all__ = ["sqlite_pragmas", "transactional_sqlite_engine"]


def sqlite_pragmas(dbapi_connection, _record) -> None:
    """Every SQLite connection: WAL journal, ``synchronous=FULL``, foreign keys, a 30 s busy wait."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def transactional_sqlite_engine(url: str) -> Engine:
    """An engine on a SQLite URL whose transactions cover DDL too (pysqlite leaves ``ALTER``
    outside them otherwise), beginning with ``BEGIN IMMEDIATE`` so a migration holds the write
    lock from its first statement."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record) -> None:
        sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the driver begins nothing itself...

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # ...every transaction begins here

    return engine
