"""Hostile requests: validation bombs, odd content types, broken JSON, half-sent requests.

Each test here failed before the hardening of issue 10. Waits are lower bounds only (a
client pausing longer than a timeout), never a performance threshold.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from serve_harness import WAIT_S, Live, error_of, live_server

from vigil.runtime import Classifier
from vigil.serve import Server, ServeSettings, create_app

KEY = "s3cret-key"
SETTINGS = ServeSettings(max_texts=3, read_timeout_s=0.5)



@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/classify", {"texts": [1] * 5000}, "texts"),
        ("/v1/classify", {"texts": [{}] * 5000}, "texts"),
        ("/v1/aggregate", {"items": [{}] * 5000}, "items"),
    ],
)
def test_a_list_over_the_limit_is_refused_before_its_items_are_validated(
    client: httpx.Client, path: str, body: dict, field: str
) -> None:
    # Validating first would report the first bad item ("validation", texts[0]) instead.
    error = error_of(client.post(path, json=body), 422)
    assert (error["kind"], error["field"]) == ("too_many_texts", field)
    assert "5000" in error["message"] and "3" in error["message"]


def test_a_body_with_more_values_than_any_acceptable_one_is_refused_before_parsing(client: httpx.Client) -> None:
    error = error_of(client.post("/v1/classify", json={"texts": [[1] * 5000]}), 422)
    assert (error["kind"], error["field"]) == ("too_many_texts", "texts")


def test_commas_inside_texts_do_not_count_as_values(client: httpx.Client) -> None:
    texts = ['a, "quoted", b\\,' * 200] * 3
    response = client.post("/v1/classify", json={"texts": texts})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 3


def test_many_bad_items_within_the_limit_answer_the_first_error_only(client: httpx.Client) -> None:
    error = error_of(client.post("/v1/aggregate", json={"items": [{}, {}, {}]}), 422)
    assert (error["kind"], error["field"]) == ("validation", "items[0].text")


def test_a_form_content_type_is_415_naming_json(client: httpx.Client) -> None:
    # What `curl -d '{"text": "hi"}'` sends.
    response = client.post(
        "/v1/classify", content=b'{"text": "hi"}', headers={"content-type": "application/x-www-form-urlencoded"}
    )
    error = error_of(response, 415)
    assert error["kind"] == "unsupported_media_type"
    assert "application/json" in error["message"]


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
def test_json_with_or_without_a_json_content_type_is_served(client: httpx.Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert client.post("/v1/classify", content=b'{"text": "hi"}', headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"text": "caf\xe9"}', "application/json", "UTF-8"),
        (b'{"text": "caf\xe9"}', "application/json; charset=latin-1", "charset=latin-1"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", ""),
        (b'{"texts": [' + b"9" * 5000 + b"]}", "application/json", ""),
        (b"", "application/json", ""),
    ],
    ids=["invalid-utf8", "latin1-charset", "deep-nesting", "huge-int", "empty"],
)
def test_every_parse_error_is_malformed_json(client: httpx.Client, body: bytes, content_type: str, reason: str) -> None:
    error = error_of(client.post("/v1/classify", content=body, headers={"content-type": content_type}), 400)
    assert error["kind"] == "malformed_json"
    assert reason in error["message"]


def test_the_key_is_checked_before_the_body_is_parsed(classifier: Classifier) -> None:
    with live_server(classifier, settings=ServeSettings(api_key=KEY)) as server:
        server.wait_ready()
        with server.client() as client:
            malformed = b'{"texts": ['
            response = client.post("/v1/classify", content=malformed, headers={"content-type": "application/json"})
    assert error_of(response, 401)["kind"] == "unauthorized"


def test_openapi_documents_metrics_401_and_the_one_of_rule(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert "401" in schema["paths"]["/metrics"]["get"]["responses"]
    request = schema["components"]["schemas"]["ClassifyRequest"]
    assert request["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    body = schema["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ClassifyRequest"}
    assert "AggregateItem" in schema["components"]["schemas"]
    assert "415" in schema["paths"]["/v1/aggregate"]["post"]["responses"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head(client: httpx.Client, path: str) -> None:
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def _connect(live: Live) -> socket.socket:
    url = urlsplit(live.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=WAIT_S)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_half_sent_headers_are_dropped_after_the_read_timeout(live: Live) -> None:
    with _connect(live) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
        assert _read_all(sock) == b""  # closed by the server; before, recv timed out


def test_a_half_sent_body_is_answered_408_after_the_read_timeout(live: Live) -> None:
    with _connect(live) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\": ")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"body_timeout" in answer


def test_headers_over_the_limit_are_refused_before_the_app(classifier: Classifier) -> None:
    settings = ServeSettings(max_header_bytes=4096, read_timeout_s=WAIT_S)
    body = b'{"text": "hello"}'
    rest = b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)

    def send(padding: int, then: bytes) -> bytes:
        with _connect(server) as sock:
            sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n" % (b"a" * padding))
            sock.sendall(then)
            return _read_all(sock)

    with live_server(classifier, settings=settings) as server:
        server.wait_ready()
        assert send(2000, then=rest).startswith(b"HTTP/1.1 200")
        refused = send(6000, then=b"")  # under h11's 16 KiB default: the setting is what refuses it
    assert refused.startswith(b"HTTP/1.1 400")
    assert b"Invalid HTTP request received" in refused  # uvicorn's answer: the app never saw it


def test_the_deadline_counts_from_arrival(classifier: Classifier) -> None:
    settings = ServeSettings(timeout_s=0.2, read_timeout_s=WAIT_S)
    body = b'{"text": "hello"}'
    with live_server(classifier, settings=settings) as server:
        server.wait_ready()
        with _connect(server) as sock:
            sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
            time.sleep(settings.timeout_s * 1.5)  # at least this long
            sock.sendall(body)
            answer = sock.recv(65536)
    # The deadline passed while the body arrived; before, it started only at submission.
    assert answer.startswith(b"HTTP/1.1 504"), answer[:200]


def test_the_server_takes_its_connection_limits_from_the_settings(classifier: Classifier) -> None:
    settings = ServeSettings(keep_alive_s=3, graceful_shutdown_s=7, max_concurrency=11, max_header_bytes=999)
    config = Server(create_app(classifier, settings=settings)).config
    assert (config.timeout_keep_alive, config.timeout_graceful_shutdown, config.limit_concurrency) == (3, 7, 11)
    assert config.h11_max_incomplete_event_size == 999
