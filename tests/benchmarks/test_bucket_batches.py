"""benchmarks/bucket_batches.py runs end to end on the tiny stand-in (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_each_load_runs_both_ways_in_alternating_order_and_the_summary_is_their_ratios(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bucket_batches.json"
    command = [sys.executable, "-m", "benchmarks.bucket_batches", str(tiny_artifact), "data/tweets", "--variant", "fp32",
               "--limit", "256", "--clients", "3", "--rates", "0.5", "--seconds", "0.5", "--rounds", "2", "--out", str(out)]  # fmt: skip
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    results = json.loads(out.read_text())
    runs = results["runs"]
    assert [(r["load"], r["value"], r["round"], list(r)[-2:]) for r in runs] == [
        ("closed", 3, 0, ["one bucket", "mixed"]), ("closed", 3, 1, ["mixed", "one bucket"]),
        ("open", 0.5, 0, ["one bucket", "mixed"]), ("open", 0.5, 1, ["mixed", "one bucket"]),
    ]  # fmt: skip
    for run in runs:
        for way in ("one bucket", "mixed"):
            assert run[way]["achieved_rate"] > 0 and 0 < run[way]["p50_ms"] <= run[way]["p99_ms"]
    closed = [r for r in runs if r["load"] == "closed"]
    ratios = sorted(r["one bucket"]["achieved_rate"] / r["mixed"]["achieved_rate"] for r in closed)
    assert results["one_bucket_over_mixed_median"]["closed 3"]["achieved_rate"] == round(sum(ratios) / 2, 3)
