"""Two artifacts side by side on the CPU: the same variant of each, in alternating rounds.

Usage: python -m benchmarks.artifacts BEFORE AFTER TWEETS_DIR [--variant int8] [--limit 1024]
       [--latency-texts 200] [--rounds 4]

For a change to export (how the graphs are built), with the runtime and the tweets fixed:
export one checkpoint before and after it, then compare. Each round measures bulk scoring
(batch 64) and batch-1 latency of both, the round's first artifact alternating, since a
shared 2-core box drifts by more than most changes gain. Prints one JSON line per round and
a summary: the median ratio AFTER / BEFORE of each figure, and the largest probability
difference between the two on the tweets (a graph change that claims the same scores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

import numpy as np

from vigil.runtime import Classifier

from .sequence_buckets import batch1_ms, bulk_rate, tweets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("tweets", type=Path)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--limit", type=int, default=1024)
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    texts = tweets(args.tweets, args.limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        pair = {name: Classifier.open(path, provider="cpu", variant=args.variant) for name, path in (("before", args.before), ("after", args.after))}
    difference = np.abs(pair["before"].predict(texts) - pair["after"].predict(texts)).max()
    rounds = []
    for number in range(args.rounds):
        order = ("before", "after") if number % 2 == 0 else ("after", "before")
        figures = {name: {"bulk_texts_per_s": bulk_rate(pair[name], texts), **batch1_ms(pair[name], texts[: args.latency_texts])} for name in order}
        rounds.append({name: figures[name] for name in ("before", "after")})
        print(json.dumps({"round": number, "first": order[0], **rounds[-1]}), flush=True)
    summary = {
        f"{figure}_ratio": round(statistics.median(one["after"][figure] / one["before"][figure] for one in rounds), 3)
        for figure in ("bulk_texts_per_s", "p50", "mean")
    }
    print(json.dumps({"variant": args.variant, "texts": len(texts), "max_abs_prob_diff": float(difference), **summary}))


if __name__ == "__main__":
    main()
