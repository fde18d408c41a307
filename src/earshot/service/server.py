"""Run the app under uvicorn with limits for slow, idle and too many clients.

uvicorn (0.29 to 0.55) times out only an idle keep-alive connection *after* a response: a
connection that never completes its headers, or sends its body a byte at a time, is held
forever. :class:`TimedH11Protocol` adds two deadlines to uvicorn's h11 protocol:

- headers: from the connection's first moment (or the end of the previous response) to the
  end of the request's headers, ``timeout_header_s``; a connection that sends nothing at all
  is closed after the same time;
- body: from the end of the headers to the end of the body, ``timeout_body_s``.

A connection past a deadline is closed (a request whose headers never arrived gets no answer;
a route reading the body sees the client disconnect). The rest is uvicorn's own settings:
``timeout_keep_alive``, ``limit_concurrency`` (503 beyond it) and
``h11_max_incomplete_event_size`` (400 for longer header blocks).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from earshot.service.settings import Settings

__all__ = ["TimedH11Protocol", "server_options"]

log = logging.getLogger(__name__)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a body deadline (see the module)."""

    timeout_header_s: float = 10.0
    timeout_body_s: float = 120.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._deadline: Optional[asyncio.TimerHandle] = None
        self._waiting_for: Optional[str] = None

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._waiting_for = what
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expired(self) -> None:
        what, self._deadline = self._waiting_for, None
        if self.transport is not None and not self.transport.is_closing():
            log.info("closing a connection from %s: its %s did not arrive in time", self.client, what)
            self.transport.close()

    def _track(self) -> None:
        """(Re)arm or cancel the deadline for the state the client is in now."""
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            if self._waiting_for != "headers":
                self._arm("headers", self.timeout_header_s)
        elif state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._arm("body", self.timeout_body_s)
        else:
            self._disarm()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.timeout_header_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._track()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_options(settings: Settings, *, log_level: str = "info") -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` with the timeouts and limits of ``settings``.

    Parameters
    ----------
    settings : Settings
        ``host``, ``port``, ``timeout_keep_alive_s``, ``timeout_header_s``, ``timeout_body_s``,
        ``limit_concurrency`` and ``max_header_bytes``.
    log_level : str
    """
    protocol = type("EarshotH11Protocol", (TimedH11Protocol,), {
        "timeout_header_s": settings.timeout_header_s, "timeout_body_s": settings.timeout_body_s})
    return dict(
        host=settings.host, port=settings.port, log_level=log_level, access_log=log_level == "debug",
        http=protocol, timeout_keep_alive=max(1, round(settings.timeout_keep_alive_s)),
        limit_concurrency=settings.limit_concurrency, h11_max_incomplete_event_size=settings.max_header_bytes,
    )
