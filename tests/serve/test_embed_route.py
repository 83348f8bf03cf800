"""`POST /v1/embed` on a live server: the library's embeddings, documented, and refused
cleanly where the model cannot embed. Limits and the API key are tested with the other
scoring routes (test_limits.py, test_auth.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import numpy as np
from serve_harness import error_of, live_server

from vigil.runtime import Classifier

TWEETS = ["RT @someone: police closed the square https://t.co/x", "Lovely sunny day at the beach", ""]


def test_embed_many_equals_the_library(client: httpx.Client, classifier: Classifier) -> None:
    response = client.post("/v1/embed", json={"texts": TWEETS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["normalized"] is True and body["model"]["random_weights"] is True
    embeddings = np.array(body["embeddings"], dtype=np.float32)
    assert embeddings.shape == (len(TWEETS), classifier.embedding_width)
    np.testing.assert_allclose(embeddings, classifier.embed(TWEETS), rtol=0, atol=1e-6)
    assert float(response.headers["x-inference-time"]) > 0


def test_embed_one_text_raw(client: httpx.Client, classifier: Classifier) -> None:
    body = client.post("/v1/embed", json={"text": TWEETS[0], "normalize": False}).json()
    assert body["normalized"] is False
    np.testing.assert_allclose(body["embeddings"], classifier.embed(TWEETS[:1], normalize=False), rtol=0, atol=1e-6)


def test_bad_bodies_are_refused_as_for_classify(client: httpx.Client) -> None:
    assert error_of(client.post("/v1/embed", json={"texts": ["a", None]}), 422)["field"] == "texts[1]"
    assert error_of(client.post("/v1/embed", json={"text": "a", "normalize": "yes please"}), 422)["field"] == "normalize"
    assert error_of(client.post("/v1/embed", json={"text": "a", "texts": ["b"]}), 422)["field"] == "body"
    assert error_of(client.post("/v1/embed", content=b"{", headers={"content-type": "application/json"}), 400)["kind"] == "malformed_json"


def test_openapi_documents_the_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    embed = schema["paths"]["/v1/embed"]["post"]
    assert {"200", "400", "413", "422", "501", "503", "504"} <= set(embed["responses"])
    assert embed["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EmbedRequest")
    request = schema["components"]["schemas"]["EmbedRequest"]
    assert request["properties"]["normalize"]["description"] and request["examples"]
    assert request["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    assert "embeddings" in schema["components"]["schemas"]["EmbedResponse"]["properties"]


def test_a_server_on_an_old_artifact_answers_501_and_still_classifies(old_artifact: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = Classifier.open(old_artifact, provider="cpu", variant="fp32")
    with old, live_server(old) as server:
        server.wait_ready()
        with server.client() as client:
            error = error_of(client.post("/v1/embed", json={"text": "hi"}), 501)
            assert error["kind"] == "embeddings_unavailable"
            assert "no pooled output" in error["message"] and "re-export" in error["message"]
            assert str(old_artifact) not in error["message"]  # no server paths in answers
            assert client.post("/v1/classify", json={"text": "hi"}).status_code == 200
