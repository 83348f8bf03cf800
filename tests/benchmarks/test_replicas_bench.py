"""benchmarks/replicas.py runs end to end on the tiny stand-in (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_each_setup_runs_every_closed_and_open_loop_point_once_a_round(tiny_artifact: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.replicas", str(tiny_artifact), "data/tweets", "--variant", "fp32",
               "--limit", "64", "--setups", "1x1,2x1", "--clients", "1,3", "--rates", "40", "--seconds", "0.3",
               "--rounds", "2"]  # fmt: skip
    output = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = [json.loads(line) for line in output.splitlines()]
    assert [(line["round"], line["replicas"], line["threads"]) for line in lines] == [
        (0, 1, 1), (0, 2, 1), (1, 2, 1), (1, 1, 1)  # alternating order
    ]
    for line in lines:
        closed = [run for run in line["runs"] if "clients" in run]
        opened = [run for run in line["runs"] if "offered_rate" in run]
        assert [run["clients"] for run in closed] == [1, 3] and [run["offered_rate"] for run in opened] == [40.0]
        for run in line["runs"]:
            assert run["texts_per_s"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"] and run["errors"] == 0
