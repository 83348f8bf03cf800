"""The Service's two ways to batch across sequence buckets, side by side on the CPU.

Usage: python -m benchmarks.bucket_policy ARTIFACT TWEETS_DIR [--variant int8] [--batch 16] [--draws 150]

A batch the work-conserving Service takes from its queue holds texts of mixed lengths. It can
run as one batch padded to the bucket of its longest text (what vigil does), or split into one
batch per bucket, each at its own width. Each draw takes BATCH random tweets and times both
ways on the same tweets, in alternating order; prints one JSON line with the medians, the
paired ratio (split / one batch) and the positions each computes.
"""

from __future__ import annotations

import json
import random
import statistics
import time

import numpy as np

from .sequence_buckets import arguments, prepared


def _ms(run) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=4096)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--draws", type=int, default=150)
    args, texts, classifier = prepared(parser)
    widths = classifier.sequence_buckets or (classifier.manifest.sequence_length,)
    lengths = classifier.encode(texts)[1].sum(axis=1)
    bucket = [min(w for w in widths if w >= n) for n in lengths]
    rng = random.Random(0)
    one, split, ratios, positions = [], [], [], np.zeros(2)
    classifier.predict(texts[:64])  # warm-up
    for draw in range(args.draws):
        picked = rng.sample(range(len(texts)), args.batch)
        batch = [texts[i] for i in picked]
        groups = [[texts[i] for i in picked if bucket[i] == w] for w in widths]
        ways = {
            "one": lambda: classifier.predict(batch, batch_size=args.batch),
            "split": lambda: [classifier.predict(group, batch_size=len(group)) for group in groups if group],
        }
        order = ("one", "split") if draw % 2 else ("split", "one")
        timed = {name: _ms(ways[name]) for name in order}
        one.append(timed["one"])
        split.append(timed["split"])
        ratios.append(timed["split"] / timed["one"])
        positions += (max(bucket[i] for i in picked) * args.batch, sum(bucket[i] for i in picked))
    print(json.dumps({
        "variant": args.variant,
        "batch": args.batch,
        "draws": args.draws,
        "one_batch_ms_p50": round(statistics.median(one), 2),
        "split_by_bucket_ms_p50": round(statistics.median(split), 2),
        "split_over_one_paired_p50": round(statistics.median(ratios), 3),
        "positions_split_over_one": round(positions[1] / positions[0], 3),
    }))


if __name__ == "__main__":
    main()
