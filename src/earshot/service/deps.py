"""What every route needs: the service state, the API-key check, uploads and name checks."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from fastapi import Request, UploadFile

from earshot.errors import ParameterError
from earshot.service.alerts import Notifier
from earshot.service.audio import ApiError
from earshot.service.drift_watch import DriftWatcher
from earshot.service.faults import FaultIndex
from earshot.service.jobs import JobRunner
from earshot.service.registry import ModelRegistry, check_name
from earshot.service.settings import Settings
from earshot.service.store import Store

__all__ = ["ServiceState", "state", "require_key", "machine_name", "receive_upload", "upload_label"]

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    registry: ModelRegistry
    notifier: Notifier
    jobs: JobRunner
    drift: Optional[DriftWatcher] = None  # background drift checks (earshot.service.drift_watch)
    faults: FaultIndex = field(default_factory=FaultIndex)  # fault signatures per machine and model


def state(request: Request) -> ServiceState:
    return request.app.state.earshot


def require_key(request: Request) -> None:
    """Refuse a write without the configured API key (401); nothing to check when none is set."""
    key = request.app.state.earshot.settings.api_key
    if not key:
        return
    given = request.headers.get("x-api-key")
    if given is None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key: send it in the X-API-Key header")


def machine_name(machine: str) -> str:
    try:
        return check_name(machine, "machine")
    except ParameterError as exc:
        raise ApiError(422, str(exc)) from None


def upload_label(file: UploadFile) -> str:
    """How an upload is named in messages: its file name (never used as a path), quoted."""
    name = Path(str(file.filename or "")).name[:80]
    return f"upload {name!r}" if name else "upload"


def receive_upload(st: ServiceState, file: UploadFile) -> tuple[Path, str, int]:
    """Copy an upload to the store's tmp folder: (path, sha256, size); 413 when too large."""
    path, sha, size = st.store.temp_upload(file.file, max_bytes=st.settings.max_upload_bytes)
    if path is None:
        raise ApiError(413, f"{upload_label(file)}: larger than the {st.settings.max_upload_bytes} byte upload limit")
    return path, sha, size

