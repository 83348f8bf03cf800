"""Timing rules shared by every measurement, on the CPU run and in the GPU script alike.

Standard library, numpy and tqdm only: these run in the Optimum environment and on the GPU
machine too, where vigil may not be installed.

- **Throughput.** One point scores a stream of texts in batches of one size and divides
  texts by wall time. The stream is sized from the rate seen so far to last about
  `Budget.seconds`, but is never shorter than one batch nor longer than `Budget.max_items`:
  on two cores a batch of 1024 takes most of a minute, so large batches get one repetition
  while small ones get hundreds. The stream is scored in one call, so a contender that
  overlaps tokenization with inference (vigil) gets to do so.
- **Model only.** The same texts in the same batches, with tokenizing taken out.
  Contenders that tokenize and then run the model one batch after the other time the model
  inside the end-to-end pass (`Scored.model_seconds`). Those that overlap the two (vigil)
  time a pass of their own (`Contender.time_model`). Both use the very texts of the
  end-to-end point: a different slice would have another length mix, and so other buckets.
- **Latency.** Single texts one after another, each timed alone, after a warm-up, until
  the time or count budget is spent. Percentiles come with their sample count: a p99.9 of
  300 samples is the maximum and is reported as what it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from .contenders import Contender
from .workload import take

__all__ = [
    "Budget",
    "alternating",
    "PERCENTILES",
    "planned_batches",
    "throughput_point",
    "time_calls",
    "summarize_ms",
    "throughput_curves",
    "batch1_latency",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """How much one measurement may take: about `seconds`, and at most `max_items` items."""

    seconds: float
    max_items: int

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items!r}")


def planned_batches(batch_size: int, rate: float, budget: Budget) -> int:
    """Batches that fill BUDGET at RATE items/s: at least one, at most `max_items` worth."""
    wanted = math.ceil(rate * budget.seconds / batch_size)
    cap = max(1, budget.max_items // batch_size)
    return max(1, min(wanted, cap))


def throughput_point(batch_size: int, texts: int, seconds: float) -> dict[str, float]:
    """One point of a throughput curve, as it goes into the results JSON."""
    return {"batch_size": batch_size, "texts": texts, "seconds": round(seconds, 4), "texts_per_s": texts / seconds}


def by_batch_size(points: Sequence[dict[str, float]]) -> dict[int, float]:
    """Texts/s by batch size, from the points of one throughput curve (`throughput_point`)."""
    return {int(point["batch_size"]): point["texts_per_s"] for point in points}


def time_calls(
    call: Callable[[int], object],
    budget: Budget,
    *,
    warmup: int,
    progress: Callable[[int], object] | None = None,
) -> list[float]:
    """Seconds taken by call(0), call(1), ... after WARMUP untimed calls, until BUDGET is spent.

    At least one call is timed. PROGRESS, if given, is called with 1 after each timed call.
    """
    for i in range(warmup):
        call(i)
    samples: list[float] = []
    started = time.perf_counter()
    while not samples or (len(samples) < budget.max_items and time.perf_counter() - started < budget.seconds):
        t0 = time.perf_counter()
        call(warmup + len(samples))
        samples.append(time.perf_counter() - t0)
        if progress is not None:
            progress(1)
    return samples


def alternating(rounds: int, measures: dict[str, Callable[[], T]]) -> list[dict[str, T]]:
    """ROUNDS runs of every one of MEASURES (named), in their order in even rounds and in the
    reverse order in odd ones, so that a drift of the machine's speed weighs on all alike;
    each round's figures by name, in the order they ran."""
    order = list(measures.items())
    return [
        {name: measure() for name, measure in (order if index % 2 == 0 else order[::-1])} for index in range(rounds)
    ]


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Count, mean, percentiles and maximum of durations, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {"n": 0}
    summary = {"n": int(ms.size), "mean_ms": float(ms.mean())}
    for p in PERCENTILES:
        summary[f"p{p:g}_ms"] = float(np.percentile(ms, p))
    summary["max_ms"] = float(ms.max())
    return summary


def throughput_curves(
    name: str, contender: Contender, texts: Sequence[str], batch_sizes: Sequence[int], budget: Budget, rate: float
) -> dict[str, list[dict[str, float]]]:
    """End-to-end and model-only points for each batch size; RATE (texts/s) sizes the first."""
    curves: dict[str, list[dict[str, float]]] = {"end_to_end": [], "model_only": []}
    offset = 0
    for batch_size in tqdm(batch_sizes, desc=f"{name}: throughput", unit="point", leave=False):
        count = planned_batches(batch_size, rate, budget) * batch_size
        chunk = take(texts, offset, count)
        offset += count
        started = time.perf_counter()
        scored = contender.predict(chunk, batch_size)
        point = throughput_point(batch_size, count, time.perf_counter() - started)
        curves["end_to_end"].append(point)
        rate = point["texts_per_s"]  # sizes the next point
        model_seconds = scored.model_seconds
        if model_seconds is None:
            model_seconds = contender.time_model(chunk, batch_size)
        if model_seconds is not None:
            curves["model_only"].append(throughput_point(batch_size, count, model_seconds))
    return curves


def batch1_latency(
    name: str, contender: Contender, texts: Sequence[str], budget: Budget, warmup: int
) -> dict[str, Any]:
    """End-to-end latency of single texts after WARMUP, with the samples (ms) for plots."""
    with tqdm(total=budget.max_items, desc=f"{name}: batch-1 latency", unit="req", leave=False) as bar:
        samples = time_calls(
            lambda i: contender.predict([texts[i % len(texts)]], 1), budget, warmup=warmup, progress=bar.update
        )
    return {**summarize_ms(samples), "samples_ms": [round(s * 1000, 3) for s in samples]}
