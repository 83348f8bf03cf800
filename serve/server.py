"""Run the app under uvicorn with a shutdown that answers every accepted request.

On SIGTERM or Ctrl-C uvicorn stops listening, lets open requests finish, then runs the
app's lifespan shutdown (which closes the Service with `wait=True`). `Server` adds one
step in front: it marks the app as draining, so /readyz answers 503 at once and a request
still arriving on an open connection gets 503 with Retry-After, to be retried elsewhere.

It also applies the app's connection settings (`ServeSettings`): the keep-alive timeout,
the graceful-shutdown timeout, the concurrency limit, the header size limit and a header
read timeout. The protocol is always uvicorn's h11 one, never the httptools one that
uvicorn's "auto" picks where httptools is installed: only h11 bounds a request's headers
(uvicorn's httptools protocol buffers them without limit), and httptools with uvloop saved
about 0.2 ms a request here (time outside the route handler 1.21-1.51 ms against
1.44-1.70 ms, MiniLM int8 on 2 cores, two alternating rounds). uvicorn
has no header timeout of its own (its keep-alive timer starts only after a first
response), so a connection that never finishes sending its headers would hold a socket
forever; `_with_header_timeout` closes it instead. The body's timeout is the app's
(`BodyLimitMiddleware`), since only the app can answer 408.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import drain
from .settings import ServeSettings

__all__ = ["Server", "run"]


class Server(uvicorn.Server):
    """uvicorn's server for an app from `create_app`, draining it as shutdown begins."""

    def __init__(self, app: FastAPI, **config: Any) -> None:
        """Serve APP; CONFIG takes any `uvicorn.Config` option (host, port, log_level, ...).

        The lifespan is always on: it starts and stops the app's Service. Timeouts and the
        concurrency limit come from the app's `ServeSettings` unless CONFIG sets them.
        """
        settings: ServeSettings = app.state.vigil.settings
        defaults = {
            "timeout_keep_alive": settings.keep_alive_s,
            "timeout_graceful_shutdown": settings.graceful_shutdown_s,
            "limit_concurrency": settings.max_concurrency,
            "h11_max_incomplete_event_size": settings.max_header_bytes,
            "http": _with_header_timeout(settings.read_timeout_s),
        }
        super().__init__(uvicorn.Config(app, lifespan="on", **{**defaults, **config}))
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain(self.app)
        await super().shutdown(sockets)


def _with_header_timeout(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request's headers take over SECONDS.

    The timer starts when the connection opens and again after each response; it closes
    the connection if no new request began (`cycle` is unchanged) by the time it fires.
    """

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._headers_overdue, self.cycle)

        def _headers_overdue(self, cycle: object) -> None:
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def run(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve APP until SIGINT or SIGTERM; by default only to this machine."""
    Server(app, host=host, port=port, log_level=log_level).run()
