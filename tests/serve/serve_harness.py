"""The harness of the server tests: a real uvicorn server in a thread, on loopback.

Servers listen on port 0 (the kernel picks a free one), so tests never race for ports.
`GatedClassifier` holds the model on an Event, which makes queue-full, deadline and
shutdown-with-requests-in-flight deterministic without any timing assumption.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from helpers import WAIT_S, wait_for

from vigil.runtime import BatcherConfig, Classifier
from vigil.serve import Lifecycle, Server, ServeSettings, create_app

def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    """The `error` object of a JSON error answer, after checking its status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


class GatedClassifier:
    """A Classifier whose model runs only while `gate` is set; counts the rows it scored."""

    def __init__(self, inner: Classifier) -> None:
        self._inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.waiting_rows = 0  # rows of the batch held at the gate
        self.scored_rows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.waiting_rows = len(ids)
        self.gate.wait()
        self.waiting_rows = 0
        self.scored_rows += len(ids)
        return self._inner.score(ids, mask)


@dataclass
class Live:
    """A running server: its app, its uvicorn Server and its base URL."""

    app: Any
    server: Server
    url: str
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=WAIT_S, **kwargs)

    @property
    def state(self) -> Any:
        return self.app.state.vigil

    def wait_ready(self) -> None:
        wait_for(lambda: self.state.lifecycle is Lifecycle.READY, "the warm-up")

    def stop(self) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM handler does
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the server did not stop"


@contextmanager
def live_server(
    classifier: Any, batcher: BatcherConfig = BatcherConfig(), settings: ServeSettings = ServeSettings()
) -> Iterator[Live]:
    """Serve CLASSIFIER on 127.0.0.1 (a free port) in a thread for the with-block."""
    app = create_app(classifier, batcher, settings)
    server = Server(app, host="127.0.0.1", port=0, log_level="warning")
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert server.started, "uvicorn failed to start"
    port = server.servers[0].sockets[0].getsockname()[1]
    live = Live(app=app, server=server, url=f"http://127.0.0.1:{port}", thread=thread)
    try:
        yield live
    finally:
        if thread.is_alive():
            live.stop()
