"""Sequence buckets side by side: the same CPU classifier run at its buckets and at 32.

Usage: python -m benchmarks.sequence_buckets ARTIFACT TWEETS_DIR [--variant fp32] [--limit N]
Prints one JSON line: bulk (batch 64) texts/s and batch-1 latency (p50, mean) for both, their
ratios (bucketed / 32), and the padding fraction left at batch 64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from vigil.runtime import Classifier

from .workload import padding_fraction


def arguments(description: str, limit: int) -> argparse.ArgumentParser:
    """The arguments every CPU side-by-side takes: ARTIFACT TWEETS_DIR [--variant] [--limit]."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("tweets", type=Path)
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--limit", type=int, default=limit)
    return parser


def prepared(parser: argparse.ArgumentParser, **options: Any) -> tuple[argparse.Namespace, list[str], Classifier]:
    """The parsed arguments (see `arguments`), the tweets and the CPU classifier they name,
    opened with OPTIONS (e.g. spin=False, as a server opens it)."""
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        classifier = Classifier.open(args.artifact, provider="cpu", variant=args.variant, **options)
    return args, tweets(args.tweets, args.limit), classifier


def tweets(folder: Path, limit: int) -> list[str]:
    lines = [line for path in sorted(folder.glob("*.txt")) for line in path.read_text(encoding="utf-8").split("\n")]
    texts = [line for line in lines if line.strip()]
    return texts[:: max(1, len(texts) // limit)][:limit]  # every language, not the first file only


def bulk_rate(classifier: Classifier, texts: list[str]) -> float:
    classifier.predict(texts[:256])  # warm-up
    started = time.perf_counter()
    classifier.predict(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - started)


def batch1_ms(classifier: Classifier, texts: list[str]) -> dict[str, float]:
    """Median and mean of batch-1 latency: with buckets the median sits on whichever bucket
    holds the median tweet (24 tokens, a bucket edge), so the mean shows the gain as well."""
    times = []
    for text in texts:
        started = time.perf_counter()
        classifier.predict([text], batch_size=1)
        times.append(time.perf_counter() - started)
    return {"p50": round(statistics.median(times) * 1e3, 3), "mean": round(statistics.fmean(times) * 1e3, 3)}


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], limit=4096)
    parser.add_argument("--latency-texts", type=int, default=300)
    args, texts, classifier = prepared(parser)
    buckets = classifier.sequence_buckets
    if not buckets:
        raise SystemExit(f"error: {args.artifact} variant {args.variant} has no sequence buckets")
    figures = {}
    for name, setting in (("bucketed", buckets), ("at 32", ())):
        classifier.sequence_buckets = setting
        figures[name] = {
            "bulk_texts_per_s": round(bulk_rate(classifier, texts), 1),
            "batch1_ms": batch1_ms(classifier, texts[: args.latency_texts]),
            "padding_fraction": round(padding_fraction(classifier, texts), 3),
        }
    figures["bulk_speedup"] = round(figures["bucketed"]["bulk_texts_per_s"] / figures["at 32"]["bulk_texts_per_s"], 2)
    for stat in ("p50", "mean"):
        ratio = figures["bucketed"]["batch1_ms"][stat] / figures["at 32"]["batch1_ms"][stat]
        figures[f"batch1_{stat}_ratio"] = round(ratio, 2)
    print(json.dumps({"artifact": str(args.artifact), "variant": args.variant, "texts": len(texts), **figures}))


if __name__ == "__main__":
    main()
