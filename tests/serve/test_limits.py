"""Request limits and malformed requests: each refused with a JSON error naming the problem."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from vigil.serve import ServeSettings

from serve_harness import error_of

SETTINGS = ServeSettings(max_body_bytes=1000, max_texts=3, max_text_chars=50)
JSON = {"content-type": "application/json"}



@pytest.mark.parametrize("path", ["/v1/classify", "/v1/embed"])
def test_declared_body_over_the_limit_is_refused(client: httpx.Client, path: str) -> None:
    error = error_of(client.post(path, json={"text": "x" * 2000}), 413)
    assert error["kind"] == "body_too_large"
    assert "1000" in error["message"]


def test_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # a generator makes httpx send Transfer-Encoding: chunked
        yield b'{"text": "'
        yield b"x" * 600
        yield b"x" * 600 + b'"}'  # the last chunk passes the limit

    error = error_of(client.post("/v1/classify", content=chunks(), headers=JSON), 413)
    assert error["kind"] == "body_too_large"


def test_chunked_body_within_the_limit_is_served(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ['
        yield b'"a", "b"]}'

    assert client.post("/v1/classify", content=chunks(), headers=JSON).status_code == 200


def _body_of(size: int) -> bytes:
    """A valid request body of exactly SIZE bytes (JSON whitespace pads it)."""
    head, tail = b'{"text": "a"', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_body_limit_is_exact(client: httpx.Client, chunked: bool) -> None:
    """A body of exactly max_body_bytes is served; one byte more is refused."""
    limit = SETTINGS.max_body_bytes

    def send(body: bytes) -> httpx.Response:
        content = iter([body[:400], body[400:800], body[800:]]) if chunked else body
        return client.post("/v1/classify", content=content, headers=JSON)

    assert send(_body_of(limit)).status_code == 200
    assert error_of(send(_body_of(limit + 1)), 413)["kind"] == "body_too_large"


def test_max_texts_is_exact(client: httpx.Client) -> None:
    """max_texts texts are served, on every endpoint; one more is refused (next test)."""
    for path in ("/v1/classify", "/v1/embed"):
        response = client.post(path, json={"texts": ["a"] * SETTINGS.max_texts})
        assert response.status_code == 200, response.text
    response = client.post("/v1/aggregate", json={"items": [{"text": "a", "group": "g"}] * SETTINGS.max_texts})
    assert response.status_code == 200, response.text


def test_too_many_texts(client: httpx.Client) -> None:
    for path in ("/v1/classify", "/v1/embed"):
        error = error_of(client.post(path, json={"texts": ["a"] * (SETTINGS.max_texts + 1)}), 422)
        assert (error["kind"], error["field"]) == ("too_many_texts", "texts")
        assert "3" in error["message"]
    error = error_of(client.post("/v1/aggregate", json={"items": [{"text": "a", "group": "g"}] * (SETTINGS.max_texts + 1)}), 422)
    assert (error["kind"], error["field"]) == ("too_many_texts", "items")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/classify", {"text": "x" * 51}, "text"),
        ("/v1/classify", {"texts": ["ok", "x" * 51]}, "texts[1]"),
        ("/v1/embed", {"text": "x" * 51}, "text"),
        ("/v1/embed", {"texts": ["ok", "x" * 51]}, "texts[1]"),
        ("/v1/aggregate", {"items": [{"text": "ok", "group": "g"}, {"text": "x" * 51, "group": "g"}]}, "items[1].text"),
    ],
)
def test_text_too_long(client: httpx.Client, path: str, body: dict, field: str) -> None:
    error = error_of(client.post(path, json=body), 422)
    assert (error["kind"], error["field"]) == ("text_too_long", field)
    assert "51" in error["message"] and "50" in error["message"]


def test_a_text_at_the_limit_is_served(client: httpx.Client) -> None:
    assert client.post("/v1/classify", json={"text": "x" * SETTINGS.max_text_chars}).status_code == 200
    assert client.post("/v1/classify", json={"texts": ["ok", "x" * SETTINGS.max_text_chars]}).status_code == 200


def test_malformed_json_is_400(client: httpx.Client) -> None:
    error = error_of(client.post("/v1/classify", content=b'{"texts": [', headers=JSON), 400)
    assert error["kind"] == "malformed_json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["ok", None]}, "texts[1]"),
        ({"texts": ["ok", "fine", 7]}, "texts[2]"),
        ({"text": 3.5}, "text"),
        ({"texts": "not a list"}, "texts"),
        ({"texts": []}, "texts"),
        ({}, "body"),
        ({"text": "a", "texts": ["b"]}, "body"),
        ({"txt": "typo"}, "txt"),
    ],
)
def test_wrong_types_are_422_naming_the_field(client: httpx.Client, body: dict, field: str) -> None:
    error = error_of(client.post("/v1/classify", json=body), 422)
    assert (error["kind"], error["field"]) == ("validation", field)
    assert error["message"].startswith(field)


def test_aggregate_items_need_text_and_group(client: httpx.Client) -> None:
    error = error_of(client.post("/v1/aggregate", json={"items": [{"text": "a"}]}), 422)
    assert error["field"] == "items[0].group"
