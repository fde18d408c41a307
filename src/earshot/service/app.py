"""The FastAPI application factory.

``create_app(settings)`` builds the app; the store, the models, the webhook sender and the job
worker are created when it starts (lifespan) and closed when it stops. Every error is a JSON
``{"detail": "<one line>"}`` with a 4xx status for bad input; an unexpected failure is a 500
with no traceback in the answer (it goes to the log).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from earshot.bundle import load_model
from earshot.errors import EarshotError, ParameterError
from earshot.service.alerts import Notifier
from earshot.service.audio import ApiError
from earshot.service.deps import ServiceState
from earshot.service.drift_watch import DriftWatcher
from earshot.service.jobs import JobRunner
from earshot.service.migrations import check_schema_version, stored_schema_version
from earshot.service.registry import ModelRegistry
from earshot.service.routes import ROUTERS
from earshot.service.routes.pages import STATIC
from earshot.service.settings import Settings
from earshot.service.store import Store
from earshot.service.webhooks import WebhookPolicy

__all__ = ["create_app", "preflight"]

log = logging.getLogger(__name__)

#: Room for the multipart envelope around an upload of ``max_upload_bytes``.
_ENVELOPE = 64 * 1024


class BodyLimit:
    """Refuse request bodies larger than ``limit`` with 413 before the app reads them.

    A declared ``Content-Length`` is checked up front; a chunked body is counted as it
    arrives (and held in memory, at most ``limit`` bytes).
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await _reply(send, 400, "Content-Length: expected an integer")
            if size > self.limit:
                return await _reply(send, 413, f"request body of {size} bytes exceeds the {self.limit} byte limit")
            return await self.app(scope, receive, send)
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                return await _reply(send, 413, f"request body exceeds the {self.limit} byte limit")
            chunks.append(body)
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed, send)


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header", "form"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def preflight(settings: Settings) -> None:
    """Check what start-up will need, raising one-line errors (for ``earshot serve``).

    Raises
    ------
    ParameterError
        An unusable database URL, or a database whose schema is newer than this code
        (:class:`~earshot.service.store.SchemaVersionError`).
    BundleError
        A missing or unreadable model directory.
    OSError
        A data folder that cannot be created.
    """
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise ParameterError(f"--db: expected a database URL such as postgresql+psycopg://user:pw@host/db, "
                             f"got {settings.db_url!r}") from None
    if not url.drivername.startswith(("sqlite", "postgresql")):
        raise ParameterError(f"--db: expected a sqlite:// or postgresql:// URL, got {url.drivername}://...")
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
    except ImportError as exc:
        raise ParameterError(f"--db: the {url.drivername} driver is not installed ({exc.name}); "
                             "for PostgreSQL: pip install 'psycopg[binary]'") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            stored = stored_schema_version(conn, settings.database_url)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ParameterError(f"--db: cannot connect to {url.render_as_string(hide_password=True)} ({reason})") from None
    finally:
        engine.dispose()
    check_schema_version(stored, settings.database_url)  # an older one is migrated at start-up
    if settings.models_dir is not None:
        load_model(settings.models_dir)


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to ``Settings()`` (no models, data in ``./earshot-data``).

    Returns
    -------
    fastapi.FastAPI
        Its ``state.earshot`` (a :class:`~earshot.service.deps.ServiceState`) exists while
        the app runs (inside its lifespan).
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        data = Path(settings.data_dir)
        store = Store(settings.database_url, data)
        registry = ModelRegistry(models_dir=settings.models_dir, trained_dir=data / "models",
                                 default_model=settings.default_model)
        try:
            store.collect_orphans()  # audio a crash left between its rename and its commit
            registry.load()
        except BaseException:
            store.close()
            raise
        notifier = Notifier(store, retries=settings.webhook_retries, backoff_s=settings.webhook_backoff_s,
                            timeout_s=settings.webhook_timeout_s, policy=WebhookPolicy(settings.webhook_allow))
        jobs = JobRunner(store, registry, trained_dir=data / "models", device=settings.train_device)
        drift = DriftWatcher(store, registry, notifier, every=settings.drift_check_every)
        app.state.earshot = ServiceState(settings=settings, store=store, registry=registry, notifier=notifier, jobs=jobs,
                                         drift=drift)
        notifier.start()
        jobs.start()
        drift.start()
        log.info("earshot service ready: %d model(s), %s database, data in %s", len(registry.names()), store.backend, data)
        try:
            yield
        finally:
            drift.stop()
            jobs.stop()
            notifier.stop()
            store.close()

    app = FastAPI(
        title="earshot",
        summary="Listen to industrial machines and tell when one sounds wrong.",
        description="Machines report snippets; each is scored with its machine's model (higher = more anomalous, "
                    "anomalous when score > threshold), stored, and turned into alerts with hysteresis. "
                    "Write endpoints need the X-API-Key header when the server has a key.",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(EarshotError)
    async def _earshot_error(_request: Request, exc: EarshotError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (see the server log)"}, status_code=500)

    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + _ENVELOPE)
    return app
