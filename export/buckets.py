"""Sequence buckets: the few padded lengths the CPU graphs run at, chosen from measured tweets.

Every graph used to compute all 32 positions; short tweets then pay for padding. The
runtime runs each batch at the smallest bucket that holds its longest text, so a bucket
is worth having when it saves enough computed positions. `choose_buckets` adds, one at a
time, the multiple of `STEP` that saves the most positions per text, while it saves at
least `MIN_SAVING` of what the current buckets compute: each bucket is one more CUDA graph
or TensorRT profile later, so fewer buckets win a close call.

Measured on data/tweets (24,248 tweets, cleaned, the artifact tokenizer, capped at 32):
median 24 tokens, 24 % at the cap, 28 % of positions padding at 32. The rule picks
16/24/32 (25.9 positions per tweet at batch 1, 11.5 % padding); 8 would save only 1.4 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer
from vigil.runtime.tokenizer import encode

__all__ = [
    "DEFAULT_BUCKETS", "MIN_SAVING", "STEP", "choose_buckets", "computed_positions", "sequence_buckets", "token_lengths",
]

STEP = 8  # candidate widths: kernels like multiples of 8
MIN_SAVING = 0.05
DEFAULT_BUCKETS = (16, 24, 32)  # choose_buckets on data/tweets; a test re-measures it


def token_lengths(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Tokens (with [CLS] and [SEP]) of each already cleaned text, capped by the tokenizer."""
    return encode(tokenizer, texts)[1].sum(axis=1)


def computed_positions(lengths: np.ndarray, buckets: Sequence[int]) -> float:
    """Mean positions computed per text when each runs alone at its smallest bucket."""
    edges = np.asarray(sorted(buckets))
    return float(edges[np.searchsorted(edges, lengths)].mean())


def choose_buckets(lengths: np.ndarray, cap: int) -> tuple[int, ...]:
    """The buckets for texts of LENGTHS (each <= CAP): CAP, plus those worth their cost."""
    chosen = [cap]
    candidates = set(range(STEP, cap, STEP))
    while candidates:
        cost = computed_positions(lengths, chosen)
        best = min(sorted(candidates), key=lambda width: computed_positions(lengths, [*chosen, width]))
        if cost - computed_positions(lengths, [*chosen, best]) < MIN_SAVING * cost:
            break
        chosen.append(best)
        candidates.remove(best)
    return tuple(sorted(chosen))


def sequence_buckets(sequence_length: int) -> tuple[int, ...]:
    """`DEFAULT_BUCKETS` below SEQUENCE_LENGTH, then SEQUENCE_LENGTH itself."""
    return (*(width for width in DEFAULT_BUCKETS if width < sequence_length), sequence_length)
