"""The target arithmetic of benchmarks.report, on hand-made results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchmarks.measure import Budget, alternating, planned_batches
from benchmarks.report import compare, format_target, targets


def curve(rates: dict[int, float]) -> list[dict[str, float]]:
    """Points of 600 texts each, as `benchmarks.measure.throughput_point` writes them."""
    return [{"batch_size": b, "texts": 600, "seconds": 600 / r, "texts_per_s": r} for b, r in rates.items()]


def results() -> dict:
    fast = {1: 40.0, 32: 90.0, 64: 100.0}
    return {
        "contenders": {
            "pipeline": {
                "throughput": {"end_to_end": curve({1: 10.0, 32: 25.0, 64: 30.0})},
                "latency": {"p50_ms": 100.0},
            },
            "vigil-fp32": {
                "throughput": {"end_to_end": curve(fast), "model_only": curve({1: 40.0, 32: 100.0, 64: 100.0})}
            },
            "vigil-int8": {
                "throughput": {"end_to_end": curve(fast), "model_only": curve(fast)},
                "latency": {"p50_ms": 20.0},
                "accuracy": {"label_agreement": 0.995},
            },
        },
        "service": {
            "variant": "int8",
            "closed_loop": [
                {"clients": 1, "achieved_rate": 40.0, "latency": {"p50_ms": 21.0, "p99_ms": 30.0}},
                {"clients": 16, "achieved_rate": 72.0, "latency": {"p50_ms": 150.0, "p99_ms": 600.0},
                 "batch_sizes": {"1": 10, "15": 10}},
            ],
            "open_loop": [
                {"fraction_of_peak": 0.5, "latency": {"p99_ms": 70.0}},
                {"fraction_of_peak": 0.8, "latency": {"p99_ms": 170.0}, "ideal_p99_ms": 150.0},
            ],
        },
    }


def by_name(name: str) -> object:
    return next(t for t in targets(results()) if t.name.startswith(name))


def test_ratios_and_verdicts() -> None:
    overhead = by_name("vigil-fp32 end to end")  # 0.9x at batch 32, 1x elsewhere: seconds summed
    assert overhead.value == pytest.approx((15 + 6 + 6) / (15 + 600 / 90 + 6)) and overhead.met
    assert "0.90x-1.00x per batch size" in overhead.detail  # the spread of the points is shown
    assert by_name("vigil-int8 / card pipeline, end to end").value == 100.0 / 30.0
    batch1 = by_name("vigil-int8 / card pipeline, batch-1")
    assert batch1.value == 0.2 and batch1.met is False  # the goal is 0.15x
    assert by_name("vigil-fp32 / pipeline").value == 100.0 / 30.0  # worst at batch 64
    assert by_name("vigil-fp32 / card pipeline").value == 100.0 / 30.0 and by_name("vigil-fp32 / card pipeline").met
    assert by_name("vigil-int8 label agreement").met


def test_service_targets_against_the_direct_batch1_latency_and_offline_batch_32() -> None:
    assert by_name("Service, 1 client").value == 21.0 / 20.0 and by_name("Service, 1 client").met
    assert by_name("Service, 16 clients /").value == 0.8 and by_name("Service, 16 clients /").met is False
    # Batches of 1 and 15 at the offline times (interpolated): 16 texts in 25 + 174.3 ms, 80.3 texts/s.
    assert "its batches at offline speed: 0.89x" in by_name("Service, 16 clients /").detail
    assert by_name("Service, 16 clients p99").value == 4.0 and by_name("Service, 16 clients p99").met is False
    assert by_name("Service, open loop at 50%").value == 3.5 and by_name("Service, open loop at 50%").met
    assert by_name("Service, open loop at 80%").value == 8.5 and by_name("Service, open loop at 80%").met is False
    # Where the run carries it, the detail says what an overhead-free batcher would reach.
    assert "an ideal batcher with these batch times: 7.50x" in by_name("Service, open loop at 80%").detail
    assert "ideal" not in by_name("Service, open loop at 50%").detail


def test_paired_rounds_give_the_closed_loop_targets_where_the_run_has_them() -> None:
    paired = results()
    paired["service"]["paired"] = {
        "one_client": {"rounds": [{"ratio": 0.97}, {"ratio": 1.3}, {"ratio": 0.99}]},
        "many_clients": {"rounds": [{"ratio": None}, {"ratio": 0.96}]},  # a round that measured nothing
    }
    found = {t.name.split(" (")[0]: t for t in targets(paired)}
    one = found["Service, 1 client p50 / direct batch-1 p50"]
    assert one.value == 0.99 and one.met  # the median, not the unpaired 1.05x
    assert "median of 3 rounds back to back with the reference (0.97x-1.30x); runs apart: 1.05x" in one.detail
    many = found["Service, 16 clients / offline batch 32"]
    assert many.value == 0.96 and many.met and "median of 1 round back" in many.detail
    assert "its batches at offline speed" in many.detail


def test_what_did_not_run_is_not_measured_rather_than_missed() -> None:
    target = by_name("vigil-fp32 / optimum")
    assert target.value is None and target.met is None
    assert format_target(target).startswith("n/a")


def test_compare_counts_flips_at_one_half() -> None:
    reference = np.array([[0.2, 0.6], [0.51, 0.9]], dtype=np.float32)
    candidate = np.array([[0.2, 0.4], [0.52, 0.9]], dtype=np.float32)
    found = compare(reference, candidate)
    assert found["label_flips"] == 1 and found["label_agreement"] == 0.75
    assert abs(found["max_abs_prob_diff"] - 0.2) < 1e-6


def test_alternating_rounds_reverse_the_order_each_round() -> None:
    calls: list[str] = []
    figures = {"a": iter([1.0, 2.0, 3.0]), "b": iter([4.0, 5.0, 6.0])}

    def measure(name: str) -> Callable[[], float]:
        def run() -> float:
            calls.append(name)
            return next(figures[name])

        return run

    rounds = alternating(3, {"a": measure("a"), "b": measure("b")})
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert rounds == [{"a": 1.0, "b": 4.0}, {"b": 5.0, "a": 2.0}, {"a": 3.0, "b": 6.0}]
    assert [list(r) for r in rounds] == [["a", "b"], ["b", "a"], ["a", "b"]]  # the order each ran in


def test_planned_batches_is_at_least_one_and_capped_by_count() -> None:
    assert planned_batches(1024, rate=20.0, budget=Budget(2.0, 4096)) == 1
    assert planned_batches(8, rate=400.0, budget=Budget(2.0, 4096)) == 100
    assert planned_batches(8, rate=1e6, budget=Budget(2.0, 64)) == 8


def test_results_name_paths_without_the_machine_s_absolute_paths(tmp_path: Path) -> None:
    from benchmarks.source import REPO, portable, portable_json

    assert portable(REPO / "benchmarks" / "results" / "cpu") == "benchmarks/results/cpu"
    assert portable(Path.home() / ".cache" / "vigil-bench") == "~/.cache/vigil-bench"
    assert portable(tmp_path / "tweets") == ".../tweets"
    assert portable("data/tweets") == "data/tweets"
    assert portable_json({"out": REPO / "x", "n": 3, "when": None}) == {"out": "x", "n": 3, "when": None}
