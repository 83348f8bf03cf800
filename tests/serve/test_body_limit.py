"""BodyLimitMiddleware on its own, at the ASGI level: what reaches the app, byte for byte."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("starlette")

from vigil.serve.body_limit import BodyLimitMiddleware  # noqa: E402

LIMIT = 10
DISCONNECT = {"type": "http.disconnect"}


def run(messages: list[dict], headers: list[tuple[bytes, bytes]] = ()) -> tuple[list[dict] | None, list[dict], list]:
    """Send MESSAGES through the middleware; return what the app received (None: never
    called), what went to the client, and the refusals reported."""
    incoming = iter([*messages, DISCONNECT])
    seen: list[dict] | None = None
    sent: list[dict] = []
    refused: list = []

    async def receive() -> dict:
        return next(incoming)

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope, app_receive, app_send) -> None:
        nonlocal seen
        seen = [await app_receive(), await app_receive()]  # the body, then the server's next message

    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(headers)}
    asyncio.run(BodyLimitMiddleware(app, LIMIT, read_timeout_s=10.0, on_reject=refused.append)(scope, receive, send))
    return seen, sent, refused


def test_chunks_reach_the_app_joined_once_then_the_servers_messages() -> None:
    seen, sent, refused = run(
        [{"type": "http.request", "body": b"12345", "more_body": True}, {"type": "http.request", "body": b"67890"}]
    )
    assert seen == [{"type": "http.request", "body": b"1234567890", "more_body": False}, DISCONNECT]
    assert (sent, refused) == ([], [])


def test_a_message_without_body_is_an_empty_body() -> None:
    seen, _, _ = run([{"type": "http.request"}])
    assert seen == [{"type": "http.request", "body": b"", "more_body": False}, DISCONNECT]


def test_one_byte_over_in_chunks_is_refused_before_the_app() -> None:
    seen, sent, refused = run(
        [{"type": "http.request", "body": b"x" * LIMIT, "more_body": True}, {"type": "http.request", "body": b"y"}]
    )
    assert seen is None
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["kind"] == "body_too_large"
    assert [error.kind for error in refused] == ["body_too_large"]


@pytest.mark.parametrize("declared, refused_count", [(LIMIT, 0), (LIMIT + 1, 1)])
def test_a_declared_length_is_judged_before_reading(declared: int, refused_count: int) -> None:
    """Content-Length alone decides: the body here is only one byte."""
    seen, sent, refused = run([{"type": "http.request", "body": b"x"}], [(b"content-length", str(declared).encode())])
    assert len(refused) == refused_count
    assert (seen is None) == bool(refused_count)
    if refused_count:
        assert sent[0]["status"] == 413


def test_a_client_that_leaves_before_its_body_reaches_no_app() -> None:
    seen, sent, refused = run([])
    assert (seen, sent, refused) == (None, [], [])
