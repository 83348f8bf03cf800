"""The optional API key: off by default; when on, /v1/* and /metrics need it, probes do not."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serve_harness import Live, live_server

from vigil.runtime import Classifier
from vigil.serve import ServeSettings

KEY = "s3cret-key"
PROTECTED = [
    ("POST", "/v1/classify", {"text": "hi"}),
    ("POST", "/v1/aggregate", {"items": [{"text": "hi", "group": "g"}]}),
    ("POST", "/v1/embed", {"text": "hi"}),
    ("GET", "/metrics", None),
]


@pytest.fixture(scope="module")
def guarded(classifier: Classifier) -> Iterator[Live]:
    with live_server(classifier, settings=ServeSettings(api_key=KEY)) as server:
        server.wait_ready()
        yield server


def _call(client: httpx.Client, method: str, path: str, body: dict | None, **headers: str) -> httpx.Response:
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_missing_key_is_401_with_a_challenge(guarded: Live, method: str, path: str, body: dict | None) -> None:
    with guarded.client() as client:
        response = _call(client, method, path, body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["kind"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Basic {KEY}", "Bearer"]
)
def test_wrong_key_is_401(guarded: Live, authorization: str) -> None:
    with guarded.client() as client:
        response = client.post("/v1/classify", json={"text": "hi"}, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_right_key_is_served(guarded: Live, method: str, path: str, body: dict | None) -> None:
    with guarded.client() as client:
        assert _call(client, method, path, body, Authorization=f"Bearer {KEY}").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_key(guarded: Live, path: str) -> None:
    with guarded.client() as client:
        assert client.get(path).status_code == 200


def test_openapi_documents_the_bearer_scheme(guarded: Live) -> None:
    with guarded.client() as client:
        schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" in schema["paths"]["/v1/classify"]["post"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_without_a_key_everything_is_open(live: Live, method: str, path: str, body: dict | None) -> None:
    with live.client() as client:
        assert _call(client, method, path, body).status_code == 200
