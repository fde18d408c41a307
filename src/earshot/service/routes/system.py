"""``GET /health``, ``GET /models``, ``GET /models/{name}``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends

from earshot import __version__
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState, state

router = APIRouter(tags=["system"])
_STARTED = time.time()


@router.get("/health")
def health(st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Liveness and what is loaded: models, database backend, whether writes need a key."""
    st.store.ping()
    return {"status": "ok", "version": __version__, "models": len(st.registry.names()),
            "database": st.store.backend, "api_key_required": bool(st.settings.api_key),
            "uptime_s": round(time.time() - _STARTED, 1)}


@router.get("/models")
def models(st: ServiceState = Depends(state)) -> dict[str, Any]:
    """Every loaded model: name, source (models-dir | trained), threshold, features."""
    default = st.registry.default
    return {"models": [e.summary() for e in st.registry.all()], "default": default.name if default else None}


@router.get("/models/{name}")
def model(name: str, st: ServiceState = Depends(state)) -> dict[str, Any]:
    """One model's summary and manifest (training file paths left out)."""
    entry = st.registry.get(name)
    if entry is None:
        raise ApiError(404, f"model {name!r} not found (models: {', '.join(st.registry.names()) or 'none'})")
    return entry.detail()
