"""The service's settings: one pydantic object, built by ``earshot serve`` or by a test."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from earshot.detection import check_device
from earshot.errors import ParameterError
from earshot.io.limits import SERVICE_LIMITS, DecodeLimits
from earshot.service.webhooks import WebhookError, WebhookPolicy

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
    max_channels, min_sr, max_sr, max_decoded_mb : int, int, int, float
        The rest of the decode budget, checked from the header before decoding: more channels
        or a rate outside ``[min_sr, max_sr]`` is a 422; more than ``max_decoded_mb`` MiB of
        float32 samples (channels x frames x 4 bytes) a 413. Defaults:
        :data:`earshot.io.limits.SERVICE_LIMITS`.
    timeout_keep_alive_s : float
        An idle keep-alive connection is closed after this long.
    timeout_header_s, timeout_body_s : float
        A request whose headers (from the connection's first byte or from the end of the
        previous request) or whose body (from the end of its headers) take longer is dropped.
    limit_concurrency : int
        Open connections plus running tasks beyond which uvicorn answers 503.
    max_header_bytes : int
        h11's limit on an incomplete event (the request line and headers): larger is a 400.
    alert_open_after, alert_close_after : int
        Consecutive anomalous snippets that open a machine's alert, consecutive normal ones
        that close it (hysteresis).
    default_model : str or None
        Model scoring machines that have no model of their own; None: the only model when the
        model directory holds exactly one.
    webhook_retries, webhook_backoff_s, webhook_timeout_s : int, float, float
        Delivery attempts per alert notification, first back-off (doubled each retry, at most
        300 s) and the HTTP timeout.
    webhook_allow : tuple of str
        Host names and IP networks webhooks may reach although they are not public (loopback,
        private, link-local...); by default webhooks reach public addresses only.
    train_min_snippets : int
        Fewest normal snippets ``POST /machines/{machine}/train`` accepts.
    train_epochs : int
        Default epochs of a machine's training job.
    train_device : str
        Where training jobs run: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or
        ``cuda``; the trained bundle scores without torch either way.
    timeline_window_s : float
        Bin width of the per-window timeline returned by ``POST /score?timeline=true``.
    drift_check_every : int
        A machine's drift is checked in the background (and stored in its drift series) after
        every ``drift_check_every`` snippets its model scored on arrival; 0: only on request.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models_dir: Optional[Path] = None
    db_url: Optional[str] = None
    data_dir: Path = Path("earshot-data")
    api_key: Optional[str] = None
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_duration_s: float = Field(SERVICE_LIMITS.max_duration_s, gt=0)
    max_channels: int = Field(SERVICE_LIMITS.max_channels, ge=1)
    min_sr: int = Field(SERVICE_LIMITS.min_sr, ge=1)
    max_sr: int = Field(SERVICE_LIMITS.max_sr, ge=1)
    max_decoded_mb: float = Field(SERVICE_LIMITS.max_decoded_bytes / 2**20, gt=0)
    timeout_keep_alive_s: float = Field(5.0, gt=0)
    timeout_header_s: float = Field(10.0, gt=0)
    timeout_body_s: float = Field(120.0, gt=0)
    limit_concurrency: int = Field(64, ge=1)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    alert_open_after: int = Field(2, ge=1)
    alert_close_after: int = Field(2, ge=1)
    default_model: Optional[str] = None
    webhook_retries: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(1.0, ge=0)
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_allow: tuple[str, ...] = ()
    train_min_snippets: int = Field(10, ge=1)
    train_epochs: int = Field(30, ge=1)
    train_device: str = "auto"
    timeline_window_s: float = Field(1.0, gt=0)
    drift_check_every: int = Field(50, ge=0)

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

    @field_validator("train_device")
    @classmethod
    def _device(cls, value: str) -> str:
        try:
            check_device("train_device", value)
        except ParameterError:
            raise ValueError("expected auto, cpu, cuda or cuda:N") from None
        return value

    @field_validator("webhook_allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(WebhookPolicy.check_entry(v) for v in value)
        except WebhookError as exc:
            raise ValueError(str(exc)) from None

    @property
    def limits(self) -> DecodeLimits:
        """The decode budget of an upload (see :mod:`earshot.io.limits`)."""
        return DecodeLimits(max_channels=self.max_channels, min_sr=self.min_sr, max_sr=self.max_sr,
                            max_duration_s=self.max_duration_s, max_decoded_bytes=int(self.max_decoded_mb * 2**20))

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use (the default SQLite file when ``db_url`` is None)."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(Path(self.data_dir) / 'earshot.db').resolve()}"
