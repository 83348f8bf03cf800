"""Refuse request bodies over the size limit before anything parses them.

A declared Content-Length over the limit is refused before a byte is read; a chunked body
(no Content-Length) is read up to the limit and refused as soon as it passes it. An
accepted body is handed on from memory, which costs at most the limit per request. A body
that does not arrive whole within the read timeout is answered 408, so a client trickling
its bytes cannot hold a request (or a graceful shutdown) open as long as it likes.

Why not FastAPI's own `max_body_size`: for a declared Content-Length over the limit,
Starlette replaces whatever the app answers with a plain-text 413, so the answer would
escape vigil's one JSON error shape and its error count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

__all__ = ["ARRIVED", "BodyLimitMiddleware"]

ARRIVED = "vigil_arrived"
"""Key of `request.state`: `time.monotonic()` when the request's headers had arrived,
from which its deadline counts."""


class BodyLimitMiddleware:
    """Answers 413 to any HTTP request whose body exceeds `max_bytes`.

    Args:
        app: The ASGI app to protect.
        max_bytes: Largest body accepted.
        read_timeout_s: Longest time the whole body may take to arrive.
        on_reject: Called with each refusal, e.g. to count it: refusals happen before the
            app runs, so its exception handlers never see them.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, read_timeout_s: float, on_reject: Callable[[ApiError], None]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[ARRIVED] = time.monotonic()
        try:
            self._check_declared_length(scope)
            body = await self._read_body_in_time(receive)
        except ApiError as error:
            self.on_reject(error)
            await error_response(error)(scope, receive, send)
            return
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"the request body is larger than the {self.max_bytes}-byte limit")

    def _check_declared_length(self, scope: Scope) -> None:
        for name, value in scope["headers"]:
            # The HTTP server has already refused a Content-Length that is not a number.
            if name == b"content-length" and int(value) > self.max_bytes:
                raise self._too_large()

    async def _read_body_in_time(self, receive: Receive) -> bytes | None:
        try:
            return await asyncio.wait_for(self._read_body(receive), self.read_timeout_s)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            message = f"the request body did not arrive within {self.read_timeout_s:g} s"
            raise ApiError(408, "body_timeout", message, headers={"Connection": "close"}) from None

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client left before sending it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then defers to the server's."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()  # the server's http.disconnect, when it comes
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
