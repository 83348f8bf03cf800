"""Ray overhead and actor scaling, side by side in one run: `python -m benchmarks.ray_scaling ARTIFACT`.

Contenders, all on the same Parquet file of every tweet, each round in turn:
  - local: `vigil classify IN.parquet -o OUT.parquet` in a child process (ONNX Runtime's
    default threads: one per physical core);
  - ray-1x2: `score_dataset` then `write_parquet` on an already started local cluster, one
    actor at two threads;
  - ray-2x1: the same, two actors at one thread each.
Figures are tweets per second, wall clock from submission to the last row written (actor
start-up and model load included, cluster start-up not: that is paid once per session and is
reported apart). With `--times K`, the same contenders also score the tweets repeated K
times; the difference of the two sizes gives each contender's steady-state (marginal) rate,
free of the fixed start-up cost that dominates small inputs on a tiny model. The machine is
shared: the load average is recorded with the figures, and ratios from the same round are
what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .source import REPO
from .workload import load_tweets

DEFAULT_TWEETS = REPO / "data" / "tweets"
POOLS = {"ray-1x2": {"actors": 1, "threads": 2, "cpus_per_actor": 1}, "ray-2x1": {"actors": 2, "threads": 1,
                                                                                  "cpus_per_actor": 0.5}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--tweets", type=Path, default=DEFAULT_TWEETS, help="folder of *.txt or one file")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--times", type=int, default=4, help="also score the tweets repeated this many times (1: only once)"
    )
    parser.add_argument("--variant", default=None)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vigil-ray-bench-") as work:
        figures = run(args.artifact, args.tweets, Path(work), args.rounds, args.variant, args.times)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


def run(artifact: Path, tweets: Path, work: Path, rounds: int, variant: str | None, times: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    texts = list(load_tweets(tweets).texts)
    sizes = {1: len(texts), times: len(texts) * times}
    for k in sizes:
        table = pa.table({"id": list(range(len(texts) * k)), "text": texts * k})
        pq.write_table(table, work / f"tweets-x{k}.parquet", row_group_size=2048)
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    cluster_start_s = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    names = ["local", *POOLS]
    seconds: dict[int, dict[str, list[float]]] = {k: {name: [] for name in names} for k in sizes}
    loads = [os.getloadavg()]
    try:
        for round_ in range(rounds):
            for k in sizes:
                source, out = work / f"tweets-x{k}.parquet", work / f"out-{round_}-{k}"
                seconds[k]["local"].append(_local(artifact, source, out.with_suffix(".parquet"), variant))
                for name, pool in POOLS.items():
                    seconds[k][name].append(_on_ray(ray, artifact, source, out, variant, pool))
                loads.append(os.getloadavg())
    finally:
        ray.shutdown()
    best = {k: {name: min(values) for name, values in by_name.items()} for k, by_name in seconds.items()}
    rate = {name: sizes[1] / best[1][name] for name in names}
    figures = {
        "ray-1x2 / local (x1)": round(rate["ray-1x2"] / rate["local"], 3),
        "ray-2x1 / ray-1x2 (x1)": round(rate["ray-2x1"] / rate["ray-1x2"], 3),
    }
    if times > 1:  # a second size: the marginal (steady-state) rates
        marginal = {name: (sizes[times] - sizes[1]) / (best[times][name] - best[1][name]) for name in names}
        figures |= {
            "marginal_tweets_per_s": {name: round(value, 1) for name, value in marginal.items()},
            "ray-1x2 / local (marginal)": round(marginal["ray-1x2"] / marginal["local"], 3),
            "ray-2x1 / ray-1x2 (marginal)": round(marginal["ray-2x1"] / marginal["ray-1x2"], 3),
        }
    return {
        "tweets": sizes,
        "artifact": artifact.name,
        "cpus": os.cpu_count(),
        "cluster_start_s": round(cluster_start_s, 1),
        "seconds": {f"x{k}": {n: [round(v, 2) for v in vs] for n, vs in by.items()} for k, by in seconds.items()},
        "tweets_per_s_x1_best": {name: round(value, 1) for name, value in rate.items()},
        **figures,
        "load_average_1_5_15": [[round(x, 2) for x in load] for load in loads],
    }


def _local(artifact: Path, source: Path, out: Path, variant: str | None) -> float:
    argv = [sys.executable, "-m", "vigil.cli", "classify", str(artifact), str(source), "-o", str(out), "-q"]
    argv += ["--variant", variant] if variant else []
    started = time.perf_counter()
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _on_ray(ray: Any, artifact: Path, source: Path, out: Path, variant: str | None, pool: dict[str, Any]) -> float:
    from vigil.distributed import score_dataset

    started = time.perf_counter()
    ds = ray.data.read_parquet(str(source))
    score_dataset(ds, artifact.resolve(), variant=variant, provider="cpu", **pool).write_parquet(str(out))
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


if __name__ == "__main__":
    main()
