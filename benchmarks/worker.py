"""One contender, measured in a process of its own: `python -m benchmarks.worker JOB.json`.

The runner starts one worker per contender, one at a time, so that no two contenders share
the two cores, the memory or a thread pool, and so that each runs in its own environment
(Optimum's has an older transformers). A job file says what to load and measure; the
worker writes a result file, and the accuracy subset's probabilities as .npy beside it.
A failure becomes a result with status "failed" and its reason, never a silent gap.

Order within a worker: prepare (cached exports), load, the accuracy subset (which also
warms the model up and gives a first rate to size the throughput points), throughput per
batch size (end to end, and model only), batch-1 latency, then for vigil's service variant
the load runs through the dynamic batcher.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .contenders import KINDS, Contender
from .measure import Budget, batch1_latency, throughput_curves
from .service_load import load_runs
from .workload import padding_fraction

__all__ = ["run_job", "main"]

ACCURACY_BATCH = 64


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return round(time.perf_counter() - started, 3)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Load the job's contender, measure what the job asks, return the results."""
    texts = json.loads(Path(job["texts"]).read_text(encoding="utf-8"))
    contender = KINDS[job["kind"]](**job["options"])
    result: dict[str, Any] = {"status": "ok", "prepare_s": _timed(contender.prepare), "load_s": _timed(contender.load)}
    result["versions"] = contender.versions()

    subset = texts[: job["accuracy_texts"]]
    started = time.perf_counter()
    probabilities = contender.predict(subset, ACCURACY_BATCH).probabilities
    seconds = time.perf_counter() - started
    np.save(job["probabilities"], probabilities)
    result["accuracy_pass"] = {"texts": len(subset), "batch_size": ACCURACY_BATCH, "seconds": round(seconds, 3)}
    if job["only_accuracy"]:
        return result

    rate = len(subset) / seconds
    result["throughput"] = throughput_curves(
        job["name"], contender, texts, job["batch_sizes"], Budget(**job["throughput"]), rate
    )
    latency = job["latency"]
    result["latency"] = batch1_latency(
        job["name"], contender, texts, Budget(latency["seconds"], latency["max_items"]), latency["warmup"]
    )
    classifier = getattr(contender, "classifier", None)  # vigil's: how much padding it computes
    if classifier is not None:
        result["padding_at_64"] = padding_fraction(classifier, texts)
    if job.get("service"):
        result["service"] = load_runs(contender.classifier, texts, job["service"], result["throughput"]["end_to_end"])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the job file named by the one argument; always write a result file."""
    (job_file,) = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    if job.get("vigil_source"):  # a Python without vigil (Optimum's): the checkout's links, ahead of
        sys.path.insert(0, job["vigil_source"])  # the working directory, whose vigil/ has no subpackages
    try:
        result = run_job(job)
    except BaseException as exc:  # noqa: BLE001 - any failure is a result the report must show
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    Path(job["result"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
