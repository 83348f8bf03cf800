"""`python -m benchmarks.reliability ARTIFACT`: does `vigil serve` survive hostile clients?

Loopback only, bounded in time (--seconds) and in connections, and it stops by itself.
The server runs in this process, on its own thread, with a watchdog task on its event
loop that wakes every millisecond and records how late it woke: the loop lag, i.e. how long
some request kept the loop from everything else. The clients run in a child process, so
they never compete with the server for the GIL:

- hostile, 8 threads (--without leaves kinds out): validation bombs (`{"texts": [1, ...]}` and `{"items": [{}, ...]}`
  just under the 1 MiB body limit), 1 MiB bodies of 250 valid texts of 4,000 dots,
  half-sent requests (headers or body never finished, held open), and endless headers (a
  request head that grows 4 KiB at a time until the server refuses it, at most 1 MiB);
- a prober: GET /readyz every 20 ms, timing each answer;
- a checker: requests of 1 to 8 unique texts whose answers must be exactly each text's
  own scores (fp32), found by scoring every text alone before the load starts.

Targets (issue 10): loop lag never over 50 ms; /readyz p99 under 100 ms; 0 lost,
duplicated or misassigned answers. Prints and writes JSON (--out) with the load average.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np

_HALF_SENT_PER_THREAD = 50  # connections each half-sending thread holds open at most
_WATCHDOG_S = 0.001


class _Watched:
    """A vigil Server whose loop runs a lag watchdog; `lags` are seconds late per wake-up."""

    def __init__(self, artifact: Path) -> None:
        from vigil.runtime import Classifier
        from vigil.serve import Server, create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a stand-in's random-weight warning
            # As `vigil serve` opens it: idle ONNX Runtime threads must not spin on the cores
            # the loop needs.
            self.classifier = Classifier.open(artifact, provider="cpu", variant="fp32", spin=False)
        self.lags: list[float] = []
        watched = self

        class WatchedServer(Server):
            async def serve(self, sockets: Any = None) -> None:
                watchdog = asyncio.create_task(watched._watch())
                try:
                    await super().serve(sockets)
                finally:
                    watchdog.cancel()

        self.server = WatchedServer(create_app(self.classifier), host="127.0.0.1", port=0, log_level="error")
        self.thread = threading.Thread(target=self.server.run, name="reliability-server", daemon=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(_WATCHDOG_S)
            self.lags.append(loop.time() - before - _WATCHDOG_S)

    def start(self) -> str:
        self.thread.start()
        _wait(lambda: self.server.started, "the server to start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{url}/readyz").status_code == 200, "readiness")
        return url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.classifier.close()


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- the clients (child process) --------------------------------------------------------


def _bodies() -> dict[str, bytes]:
    limit = 1 << 20
    return {
        "ints": b'{"texts": [' + b",".join([b"1"] * ((limit - 20) // 2)) + b"]}",
        "empty items": b'{"items": [' + b",".join([b"{}"] * ((limit - 20) // 3)) + b"]}",
        "1 MiB of dots": json.dumps({"texts": ["." * 4000] * 250}).encode(),
    }


def _bomber(url: str, body: bytes, stop: float, sent: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            client.post("/v1/classify" if b"texts" in body else "/v1/aggregate", content=body,
                        headers={"content-type": "application/json"})
            sent[0] += 1


def _address(url: str) -> tuple[str, int]:
    """The loopback server's (host, port), for clients that speak raw sockets."""
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _half_sender(url: str, stop: float, sent: list[int], body: bool) -> None:
    held: list[socket.socket] = []
    head = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
    head += b"Content-Length: 1000\r\n\r\n{\"texts\": [" if body else b"Content-Type: appl"
    while time.monotonic() < stop:
        if len(held) >= _HALF_SENT_PER_THREAD:
            held.pop(0).close()
        try:
            sock = socket.create_connection(_address(url), timeout=5)
            sock.sendall(head)
            held.append(sock)
            sent[0] += 1
        except OSError:
            pass
        time.sleep(0.02)
    for sock in held:
        sock.close()


def _header_flooder(url: str, stop: float, sent: list[int], refused: list[int]) -> None:
    """Requests whose head never ends: header lines of 4 KiB until the server answers or
    closes (or 1 MiB is sent). REFUSED counts those answered 400 before the head ended."""
    line = b"X-Pad: " + b"a" * 4089 + b"\r\n"
    while time.monotonic() < stop:
        try:
            with socket.create_connection(_address(url), timeout=5) as sock:
                sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
                sent[0] += 1
                with contextlib.suppress(OSError):  # the server closes mid-send once it refuses
                    for _ in range((1 << 20) // len(line)):
                        sock.sendall(line)
                refused[0] += sock.recv(12) == b"HTTP/1.1 400"
        except OSError:
            pass


def _prober(url: str, stop: float, latencies: list[float], statuses: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            start = time.perf_counter()
            statuses.append(client.get("/readyz").status_code)
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)


def _checker(url: str, stop: float, expected: dict[str, list[float]], tally: dict[str, int]) -> None:
    rng = random.Random(0)
    texts = list(expected)
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            chosen = rng.sample(texts, rng.randint(1, 8))
            response = client.post("/v1/classify", json={"texts": chosen})
            if response.status_code != 200:
                tally["not_200"] += 1
                continue
            results = response.json()["results"]
            tally["texts"] += len(chosen)
            if len(results) != len(chosen):
                tally["lost_or_duplicated"] += abs(len(results) - len(chosen))
            for text, result in zip(chosen, results):
                if list(result["scores"].values()) != expected[text]:
                    tally["misassigned"] += 1


KINDS = ("ints", "empty items", "1 MiB of dots", "half-sent headers", "half-sent bodies", "endless headers")
_HALF_SENT = ("half-sent headers", "half-sent bodies")


def _clients(url: str, seconds: float, kinds: tuple[str, ...], queue: Any) -> None:
    """The child process: score the checker's texts alone, then run every client at once."""
    texts = [f"reliability check {i}: the square is calm tonight #{i}" for i in range(200)]
    with httpx.Client(base_url=url, timeout=60) as client:
        expected = {t: list(client.post("/v1/classify", json={"text": t}).json()["results"][0]["scores"].values())
                    for t in texts}
    stop = time.monotonic() + seconds
    bodies = _bodies()
    counters = {name: [0] for name in [*bodies, *_HALF_SENT, "endless headers", "endless headers refused 400"]}
    latencies: list[float] = []
    statuses: list[int] = []
    tally = {"texts": 0, "not_200": 0, "lost_or_duplicated": 0, "misassigned": 0}
    # 8 hostile threads in all, shared among the kinds chosen.
    chosen = [kinds[i % len(kinds)] for i in range(8)]
    threads = [threading.Thread(target=_bomber, args=(url, bodies[k], stop, counters[k]))
               for k in chosen if k in bodies]
    threads += [threading.Thread(target=_half_sender, args=(url, stop, counters[k], k == "half-sent bodies"))
                for k in chosen if k in _HALF_SENT]
    refused = counters["endless headers refused 400"]
    threads += [threading.Thread(target=_header_flooder, args=(url, stop, counters[k], refused))
                for k in chosen if k == "endless headers"]
    threads += [threading.Thread(target=_prober, args=(url, stop, latencies, statuses)),
                threading.Thread(target=_checker, args=(url, stop, expected, tally))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put({"sent": {k: v[0] for k, v in counters.items()}, "readyz": latencies, "readyz_statuses": statuses,
               "check": tally})


# --- the run ------------------------------------------------------------------------------


def run(artifact: Path, seconds: float, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    watched = _Watched(artifact)
    url = watched.start()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_clients, args=(url, seconds, kinds, queue))
    lags_before = len(watched.lags)
    child.start()
    try:
        found = queue.get(timeout=seconds + 300)
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()
        watched.stop()
    lags = np.array(watched.lags[lags_before:]) * 1000
    readyz = np.array(found["readyz"]) * 1000
    return {
        "seconds": seconds,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "hostile_kinds": list(kinds),
        "hostile_requests_sent": found["sent"],
        "loop_lag_ms": {"max": float(lags.max()), "p99": float(np.percentile(lags, 99)),
                        "over_50ms": int((lags > 50).sum()), "wakeups": int(lags.size)},
        "readyz_ms": {"p50": float(np.percentile(readyz, 50)), "p99": float(np.percentile(readyz, 99)),
                      "max": float(readyz.max()), "n": int(readyz.size),
                      "non_200": sum(s != 200 for s in found["readyz_statuses"])},
        "answers": found["check"],
    }


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(1, 600), default=20.0, show_default=True,
              help="How long the hostile clients run.")
@click.option("--without", multiple=True, type=click.Choice(KINDS), help="Leave out a kind of hostile client.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the figures as JSON here.")
def main(artifact: Path, seconds: float, without: tuple[str, ...], out: Path | None) -> None:
    """Hostile clients against a loopback `vigil serve` of ARTIFACT (fp32, CPU)."""
    figures = run(artifact, seconds, tuple(k for k in KINDS if k not in without))
    text = json.dumps(figures, indent=2)
    click.echo(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
