"""The monitoring store's tables: the SQLAlchemy 2 declarative base and every mapped class.

:class:`~earshot.service.store.Store` opens the database they describe (and re-exports them);
the schema's version and the steps between versions are in :mod:`earshot.service.migrations`.
Times are stored as naive UTC datetimes (:func:`earshot.service.store.utcnow`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Meta", "Machine", "Snippet", "Alert", "Notification", "Job", "DriftCheck"]


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
    # schema version 3: the fault type the team gave a confirmed anomaly ("bearing", free text)
    fault: Mapped[Optional[str]] = mapped_column(String(64))


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
    # schema version 3: the confirmed fault the alert's peak snippet sounds closest to, its distance
    # in the fault embedding, and whether it lies within that fault's reach (False: "unlike any
    # confirmed fault"); NULL while the machine has no confirmed fault to compare with
    fault: Mapped[Optional[str]] = mapped_column(String(64))
    fault_distance: Mapped[Optional[float]] = mapped_column(Float)
    fault_known: Mapped[Optional[bool]] = mapped_column(Boolean)


class Notification(Base):
    """An outbox row: one webhook delivery (retried with back-off until sent or given up)."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)  # NULL (version 3): not an alert's
    drift_check_id: Mapped[Optional[int]] = mapped_column(Integer)  # version 3: the drift check notified
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


class DriftCheck(Base):
    """One drift check of a machine (schema version 3): its recent window against its model's training data.

    The machine's drift over time is the series of its checks; ``details`` keeps what the check
    reported beyond the verdict (the mel bands that moved, the reference size, ...).
    """

    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_machine_id_id", "machine_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    model: Mapped[str] = mapped_column(String(128))
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    n: Mapped[int] = mapped_column(Integer)  # snippets in the window
    window_from: Mapped[dt.datetime] = mapped_column(DateTime)
    window_to: Mapped[dt.datetime] = mapped_column(DateTime)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
