"""Every endpoint of a live server, and answers equal to the library's on the same texts."""

from __future__ import annotations

import httpx
import numpy as np
from helpers import wait_for

from vigil.runtime import Classifier, aggregate

TWEETS = [
    "RT @someone: police closed the square https://t.co/x",
    "Lovely sunny day at the beach",
    "",
    "¡Manifestación en el centro esta tarde!",
]


def test_classify_many_equals_predict(client: httpx.Client, classifier: Classifier) -> None:
    response = client.post("/v1/classify", json={"texts": TWEETS})
    assert response.status_code == 200
    body = response.json()
    expected = classifier.predict(TWEETS)
    results = body["results"]
    assert len(results) == len(TWEETS)
    for result, row, decisions in zip(results, expected, classifier.decide(expected)):
        assert list(result["scores"]) == list(classifier.labels)  # label order kept
        assert np.allclose(list(result["scores"].values()), row, atol=1e-6)
        assert result["labels"] == [label for label, on in zip(classifier.labels, decisions) if on]


def test_classify_one_text(client: httpx.Client, classifier: Classifier) -> None:
    body = client.post("/v1/classify", json={"text": TWEETS[0]}).json()
    assert len(body["results"]) == 1
    assert np.allclose(list(body["results"][0]["scores"].values()), classifier.predict(TWEETS[:1])[0], atol=1e-6)


def test_answers_name_the_model(client: httpx.Client, classifier: Classifier) -> None:
    body = client.post("/v1/classify", json={"text": "x"}).json()
    assert body["model"] == {
        "variant": classifier.variant,
        "provider": classifier.provider,
        "random_weights": True,  # the tiny artifact is a stand-in, and says so
    }


def test_aggregate_equals_the_runtime(client: httpx.Client, classifier: Classifier) -> None:
    groups = ["nairobi", "mombasa", "nairobi", "kisumu"]
    response = client.post("/v1/aggregate", json={"items": [{"text": t, "group": g} for t, g in zip(TWEETS, groups)]})
    assert response.status_code == 200
    expected = aggregate(classifier.predict(TWEETS), groups, classifier.labels, classifier.thresholds)
    answered = response.json()["groups"]
    assert [g["group"] for g in answered] == ["nairobi", "mombasa", "kisumu"]  # first seen first
    for group, count, means, flags in zip(answered, expected.counts, expected.means, expected.flags):
        assert group["count"] == count
        assert np.allclose(list(group["means"].values()), means, atol=1e-6)
        assert group["flags"] == [label for label, on in zip(classifier.labels, flags) if on]


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_metrics_have_nonzero_histograms_after_traffic(client: httpx.Client) -> None:
    client.post("/v1/classify", json={"texts": TWEETS})
    client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"})
    # A batch is reported to the metrics just after it is answered: wait for its record.
    wait_for(lambda: _scraped(client).get("vigil_batch_size_sum", 0) >= len(TWEETS), "the records")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples['vigil_http_request_duration_seconds_count{route="/v1/classify",status="200"}'] >= 1
    assert samples["vigil_batch_size_count"] >= 1
    assert samples["vigil_batch_size_sum"] >= len(TWEETS)
    assert samples["vigil_queue_wait_seconds_count"] >= len(TWEETS)
    assert samples["vigil_inference_seconds_count"] >= 1
    assert samples['vigil_errors_total{kind="malformed_json"}'] >= 1
    assert "vigil_queue_depth" in samples


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["error"]["kind"]) == (404, "not_found")
    wrong = client.get("/v1/classify")
    assert (wrong.status_code, wrong.json()["error"]["kind"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["allow"]


def test_openapi_lists_routes_with_documented_models(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/aggregate", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    classify = schema["paths"]["/v1/classify"]["post"]
    assert {"200", "400", "413", "422", "503", "504"} <= set(classify["responses"])
    request = schema["components"]["schemas"]["ClassifyRequest"]
    assert request["properties"]["texts"]["description"]
    assert request["examples"]
    assert schema["components"]["schemas"]["ErrorResponse"]


def _samples(exposition: str) -> dict[str, float]:
    """Prometheus text format to {"name{labels}": value}, with `le` buckets dropped."""
    samples = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#") and "_bucket" not in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _scraped(client: httpx.Client) -> dict[str, float]:
    """The server's metrics now, as `_samples`."""
    return _samples(client.get("/metrics").text)


def test_scoring_answers_carry_timing_headers_in_milliseconds(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"texts": TWEETS * 4})  # large: queued off the loop
    assert response.status_code == 200
    queue, tokenization, inference, total = (
        float(response.headers[f"x-{name}-time"]) for name in ("queue", "tokenization", "inference", "total")
    )
    assert 0 <= queue <= total and 0 < tokenization <= total and 0 < inference <= total
    aggregated = client.post("/v1/aggregate", json={"items": [{"text": "x", "group": "g"}]})
    assert float(aggregated.headers["x-total-time"]) > 0


def test_metrics_count_the_real_tokens_of_each_batch(client: httpx.Client, classifier: Classifier) -> None:
    before = _scraped(client).get("vigil_batch_tokens_sum", 0.0)
    client.post("/v1/classify", json={"text": TWEETS[0]})
    # The dispatcher answers a batch before it reports it to the metrics: a scrape right
    # after the answer may come first.
    wait_for(lambda: _scraped(client).get("vigil_batch_tokens_sum", before) != before, "the batch's record")
    after = _scraped(client)
    _, mask = classifier.encode(TWEETS[:1])
    assert after["vigil_batch_tokens_sum"] - before == mask.sum()
    assert after["vigil_batch_tokens_count"] >= 1


def test_no_dependency_sends_a_request_through_the_thread_pool(client: httpx.Client, monkeypatch) -> None:
    # FastAPI runs a plain `def` dependency in its thread pool: a worker-thread round trip
    # per dependency and request, on the path of every answer.
    import fastapi.dependencies.utils as dependency_utils

    hops: list[str] = []
    run_in_threadpool = dependency_utils.run_in_threadpool

    async def counted(call, *args, **kwargs):
        hops.append(getattr(call, "__name__", repr(call)))
        return await run_in_threadpool(call, *args, **kwargs)

    monkeypatch.setattr(dependency_utils, "run_in_threadpool", counted)
    assert client.post("/v1/classify", json={"texts": TWEETS}).status_code == 200
    assert client.post("/v1/aggregate", json={"items": [{"text": "x", "group": "g"}]}).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert hops == []
