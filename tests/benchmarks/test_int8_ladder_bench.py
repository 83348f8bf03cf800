"""benchmarks/int8_weights.py measures every rung of export's int8 ladder on the tiny stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_each_weight_type_with_and_without_each_layer_in_fp32(tiny_checkpoint: Path, tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("\n".join((REPO / "data" / "tweets" / "english.txt").read_text("utf-8").split("\n")[:64]), "utf-8")
    out = tmp_path / "report.json"
    command = [sys.executable, "-m", "benchmarks.int8_weights", str(tiny_checkpoint), "--tweets", str(tweets), "--out", str(out)]
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    report = json.loads(out.read_text("utf-8"))
    assert report["tweets"] == 64
    assert [(s["weights"], s["fp32_layer"]) for s in report["steps"]] == [
        (weights, layer) for weights in ("int8", "uint8") for layer in (None, "layer.0", "layer.1")
    ]
    for step in report["steps"]:
        assert step["all_tweets"]["label_flips"] <= 64 * 6 and step["validation_sample"]["label_flips"] <= 256 * 6
        assert 0 < step["all_tweets"]["max_abs_prob_diff"] < 1  # rounded, yet the same model
