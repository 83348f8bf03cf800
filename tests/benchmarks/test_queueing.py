"""The ideal-batcher simulation against queueing theory it must reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.queueing import batch_seconds, ideal_latencies


def test_one_at_a_time_is_the_md1_queue() -> None:
    # max_batch 1 and a fixed service time S: M/D/1, whose mean wait is rho S / (2 (1 - rho)).
    service, rho = 0.010, 0.5
    latencies = ideal_latencies(rho / service, lambda k: service * k, max_batch=1, arrivals=100_000)
    assert latencies.mean() == pytest.approx(service + rho * service / (2 * (1 - rho)), rel=0.03)
    assert latencies.min() == pytest.approx(service)


def test_cheap_batches_shorten_the_tail_that_flat_throughput_keeps() -> None:
    rate, single = 80.0, 0.010  # 80 % of what one-at-a-time serves
    flat = ideal_latencies(rate, lambda k: single * k, max_batch=64)
    cheap = ideal_latencies(rate, lambda k: single * (1 + 0.05 * (k - 1)), max_batch=64)  # GPU-like
    assert np.percentile(cheap, 99) < np.percentile(flat, 99) / 2


def test_batch_seconds_interpolates_the_measured_curve() -> None:
    seconds = batch_seconds({1: 100.0, 8: 400.0, 64: 800.0})  # texts/s
    assert seconds(1) == pytest.approx(0.01) and seconds(8) == pytest.approx(0.02)
    assert seconds(36) == pytest.approx((0.02 + 0.08) / 2)
