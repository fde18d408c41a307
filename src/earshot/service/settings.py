"""The service's settings: one pydantic object, built by ``earshot serve`` or by a test."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from earshot.errors import ParameterError

__all__ = ["Settings"]


class Settings(BaseModel):
    """Everything the service can be told; immutable once built.

    Parameters
    ----------
    host, port : str, int
        Where ``earshot serve`` binds (the app itself does not use them).
    models_dir : Path or None
        A model set or bundle written by ``earshot train``; None starts without models
        (machines then need ``POST /machines/{machine}/train``).
    db_url : str or None
        SQLAlchemy URL; None means SQLite (WAL mode) at ``data_dir / "earshot.db"``.
    data_dir : Path
        Snippet audio (``audio/<sha256[:2]>/<sha256>.<ext>``), machine-trained models
        (``models/<machine>/``) and the default database.
    api_key : str or None
        When set, every POST/PUT/DELETE needs it in ``X-API-Key`` (or ``Authorization: Bearer``).
    max_upload_bytes : int
        Larger request bodies are refused with 413 before they are read.
    max_duration_s : float
        Longer audio (by its header) is refused with 413 before it is decoded.
    alert_open_after, alert_close_after : int
        Consecutive anomalous snippets that open a machine's alert, consecutive normal ones
        that close it (hysteresis).
    default_model : str or None
        Model scoring machines that have no model of their own; None: the only model when the
        model directory holds exactly one.
    webhook_retries, webhook_backoff_s, webhook_timeout_s : int, float, float
        Delivery attempts per alert notification, first back-off (doubled each retry, at most
        300 s) and the HTTP timeout.
    train_min_snippets : int
        Fewest normal snippets ``POST /machines/{machine}/train`` accepts.
    train_epochs : int
        Default epochs of a machine's training job.
    timeline_window_s : float
        Bin width of the per-window timeline returned by ``POST /score?timeline=true``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models_dir: Optional[Path] = None
    db_url: Optional[str] = None
    data_dir: Path = Path("earshot-data")
    api_key: Optional[str] = None
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_duration_s: float = Field(600.0, gt=0)
    alert_open_after: int = Field(2, ge=1)
    alert_close_after: int = Field(2, ge=1)
    default_model: Optional[str] = None
    webhook_retries: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(1.0, ge=0)
    webhook_timeout_s: float = Field(5.0, gt=0)
    train_min_snippets: int = Field(10, ge=1)
    train_epochs: int = Field(30, ge=1)
    timeline_window_s: float = Field(1.0, gt=0)

    def __init__(self, **data):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
            raise ParameterError(f"{where}: {first.get('msg')} (got {first.get('input')!r})") from None

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            return None
        return value

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use (the default SQLite file when ``db_url`` is None)."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(Path(self.data_dir) / 'earshot.db').resolve()}"
