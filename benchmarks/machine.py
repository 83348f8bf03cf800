"""What the benchmark ran on: processor, cores, memory, library versions.

Figures from two cores say nothing without the machine beside them. Standard library only,
Linux first (/proc), with portable fallbacks.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["physical_cores", "describe_machine"]


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical processor; empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        fields = (line.split(":", 1) for line in block.splitlines() if ":" in line)
        blocks.append({key.strip(): value.strip() for key, value in fields})
    return blocks


def physical_cores() -> int:
    """Physical cores (not hyper-threads): what ONNX Runtime and PyTorch default to."""
    cores = {(cpu.get("physical id"), cpu.get("core id")) for cpu in _cpuinfo() if "core id" in cpu}
    return len(cores) or os.cpu_count() or 1


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def describe_machine() -> dict[str, object]:
    """Processor model, logical and physical cores, memory, OS and Python."""
    cpus = _cpuinfo()
    return {
        "cpu": (cpus[0].get("model name") if cpus else None) or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


