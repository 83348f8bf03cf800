"""What one benchmark run measures, and the two presets: the full run and `--quick`.

The full run is sized for two cores and the full-size model, where one tweet costs tens of
milliseconds: every measurement is capped by time and by count, and a run takes about a
quarter of an hour (plus, the first time, the exports and Optimum's environment). The quick
run is a smoke test of the whole plumbing on the tiny stand-in: seconds per contender,
figures that mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vigil.runtime.checks import require_int, require_ints, require_number

from .source import REPO
from .workload import DEFAULT_TWEETS

__all__ = [
    "CONTENDERS",
    "FP16_ON_CPU",
    "OPTIMUM_IN_QUICK",
    "DEFAULT_CACHE",
    "ServiceConfig",
    "BenchConfig",
    "full_config",
    "quick_config",
]

DEFAULT_CACHE = Path.home() / ".cache" / "vigil-bench"
RESULTS = REPO / "benchmarks" / "results"

# Every contender the runner knows, with its label, in the order they run. "pytorch" runs
# first: its probabilities are the fp32 reference every other contender is compared with.
CONTENDERS = {
    "pytorch": "PyTorch eager fp32",
    "pipeline": "transformers pipeline (model card)",
    "onnxruntime": "ONNX Runtime, plain fp32 export",
    "optimum": "Optimum ORTModel fp32",
    "vigil-fp32": "vigil fp32",
    "vigil-int8": "vigil int8",
    "vigil-fp16": "vigil fp16 (CPU: through casts)",
}
# Why the contenders that a default or quick run leaves out are left out.
FP16_ON_CPU = (
    "not run by default: ONNX Runtime's CPU provider runs the fp16 graph through casts to fp32, which measures "
    "the casts, not fp16; benchmarks/gpu.py measures fp16 (ask for it with --contenders)"
)
OPTIMUM_IN_QUICK = "not run by --quick: it needs its own virtual environment (minutes to build the first time)"
DEFAULT_CONTENDERS = tuple(name for name in CONTENDERS if name != "vigil-fp16")


@dataclass(frozen=True)
class ServiceConfig:
    """Load through vigil's Service (the dynamic batcher), on one vigil variant.

    Attributes:
        variant: The variant served; its contender ("vigil-<variant>") must be selected.
        clients: Closed-loop runs, one per count of concurrent client threads.
        rate_fractions: Open-loop runs, at these fractions of the variant's offline peak.
        seconds: Length of each run; `max_requests` caps its count too.
        paired_rounds: Rounds that measure the two closed-loop targets against their
            references back to back (1 client against direct `predict([text])`, 16 clients
            against offline batch 32), alternating which goes first; 0 skips them.
        max_batch_size, max_wait_s, queue_size: The batcher's settings.
    """

    variant: str = "int8"
    clients: tuple[int, ...] = (1, 4, 16, 64)
    rate_fractions: tuple[float, ...] = (0.5, 0.8, 0.95)
    seconds: float = 6.0
    max_requests: int = 5000
    paired_rounds: int = 3
    max_batch_size: int = 64
    max_wait_s: float = 0.0  # work-conserving, as `vigil serve` runs by default
    queue_size: int = 4096

    def __post_init__(self) -> None:
        require_ints("clients", self.clients)
        for fraction in self.rate_fractions:
            require_number("rate fraction", fraction, positive=True)
        require_number("service seconds", self.seconds, positive=True)
        require_int("paired rounds", self.paired_rounds, 0)

    def job(self) -> dict[str, Any]:
        """The worker's service spec."""
        return {
            "clients": list(self.clients),
            "rate_fractions": list(self.rate_fractions),
            "seconds": self.seconds,
            "max_requests": self.max_requests,
            "paired_rounds": self.paired_rounds,
            "batcher": {
                "max_batch_size": self.max_batch_size,
                "max_wait_s": self.max_wait_s,
                "queue_size": self.queue_size,
            },
        }


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        quick: The smoke-test preset (recorded in the results).
        out: Folder for results.json, results.md and the plots.
        cache_dir: Stand-ins, exports and Optimum's environment, reused across runs.
        tweets: A folder with one .txt per language, or one .txt; a tweet a line.
        tweet_limit: Use only the first N tweets after mixing; None for all.
        size: Stand-in size built when no checkpoint is given: "full" or "tiny".
        checkpoint: A checkpoint directory instead of the stand-in.
        artifact: An artifact exported from `checkpoint`, instead of exporting one.
        contenders: Which contenders run, from `CONTENDERS`.
        batch_sizes: Throughput points.
        seconds: Target time of one throughput point (at least one batch is run).
        max_texts: Most texts in one throughput point.
        latency_seconds, latency_requests: Budget of the batch-1 latency run.
        latency_warmup: Untimed requests before it.
        accuracy_texts: The subset every contender scores for the accuracy comparison.
        service: The Service load runs; None to skip them.
        plots: Draw PNGs (needs matplotlib).
        worker_timeout_s: A contender's process is stopped after this long.
    """

    quick: bool = False
    out: Path = RESULTS / "cpu"
    cache_dir: Path = DEFAULT_CACHE
    tweets: Path = DEFAULT_TWEETS
    tweet_limit: int | None = None
    size: str = "full"
    checkpoint: Path | None = None
    artifact: Path | None = None
    contenders: tuple[str, ...] = DEFAULT_CONTENDERS
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64, 128, 256, 512, 1024)
    seconds: float = 2.0
    max_texts: int = 4096
    latency_seconds: float = 10.0
    latency_requests: int = 2000
    latency_warmup: int = 5
    accuracy_texts: int = 512
    service: ServiceConfig | None = field(default_factory=ServiceConfig)
    plots: bool = True
    worker_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.contenders) - set(CONTENDERS))
        if unknown or not self.contenders:
            raise ValueError(f"unknown contenders {unknown or 'none given'}; choose from {', '.join(CONTENDERS)}")
        require_ints("batch sizes", self.batch_sizes)
        require_ints("accuracy texts", (self.accuracy_texts,))
        for name in ("seconds", "latency_seconds", "worker_timeout_s"):
            require_number(name, getattr(self, name), positive=True)
        if self.size not in ("full", "tiny"):
            raise ValueError(f"size must be 'full' or 'tiny', got {self.size!r}")
        if self.artifact is not None and self.checkpoint is None:
            raise ValueError("an artifact needs the checkpoint it was exported from (--checkpoint)")
        if self.service is not None and f"vigil-{self.service.variant}" not in self.contenders:
            raise ValueError(
                f"the service runs on vigil-{self.service.variant}, which is not among the contenders: "
                "add it, or pass --no-service"
            )


def full_config(**overrides: Any) -> BenchConfig:
    """The full run: full-size stand-in, every tweet, batch sizes 1 to 1024."""
    return replace(BenchConfig(), **overrides)


def quick_config(**overrides: Any) -> BenchConfig:
    """The smoke test: tiny stand-in, few tweets, three batch sizes, no Optimum environment."""
    quick = BenchConfig(
        quick=True,
        out=RESULTS / "quick",
        size="tiny",
        tweet_limit=512,
        contenders=tuple(name for name in DEFAULT_CONTENDERS if name != "optimum"),
        batch_sizes=(1, 32, 64),
        seconds=0.2,
        max_texts=256,
        latency_seconds=0.5,
        latency_requests=50,
        latency_warmup=2,
        accuracy_texts=64,
        service=ServiceConfig(
            clients=(1, 16), rate_fractions=(0.5, 0.8), seconds=0.5, max_requests=200, paired_rounds=2
        ),
        worker_timeout_s=600.0,
    )
    return replace(quick, **overrides)
