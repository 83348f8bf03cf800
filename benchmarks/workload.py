"""The benchmark's input: the real tweets of data/tweets, mixed across languages.

Lengths, scripts and emoji decide how long tokenization takes and how many of the 32
positions a tweet fills, so the benchmark scores real tweets, never synthetic text. The
eight languages are shuffled together with a fixed seed: every batch is multilingual, every
run sees the same order, and the first N tweets (the accuracy subset, or a `--limit`) are a
fair sample of all of them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .source import REPO

__all__ = ["DEFAULT_TWEETS", "Workload", "load_tweets", "padding_fraction", "take"]

DEFAULT_TWEETS = REPO / "data" / "tweets"


@dataclass(frozen=True)
class Workload:
    """Tweets in benchmark order, and where they came from.

    Attributes:
        texts: The tweets, languages shuffled together.
        languages: How many of `texts` each language contributes.
        source: The folder (or file) they were read from.
    """

    texts: tuple[str, ...]
    languages: dict[str, int]
    source: Path

    def save(self, path: Path) -> None:
        """Write the texts as a JSON list, for worker processes to read."""
        path.write_text(json.dumps(list(self.texts), ensure_ascii=False), encoding="utf-8")


def load_tweets(source: Path = DEFAULT_TWEETS, limit: int | None = None, seed: int = 0) -> Workload:
    """Every non-empty line of SOURCE/*.txt (one file per language), or of the file SOURCE,
    shuffled with SEED.

    Raises:
        FileNotFoundError: SOURCE is neither a text file nor a folder of .txt files.
    """
    source = Path(source)
    files = [source] if source.is_file() else sorted(source.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no tweets found: {source} is not a file or a folder of .txt files (one per language)")
    tagged = [(path.stem, line) for path in files for line in _lines(path)]
    order = np.random.default_rng(seed).permutation(len(tagged))
    chosen = [tagged[i] for i in order[:limit]]
    return Workload(
        texts=tuple(text for _, text in chosen),
        languages=dict(sorted(Counter(language for language, _ in chosen).items())),
        source=source,
    )


def _lines(path: Path) -> list[str]:
    # "\n" only: str.splitlines() would also split inside tweets at U+2028 and kin.
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def take(texts: Sequence[str], start: int, count: int) -> list[str]:
    """COUNT texts from index START on, wrapping around, so a measurement never runs dry."""
    n = len(texts)
    return [texts[(start + i) % n] for i in range(count)]


def padding_fraction(classifier: Any, texts: Sequence[str], batch_size: int = 64) -> float:
    """Computed positions that are padding, over all computed, as a vigil classifier's bulk
    predict forms batches of TEXTS: each 4,096-text window sorted by length, each batch at
    the smallest of its sequence buckets (or the full length) that holds its longest text."""
    lengths = classifier.encode(texts)[1].sum(axis=1)
    widths = classifier.sequence_buckets or (classifier.manifest.sequence_length,)
    computed = 0
    for start in range(0, len(lengths), 4096):
        window = np.sort(lengths[start : start + 4096])
        for i in range(0, len(window), batch_size):
            batch = window[i : i + batch_size]
            computed += min(w for w in widths if w >= batch.max()) * len(batch)
    return float(1.0 - lengths.sum() / computed) if computed else 0.0

