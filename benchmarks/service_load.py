"""Load on `vigil.runtime.Service`: closed-loop clients and open-loop Poisson arrivals.

Offline throughput says what the model can do; a server also has to gather single requests
into batches. Two load shapes show what the dynamic batcher makes of that:

- **Closed loop**: N client threads, each sending its next tweet as soon as its last one is
  answered. The rate adapts to the service, so this shows the best throughput N clients get
  and their latency, but it hides queueing: a slow service simply receives less.
- **Open loop**: arrivals at a set rate with exponential gaps (a Poisson process), whether
  or not earlier requests are done. Latency is counted from each request's *scheduled*
  arrival, so time a request spends waiting behind others, or behind a late submit, is not
  hidden (coordinated omission).

Every batch reports its size, each request's queue wait and the compute time through the
service's observer (`BatchRecord`), so latency splits into queueing and computing.

The two closed-loop targets are ratios to a reference measured without the Service: one
client's p50 against direct `predict([text])`, 16 clients' texts/s against offline batch 32.
On a shared machine the model's own speed drifts by more than the Service costs between
runs minutes apart, so `paired_runs` measures each ratio in rounds that run the Service and
its reference back to back, alternating which goes first.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from functools import partial
from typing import Any

import numpy as np
from tqdm import tqdm

from .measure import Budget, alternating, by_batch_size, planned_batches, summarize_ms, time_calls
from .queueing import batch_seconds, ideal_latencies
from .workload import take

__all__ = ["closed_loop", "load_runs", "offline_rate", "open_loop", "paired_runs"]

PAIRED_CLIENTS = 16  # the many-clients target's load, against offline batches of PAIRED_BATCH
PAIRED_BATCH = 32


class _Recorder:
    """The service observer: keeps every `BatchRecord` (called on the dispatcher thread)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def __call__(self, record: Any) -> None:
        self.records.append(record)  # list.append is atomic, from any dispatcher


def closed_loop(
    classifier: Any, config: Any, texts: Sequence[str], clients: int, budget: Budget, **options: Any
) -> dict[str, Any]:
    """CLIENTS threads, each submitting one tweet at a time, until BUDGET is spent; OPTIONS
    go to the `Service` (e.g. tokenize_ahead)."""
    from vigil.runtime import Service, VigilError

    recorder = _Recorder()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    issued = itertools.count()  # next() on a count is atomic, so request numbers are unique
    start = threading.Barrier(clients + 1)

    def client(k: int, service: Any) -> None:
        start.wait()
        deadline = time.perf_counter() + budget.seconds
        while time.perf_counter() < deadline and (i := next(issued)) < budget.max_items:
            started = time.perf_counter()
            try:
                service.submit(texts[i % len(texts)]).result()
            except VigilError:
                errors[k] += 1
                continue
            latencies[k].append(time.perf_counter() - started)

    with Service(classifier, config, observer=recorder, name="bench-service", **options) as service:
        threads = [threading.Thread(target=client, args=(k, service), name=f"bench-client-{k}") for k in range(clients)]
        for thread in threads:
            thread.start()
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    done = [x for per_client in latencies for x in per_client]
    return {"clients": clients, **_summary(done, recorder.records, elapsed, errors=sum(errors))}


def open_loop(
    classifier: Any, config: Any, texts: Sequence[str], rate: float, budget: Budget, seed: int = 0, **options: Any
) -> dict[str, Any]:
    """Poisson arrivals at RATE requests/s for BUDGET's time (or count), then a drain; OPTIONS
    go to the `Service`."""
    from vigil.runtime import OverloadedError, Service

    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=max(1, int(rate * budget.seconds * 2) + 16))
    arrivals = np.cumsum(gaps)
    arrivals = arrivals[arrivals < budget.seconds][: budget.max_items]
    recorder = _Recorder()
    latencies: list[float] = []
    futures: list[Future] = []
    rejected = 0

    def answered(scheduled: float, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            latencies.append(time.perf_counter() - scheduled)

    with Service(classifier, config, observer=recorder, name="bench-service", **options) as service:
        started = time.perf_counter()
        for i, at in enumerate(arrivals):
            scheduled = started + at
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                future = service.submit(texts[i % len(texts)], timeout=0)
            except OverloadedError:
                rejected += 1
                continue
            future.add_done_callback(partial(answered, scheduled))
            futures.append(future)
        _, unfinished = wait(futures, timeout=4 * budget.seconds + 30)
        elapsed = time.perf_counter() - started
        service.close(cancel_pending=True)
    return {
        "offered_rate": rate,
        **_summary(latencies, recorder.records, elapsed, rejected=rejected, unfinished=len(unfinished)),
    }


def paired_runs(
    classifier: Any, config: Any, texts: Sequence[str], budget: Budget, rounds: int, batch_rate: float
) -> dict[str, Any]:
    """ROUNDS pairs for each closed-loop target: 1 client's p50 with direct `predict([text])`'s,
    and 16 clients' texts/s with offline batches of 32 (BATCH_RATE, texts/s from the curve,
    sizes each offline stream to BUDGET's seconds)."""

    def direct_p50() -> float | None:
        samples = time_calls(lambda i: classifier.predict([texts[i % len(texts)]], batch_size=1), budget, warmup=3)
        return summarize_ms(samples)["p50_ms"]

    def offline() -> float:
        return offline_rate(classifier, texts, planned_batches(PAIRED_BATCH, batch_rate, budget) * PAIRED_BATCH)

    def served(clients: int, figure: Callable[[dict[str, Any]], float | None]) -> Callable[[], float | None]:
        return lambda: figure(closed_loop(classifier, config, texts, clients, budget))

    return {
        "one_client": {
            "served": "Service, 1 client: p50 ms",
            "reference": "direct predict([text]): p50 ms",
            "rounds": _paired(served(1, lambda run: run["latency"].get("p50_ms")), direct_p50, rounds),
        },
        "many_clients": {
            "served": f"Service, {PAIRED_CLIENTS} clients: texts/s",
            "reference": f"offline batch {PAIRED_BATCH}: texts/s",
            "rounds": _paired(served(PAIRED_CLIENTS, lambda run: run["achieved_rate"]), offline, rounds),
        },
    }


def offline_rate(classifier: Any, texts: Sequence[str], count: int) -> float:
    """Texts/s of offline `predict` in batches of PAIRED_BATCH over COUNT of TEXTS (cycled):
    the reference a Service's many clients are held to."""
    chunk = take(texts, 0, count)
    started = time.perf_counter()
    classifier.predict(chunk, batch_size=PAIRED_BATCH)
    return len(chunk) / (time.perf_counter() - started)


def _paired(
    served: Callable[[], float | None], reference: Callable[[], float | None], rounds: int
) -> list[dict[str, float | None]]:
    """ROUNDS alternating pairs of SERVED and REFERENCE, each with its ratio served / reference."""
    pairs = alternating(rounds, {"served": served, "reference": reference})
    for pair in pairs:
        measured = pair["served"] and pair["reference"]
        pair["ratio"] = pair["served"] / pair["reference"] if measured else None
    return pairs


def load_runs(
    classifier: Any, texts: Sequence[str], spec: dict[str, Any], points: Sequence[dict[str, float]]
) -> dict[str, Any]:
    """SPEC's closed-loop and open-loop runs through vigil's Service on CLASSIFIER.

    SPEC holds "batcher" (BatcherConfig's fields), "clients", "rate_fractions" (of the
    offline peak of POINTS, the end-to-end throughput curve), "seconds" and "max_requests"
    per run, and optionally "paired_rounds" (`paired_runs`; none when absent or 0). Each
    open-loop run also gets the p99 an ideal batcher would reach at its rate with the
    curve's batch times (`benchmarks.queueing`).
    """
    from vigil.runtime import BatcherConfig

    config = BatcherConfig(**spec["batcher"])
    budget = Budget(spec["seconds"], spec["max_requests"])
    throughput = by_batch_size(points)
    peak = max(throughput.values())
    batch_time = batch_seconds(throughput)
    runs = [("closed", clients) for clients in spec["clients"]] + [("open", f) for f in spec["rate_fractions"]]
    closed, opened = [], []
    for kind, value in tqdm(runs, desc="service load", unit="run", leave=False):
        if kind == "closed":
            closed.append(closed_loop(classifier, config, texts, value, budget))
        else:
            ideal = ideal_latencies(value * peak, batch_time, config.max_batch_size)
            opened.append({
                "fraction_of_peak": value,
                **open_loop(classifier, config, texts, value * peak, budget),
                "ideal_p99_ms": 1000 * float(np.percentile(ideal, 99)),
            })  # fmt: skip
    measured = {"batcher": spec["batcher"], "offline_peak": peak, "closed_loop": closed, "open_loop": opened}
    if spec.get("paired_rounds") and PAIRED_BATCH in throughput:
        rounds, rate = spec["paired_rounds"], throughput[PAIRED_BATCH]
        measured["paired"] = paired_runs(classifier, config, texts, budget, rounds, rate)
    return measured


def _summary(
    latencies_s: list[float],
    records: list[Any],
    elapsed: float,
    *,
    errors: int = 0,
    rejected: int = 0,
    unfinished: int = 0,
) -> dict[str, Any]:
    """Rates, latency, queue wait against compute, and the batch-size histogram."""
    waits = [w for record in records for w in record.queue_wait_s]
    sizes = Counter(record.size for record in records)
    latency = summarize_ms(latencies_s)
    queue_wait = summarize_ms(waits)
    return {
        "completed": len(latencies_s),
        "errors": errors,
        "rejected": rejected,
        "unfinished": unfinished,
        "seconds": round(elapsed, 3),
        "achieved_rate": len(latencies_s) / elapsed,
        "latency": latency,
        "queue_wait": queue_wait,
        "compute_per_batch": summarize_ms([record.compute_s for record in records]),
        "queue_share_of_latency": queue_wait.get("mean_ms", 0.0) / latency["mean_ms"] if latencies_s else None,
        "mean_batch_size": sum(size * count for size, count in sizes.items()) / max(1, sum(sizes.values())),
        "batch_sizes": {str(size): sizes[size] for size in sorted(sizes)},
    }
