"""The Service's batches on the CPU: one sequence bucket each, or mixed, side by side.

Usage: python -m benchmarks.bucket_batches ARTIFACT TWEETS_DIR [--variant int8] [--clients 16]
       [--rates 0.5,0.8] [--seconds 8] [--rounds 4] [--out FILE]

The CPU runs each sequence bucket of a batch apart. A Service batch of mixed lengths (the
Service's `bucket_batches=False`) runs its buckets one after the other and answers none of
its texts before the last; with batches of one bucket (the CPU default) every run is a batch
that texts arriving meanwhile can join. Each round runs closed-loop clients (CLIENTS threads,
one tweet at a time) and open-loop Poisson arrivals (RATES, fractions of offline batch-32
throughput measured at the start) both ways, in alternating order; prints one JSON line per
run, then the median of each round's ratio (one bucket / mixed): texts/s, p50 and p99.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from vigil.runtime import BatcherConfig

from .measure import Budget, alternating
from .sequence_buckets import arguments, prepared
from .service_load import closed_loop, offline_rate, open_loop

FIGURES = ("achieved_rate", "p50_ms", "p99_ms")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=24_248)
    parser.set_defaults(variant="int8")
    parser.add_argument("--clients", default="16")
    parser.add_argument("--rates", default="0.5,0.8")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args, texts, classifier = prepared(parser, spin=False)  # as `vigil serve` opens it
    random.Random(0).shuffle(texts)  # languages interleaved, as a server receives them
    config, budget = BatcherConfig(max_batch_size=64), Budget(args.seconds, 10**9)
    classifier.predict(texts[:64], batch_size=32)  # warm-up
    peak = offline_rate(classifier, texts, max(64, int(args.seconds * 50)))
    loads = [("closed", int(n)) for n in args.clients.split(",")] + [("open", float(f)) for f in args.rates.split(",")]
    runs: list[dict[str, Any]] = []
    for kind, value in loads:
        if kind == "closed":
            load = partial(closed_loop, classifier, config, texts, int(value), budget)
        else:
            load = partial(open_loop, classifier, config, texts, value * peak, budget)
        ways = {"one bucket": partial(_figures, load, True), "mixed": partial(_figures, load, False)}
        for round_, pair in enumerate(alternating(args.rounds, ways)):
            runs.append({"load": kind, "value": value, "round": round_, **pair})
            print(json.dumps(runs[-1]), flush=True)
    summary = {
        f"{kind} {value}": {figure: _median_ratio([r for r in runs if (r["load"], r["value"]) == (kind, value)], figure)
                            for figure in FIGURES}
        for kind, value in loads
    }  # fmt: skip
    print(json.dumps({"offline_batch32_texts_per_s": round(peak, 1), "one_bucket_over_mixed_median": summary}))
    if args.out:
        args.out.write_text(json.dumps({"variant": args.variant, "seconds": args.seconds, "offline_batch32_texts_per_s": peak,
                                        "runs": runs, "one_bucket_over_mixed_median": summary}, indent=1) + "\n")  # fmt: skip


def _figures(load: Callable[..., dict[str, Any]], one_bucket: bool) -> dict[str, float]:
    """LOAD's run through a Service with batches of one bucket, or mixed: its main figures."""
    run = load(bucket_batches=one_bucket)
    return {"achieved_rate": round(run["achieved_rate"], 2), "p50_ms": round(run["latency"]["p50_ms"], 2),
            "p99_ms": round(run["latency"]["p99_ms"], 2), "mean_batch": round(run["mean_batch_size"], 2)}  # fmt: skip


def _median_ratio(rounds: list[dict[str, Any]], figure: str) -> float:
    return round(statistics.median(r["one bucket"][figure] / r["mixed"][figure] for r in rounds), 3)


if __name__ == "__main__":
    main()
