"""``earshot serve``: the monitoring service (REST API, web page, store, alerts, labels)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from earshot.errors import ParameterError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer, out, err) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for every interface).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        models: Annotated[Optional[Path], typer.Option(
            help="Model directory written by `earshot train` (a model set or one bundle).",
            envvar="EARSHOT_MODELS")] = None,
        db: Annotated[Optional[str], typer.Option(
            help="Database URL (default: SQLite in WAL mode under --data; e.g. postgresql+psycopg://user:pw@host/db).",
            envvar="EARSHOT_DB")] = None,
        data: Annotated[Path, typer.Option(
            help="Folder for snippet audio, machine-trained models and the default SQLite database.",
            envvar="EARSHOT_DATA")] = Path("earshot-data"),
        api_key: Annotated[Optional[str], typer.Option(
            help="Require this key (header X-API-Key) on every write endpoint.", envvar="EARSHOT_API_KEY")] = None,
        max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload (MB).")] = 20.0,
        max_duration_s: Annotated[float, typer.Option(help="Longest accepted audio (s, from the header).")] = 600.0,
        max_channels: Annotated[int, typer.Option(help="Most channels an upload may have.")] = 32,
        min_rate: Annotated[int, typer.Option(help="Lowest accepted sample rate (Hz).")] = 8000,
        max_rate: Annotated[int, typer.Option(help="Highest accepted sample rate (Hz).")] = 192000,
        max_decoded_mb: Annotated[float, typer.Option(
            help="Largest decoded upload: channels x samples x 4 bytes (MiB), checked before decoding.")] = 64.0,
        timeout_header_s: Annotated[float, typer.Option(help="Seconds a client has to send a request's headers.")] = 10.0,
        timeout_body_s: Annotated[float, typer.Option(help="Seconds a client has to send a request's body.")] = 120.0,
        timeout_keep_alive_s: Annotated[float, typer.Option(help="Idle keep-alive connections close after (s).")] = 5.0,
        limit_concurrency: Annotated[int, typer.Option(
            help="Connections and tasks at once; beyond it the service answers 503.")] = 64,
        alert_open_after: Annotated[int, typer.Option(help="Consecutive anomalous snippets that open an alert.")] = 2,
        alert_close_after: Annotated[int, typer.Option(help="Consecutive normal snippets that close an alert.")] = 2,
        default_model: Annotated[Optional[str], typer.Option(
            help="Model that scores machines with no model of their own (default: the only model, if just one).")] = None,
        webhook_allow: Annotated[Optional[list[str]], typer.Option(
            help="A host name or IP network (CIDR) webhooks may reach although it is not public "
                 "(loopback, private, link-local...); repeatable. Default: public addresses only.")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
        train_device: Annotated[str, typer.Option(help="Where training jobs run: auto (CUDA when torch sees a GPU) | cpu | cuda.",
                                                  envvar="EARSHOT_TRAIN_DEVICE")] = "auto",
        drift_every: Annotated[int, typer.Option(
            help="Check a machine's drift in the background after every N snippets scored (0: only on request).")] = 50,
    ) -> None:
        """Serve the REST API (OpenAPI at /docs), the web page and the monitoring store."""
        try:
            # deferred: fastapi and sqlalchemy (the serve extra) load only when the service starts
            from earshot.service.app import create_app, preflight
            from earshot.service.settings import Settings  # deferred: as above
        except ImportError as exc:  # the serve extra is missing
            raise ParameterError(
                f"earshot serve needs the 'serve' extra ({exc.name} is missing): pip install 'earshot[serve]'"
            ) from None
        import uvicorn  # deferred: the serve extra

        from earshot.service.server import server_options  # deferred: uvicorn, as above

        settings = Settings(
            host=host, port=port, models_dir=models, db_url=db, data_dir=data, api_key=api_key or None,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024), alert_open_after=alert_open_after,
            alert_close_after=alert_close_after, default_model=default_model, webhook_allow=tuple(webhook_allow or ()),
            max_duration_s=max_duration_s, max_channels=max_channels, min_sr=min_rate, max_sr=max_rate, max_decoded_mb=max_decoded_mb,
            timeout_header_s=timeout_header_s, timeout_body_s=timeout_body_s,
            timeout_keep_alive_s=timeout_keep_alive_s, limit_concurrency=limit_concurrency, train_device=train_device,
            drift_check_every=drift_every,
        )
        log = logging.getLogger("earshot")
        if host not in LOCAL_HOSTS and not settings.api_key:
            log.warning("serving on %s without an API key: anyone who can reach port %d can post snippets, "
                        "labels and training jobs (pass --api-key or set EARSHOT_API_KEY)", host, port)
        preflight(settings)
        application = create_app(settings)
        err.print(f"earshot serve: http://{host}:{port}/  (API docs at /docs; data in {settings.data_dir})")
        uvicorn.run(application, **server_options(settings, log_level=log_level))
