"""Work the server cannot take: not ready yet, model broken, queue full, deadline passed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pytest
from serve_harness import WAIT_S, GatedClassifier, live_server, wait_for

from vigil.runtime import BatcherConfig, Classifier
from vigil.serve import Lifecycle, ServeSettings
from vigil.serve import app as app_module

T = TypeVar("T")


def test_readyz_is_503_until_the_warm_up_came_through_the_batcher(gated: GatedClassifier) -> None:
    gated.gate.clear()  # the warm-up text reaches the model and waits there
    with live_server(gated) as server, server.client() as client:
        wait_for(lambda: gated.waiting_rows == 1, "the warm-up batch")
        not_ready = client.get("/readyz")
        assert (not_ready.status_code, not_ready.json()) == (503, {"status": "starting"})
        assert client.get("/healthz").status_code == 200  # alive all along
        refused = client.post("/v1/classify", json={"text": "too early"})
        assert (refused.status_code, refused.json()["error"]["kind"]) == (503, "not_ready")
        assert refused.headers["retry-after"] == "1"
        gated.gate.set()
        wait_for(lambda: client.get("/readyz").status_code == 200, "readiness")
        assert client.post("/v1/classify", json={"text": "now"}).status_code == 200


def test_full_queue_is_503_with_retry_after(gated: GatedClassifier) -> None:
    config = BatcherConfig(max_batch_size=1, queue_size=1, max_wait_s=0)
    with live_server(gated, config, ServeSettings(retry_after_s=7)) as server, ThreadPoolExecutor(2) as pool:
        server.wait_ready()
        gated.gate.clear()
        with server.client() as held, server.client() as queued, server.client() as client:
            first = pool.submit(held.post, "/v1/classify", json={"text": "in the model"})
            wait_for(lambda: gated.waiting_rows == 1, "the first text to reach the model")
            second = pool.submit(queued.post, "/v1/classify", json={"text": "in the queue"})
            wait_for(lambda: server.state.service.queue_depth == 1, "the second text to queue")
            overloaded = client.post("/v1/classify", json={"text": "no room"})
            gated.gate.set()
            assert first.result().status_code == 200
            assert second.result().status_code == 200
    assert overloaded.status_code == 503
    assert overloaded.headers["retry-after"] == "7"
    assert overloaded.json()["error"]["kind"] == "overloaded"


class HeldDeadline:
    """`asyncio` as vigil.serve.app sees it, with a `wait_for` that times out when the test says.

    A real timer races the test: on a loaded machine the deadline could pass before the
    texts are in place (the test then fails) or the test could wait on the clock. Here the
    deadline passes only once the test has seen one text in the model and one queued;
    everything but `wait_for` is the real asyncio. `asked` keeps the timeouts the app gave.
    """

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._awaiting = threading.Event()
        self._passed: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        """What asyncio.wait_for does on a timeout: cancel, await the cancellation, raise."""
        self.asked.append(timeout)
        self._loop = asyncio.get_running_loop()
        self._passed = self._loop.create_future()
        task = asyncio.ensure_future(awaitable)
        self._awaiting.set()
        await asyncio.wait({task, self._passed}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise asyncio.TimeoutError

    def pass_deadline(self) -> None:
        assert self._awaiting.wait(WAIT_S), "no request is waiting on its deadline"
        assert self._loop is not None and self._passed is not None
        self._loop.call_soon_threadsafe(self._passed.set_result, None)


def test_deadline_is_504_and_drops_the_texts_still_queued(
    gated: GatedClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    deadline = HeldDeadline()
    monkeypatch.setattr(app_module, "asyncio", deadline)
    config = BatcherConfig(max_batch_size=1, max_wait_s=0)
    settings = ServeSettings(timeout_s=3.5)
    with live_server(gated, config, settings) as server, server.client() as client, ThreadPoolExecutor(1) as pool:
        server.wait_ready()
        scored_before = gated.scored_rows
        gated.gate.clear()  # the first text waits in the model, the second in the queue
        pending = pool.submit(client.post, "/v1/classify", json={"texts": ["first", "second"]})
        wait_for(lambda: gated.waiting_rows == 1, "the first text to reach the model")
        wait_for(lambda: server.state.service.queue_depth == 1, "the second text to queue")
        deadline.pass_deadline()  # held at the gate: nothing but the deadline answers it
        late = pending.result()
        assert late.status_code == 504
        assert late.json()["error"]["kind"] == "deadline_exceeded"
        assert "within its 3.5 s deadline" in late.json()["error"]["message"]
        gated.gate.set()
        # Batches run in queue order, so once this answers the cancelled text was dropped.
        assert client.post("/v1/classify", json={"text": "after"}).status_code == 200
    # "first" was already in the model when the deadline passed; "second" never ran.
    assert gated.scored_rows - scored_before == 2
    assert 0 <= deadline.asked[0] <= 3.5  # what was left of the request's deadline


class _BrokenModel(GatedClassifier):
    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise RuntimeError("the model broke")


def test_failed_warm_up_keeps_the_server_unready(classifier: Classifier) -> None:
    broken = _BrokenModel(classifier)
    with live_server(broken) as server, server.client() as client:
        wait_for(lambda: server.state.lifecycle is Lifecycle.FAILED, "the warm-up to fail")
        readyz = client.get("/readyz")
        assert (readyz.status_code, readyz.json()) == (503, {"status": "failed"})
        refused = client.post("/v1/classify", json={"text": "x"})
        assert (refused.status_code, refused.json()["error"]["kind"]) == (503, "not_ready")
        # The dispatcher hands the failure to the deliverer before it reports the batch to
        # the metrics, so the warm-up can be seen failed a moment before it is counted.
        failed_once = 'vigil_errors_total{kind="batch_failed"} 1.0'
        wait_for(lambda: failed_once in client.get("/metrics").text, "the failed batch's record")


def test_the_server_listens_and_is_unready_while_the_service_is_built(classifier: Classifier, monkeypatch) -> None:
    from vigil.serve import app as app_module

    building, release = threading.Event(), threading.Event()
    new_service = app_module._new_service

    def slow_new_service(state):  # the Service is built off the event loop, in a thread
        building.set()
        assert release.wait(20.0)
        return new_service(state)

    monkeypatch.setattr(app_module, "_new_service", slow_new_service)
    with live_server(classifier) as server, server.client() as client:
        assert building.wait(20.0)
        not_ready = client.get("/readyz")  # the loop answers while the build is still blocked
        assert (not_ready.status_code, not_ready.json()) == (503, {"status": "starting"})
        release.set()
        server.wait_ready()
        assert client.post("/v1/classify", json={"text": "now"}).status_code == 200
