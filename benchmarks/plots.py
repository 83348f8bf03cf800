"""PNG plots of a results dictionary: throughput against batch size, batch-1 latency.

matplotlib is optional (the `bench` extra): without it `draw` says so and the JSON and
Markdown reports are complete on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw"]


def draw(results: dict[str, Any], out: Path) -> list[Path] | str:
    """Write throughput.png and latency.png into OUT; the files, or why none were drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, or the 'bench' extra)"
    paths = [_throughput(plt, results, out / "throughput.png"), _latency(plt, results, out / "latency.png")]
    return [path for path in paths if path is not None]


def _title(results: dict[str, Any], what: str) -> str:
    machine = results["machine"]
    return f"{what}: {machine['cpu']}, {machine['physical_cores']} cores, sequence length 32"


def _throughput(plt: Any, results: dict[str, Any], path: Path) -> Path | None:
    """Texts/s against batch size: end to end solid, model only dashed, one colour each."""
    figure, axes = plt.subplots(figsize=(9, 5.5))
    drawn = False
    for index, entry in enumerate(results["contenders"].values()):
        colour = f"C{index % 10}"
        for mode, style in (("end_to_end", "-o"), ("model_only", "--")):
            points = entry.get("throughput", {}).get(mode, [])
            if points:
                label = entry["label"] + ("" if mode == "end_to_end" else " (model only)")
                axes.plot(
                    [p["batch_size"] for p in points],
                    [p["texts_per_s"] for p in points],
                    style,
                    color=colour,
                    label=label,
                )
                drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axes.set_xscale("log", base=2)
    sizes = results["config"]["batch_sizes"]
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.set_xlabel("batch size")
    axes.set_ylabel("texts / s")
    axes.set_title(_title(results, "Offline throughput"))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _latency(plt: Any, results: dict[str, Any], path: Path) -> Path | None:
    """Cumulative distribution of batch-1 latency per contender, log time axis."""
    figure, axes = plt.subplots(figsize=(9, 5.5))
    drawn = False
    for index, entry in enumerate(results["contenders"].values()):
        samples = sorted(entry.get("latency", {}).get("samples_ms", []))
        if samples:
            fractions = [(i + 1) / len(samples) for i in range(len(samples))]
            axes.step(
                samples, fractions, where="post", color=f"C{index % 10}", label=f"{entry['label']} (n={len(samples)})"
            )
            drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axes.set_xscale("log")
    axes.set_xlabel("batch-1 latency, end to end (ms)")
    axes.set_ylabel("fraction of requests")
    axes.set_title(_title(results, "Latency distribution"))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
