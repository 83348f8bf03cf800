"""`python -m benchmarks.run` (or `vigil bench`): vigil's speed and accuracy beside its peers.

1. Prepare, once, into the cache: the checkpoint (a random-weight stand-in unless one is
   given), its vigil artifact, and Optimum's virtual environment (`prepare.py`).
2. Measure each contender in a worker process of its own, one after another, so that no
   two share the cores (`worker.py`). "pytorch" runs first: its probabilities on the
   accuracy subset are the fp32 reference; if it is not asked for, it still runs for that.
3. Compare every contender's probabilities with the reference, check the issue's targets,
   and write results.json, results.md and the plots into the output folder.

A contender that cannot run (Optimum's environment cannot be built, a worker fails) is
reported as skipped or failed with its reason, in the Markdown and the JSON alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import numpy as np
from vigil.runtime import VigilError
from vigil.runtime.manifest import Manifest
from vigil.runtime.versions import installed_versions

from . import plots, report
from .config import (
    CONTENDERS,
    FP16_ON_CPU,
    OPTIMUM_IN_QUICK,
    BenchConfig,
    full_config,
    quick_config,
)
from .machine import describe_machine
from .prepare import Prepared, optimum_python, prepare
from .source import REPO, portable, portable_json, vigil_source_path
from .workload import Workload, load_tweets

__all__ = ["command", "run", "write_results"]

_VERSIONS = ("vigil", "numpy", "onnxruntime", "tokenizers", "torch", "transformers", "matplotlib")


@dataclass(frozen=True)
class _Launch:
    """How to start one contender's worker: its kind, options and Python."""

    name: str
    kind: str
    options: dict[str, str]
    python: str = sys.executable
    vigil_source: str | None = None  # where a Python without vigil imports it from (`vigil_source_path`)
    reference_only: bool = False


def run(config: BenchConfig) -> dict[str, Any]:
    """Prepare, measure every contender, compare; return the results dictionary."""
    started = time.perf_counter()
    config = replace(config, cache_dir=config.cache_dir.expanduser().resolve())  # workers run in the checkout
    workload = load_tweets(config.tweets, config.tweet_limit)
    prepared = prepare(config.cache_dir, config.size, config.checkpoint, config.artifact)
    config = _served_variant(config, Manifest.load(prepared.artifact))
    entries = {
        name: {"label": label, "status": "skipped", "reason": _left_out(name, config)}
        for name, label in CONTENDERS.items()
    }
    launches = _launches(config, prepared, entries)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        workload.save(work / "texts.json")
        for number, launch in enumerate(launches, 1):
            print(f"[{number}/{len(launches)}] {launch.name}: {CONTENDERS[launch.name]}", file=sys.stderr, flush=True)
            result = _run_worker(launch, _job(config, launch, work, len(workload.texts)), config.worker_timeout_s)
            entries[launch.name].update(result, reason=result.get("reason"))
            if launch.reference_only:
                entries[launch.name]["reference_only"] = True
        _add_accuracy(entries, work)
    service = _take_service(entries, config)
    results = {
        "schema_version": 1,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": config.quick,
        "machine": describe_machine(),
        "versions": installed_versions(_VERSIONS),
        "config": portable_json(asdict(config)),
        "inputs": _inputs(prepared, workload, config),
        "contenders": entries,
        "service": service,
        "seconds": round(time.perf_counter() - started, 1),
    }
    results["targets"] = report.targets_json(report.targets(results))
    return results


def _served_variant(config: BenchConfig, manifest: Manifest) -> BenchConfig:
    """Serve fp32 where export left int8 out of the artifact, as the CPU then runs by default."""
    if config.service is None or config.service.variant in manifest.variants:
        return config
    return replace(config, service=replace(config.service, variant="fp32"))


def _left_out(name: str, config: BenchConfig) -> str:
    """Why NAME does not run, for the report, should it not."""
    if name == "vigil-fp16":
        return FP16_ON_CPU
    if name == "optimum" and config.quick:
        return OPTIMUM_IN_QUICK
    return "not among --contenders"


def _launches(config: BenchConfig, prepared: Prepared, entries: dict[str, dict[str, Any]]) -> list[_Launch]:
    """One launch per selected contender (and the reference), in CONTENDERS order; the
    reason for each that cannot start goes into ENTRIES."""
    launches = []
    for name in CONTENDERS:
        selected = name in config.contenders
        if not selected and name != report.REFERENCE:
            continue
        try:
            launches.append(_launch(name, config, prepared, reference_only=not selected))
        except RuntimeError as exc:  # Optimum's environment cannot be built, or a variant is missing
            entries[name]["reason"] = str(exc)
    return launches


def _launch(name: str, config: BenchConfig, prepared: Prepared, *, reference_only: bool) -> _Launch:
    checkpoint, derived = str(prepared.checkpoint), prepared.derived
    if name.startswith("vigil-"):
        variant = name.removeprefix("vigil-")
        manifest = Manifest.load(prepared.artifact)
        if variant not in manifest.variants:
            why = manifest.raw.get("int8_omitted", {}).get("reason", "not exported") if variant == "int8" else "not exported"
            raise RuntimeError(f"the artifact has no {variant} variant: {why}")
        options = {"artifact": str(prepared.artifact), "provider": "cpu", "variant": variant}
        return _Launch(name, "vigil", options)
    if name == "onnxruntime":
        return _Launch(name, name, {"checkpoint": checkpoint, "onnx_path": str(derived / "plain-fp32.onnx")})
    if name == "optimum":
        python = str(optimum_python(config.cache_dir))
        source = vigil_source_path(config.cache_dir / "source")  # vigil is not installed in that environment
        options = {"checkpoint": checkpoint, "export_dir": str(derived / "optimum")}
        return _Launch(name, name, options, python, str(source))
    return _Launch(name, name, {"checkpoint": checkpoint}, reference_only=reference_only)


def _job(config: BenchConfig, launch: _Launch, work: Path, texts: int) -> dict[str, Any]:
    """The worker's job file contents."""
    service = config.service
    return {
        "name": launch.name,
        "kind": launch.kind,
        "options": launch.options,
        "texts": str(work / "texts.json"),
        "accuracy_texts": min(config.accuracy_texts, texts),
        "only_accuracy": launch.reference_only,
        "vigil_source": launch.vigil_source,
        "batch_sizes": list(config.batch_sizes),
        "throughput": {"seconds": config.seconds, "max_items": config.max_texts},
        "latency": {
            "seconds": config.latency_seconds,
            "max_items": config.latency_requests,
            "warmup": config.latency_warmup,
        },
        "service": service.job() if service and launch.name == f"vigil-{service.variant}" else None,
        "probabilities": str(work / f"{launch.name}.npy"),
        "result": str(work / f"{launch.name}.result.json"),
    }


def _run_worker(launch: _Launch, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one worker process to its end; its result, or why there is none."""
    job_file = Path(job["result"]).with_name(f"{launch.name}.job.json")
    job_file.write_text(json.dumps(job), encoding="utf-8")
    command = [launch.python, "-m", "benchmarks.worker", str(job_file)]
    try:
        code = subprocess.run(command, cwd=REPO, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"stopped after {timeout_s:g} s (worker_timeout_s)"}
    result_file = Path(job["result"])
    if not result_file.is_file():
        return {"status": "failed", "reason": f"the worker exited with status {code} and no result (out of memory?)"}
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if result["status"] != "ok":
        print(result.get("traceback", result["reason"]), file=sys.stderr)
    return result


def _add_accuracy(entries: dict[str, dict[str, Any]], work: Path) -> None:
    """Each measured contender's agreement with the PyTorch fp32 reference."""
    reference_file = work / f"{report.REFERENCE}.npy"
    if not reference_file.is_file():
        return  # the reference failed: the report shows why, and no accuracy
    reference = np.load(reference_file)
    for name, entry in entries.items():
        if entry["status"] == "ok":
            entry["accuracy"] = report.compare(reference, np.load(work / f"{name}.npy"))


def _take_service(entries: dict[str, dict[str, Any]], config: BenchConfig) -> dict[str, Any] | None:
    """The service runs, moved out of their contender's entry into their own section."""
    if config.service is None:
        return None
    service = entries[f"vigil-{config.service.variant}"].pop("service", None)
    return {"variant": config.service.variant, **service} if service else None


def _inputs(prepared: Prepared, workload: Workload, config: BenchConfig) -> dict[str, Any]:
    return {
        "checkpoint": portable(prepared.checkpoint),
        "artifact": portable(prepared.artifact),
        "random_weights": prepared.random_weights,
        "tweets": {"source": portable(workload.source), "count": len(workload.texts), "languages": workload.languages},
        "accuracy_texts": min(config.accuracy_texts, len(workload.texts)),
    }


def write_results(results: dict[str, Any], out: Path, *, draw: bool = True) -> list[Path]:
    """Write results.json, results.md and (if DRAW and matplotlib is there) the plots."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    written[0].write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written[1].write_text(report.markdown(results, report.targets(results)), encoding="utf-8")
    if draw:
        drawn = plots.draw(results, out)
        if isinstance(drawn, str):
            print(f"no plots: {drawn}", file=sys.stderr)
        else:
            written += drawn
    return written


def _ints(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(item) for item in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(item.strip() for item in value.split(",") if item.strip())


_DIRECTORY = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("bench")
@click.option(
    "--quick", is_flag=True, help="Smoke test: tiny stand-in, few tweets, seconds per contender; figures mean nothing."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder. [default: benchmarks/results/cpu, or .../quick]",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Stand-ins, exports, Optimum's environment. [default: ~/.cache/vigil-bench]",
)
@click.option(
    "--checkpoint", type=_DIRECTORY, help="Checkpoint directory to compare on. [default: a random-weight stand-in]"
)
@click.option("--artifact", type=_DIRECTORY, help="Its vigil artifact. [default: exported into the cache]")
@click.option(
    "--tweets",
    type=click.Path(exists=True, path_type=Path),
    help="A folder with one .txt per language, or one .txt; a tweet a line. [default: data/tweets]",
)
@click.option(
    "--limit", "tweet_limit", type=click.IntRange(min=1), help="Use only the first N tweets (languages mixed)."
)
@click.option("--contenders", callback=_names, help=f"Comma-separated, from: {', '.join(CONTENDERS)}.")
@click.option(
    "--batch-sizes",
    callback=_ints,
    help="Comma-separated throughput batch sizes. [default: 1,8,32,64,128,256,512,1024]",
)
@click.option(
    "--seconds", type=click.FloatRange(min=0, min_open=True), help="Target time of one throughput point. [default: 2]"
)
@click.option(
    "--accuracy-texts", type=click.IntRange(min=1), help="Tweets every contender scores for accuracy. [default: 512]"
)
@click.option("--no-service", is_flag=True, help="Skip the load runs through vigil's Service.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def command(quick: bool, no_service: bool, no_plots: bool, **options: Any) -> None:
    """Speed and accuracy of vigil beside the model card's pipeline, PyTorch, ONNX Runtime and Optimum."""
    overrides = {name: value for name, value in options.items() if value is not None}
    if no_service:
        overrides["service"] = None
    if no_plots:
        overrides["plots"] = False
    try:
        config = (quick_config if quick else full_config)(**overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        results = run(config)
    except (FileNotFoundError, VigilError) as exc:  # no tweets, or an unusable artifact
        raise click.ClickException(str(exc)) from None
    written = write_results(results, config.out, draw=config.plots)
    click.echo(written[1].read_text(encoding="utf-8"))
    click.echo("wrote " + ", ".join(str(path) for path in written), err=True)


if __name__ == "__main__":
    command()
