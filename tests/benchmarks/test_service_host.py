"""benchmarks/service_host.py runs end to end on the tiny stand-in (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_side_by_side_runs_each_model_and_client_count_with_tokenizing_ahead_off_and_on(tiny_artifact: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.service_host", str(tiny_artifact), "data/tweets", "--limit", "64",
               "--clients", "1,3", "--requests", "30", "--rounds", "1", "--device-ms", "0.1"]  # fmt: skip
    output = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    runs = [json.loads(line) for line in output.splitlines()]
    assert sorted((r["model"], r["clients"], r["tokenize_ahead"]) for r in runs) == sorted(
        (model, clients, ahead) for model in ("instant", "device") for clients in (1, 3) for ahead in (False, True)
    )
    for run in runs:
        assert run["requests_per_s"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"]
        assert 1 <= run["mean_batch"] <= run["clients"]
