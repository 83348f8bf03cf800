"""`python -m benchmarks.http_load ARTIFACT`: what HTTP costs on top of vigil's Service.

Closed-loop load at several concurrency levels: N clients, each sending its next tweet as
soon as its last one is answered. Each level runs in two modes:

1. **HTTP**: client threads in this process (the standard library's `http.client`, the
   leanest, see `http_closed_loop`) against `vigil serve` in another one (a subprocess
   this script starts on loopback, or a running server given with --url), one
   single-tweet POST /v1/classify per request over keep-alive connections.
2. **Service**: the same artifact and batcher settings in this process, through
   `vigil.runtime.Service` directly (`service_load.closed_loop`), without HTTP.

The difference is the price of HTTP: parsing, JSON, the event loop and the loopback hop.
On a shared machine the model's speed drifts by more than that price from one ten-second
window to the next, so the two modes alternate in paired rounds (HTTP then Service, then
Service then HTTP, ...) and each round's HTTP cost is its own HTTP p50 less its own Service
p50; the level reports the median of those paired costs, and their range. On a small
machine the client competes with the server for cores, so the HTTP figures are a lower
bound; the Service figures have no such competitor. Batch sizes, queue waits and model
time of the HTTP run come from the server's /metrics (differences across each round), so
both modes report them alike. Each answer's `x-total-time` (the route handler's own time,
from its start to the answer) splits an HTTP request's latency into the handler and what
lies outside it: the client, the loopback hop, uvicorn, parsing and serializing.

Writes the results as JSON (--out) and prints a Markdown table; --quick runs for seconds.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
from prometheus_client.parser import text_string_to_metric_families
from vigil.runtime.versions import installed_versions

from .machine import describe_machine
from .measure import Budget, alternating, summarize_ms
from .service_load import closed_loop
from .source import portable
from .workload import DEFAULT_TWEETS, load_tweets, take

__all__ = ["http_closed_loop", "paired_rounds", "serving", "run", "markdown", "command"]

_VERSIONS = ("vigil", "numpy", "onnxruntime", "fastapi", "uvicorn")
_START_TIMEOUT_S = 120.0  # a GPU server builds its engines before it listens


def http_closed_loop(url: str, texts: Sequence[str], clients: int, budget: Budget) -> dict[str, Any]:
    """CLIENTS threads, each POSTing one tweet at a time to URL over a keep-alive connection of
    its own, until BUDGET is spent.

    The client is the standard library's `http.client`: on a small machine it shares the cores
    with the server, and every microsecond it spends lands in the measured latency. httpx's
    async client spent about 1 ms more outside the server per request (MiniLM int8, 2 cores,
    one client, three alternating rounds: 2.85-3.42 ms against 1.16-2.33 ms).
    """
    route = f"{urlsplit(url).path}/v1/classify"
    connections = [_connect(url) for _ in range(clients)]
    for connection, text in zip(connections, take(texts, 0, clients)):
        _post(connection, route, text)  # opens each connection off the clock
    before = _batch_totals(url)
    latencies: list[float] = []
    outside: list[float] = []  # each request's latency less the handler's own `x-total-time`
    errors: list[int] = []
    issued = itertools.count()  # next() on a count is atomic, so request numbers are unique
    deadline = time.perf_counter() + budget.seconds

    def one_client(connection: http.client.HTTPConnection) -> None:
        while time.perf_counter() < deadline and (i := next(issued)) < budget.max_items:
            started = time.perf_counter()
            status, handler_ms = _post(connection, route, texts[i % len(texts)])
            if status == 200:
                latencies.append(time.perf_counter() - started)
                outside.append(latencies[-1] - handler_ms / 1000)
            else:
                errors.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="http-client") as pool:
        list(pool.map(one_client, connections))
    elapsed = time.perf_counter() - started
    server_side = _batch_figures(before, _batch_totals(url))
    for connection in connections:
        connection.close()
    return {
        "clients": clients,
        "client": f"http.client (Python {sys.version.split()[0]}), one thread and connection each",
        "completed": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 3),
        "achieved_rate": len(latencies) / elapsed,
        "latency": summarize_ms(latencies),
        "outside_handler": summarize_ms(outside),
        **server_side,
    }


def _connect(url: str) -> http.client.HTTPConnection:
    """A keep-alive connection to URL's host (https too, for a server behind TLS)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.netloc, timeout=60.0)


def _post(connection: http.client.HTTPConnection, route: str, text: str) -> tuple[int, float]:
    """POST TEXT to ROUTE; the status and the handler's `x-total-time` in ms."""
    body = json.dumps({"text": text}).encode()
    connection.request("POST", route, body, {"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status, float(response.getheader("x-total-time") or "nan")


def _batch_totals(url: str) -> dict[str, float]:
    """Counts and sums of the server's batch histograms, read from /metrics."""
    response = httpx.get(f"{url}/metrics", timeout=60.0)
    response.raise_for_status()
    totals = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.endswith(("_count", "_sum")) and sample.name.startswith(
                ("vigil_batch_size", "vigil_queue_wait_seconds", "vigil_inference_seconds")
            ):
                totals[sample.name] = sample.value
    return totals


def _batch_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Means over one level: batch size, queue wait per text, model time per batch."""

    def mean(name: str, scale: float = 1.0) -> float | None:
        count = after[f"{name}_count"] - before[f"{name}_count"]
        return scale * (after[f"{name}_sum"] - before[f"{name}_sum"]) / count if count else None

    return {
        "mean_batch_size": mean("vigil_batch_size"),
        "queue_wait_mean_ms": mean("vigil_queue_wait_seconds", 1000.0),
        "compute_per_batch_mean_ms": mean("vigil_inference_seconds", 1000.0),
    }


@contextmanager
def serving(artifact: Path, server_options: Sequence[str], log: Path) -> Iterator[str]:
    """Run `vigil serve ARTIFACT` on a free loopback port; yield its URL once ready.

    The server's log goes to LOG (a pipe would fill up with access-log lines and stall it).
    On exit the server gets SIGTERM, its graceful shutdown.
    """
    launcher = "from vigil.cli.serve import serve; serve()"
    command = [sys.executable, "-c", launcher, str(artifact), "--port", "0", *server_options]
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stderr=log_file, stdout=log_file)
    try:
        url = _wait_until_ready(process, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> str:
    """The server's URL, read from its log, once /readyz answers 200."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"the server exited with {process.returncode}:\n{log.read_text()}")
        if url is None and (match := re.search(r"Uvicorn running on (http://\S+)", log.read_text())):
            url = match.group(1)
        if url is not None and _ready(url):
            return url
        time.sleep(0.05)
    raise click.ClickException(f"the server was not ready within {_START_TIMEOUT_S:g} s:\n{log.read_text()}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5.0).status_code == 200
    except httpx.TransportError:
        return False


def paired_rounds(
    url: str, classifier: Any, config: Any, texts: Sequence[str], clients: int, budget: Budget, rounds: int
) -> dict[str, Any]:
    """ROUNDS pairs of closed loops of CLIENTS, over HTTP to URL and through a Service on
    CLASSIFIER, each for BUDGET; the pairs alternate which mode goes first, so that a drift of
    the machine's speed during the level weighs on both modes alike."""
    measures = {
        "http": partial(http_closed_loop, url, texts, clients, budget),
        "service": partial(closed_loop, classifier, config, texts, clients, budget),
    }
    pairs = alternating(rounds, measures)
    p50s = [(pair["http"]["latency"].get("p50_ms"), pair["service"]["latency"].get("p50_ms")) for pair in pairs]
    costs = [http - service for http, service in p50s if http is not None and service is not None]
    cost = {"median": statistics.median(costs), "min": min(costs), "max": max(costs)} if costs else None
    return {"clients": clients, "rounds": pairs, "http_cost_p50_ms": cost}


def run(
    artifact: Path,
    *,
    levels: Sequence[int],
    budget: Budget,
    rounds: int,
    tweets: Path,
    tweet_limit: int | None,
    batcher: dict[str, Any],
    provider: str,
    variant: str | None,
    url: str | None,
) -> dict[str, Any]:
    """Paired rounds at every level, with the server and the in-process model both open
    throughout (each idles while the other is measured); the results dictionary."""
    from vigil.runtime import BatcherConfig, Classifier

    texts = load_tweets(tweets, tweet_limit).texts
    config = BatcherConfig(**batcher)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stand-in's warning; `model.random_weights` records it
        classifier = Classifier.open(  # as `vigil serve` opens it: threads sleep between runs
            artifact, provider=provider, variant=variant, max_batch_size=config.max_batch_size, spin=False
        )
    with classifier, tempfile.TemporaryDirectory(prefix="vigil-http-load-") as tmp:
        with _server(url, artifact, _server_options(config, provider, variant), Path(tmp) / "server.log") as target:
            model = httpx.post(f"{target}/v1/classify", json={"text": texts[0]}, timeout=60.0).json()["model"]
            measured = [paired_rounds(target, classifier, config, texts, clients, budget, rounds) for clients in levels]
    return {
        "schema_version": 2,
        "artifact": portable(artifact),
        "server": url or "started by this script on loopback",
        "model": model,
        "batcher": {**batcher, "max_batch_size": config.max_batch_size, "max_wait_s": config.max_wait_s},
        "budget": {"seconds_per_round": budget.seconds, "max_requests_per_round": budget.max_items, "rounds": rounds},
        "tweets": {"source": portable(tweets), "count": len(texts)},
        "machine": describe_machine(),
        "versions": installed_versions(_VERSIONS),
        "levels": measured,
    }


@contextmanager
def _server(url: str | None, artifact: Path, options: list[str], log: Path) -> Iterator[str]:
    """The given server's URL, or a server of our own for the with-block."""
    if url is not None:
        yield url.rstrip("/")
        return
    with serving(artifact, options, log) as started:
        yield started


def _server_options(config: Any, provider: str, variant: str | None) -> list[str]:
    """`vigil serve` options that give the server the same model and batcher as the Service run."""
    options = [
        "--provider",
        provider,
        "--max-batch-size",
        str(config.max_batch_size),
        "--max-wait-ms",
        str(config.max_wait_s * 1000),
        "--queue-size",
        str(config.queue_size),
    ]
    return options + (["--variant", variant] if variant else [])


def markdown(results: dict[str, Any]) -> str:
    """One row per level, each figure the median over its rounds: HTTP and Service throughput
    and latency, the paired HTTP cost at p50 (median and range), and how much of an HTTP
    request's time is spent outside the route handler (the client, the loopback hop,
    uvicorn, parsing and serializing), from the handler's `x-total-time`."""
    columns = ("p50", "p90", "p99", "max")
    header = (
        "| clients | HTTP req/s | "
        + " | ".join(f"HTTP {c} ms" for c in columns)
        + " | Service req/s | "
        + " | ".join(f"Service {c} ms" for c in columns)
        + " | HTTP cost p50 ms | its range | outside handler p50 ms |"
    )
    lines = [header, "|" + "---:|" * (6 + 2 * len(columns))]
    for level in results["levels"]:
        http = [pair["http"] for pair in level["rounds"]]
        service = [pair["service"] for pair in level["rounds"]]
        cells = [str(level["clients"])]
        for runs in (http, service):
            cells += [_median([r["achieved_rate"] for r in runs], 0)]
            cells += [_median([r["latency"].get(f"{c}_ms") for r in runs]) for c in columns]
        cost = level["http_cost_p50_ms"]
        cells += [f"{cost['median']:.2f}", f"{cost['min']:.2f} to {cost['max']:.2f}"] if cost else ["-", "-"]
        cells += [_median([r.get("outside_handler", {}).get("p50_ms") for r in http])]
        lines.append("| " + " | ".join(cells) + " |")
    model = results["model"]
    stand_in = " (RANDOM-WEIGHT stand-in)" if model["random_weights"] else ""
    rounds = results["budget"]["rounds"]
    note = f"{model['variant']} on {model['provider']}{stand_in}; medians of {rounds} paired rounds a level"
    return "\n".join([*lines, "", note])


def _median(values: list[float | None], digits: int = 2) -> str:
    """The median of VALUES, one per round, or "-" where a round measured nothing."""
    if any(value is None for value in values):
        return "-"
    return f"{statistics.median(values):.{digits}f}"


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--url", help="Load this running server (serving ARTIFACT, no API key) instead of starting one.")
@click.option("--concurrency", default="1,4,16,64", show_default=True, help="Comma-separated client counts.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds per round of each mode.",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Paired rounds (HTTP and Service, alternating which goes first) per level.",
)
@click.option(
    "--requests",
    "max_requests",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="At most this many requests per round of each mode.",
)
@click.option(
    "--tweets",
    type=click.Path(exists=True, path_type=Path),
    default=DEFAULT_TWEETS,
    show_default=True,
    help="Folder of .txt files (one tweet a line), or one such file.",
)
@click.option("--provider", default="cpu", show_default=True)
@click.option("--variant", help="Artifact variant (default: the provider's natural one).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=0.0, show_default=True, help="As vigil serve: 0, work-conserving.")
@click.option("--queue-size", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("http_load.json"),
    show_default=True,
    help="Where the JSON results go.",
)
@click.option(
    "--quick", is_flag=True, help="Seconds, not minutes: 1 and 4 clients, two rounds of 0.5 s each, 2,000 tweets."
)
def command(
    artifact: Path,
    url: str | None,
    concurrency: str,
    duration: float,
    rounds: int,
    max_requests: int,
    tweets: Path,
    provider: str,
    variant: str | None,
    max_batch_size: int,
    max_wait_ms: float,
    queue_size: int,
    out: Path,
    quick: bool,
) -> None:
    """Closed-loop load over HTTP and through the Service directly, in paired rounds at each concurrency level."""
    levels = [1, 4] if quick else [int(level) for level in concurrency.split(",")]
    results = run(
        artifact,
        levels=levels,
        budget=Budget(seconds=0.5 if quick else duration, max_items=max_requests),
        rounds=2 if quick else rounds,
        tweets=tweets,
        tweet_limit=2000 if quick else None,
        batcher={"max_batch_size": max_batch_size, "max_wait_s": max_wait_ms / 1000, "queue_size": queue_size},
        provider=provider,
        variant=variant,
        url=url,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    click.echo(markdown(results))
    click.echo(f"\nresults: {out}", err=True)


if __name__ == "__main__":
    command()
