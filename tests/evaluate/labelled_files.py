"""Labelled files whose metrics are known in advance: labels drawn from the stand-in's own scores.

Labels are drawn as `p >= cut`, with the cut a score at a chosen quantile of each label
(so a test chooses each class's share), then a fixed
fraction of each label's rows flipped (seeded). With no flips, decisions at the cut match
every label exactly; with flips, every figure is checked against `independent_metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np


def cuts(scores: np.ndarray, quantile: float) -> np.ndarray:
    """float32 [L]: per label, the score at QUANTILE (a score, so `>=` splits exactly there)."""
    return np.array([np.sort(column)[int(quantile * len(column))] for column in scores.T], dtype=np.float32)


def draw_labels(scores: np.ndarray, cut: np.ndarray, flips: float = 0.0, seed: int = 0) -> np.ndarray:
    """int8 `scores >= cut`, with round(FLIPS * n) rows of each label flipped (seeded)."""
    truth = (scores >= cut).astype(np.int8)
    rng = np.random.default_rng(seed)
    for column in truth.T:
        flipped = rng.choice(len(column), size=round(flips * len(column)), replace=False)
        column[flipped] ^= 1
    return truth


def thresholds_option(labels: Sequence[str], values: np.ndarray) -> str:
    """`--thresholds label=value,...` that reads back as exactly VALUES in float32."""
    return ",".join(f"{label}={float(value)!r}" for label, value in zip(labels, values))


def write_jsonl(
    path: Path,
    texts: Sequence[str],
    truth: np.ndarray,
    labels: Sequence[str],
    *,
    suffix: str = "_true",
    groups: Sequence[Hashable] | None = None,
) -> Path:
    """One JSON object per row: "text", "<label><SUFFIX>" per label, and "place" with GROUPS."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, row) in enumerate(zip(texts, truth.tolist())):
            record = {"text": text, **{f"{label}{suffix}": value for label, value in zip(labels, row)}}
            if groups is not None:
                record["place"] = groups[i]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
