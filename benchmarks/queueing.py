"""What an ideal work-conserving batcher would reach: open-loop latency simulated from batch times.

A measured open-loop p99 mixes two things: what the Service costs, and what queueing costs on
that model and machine whatever the Service does. The second is computable. Texts arrive one by
one as a Poisson process; one server, whenever it is idle and texts wait, takes up to
`max_batch` of them and is busy for the offline time of that batch size (linear between the
measured sizes). Nothing else costs anything. Where batching makes a text cheaper (a GPU) the
queue empties fast; where it does not (int8 on 2 CPU cores: about the same texts/s at every
batch size) a burst waits about as long as serving it one by one, and the tail is the queue's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["batch_seconds", "ideal_latencies"]


def batch_seconds(throughput: Mapping[int, float]) -> Callable[[int], float]:
    """Seconds one batch of k texts takes, from THROUGHPUT (texts/s at each measured batch size)."""
    sizes = sorted(throughput)
    seconds = [size / throughput[size] for size in sizes]
    return lambda k: float(np.interp(k, sizes, seconds))


def ideal_latencies(
    rate: float, batch_time: Callable[[int], float], max_batch: int, arrivals: int = 50_000, seed: int = 0
) -> np.ndarray:
    """Each text's latency (seconds, arrival to its batch's end) under the ideal batcher at RATE texts/s."""
    times = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, arrivals))
    latencies = np.empty(arrivals)
    free, first = 0.0, 0
    while first < arrivals:
        start = max(free, times[first])
        # Everything that has arrived by the start, up to max_batch, leaves in this batch.
        end_index = min(max(int(np.searchsorted(times, start, side="right")), first + 1), first + max_batch)
        free = start + batch_time(end_index - first)
        latencies[first:end_index] = free - times[first:end_index]
        first = end_index
    return latencies
