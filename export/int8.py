"""Accuracy-aware static int8: quantize every weight MatMul, or keep the touchiest layers fp32.

Static QDQ int8 (activation ranges calibrated once, here) gives a tweet the same score
whatever shares its batch. Where its scores miss the int8 tolerance, whole encoder layers stay in
fp32, most sensitive first, up to `MAX_FP32_FLOP_SHARE` of the MatMul FLOPs. Layers, not
single MatMuls, are the unit: a full-size model has 72 weight MatMuls but 12 layers, and each
trial is a quantization and a validation. If no int8 within the cap passes, no int8 is
written and the report says why; the CPU then runs fp32.

Calibration runs once, into the range cache every trial reads.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import graphs, validate
from .table import put_back

__all__ = ["MAX_FP32_FLOP_SHARE", "METHOD", "layer_units", "quantize_accurately"]

log = logging.getLogger(__name__)

# The accuracy-aware fallback may keep at most this share of MatMul FLOPs in fp32.
MAX_FP32_FLOP_SHARE = 0.25
METHOD = "static QDQ of weight MatMul inputs only, MinMax calibration, per-channel int8 weights, fp32 residuals"

_LAYER = re.compile(r"/encoder/layer\.(\d+)/")


def layer_units(flops: dict[str, int]) -> dict[str, list[str]]:
    """MatMul names grouped by encoder layer ("layer.3"); any other MatMul is its own unit."""
    units: dict[str, list[str]] = {}
    for name in flops:
        match = _LAYER.search(name)
        units.setdefault(f"layer.{match.group(1)}" if match else name, []).append(name)
    return units


def quantize_accurately(
    raw: Path,
    light: Path,
    table: tuple[str, Path],
    dst: Path,
    calibration: tuple[np.ndarray, np.ndarray],
    reference: validate.Outputs,
    ids: np.ndarray,
    mask: np.ndarray,
) -> dict[str, Any]:
    """Static int8 into DST; the report says which MatMuls stayed fp32 and each step's figures.

    RAW is the plain fp32 graph, calibrated once; LIGHT is the same graph with a cut
    word-embedding table (`vigil.export.table`), which every trial quantizes before TABLE
    (initializer name, .npy file) is put back. Sensitivity of a layer is the validation
    error of its scores with only that layer quantized. Each step records both verdicts of
    `validate.check` and passes on its scores (`validate.passed`: int8's embeddings inform,
    see `validate`). When no int8 within the cap passes, DST is removed and the report
    carries the `reason`.
    """
    with tempfile.TemporaryDirectory(prefix="vigil-calibration-") as scratch:
        ranges = Path(scratch) / "ranges.json"
        graphs.calibrate(raw, *calibration, ranges)

        def measure(exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> dict[str, Any]:
            graphs.quantize_int8(light, dst, ranges, exclude=tuple(exclude), only=only)
            put_back(dst, dst, *table)
            return validate.check(reference, validate.onnx_outputs(dst, ids, mask), "int8")

        steps = [{"fp32_layers": [], "fp32_nodes": [], **measure()}]
        if validate.passed(steps[0], "int8"):
            return {"method": METHOD, "fp32_nodes": [], "steps": steps}
        flops = graphs.matmul_nodes(light)
        units = layer_units(flops)
        budget = MAX_FP32_FLOP_SHARE * sum(flops.values())
        affordable = {unit: names for unit, names in units.items() if sum(flops[n] for n in names) <= budget}
        sensitivity = {unit: measure(only=names)["validation"]["max_abs_prob_diff"] for unit, names in affordable.items()}
        kept: list[str] = []
        for unit in sorted(sensitivity, key=sensitivity.__getitem__, reverse=True):
            if sum(flops[n] for u in (*kept, unit) for n in units[u]) > budget:
                break
            kept.append(unit)
            nodes = [n for u in kept for n in units[u]]
            steps.append({"fp32_layers": list(kept), "fp32_nodes": nodes, **measure(exclude=nodes)})
            if validate.passed(steps[-1], "int8"):
                log.info("int8 passes with %s in fp32 (%d of %d MatMuls)", ", ".join(kept), len(nodes), len(flops))
                return {"method": METHOD, "fp32_nodes": nodes, "steps": steps, "sensitivity": sensitivity}
    dst.unlink(missing_ok=True)
    reason = (
        f"int8 misses its tolerance even with {len(kept)} of {len(units)} layers in fp32 "
        f"(at most {MAX_FP32_FLOP_SHARE:.0%} of MatMul FLOPs may stay fp32)"
    )
    log.warning("WARNING: %s; the artifact has no int8 variant and CPUs run fp32", reason)
    return {"method": METHOD, "reason": reason, "steps": steps, "sensitivity": sensitivity}
