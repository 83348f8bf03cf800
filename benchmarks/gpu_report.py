"""The GPU run's report: what `benchmarks/gpu.py` measured, as Markdown, with its targets.

    python -m benchmarks.gpu_report benchmarks/results/gpu/gpu-results.json

writes results.md beside the JSON (gpu.py does the same at the end of a run). Figures are
absolute here, unlike the CPU report's ratios: they come from one named GPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .report import Target, accuracy_table, curve, format_target, latency_table, number, table, throughput_table

__all__ = ["BUCKETED", "SERVED", "TWO_REPLICAS", "markdown", "targets", "write_report"]

# What `vigil serve` runs on a GPU by default (CUDA graphs, every batch at 32), measured
# through the Service too; the opt-in sequence buckets and two replicas are weighed against it.
SERVED = "vigil-cuda-graphs-32"
BUCKETED = "vigil-cuda-graphs"
TWO_REPLICAS = "vigil-cuda-graphs-32-2x"


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 15's GPU goals, and the serving and bucket ratios of issues 9 and 12, from RESULTS."""
    served = results["contenders"].get(SERVED, {})
    latency = served.get("latency", {})
    accuracy = served.get("accuracy", {})
    outside_band = None
    if "borderline_flips" in accuracy:  # older results did not count them
        outside_band = 1.0 - (accuracy["label_flips"] - accuracy["borderline_flips"]) / accuracy["decisions"]
    closed = _closed_loop(results, SERVED)
    one_client = closed.get(1, {}).get("latency", {}).get("p50_ms")
    sixteen = closed.get(16, {}).get("achieved_rate")
    end_to_end, bucketed = curve(results, SERVED), curve(results, BUCKETED)
    at256 = _ratio(bucketed.get(256), end_to_end.get(256))
    replicas = _ratio(
        _closed_loop(results, TWO_REPLICAS).get(64, {}).get("achieved_rate"), closed.get(64, {}).get("achieved_rate")
    )
    return [
        _goal("model only, fp16, best batch", ">=", 70_000, _best(curve(results, SERVED, "model_only")), "texts/s"),
        _goal("end to end (clean, tokenize, model), best batch", ">=", 50_000, _best(end_to_end), "texts/s"),
        _goal("batch-1 latency p50, end to end", "<=", 1.0, latency.get("p50_ms"), "ms"),
        _goal("batch-1 latency p99, end to end", "<=", 2.0, latency.get("p99_ms"), "ms"),
        Target(
            "fp16 label agreement with PyTorch fp32, outside the borderline band", ">=", 1.0, outside_band,
            f"{accuracy.get('borderline_flips', '?')} borderline flips of {accuracy.get('decisions', '?')}",
            percent=True,
        ),
        Target("Service, 1 client p50 / direct batch-1 p50", "<=", 1.1, _ratio(one_client, latency.get("p50_ms")),
               "closed loop, in process"),
        Target("Service, 16 clients / offline batch 32", ">=", 0.95, _ratio(sixteen, end_to_end.get(32)),
               "closed loop, in process, end to end"),
        Target("sequence buckets / every batch at 32, end to end at batch 256", ">=", 1.0, at256,
               f"{BUCKETED} against {SERVED}"),
        Target("Service, 64 clients: two replicas / one", ">=", 1.0, replicas,
               f"{TWO_REPLICAS} against {SERVED}, closed loop"),
    ]  # fmt: skip


def _closed_loop(results: dict[str, Any], name: str) -> dict[int, dict[str, Any]]:
    """Contender NAME's closed-loop Service runs by client count; empty if not measured."""
    runs = results["contenders"].get(name, {}).get("service", {}).get("closed_loop", [])
    return {run["clients"]: run for run in runs}


def _goal(name: str, op: str, goal: float, value: float | None, unit: str) -> Target:
    return Target(f"{SERVED}: {name}", op, goal, value, "one H200" if value is not None else "not measured", unit=unit)


def _best(points: dict[int, float]) -> float | None:
    return max(points.values(), default=None)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def markdown(results: dict[str, Any]) -> str:
    """The whole report: context, throughput, latency, accuracy, service, targets."""
    machine, probe = results["machine"], results["probe"]
    device = probe.get("torch", {}).get("device") or "no GPU"
    parts = [
        "# vigil on a GPU" + (" (dry run: plumbing only, figures mean nothing)" if results["dry_run"] else ""),
        f"{results['created_at']} on **{device}**, {machine['cpu']} ({machine['physical_cores']} cores), "
        f"{machine['memory_gib']} GiB; Python {machine['python']}; versions {results['versions']}; "
        f"the run took {results['seconds'] / 60:.1f} min.",
        f"Full-size **random-weight stand-in** (speed is the real model's, scores are not); "
        f"{results['tweets']['count']:,} tweets; about {results['config']['seconds']} s per throughput point.",
        "## Throughput, end to end (clean + tokenize + model), texts/s\n\n" + throughput_table(results, "end_to_end"),
        "## Throughput, model only (pre-tokenized), texts/s\n\n" + throughput_table(results, "model_only"),
        "## Batch-1 latency, end to end, ms\n\n" + latency_table(results),
        "## Accuracy against PyTorch fp32 on the same GPU (threshold 0.5)\n\n" + accuracy_table(results),
    ]
    buckets = results["contenders"].get(BUCKETED, {}).get("buckets_vs_full_length")
    if buckets:
        parts.append(
            f"Sequence buckets {buckets['buckets']} against the full length, {buckets['texts']} tweets: "
            f"max |dp| {buckets['max_abs_prob_diff']:.1e}."
        )
    for name, entry in results["contenders"].items():
        if entry.get("service"):
            heading = f"## Service: {name} behind the dynamic batcher, closed loop"
            parts.append(f"{heading}\n\n{_service_table(entry['service'])}")
    absent = [entry for entry in results["contenders"].values() if entry["status"] != "ok"]
    if absent:
        parts.append("## Not measured\n\n" + "\n".join(f"- {e['label']}: {e['status']}: {e['reason']}" for e in absent))
    parts.append("## Targets\n\n" + "\n".join(f"- {format_target(t)}" for t in targets(results)))
    return "\n\n".join(parts) + "\n"


def _service_table(service: dict[str, Any]) -> str:
    batcher = service["batcher"]
    rows = [
        [
            str(run["clients"]),
            number(run["achieved_rate"]),
            number(run["latency"].get("p50_ms"), 3),
            number(run["latency"].get("p99_ms"), 3),
            number(run["compute_per_batch"].get("mean_ms"), 3),
            number(run["mean_batch_size"]),
        ]
        for run in service["closed_loop"]
    ]
    header = ["clients", "texts/s", "p50 ms", "p99 ms", "mean compute/batch ms", "mean batch"]
    return (
        f"Client threads in the same process submit one tweet each (max batch {batcher['max_batch_size']}, "
        f"max wait {batcher['max_wait_s'] * 1000:g} ms).\n\n" + table(header, rows)
    )


def write_report(results_file: Path) -> Path:
    """Write results.md beside RESULTS_FILE; its path."""
    results = json.loads(results_file.read_text(encoding="utf-8"))
    out = results_file.with_name("results.md")
    out.write_text(markdown(results), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="gpu-results.json written by benchmarks/gpu.py")
    print(f"wrote {write_report(parser.parse_args(argv).results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
