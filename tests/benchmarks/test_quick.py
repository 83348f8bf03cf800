"""Smoke tests of the benchmarks: `--quick` on the CPU and the GPU script's `--dry-run`.

Plumbing only: every contender runs on the tiny stand-in, and the tests check that the
reports come out whole. Nothing asserts a timing: CI's two cores are shared.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.config import quick_config

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("torch")
pytest.importorskip("transformers")


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark command from the repository root, as its users do."""
    process = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-4000:]
    return process


def _strings(value: object) -> list[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_quick_run_writes_json_table_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = run_script("-m", "benchmarks.run", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {"machine", "versions", "config", "inputs", "contenders", "service", "targets"} <= set(results)
    assert results["quick"] and results["inputs"]["random_weights"]
    # The tiny stand-in has no int8 (export leaves it out): the run says so and serves fp32.
    int8 = results["contenders"]["vigil-int8"]
    assert (int8["status"], int8["reason"].split(":")[0]) == ("skipped", "the artifact has no int8 variant")
    assert results["service"]["variant"] == "fp32"
    for name in set(quick_config().contenders) - {"vigil-int8"}:
        entry = results["contenders"][name]
        assert entry["status"] == "ok", entry.get("traceback", entry.get("reason"))
        assert entry["accuracy"]["texts"] == quick_config().accuracy_texts
        assert [p["batch_size"] for p in entry["throughput"]["end_to_end"]] == list(quick_config().batch_sizes)
        assert entry["latency"]["n"] >= 1
    assert results["contenders"]["vigil-fp32"]["throughput"]["model_only"]
    assert 0.0 < results["contenders"]["vigil-fp32"]["padding_at_64"] < 0.3  # buckets leave little
    assert results["contenders"]["optimum"]["status"] == "skipped"  # says why, in the report too
    assert {run["clients"] for run in results["service"]["closed_loop"]} == {1, 16}
    assert results["service"]["open_loop"][0]["batch_sizes"]
    assert all(run["ideal_p99_ms"] > 0 for run in results["service"]["open_loop"])  # the overhead-free bound
    paired = results["service"]["paired"]  # each closed-loop target also back to back with its reference
    for key in ("one_client", "many_clients"):
        rounds = paired[key]["rounds"]
        assert [list(pair) for pair in rounds] == [["served", "reference", "ratio"], ["reference", "served", "ratio"]]
        assert all(pair["ratio"] == pair["served"] / pair["reference"] for pair in rounds)
    assert "median of 2 rounds back to back" in next(t for t in results["targets"] if "1 client" in t["name"])["detail"]
    assert all(
        target["value"] is not None
        for target in results["targets"]
        if "optimum" not in target["name"] and "int8" not in target["name"]
    )

    assert not [value for value in _strings(results) if value.startswith(("/", str(Path.home())))], "absolute paths"

    table = (out / "results.md").read_text(encoding="utf-8")
    headings = ("## Throughput, end to end", "## Batch-1 latency", "## Accuracy", "Padding left", "## Service")
    for heading in (*headings, "Paired rounds", "## Targets"):
        assert heading in table
    assert table in process.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        for plot in ("throughput.png", "latency.png"):
            assert (out / plot).read_bytes().startswith(b"\x89PNG")


def test_gpu_dry_run_reports_what_it_could_not_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = run_script("benchmarks/gpu.py", "--dry-run", "--out", str(out), "--scratch", str(tmp_path / "scratch"))

    results = json.loads((out / "gpu-results.json").read_text(encoding="utf-8"))
    assert results["dry_run"] and {"machine", "probe", "versions", "config", "contenders"} <= set(results)
    contenders = results["contenders"]
    for name in ("pytorch-cpu", "vigil-cpu"):
        assert contenders[name]["status"] == "ok", contenders[name]
        assert contenders[name]["throughput"]["end_to_end"] and contenders[name]["latency"]["n"] >= 1
    served = contenders["vigil-cpu"]
    assert [run["clients"] for run in served["service"]["closed_loop"]] == [1, 4]
    assert all(run["completed"] > 0 and run["errors"] == 0 for run in served["service"]["closed_loop"])
    assert served["buckets_vs_full_length"]["max_abs_prob_diff"] <= 1e-5
    assert served["accuracy"]["borderline_band"] == 5e-3
    assert "## Targets" in (out / "results.md").read_text(encoding="utf-8")
    processes = {contenders[name]["process"] for name in ("pytorch-cpu", "vigil-cpu")}
    assert len(processes) == 2 and os.getpid() not in processes  # one child process per contender
    if "CUDAExecutionProvider" not in results["probe"]["onnxruntime"].get("providers", []):
        assert contenders["vigil-cuda"]["status"] == "skipped"
        assert "CUDAExecutionProvider" in contenders["vigil-cuda"]["reason"]
        assert f"vigil-cuda: NOT RUN: {contenders['vigil-cuda']['reason']}" in process.stdout
