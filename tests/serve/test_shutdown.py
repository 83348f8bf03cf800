"""Graceful shutdown: readiness drops first, new work is refused, accepted work is answered."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_harness import WAIT_S, GatedClassifier, live_server, wait_for

from vigil.runtime import BatcherClosedError, BatcherConfig, Classifier
from vigil.serve import Lifecycle, drain

GATED_SERVE = Path(__file__).with_name("gated_serve.py")


def test_draining_app_answers_503(classifier: Classifier) -> None:
    with live_server(classifier) as server, server.client() as client:
        server.wait_ready()
        drain(server.app)
        readyz = client.get("/readyz")
        assert (readyz.status_code, readyz.json()) == (503, {"status": "draining"})
        refused = client.post("/v1/classify", json={"text": "late"})
        assert (refused.status_code, refused.json()["error"]["kind"]) == (503, "shutting_down")
        assert "retry-after" in refused.headers
        assert client.get("/healthz").status_code == 200


def test_shutdown_answers_every_request_in_flight(gated: GatedClassifier, classifier: Classifier) -> None:
    texts = [f"tweet number {i}" for i in range(8)]
    config = BatcherConfig(max_batch_size=2, max_wait_s=0)
    with live_server(gated, config) as server, ThreadPoolExecutor(len(texts)) as pool:
        server.wait_ready()
        gated.gate.clear()
        clients = [server.client() for _ in texts]
        futures = [pool.submit(c.post, "/v1/classify", json={"text": t}) for c, t in zip(clients, texts)]

        def all_accepted() -> bool:  # held in the model, or queued behind it
            return gated.waiting_rows + server.state.service.queue_depth == len(texts)

        wait_for(all_accepted, "every request to be accepted")

        server.server.should_exit = True  # what uvicorn does on SIGTERM
        wait_for(lambda: server.state.lifecycle is Lifecycle.DRAINING, "shutdown to begin")
        wait_for(lambda: _refuses_connections(server.url), "the listener to close")
        gated.gate.set()

        responses = [future.result() for future in futures]
        server.thread.join(WAIT_S)
        for c in clients:
            c.close()
    assert [r.status_code for r in responses] == [200] * len(texts)
    answered = np.array([list(r.json()["results"][0]["scores"].values()) for r in responses])
    assert np.allclose(answered, classifier.predict(texts), atol=1e-6)
    with pytest.raises(BatcherClosedError):
        server.state.service.submit("after exit")


def test_sigterm_answers_requests_in_flight(tiny_artifact: Path) -> None:
    """The real signal path, in a process of its own: uvicorn handles signals on its main thread.

    gated_serve.py holds the model after the warm-up until the test writes a line to its
    stdin, so all eight requests are inside the server (one in the model, seven queued,
    batches of one) when the signal comes, and the model is let go only once the listener
    has closed: the answers can only come from the graceful shutdown.
    """
    command = [
        sys.executable, str(GATED_SERVE), str(tiny_artifact),
        "--port", "0", "--provider", "cpu", "--max-batch-size", "1",
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _listening_url(process)
        with httpx.Client(base_url=url, timeout=WAIT_S) as client, ThreadPoolExecutor(8) as pool:
            wait_for(lambda: client.get("/readyz").status_code == 200, "readiness")
            futures = [pool.submit(_classify, url, f"text {i}") for i in range(8)]
            wait_for(lambda: _queue_depth(client) == 7, "one text in the model and seven queued")
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: _refuses_connections(url), "the listener to close")
            answered_early = [f for f in futures if f.done()]
            assert process.stdin is not None
            process.stdin.write("open\n")
            process.stdin.flush()
            statuses = [future.result() for future in futures]
        _, log = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert answered_early == [], "requests were answered while the model was held"
    assert statuses == [200] * 8
    assert "Application shutdown complete" in log
    assert process.returncode == -signal.SIGTERM  # uvicorn re-raises the signal it handled


def _classify(url: str, text: str) -> int:
    with httpx.Client(base_url=url, timeout=WAIT_S) as client:
        return client.post("/v1/classify", json={"text": text}).status_code


def _queue_depth(client: httpx.Client) -> float:
    """The server's vigil_queue_depth gauge, read from /metrics."""
    match = re.search(r"^vigil_queue_depth (\S+)$", client.get("/metrics").text, re.MULTILINE)
    assert match, "vigil_queue_depth is not in /metrics"
    return float(match.group(1))


def _refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=WAIT_S)
    except httpx.ConnectError:
        return True
    return False


def _listening_url(process: subprocess.Popen[str]) -> str:
    """Read the server's log until uvicorn says where it listens."""
    assert process.stderr is not None
    for line in process.stderr:
        if match := re.search(r"Uvicorn running on (http://\S+)", line):
            return match.group(1)
    raise AssertionError(f"the server exited with {process.wait()} before listening")
