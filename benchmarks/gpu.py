"""GPU benchmark: vigil on TensorRT and on CUDA (with and without CUDA graphs) against PyTorch fp16.

Run it from a copy of the repository on a machine with one CUDA GPU; vigil need not be
installed:

    python benchmarks/gpu.py --out DIR      sized for under 8 minutes on one H200
    python benchmarks/gpu.py --dry-run      on a CPU, seconds: checks the plumbing only

Steps, each printed as it happens:

1. Probe what the machine has: torch and CUDA, transformers, onnx, onnxruntime and its
   providers, the TensorRT 10 libraries, vigil. Every contender ruled out is printed with
   the reason, never dropped silently.
2. Build a full-size random-weight stand-in in a scratch folder (reused by a rerun), and,
   only if ONNX Runtime offers a GPU provider, its vigil artifact.
3. For each contender that can run: agreement with PyTorch fp32 on the same device, then
   end-to-end and model-only throughput per batch size, then batch-1 latency; for vigil
   with sequence buckets, how far the buckets move a score from the full length; for the
   served contender, closed-loop clients through `vigil.runtime.Service`. Figures are
   printed per contender and all of them are written to DIR/gpu-results.json.

Contenders: PyTorch fp16 (`model.half()` on torch.cuda, same batches); vigil with
provider "tensorrt" (variant fp16, one dynamic profile at the full length, so no CUDA
graph: see shared/notes/GPU.md); vigil with provider "cuda" (variant fp16-fused) with a
CUDA graph per (batch, sequence) bucket, the same at the full length only, and without
graphs. Each contender is measured in a process of its own, one after the other (as
benchmarks/run.py does on the CPU), so that a sticky CUDA error in one, such as an
invalidated graph capture, cannot poison the ones after it: this script runs itself with
`--contender JOB.json`, and a crashed or hung child is reported as that contender's failure.

Tweets: the repository's data/tweets (24,248 tweets in 8 languages), or --tweets.

--dry-run does all of it on the CPU with the tiny stand-in and tiny budgets: the GPU
contenders are probed and reported unavailable, and two CPU stand-ins (PyTorch fp32 and
vigil on the CPU provider) exercise the measuring code. Its figures mean nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a file: make `benchmarks` importable as a package

try:
    from benchmarks.contenders import Contender, PyTorchEager, Vigil
    from benchmarks.machine import describe_machine
    from benchmarks.measure import Budget, batch1_latency, throughput_curves
    from benchmarks.gpu_report import write_report
    from benchmarks.report import compare
    from benchmarks.service_load import load_runs
    from benchmarks.source import ensure_vigil_importable, portable, portable_json
    from benchmarks.workload import DEFAULT_TWEETS, load_tweets
except ImportError as exc:  # the one thing this script cannot work around
    sys.exit(f"benchmarks/gpu.py needs numpy and tqdm in this Python ({sys.executable}): {exc}")

VOCAB = REPO / "export" / "data" / "smaller-labse-vocab.txt"
ACCURACY_TEXTS = 1024
ACCURACY_BATCH = 64
FP16_BAND = 5e-3  # export's fp16 tolerance (vigil.export.validate): flips within it of 0.5 are borderline


@dataclass(frozen=True)
class GpuConfig:
    """One GPU run; `--dry-run` shrinks everything to the tiny stand-in on the CPU."""

    dry_run: bool
    out: Path
    scratch: Path
    tweets: Path
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64, 128, 256, 512, 1024)
    seconds: float = 0.75
    max_texts: int = 65536
    latency_seconds: float = 2.0
    latency_requests: int = 2000
    max_batch_size: int = 256  # vigil's default: larger batches run in chunks of 256
    contender_timeout_s: float = 240.0  # one contender's process (a TensorRT engine build takes minutes)
    service_clients: tuple[int, ...] = (1, 16, 64)  # closed-loop client threads, one run each
    service_seconds: float = 2.0

    @classmethod
    def dry(cls, out: Path, scratch: Path, tweets: Path) -> GpuConfig:
        """The dry run's sizes: two batch sizes, fractions of a second each."""
        return cls(
            True,
            out,
            scratch,
            tweets,
            batch_sizes=(1, 32),
            seconds=0.1,
            max_texts=128,
            latency_seconds=0.2,
            latency_requests=20,
            max_batch_size=32,
            contender_timeout_s=300.0,
            service_clients=(1, 4),
            service_seconds=0.2,
        )


@dataclass(frozen=True)
class Entry:
    """A contender of this run: how to build it, or why it cannot run here."""

    name: str
    label: str
    build: Callable[[], Contender] | None
    reason: str | None = None
    service: bool = False  # also measured through vigil's Service


def say(message: str) -> None:
    print(message, flush=True)


# --- 1. probe -------------------------------------------------------------------------


def _module(name: str) -> ModuleType | str:
    """The imported module, or why it cannot be imported."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a library that fails while loading
        return f"{name} cannot be imported ({type(exc).__name__}: {exc})"


def _tensorrt_libraries() -> str | None:
    """Load TensorRT 10 globally for ONNX Runtime's provider; None if loaded, else why not."""
    if importlib.util.find_spec("tensorrt_libs") is not None:
        importlib.import_module("tensorrt_libs")  # pip's TensorRT wheels load their libraries on import
    try:
        for library in ("libnvinfer.so.10", "libnvonnxparser.so.10"):
            ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        return f"TensorRT 10 libraries cannot be loaded ({exc}); pip install 'tensorrt-cu13>=10.13,<11'"
    return None


def probe(scratch: Path) -> dict[str, Any]:
    """What this machine offers; for each piece, its version or why it is missing."""
    found: dict[str, Any] = {}
    torch = _module("torch")  # first: its CUDA libraries are then there for onnxruntime too
    if isinstance(torch, str):
        found["torch"] = {"missing": torch}
    else:
        cuda = torch.cuda.is_available()
        found["torch"] = {
            "version": torch.__version__,
            "cuda": cuda,
            "cuda_version": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None,
        }
    for name in ("transformers", "onnx"):
        module = _module(name)
        found[name] = {"missing": module} if isinstance(module, str) else {"version": module.__version__}
    ort = _module("onnxruntime")
    if isinstance(ort, str):
        found["onnxruntime"] = {"missing": ort}
    else:
        if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu: CUDA and cuDNN from the nvidia wheels
            ort.preload_dlls()
        found["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    found["tensorrt_libraries"] = {"missing": reason} if (reason := _tensorrt_libraries()) else {"loaded": True}
    found["vigil"] = {"from_checkout": ensure_vigil_importable(scratch / "source")}
    runtime = _module("vigil.runtime")
    if isinstance(runtime, str):
        found["vigil"]["missing"] = runtime
    return found


def _missing(found: dict[str, Any], *names: str) -> str | None:
    reasons = [found[name]["missing"] for name in names if "missing" in found[name]]
    return "; ".join(reasons) or None


def _provider_reason(found: dict[str, Any], provider: str) -> str | None:
    """Why vigil cannot use PROVIDER ("TensorrtExecutionProvider", ...) here, or None."""
    missing = _missing(found, "vigil", "onnxruntime")
    if missing:
        return missing
    ort = found["onnxruntime"]
    if provider not in ort["providers"]:
        return (
            f"onnxruntime {ort['version']} here offers {ort['providers']}, not {provider}: "
            "vigil's GPU path needs onnxruntime-gpu (CUDA 13 build)"
        )
    if provider == "TensorrtExecutionProvider":
        return _missing(found, "tensorrt_libraries")
    return None


def print_probe(found: dict[str, Any]) -> None:
    say("== what this machine has")
    for name, facts in found.items():
        say(f"  {name:<20} " + ", ".join(f"{key}={value}" for key, value in facts.items()))


# --- 2. the models ------------------------------------------------------------------------


def _standin_module() -> ModuleType:
    """vigil.export.standin, or the same file loaded alone where vigil.export cannot import
    (it needs only torch and transformers)."""
    try:
        return importlib.import_module("vigil.export.standin")
    except ImportError:
        spec = importlib.util.spec_from_file_location("vigil_standin", REPO / "export" / "standin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module


def build_checkpoint(scratch: Path, size: str) -> Path:
    """The random-weight stand-in of SIZE ("full" or "tiny"), built once per scratch folder."""
    out = scratch / f"standin-{size}"
    if out.is_dir():
        return out
    standin = _standin_module()
    partial = scratch / f".standin-{size}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    say(f"== building the {size} random-weight stand-in in {out}")
    standin.write_standin(partial, size=standin.FULL if size == "full" else standin.TINY, vocab_file=VOCAB)
    partial.rename(out)
    return out


def build_artifact(checkpoint: Path, scratch: Path) -> Path:
    """vigil's artifact of CHECKPOINT, exported once per scratch folder (minutes at full size).

    No int8: it is for CPUs, and its calibration would take most of the export's time.
    """
    from vigil.export.artifact import export_artifact

    out = scratch / f"artifact-{checkpoint.name}"
    if not out.is_dir():
        say(f"== exporting {checkpoint} to {out}")
        export_artifact(out, str(checkpoint), variants=("fp16", "fp32"))
    return out


# --- 3. contenders and measurements -------------------------------------------------------


def plan(config: GpuConfig, found: dict[str, Any], checkpoint: Path | str, artifact: Path | str | None) -> list[Entry]:
    """Every contender of this run. CHECKPOINT and ARTIFACT are paths, or (str) the reason
    there is none; ARTIFACT is None before it is built, to ask which contenders need it."""
    torch_missing = _missing(found, "torch", "transformers")
    no_gpu = torch_missing or (None if found["torch"]["cuda"] else "torch sees no CUDA GPU")
    trt = _provider_reason(found, "TensorrtExecutionProvider")
    cuda = _provider_reason(found, "CUDAExecutionProvider")
    pytorch = partial(PyTorchEager, str(checkpoint))
    vigil = partial(Vigil, str(artifact), max_batch_size=config.max_batch_size)
    entries = [
        _entry("pytorch-fp16", "PyTorch fp16 (torch.cuda)", no_gpu, checkpoint,
               partial(pytorch, device="cuda", half=True)),
        _entry("vigil-tensorrt", "vigil TensorRT fp16", trt, artifact, partial(vigil, provider="tensorrt")),
        _entry("vigil-cuda-graphs", "vigil CUDA fp16-fused, CUDA graphs per batch x sequence bucket", cuda,
               artifact, partial(vigil, provider="cuda", cuda_graphs=True, sequence_buckets=True)),
        _entry("vigil-cuda-graphs-32", "vigil CUDA fp16-fused, CUDA graphs, every batch at 32", cuda, artifact,
               partial(vigil, provider="cuda", cuda_graphs=True, sequence_buckets=False), service=True),
        _entry("vigil-cuda-graphs-32-2x", "vigil CUDA fp16-fused, CUDA graphs, every batch at 32, two replicas "
               "(two batches in flight)", cuda, artifact,
               partial(vigil, provider="cuda", cuda_graphs=True, sequence_buckets=False, replicas=2), service=True),
        _entry("vigil-cuda", "vigil CUDA fp16-fused, no graphs", cuda, artifact,
               partial(vigil, provider="cuda", cuda_graphs=False, sequence_buckets=True)),
    ]  # fmt: skip
    if config.dry_run:
        vigil_missing = _missing(found, "vigil", "onnxruntime")
        entries += [
            _entry("pytorch-cpu", "PyTorch fp32 on the CPU (dry run)", torch_missing, checkpoint, pytorch),
            _entry("vigil-cpu", "vigil fp32 on the CPU (dry run)", vigil_missing, artifact,
                   partial(vigil, provider="cpu", variant="fp32"), service=True),
        ]  # fmt: skip
    return entries


def _entry(
    name: str,
    label: str,
    reason: str | None,
    needed: Path | str | None,
    build: Callable[[], Contender],
    service: bool = False,
) -> Entry:
    if reason is None and isinstance(needed, str):
        reason = needed
    return Entry(name, label, None if reason else build, reason, service)


def reference(checkpoint: Path, texts: list[str], device: str) -> Any:
    """PyTorch fp32 probabilities on the accuracy subset, on DEVICE."""
    contender = PyTorchEager(str(checkpoint), device=device)
    contender.load()
    probabilities = contender.predict(texts, ACCURACY_BATCH).probabilities
    del contender
    gc.collect()
    return probabilities


def measure(entry: Entry, texts: list[str], ref: Any, config: GpuConfig) -> dict[str, Any]:
    """Load ENTRY's contender, then accuracy, throughput and latency; print each figure."""
    contender = entry.build()
    started = time.perf_counter()
    contender.load()
    result: dict[str, Any] = {"status": "ok", "load_s": round(time.perf_counter() - started, 2)}
    result["versions"] = contender.versions()
    subset = texts[: len(ref)]
    started = time.perf_counter()
    probabilities = contender.predict(subset, ACCURACY_BATCH).probabilities  # also the warm-up
    rate = len(subset) / (time.perf_counter() - started)
    result["accuracy"] = compare(ref, probabilities, FP16_BAND)
    for batch_size in config.batch_sizes:  # kernels, cuBLAS heuristics and allocators settle per shape
        contender.predict(texts[-3 * batch_size :], batch_size)
    budget = Budget(config.seconds, config.max_texts)
    result["throughput"] = throughput_curves(entry.name, contender, texts, config.batch_sizes, budget, rate)
    latency_budget = Budget(config.latency_seconds, config.latency_requests)
    result["latency"] = batch1_latency(entry.name, contender, texts, latency_budget, warmup=20)
    classifier = getattr(contender, "classifier", None)
    if classifier is not None and classifier.sequence_buckets:
        result["buckets_vs_full_length"] = bucket_difference(classifier, subset)
    if entry.service:
        spec = {
            "batcher": {"max_batch_size": config.max_batch_size, "max_wait_s": 0.0, "queue_size": 4096},
            "clients": list(config.service_clients),
            "rate_fractions": [],
            "seconds": config.service_seconds,
            "max_requests": config.max_texts,
        }
        result["service"] = load_runs(classifier, texts, spec, result["throughput"]["end_to_end"])
    print_result(entry, result)
    return result


def bucket_difference(classifier: Any, texts: list[str]) -> dict[str, Any]:
    """Max |probability difference| of TEXTS scored at their sequence buckets against the
    same classifier at the full length: right padding under a mask must not move a score."""
    import numpy as np

    buckets = classifier.sequence_buckets
    bucketed = classifier.predict(texts, batch_size=ACCURACY_BATCH)
    classifier.sequence_buckets = ()
    try:
        full = classifier.predict(texts, batch_size=ACCURACY_BATCH)
    finally:
        classifier.sequence_buckets = buckets
    return {"buckets": list(buckets), "texts": len(texts), "max_abs_prob_diff": float(np.abs(bucketed - full).max())}


def print_result(entry: Entry, result: dict[str, Any]) -> None:
    say(f"== {entry.name}: {entry.label} (load {result['load_s']} s; {result['versions']})")
    model_only = {p["batch_size"]: p["texts_per_s"] for p in result["throughput"]["model_only"]}
    say(f"  {'batch':>6} {'end-to-end texts/s':>20} {'model-only texts/s':>20}")
    for point in result["throughput"]["end_to_end"]:
        b = point["batch_size"]
        only = f"{model_only[b]:,.1f}" if b in model_only else "-"
        say(f"  {b:>6} {point['texts_per_s']:>20,.1f} {only:>20}")
    latency = result["latency"]
    percentiles = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")
    figures = "  ".join(f"{key.removesuffix('_ms')} {latency[key]:.3f}" for key in percentiles)
    say(f"  batch-1 latency ms: {figures}  (n={latency['n']})")
    accuracy = result["accuracy"]
    agreement, difference = accuracy["label_agreement"], accuracy["max_abs_prob_diff"]
    say(f"  vs PyTorch fp32: labels {agreement:.2%} agree, max |dp| {difference:.1e}")
    if "buckets_vs_full_length" in result:
        buckets = result["buckets_vs_full_length"]
        say(f"  sequence buckets {buckets['buckets']} vs full length: max |dp| {buckets['max_abs_prob_diff']:.1e}")
    for run in result.get("service", {}).get("closed_loop", []):
        p50, p99 = (run["latency"].get(key, float("nan")) for key in ("p50_ms", "p99_ms"))
        say(
            f"  Service, {run['clients']:>3} closed-loop clients: {run['achieved_rate']:,.0f} texts/s, "
            f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, mean batch {run['mean_batch_size']:.1f}, "
            f"p50 / batch-1 p50 {p50 / latency['p50_ms']:.2f}x"
        )


def run(config: GpuConfig) -> dict[str, Any]:
    """Probe, build, measure; the results dictionary (also written to the output folder)."""
    started = time.perf_counter()
    config.scratch.mkdir(parents=True, exist_ok=True)
    found = probe(config.scratch)
    print_probe(found)
    device = "cpu" if config.dry_run else "cuda"
    checkpoint = _attempt(
        "stand-in",
        lambda: build_checkpoint(config.scratch, "tiny" if config.dry_run else "full"),
        _missing(found, "torch", "transformers"),
    )
    wants_artifact = any(e.build for e in plan(config, found, checkpoint, None) if e.name.startswith("vigil-"))
    artifact = _attempt(
        "artifact",
        lambda: build_artifact(checkpoint, config.scratch),
        None if wants_artifact else "no vigil contender can run here, so no artifact was built",
    )
    entries = plan(config, found, checkpoint, artifact)
    tweets = load_tweets(config.tweets).texts
    ref = _attempt(
        "PyTorch fp32 reference",
        lambda: reference(checkpoint, list(tweets[:ACCURACY_TEXTS]), device),
        _missing(found, "torch", "transformers") or (None if isinstance(checkpoint, Path) else checkpoint),
    )
    if not isinstance(ref, str):
        import numpy as np

        np.save(config.scratch / "reference.npy", ref)
    contenders: dict[str, Any] = {}
    for entry in entries:
        if entry.build is None or isinstance(ref, str):
            reason = entry.reason or f"no reference to compare with: {ref}"
            say(f"== {entry.name}: NOT RUN: {reason}")
            contenders[entry.name] = {"label": entry.label, "status": "skipped", "reason": reason}
            continue
        job = {"name": entry.name, "checkpoint": str(checkpoint), "artifact": str(artifact)}
        contenders[entry.name] = {"label": entry.label, **measure_in_child(job, config)}
    from vigil.runtime.versions import (
        installed_versions,  # after ensure_vigil_importable
    )

    return {
        "dry_run": config.dry_run,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
        "probe": found,
        "versions": installed_versions(
            ("vigil", "torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt-cu13")
        ),
        "config": portable_json(asdict(config)),
        "tweets": {"source": portable(config.tweets), "count": len(tweets)},
        "contenders": contenders,
    }


def measure_in_child(job: dict[str, str], config: GpuConfig) -> dict[str, Any]:
    """`measure` of one contender in a fresh process; its result, or why there is none."""
    work = config.scratch / "jobs"
    work.mkdir(exist_ok=True)
    job_file, result_file = work / f"{job['name']}.json", work / f"{job['name']}-result.json"
    result_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps({**job, "result": str(result_file)}), encoding="utf-8")
    command = [sys.executable, str(Path(__file__).resolve()), "--contender", str(job_file)]
    command += ["--scratch", str(config.scratch), "--tweets", str(config.tweets)]
    command += ["--dry-run"] if config.dry_run else []
    try:
        code = subprocess.run(command, cwd=REPO, timeout=config.contender_timeout_s).returncode
    except subprocess.TimeoutExpired:
        reason = f"stopped after {config.contender_timeout_s:g} s (contender_timeout_s)"
    else:
        if result_file.exists():
            return json.loads(result_file.read_text(encoding="utf-8"))
        reason = f"its process exited with status {code} and no result"
    say(f"== {job['name']}: FAILED: {reason}")
    return {"status": "failed", "reason": reason}


def run_contender(config: GpuConfig, job_file: Path) -> None:
    """The child's side of `measure_in_child`: probe again, measure the job's contender, write its result."""
    import numpy as np

    job = json.loads(job_file.read_text(encoding="utf-8"))
    found = probe(config.scratch)
    (entry,) = [e for e in plan(config, found, Path(job["checkpoint"]), Path(job["artifact"])) if e.name == job["name"]]
    try:
        if entry.build is None:
            raise RuntimeError(f"cannot run in this process: {entry.reason}")
        ref = np.load(config.scratch / "reference.npy")
        result = measure(entry, list(load_tweets(config.tweets).texts), ref, config)
    except Exception as exc:  # reported as this contender's failure, with the reason
        say(f"== {entry.name}: FAILED: {type(exc).__name__}: {exc}")
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    result["process"] = os.getpid()  # shows that each contender had a process of its own
    Path(job["result"]).write_text(json.dumps(portable_json(result), indent=1) + "\n", encoding="utf-8")


def _attempt(what: str, step: Callable[[], Any], reason: str | None) -> Any:
    """STEP's result, or the reason it was not (or could not be) done, as a str."""
    if reason:
        say(f"== {what}: not built: {reason}")
        return reason
    try:
        return step()
    except Exception as exc:
        say(f"== {what}: FAILED: {type(exc).__name__}: {exc}")
        return f"{what} failed: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="results folder [default: benchmarks/results/gpu, or gpu-dry-run]")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vigil-gpu-bench",
        help="stand-in, artifact and TensorRT engines, reused by a rerun [default: %(default)s]",
    )
    parser.add_argument(
        "--tweets",
        type=Path,
        help="folder of .txt files, one tweet a line "
        "[default: data/tweets]",
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny stand-in on the CPU: checks the plumbing only")
    parser.add_argument("--contender", type=Path, metavar="JOB.json", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("vigil").setLevel(logging.INFO)  # export steps and provider placement
    tweets = args.tweets or DEFAULT_TWEETS
    out = args.out or REPO / "benchmarks" / "results" / ("gpu-dry-run" if args.dry_run else "gpu")
    if args.dry_run:
        config = GpuConfig.dry(out, args.scratch, tweets)
        say("DRY RUN on the CPU with the tiny stand-in: the figures below mean nothing")
    else:
        config = GpuConfig(False, out, args.scratch, tweets)
    if args.contender:
        run_contender(config, args.contender)
        return 0
    results = run(config)
    config.out.mkdir(parents=True, exist_ok=True)
    path = config.out / "gpu-results.json"
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    report = write_report(path)
    ran = [name for name, entry in results["contenders"].items() if entry["status"] == "ok"]
    say(f"== done in {results['seconds']} s; measured {ran or 'nothing'}; wrote {path} and {report}")
    say(report.read_text(encoding="utf-8").split("## Targets")[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
