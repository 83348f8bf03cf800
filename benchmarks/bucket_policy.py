"""The Service's two ways to batch across sequence buckets, side by side on the CPU.

Usage: python -m benchmarks.bucket_policy ARTIFACT TWEETS_DIR [--variant int8] [--batch 16] [--draws 150]

A batch the work-conserving Service takes from its queue holds texts of mixed lengths. It can
run as one batch padded to the bucket of its longest text, or split into one batch per
bucket, each at its own width (what `Classifier.score` does on the CPU). Both ways run the
model directly on the same encoded rows, so the comparison does not depend on the policy
vigil has chosen. Each draw takes BATCH random tweets and times both ways, in alternating
order; prints one JSON line with the medians, the paired ratio (split / one batch) and the
positions each computes.
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
    ids, mask = classifier.encode(texts)
    bucket = np.array([min(w for w in widths if w >= n) for n in mask.sum(axis=1)])
    rng = random.Random(0)
    one, split, ratios, positions = [], [], [], np.zeros(2)

    def run(rows: np.ndarray, width: int) -> None:
        classifier.model.run(np.ascontiguousarray(ids[rows, :width]), np.ascontiguousarray(mask[rows, :width]))

    run(np.arange(64), widths[-1])  # warm-up
    for draw in range(args.draws):
        picked = np.array(rng.sample(range(len(texts)), args.batch))
        ways = {
            "one": lambda: run(picked, bucket[picked].max()),
            "split": lambda: [run(picked[bucket[picked] == w], w) for w in np.unique(bucket[picked])],
        }
        order = ("one", "split") if draw % 2 else ("split", "one")
        timed = {name: _ms(ways[name]) for name in order}
        one.append(timed["one"])
        split.append(timed["split"])
        ratios.append(timed["split"] / timed["one"])
        positions += (bucket[picked].max() * args.batch, bucket[picked].sum())
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
