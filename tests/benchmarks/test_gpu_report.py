"""The GPU report's targets, on a made-up result of known figures."""

from __future__ import annotations

from benchmarks.gpu_report import BUCKETED, SERVED, TWO_REPLICAS, markdown, targets
from benchmarks.report import format_target


def _curve(points: dict[int, float]) -> list[dict[str, float]]:
    return [{"batch_size": b, "texts_per_s": v} for b, v in points.items()]


def _results() -> dict:
    served = {
        "label": "served",
        "status": "ok",
        "throughput": {
            "end_to_end": _curve({1: 1_000.0, 32: 20_000.0, 256: 55_000.0}),
            "model_only": _curve({1: 1_100.0, 32: 30_000.0, 256: 72_000.0}),
        },
        "latency": {"n": 100, "p50_ms": 0.8, "p90_ms": 0.9, "p99_ms": 2.5, "p99.9_ms": 3.0, "max_ms": 3.0},
        "accuracy": {"texts": 10, "decisions": 1000, "label_agreement": 0.997, "label_flips": 3,
                     "borderline_flips": 2, "max_abs_prob_diff": 1e-3, "mean_abs_prob_diff": 1e-4},
        "service": {"batcher": {"max_batch_size": 256, "max_wait_s": 0.0}, "closed_loop": [
            {"clients": 1, "achieved_rate": 900.0, "latency": {"p50_ms": 0.84, "p99_ms": 1.0},
             "compute_per_batch": {"mean_ms": 0.6}, "mean_batch_size": 1.0},
            {"clients": 16, "achieved_rate": 19_500.0, "latency": {"p50_ms": 0.9, "p99_ms": 2.0},
             "compute_per_batch": {"mean_ms": 0.7}, "mean_batch_size": 16.0},
            _served(64, 30_000.0),
        ]},
    }  # fmt: skip
    bucketed = {"label": "buckets", "status": "ok", "throughput": {"end_to_end": _curve({256: 60_500.0})},
                "buckets_vs_full_length": {"buckets": [16, 24, 32], "texts": 10, "max_abs_prob_diff": 2e-6}}
    two = {"label": "two replicas", "status": "ok", "throughput": {"end_to_end": _curve({256: 49_000.0})},
           "service": {"batcher": {"max_batch_size": 256, "max_wait_s": 0.0}, "closed_loop": [_served(64, 36_000.0)]}}
    return {
        "dry_run": False,
        "created_at": "now",
        "seconds": 60.0,
        "machine": {"cpu": "cpu", "physical_cores": 16, "memory_gib": 128, "python": "3.12"},
        "probe": {"torch": {"device": "NVIDIA H200"}},
        "versions": {},
        "tweets": {"count": 10},
        "config": {"seconds": 1.0, "batch_sizes": [1, 32, 256]},
        "contenders": {SERVED: served, BUCKETED: bucketed, TWO_REPLICAS: two},
    }


def _served(clients: int, rate: float) -> dict:
    """One closed-loop Service run of CLIENTS at RATE texts/s."""
    return {"clients": clients, "achieved_rate": rate, "latency": {"p50_ms": 2.0, "p99_ms": 3.0},
            "compute_per_batch": {"mean_ms": 1.0}, "mean_batch_size": 40.0}  # fmt: skip


def test_targets_are_computed_from_the_figures() -> None:
    found = {t.name.removeprefix(f"{SERVED}: "): t for t in targets(_results())}
    assert found["model only, fp16, best batch"].value == 72_000.0 and found["model only, fp16, best batch"].met
    assert found["end to end (clean, tokenize, model), best batch"].value == 55_000.0
    assert found["batch-1 latency p50, end to end"].met and not found["batch-1 latency p99, end to end"].met
    agreement = found["fp16 label agreement with PyTorch fp32, outside the borderline band"]
    assert agreement.value == 1 - 1 / 1000 and not agreement.met  # one flip outside the band
    assert found["Service, 1 client p50 / direct batch-1 p50"].value == 0.84 / 0.8
    assert found["Service, 16 clients / offline batch 32"].value == 19_500 / 20_000
    assert found["sequence buckets / every batch at 32, end to end at batch 256"].value == 60_500 / 55_000
    assert found["Service, 64 clients: two replicas / one"].value == 36_000 / 30_000


def test_the_report_states_absolute_figures_with_their_units() -> None:
    text = markdown(_results())
    assert "**NVIDIA H200**" in text and "| 16 | 19,500.0 |" in text
    assert f"## Service: {TWO_REPLICAS} behind" in text and "| 64 | 36,000.0 |" in text
    assert "Sequence buckets [16, 24, 32] against the full length, 10 tweets: max |dp| 2.0e-06." in text
    lines = [format_target(t) for t in targets(_results())]
    assert any("72,000 texts/s (goal >= 70,000 texts/s" in line for line in lines)
    assert any("2.5 ms (goal <= 2 ms" in line and line.startswith("MISSED") for line in lines)
