"""Smoke test of benchmarks/http_load.py: a --quick run against the tiny artifact, shape only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LEVEL_KEYS = {"clients", "completed", "errors", "seconds", "achieved_rate", "latency", "mean_batch_size"}
LATENCY_KEYS = {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"}


def test_quick_run_writes_both_modes_per_level(tiny_artifact: Path, tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("police close the square\nsunny day at the beach\n@a RT riots downtown\n", encoding="utf-8")
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "benchmarks.http_load", str(tiny_artifact), "--quick"]
    command += ["--tweets", str(tweets), "--out", str(out)]
    table = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout

    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["model"]["random_weights"] is True
    for mode in ("http", "service"):
        assert [level["clients"] for level in results[mode]] == [1, 4]
        for level in results[mode]:
            assert LEVEL_KEYS <= set(level)
            assert LATENCY_KEYS <= set(level["latency"])
            assert level["completed"] > 0 and level["errors"] == 0
    assert {"queue_wait_mean_ms", "compute_per_batch_mean_ms"} <= set(results["http"][0])
    assert results["http"][0]["client"].startswith("http.client")
    for level in results["http"]:  # the handler's x-total-time is part of each request's latency
        outside = level["outside_handler"]
        assert outside["n"] == level["completed"]
        assert 0 < outside["p50_ms"] < level["latency"]["p50_ms"]
    assert table.startswith("| clients | HTTP req/s |")
    assert table.splitlines()[0].endswith("| outside handler p50 ms |")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 2  # header and two levels
