"""One session against several replicas behind the Service, side by side, on the CPU.

Usage: python -m benchmarks.replicas ARTIFACT TWEETS_DIR [--variant int8] [--setups 1x2,2x1]
       [--clients 1,4,16] [--rates 32,50] [--seconds 12] [--rounds 2]

A setup RxT opens the artifact with R replicas of T intra-op threads each, with spinning
stopped after each run as `vigil serve` opens it. It then drives the Service with
closed-loop clients for SECONDS per client count, and with Poisson arrivals at each of
RATES texts/s for twice as long (`service_load`). Rounds alternate the setups' order.

On the CPU replicas trade latency for throughput (README, "Replicas: batches in flight");
on a GPU, `benchmarks/gpu.py` compares one and two. Prints one JSON line per setup and round.
"""

from __future__ import annotations

import json
import warnings

from vigil.runtime import BatcherConfig, Classifier

from .measure import Budget
from .sequence_buckets import arguments, tweets
from .service_load import closed_loop, open_loop


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=24_248)
    parser.set_defaults(variant="int8")
    parser.add_argument("--setups", default="1x2,2x1", help="REPLICASxTHREADS, comma-separated")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--rates", default="32,50", help="open-loop arrival rates, texts/s")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    texts = tweets(args.tweets, args.limit)
    setups = [tuple(map(int, setup.split("x"))) for setup in args.setups.split(",")]
    config = BatcherConfig(max_batch_size=64)
    for round_ in range(args.rounds):
        for replicas, threads in setups if round_ % 2 == 0 else setups[::-1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the stand-in warning
                classifier = Classifier.open(
                    args.artifact, provider="cpu", variant=args.variant, spin=False, replicas=replicas, threads=threads
                )
            with classifier:
                runs = [closed_loop(classifier, config, texts, int(n), Budget(args.seconds, 10**6))
                        for n in args.clients.split(",")]  # fmt: skip
                runs += [open_loop(classifier, config, texts, float(rate), Budget(2 * args.seconds, 10**6))
                         for rate in args.rates.split(",")]  # fmt: skip
            print(json.dumps({"round": round_, "replicas": replicas, "threads": threads,
                              "runs": [_figures(run) for run in runs]}), flush=True)  # fmt: skip


def _figures(run: dict) -> dict:
    """What the README quotes of one run: its load, rate, latency and batches."""
    load = {"clients": run["clients"]} if "clients" in run else {"offered_rate": run["offered_rate"]}
    return {
        **load,
        "texts_per_s": round(run["achieved_rate"], 1),
        "p50_ms": round(run["latency"]["p50_ms"], 2),
        "p99_ms": round(run["latency"]["p99_ms"], 2),
        "mean_batch": round(run["mean_batch_size"], 2),
        "errors": run["errors"] + run["rejected"] + run["unfinished"],
    }


if __name__ == "__main__":
    main()
