"""Smoke test of benchmarks/http_load.py: a --quick run against the tiny artifact, shape only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_KEYS = {"clients", "completed", "errors", "seconds", "achieved_rate", "latency", "mean_batch_size"}
LATENCY_KEYS = {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"}


def test_quick_run_writes_paired_rounds_per_level(tiny_artifact: Path, tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("police close the square\nsunny day at the beach\n@a RT riots downtown\n", encoding="utf-8")
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "benchmarks.http_load", str(tiny_artifact), "--quick"]
    command += ["--tweets", str(tweets), "--out", str(out)]
    table = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout

    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["model"]["random_weights"] is True
    assert results["budget"]["rounds"] == 2
    assert [level["clients"] for level in results["levels"]] == [1, 4]
    for level in results["levels"]:
        assert [list(pair) for pair in level["rounds"]] == [["http", "service"], ["service", "http"]]
        for pair in level["rounds"]:
            for run in pair.values():
                assert run["clients"] == level["clients"]
                assert RUN_KEYS <= set(run) and LATENCY_KEYS <= set(run["latency"])
                assert run["completed"] > 0 and run["errors"] == 0
            http = pair["http"]
            assert {"queue_wait_mean_ms", "compute_per_batch_mean_ms"} <= set(http)
            assert http["client"].startswith("http.client")
            outside = http["outside_handler"]  # the handler's x-total-time is part of each latency
            assert outside["n"] == http["completed"]
            assert 0 < outside["p50_ms"] < http["latency"]["p50_ms"]
        costs = [pair["http"]["latency"]["p50_ms"] - pair["service"]["latency"]["p50_ms"] for pair in level["rounds"]]
        cost = level["http_cost_p50_ms"]
        assert (cost["min"], cost["max"]) == (min(costs), max(costs))
        assert cost["median"] == sum(costs) / 2  # the median of two rounds
    lines = table.splitlines()
    assert lines[0].startswith("| clients | HTTP req/s |")
    assert lines[0].endswith("| HTTP cost p50 ms | its range | outside handler p50 ms |")
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 2  # header and two levels
    assert "medians of 2 paired rounds a level" in table
