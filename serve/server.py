"""Run the app under uvicorn with a shutdown that answers every accepted request.

On SIGTERM or Ctrl-C uvicorn stops listening, lets open requests finish, then runs the
app's lifespan shutdown (which closes the Service with `wait=True`). `Server` adds one
step in front: it marks the app as draining, so /readyz answers 503 at once and a request
still arriving on an open connection gets 503 with Retry-After, to be retried elsewhere.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from fastapi import FastAPI

from .app import drain

__all__ = ["Server", "run"]


class Server(uvicorn.Server):
    """uvicorn's server for an app from `create_app`, draining it as shutdown begins."""

    def __init__(self, app: FastAPI, **config: Any) -> None:
        """Serve APP; CONFIG takes any `uvicorn.Config` option (host, port, log_level, ...).

        The lifespan is always on: it starts and stops the app's Service.
        """
        super().__init__(uvicorn.Config(app, lifespan="on", **config))
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain(self.app)
        await super().shutdown(sockets)


def run(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve APP until SIGINT or SIGTERM; by default only to this machine."""
    Server(app, host=host, port=port, log_level=log_level).run()
