"""benchmarks/bucket_policy.py runs end to end on the tiny stand-in (figures unchecked: no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_side_by_side_prints_both_ways_and_the_positions_split_saves(tiny_artifact: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.bucket_policy", str(tiny_artifact), "data/tweets", "--limit", "256",
               "--draws", "4"]  # fmt: skip
    report = json.loads(subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert report["draws"] == 4 and report["batch"] == 16
    assert report["one_batch_ms_p50"] > 0 and report["split_by_bucket_ms_p50"] > 0
    assert 0 < report["positions_split_over_one"] < 1  # 16 random tweets mix buckets
