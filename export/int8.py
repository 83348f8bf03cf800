"""Accuracy-aware static int8: quantize every weight MatMul, or keep the touchiest layers fp32.

Static QDQ int8 (activation ranges calibrated once, here) gives a tweet the same score
whatever shares its batch. Weights are tried as signed int8 first, the fastest on x86, then
as uint8: on CPUs without VNNI (AVX2) ONNX Runtime multiplies uint8 activations by int8
weights with an instruction that saturates pairs of products at 16 bits, which uint8 weights
avoid (30 % slower at batch 64 on the full-size model, 2-core AVX2; a 4x256 BERT with wide
weights: 98.06 % agreement on 24,248 tweets with int8 weights, 98.86 % with uint8). Where
both miss the int8 tolerance, whole encoder layers stay in fp32, most sensitive first, up to
`MAX_FP32_FLOP_SHARE` of the MatMul FLOPs, with the more accurate of the two weight types.
Layers, not single MatMuls, are the unit: a full-size model has 72 weight MatMuls but 12
layers, and each trial is a quantization and a validation. If no int8 within the cap passes, no int8 is
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
from .table import put_back, refer_to

__all__ = ["MAX_FP32_FLOP_SHARE", "METHOD", "WEIGHT_TYPES", "layer_units", "quantize_accurately"]

log = logging.getLogger(__name__)

# The accuracy-aware fallback may keep at most this share of MatMul FLOPs in fp32.
MAX_FP32_FLOP_SHARE = 0.25
METHOD = "static QDQ of weight MatMul inputs only, MinMax calibration, per-channel weights, fp32 residuals"
# Weight types tried in order: int8 runs fastest on x86, uint8 never saturates (see above).
WEIGHT_TYPES = ("int8", "uint8")

_LAYER = re.compile(r"/encoder/layer\.(\d+)/")


def layer_units(flops: dict[str, int]) -> dict[str, list[str]]:
    """MatMul names grouped by encoder layer ("layer.3"); any other MatMul is its own unit."""
    units: dict[str, list[str]] = {}
    for name in flops:
        match = _LAYER.search(name)
        units.setdefault(f"layer.{match.group(1)}" if match else name, []).append(name)
    return units


def quantize_accurately(
    light: Path,
    table: tuple[str, Path],
    dst: Path,
    calibration: tuple[np.ndarray, np.ndarray],
    reference: validate.Outputs,
    ids: np.ndarray,
    mask: np.ndarray,
) -> tuple[dict[str, Any], validate.Outputs | None]:
    """Static int8 into DST, with its report and its outputs on IDS/MASK (None when no int8
    passed). The report says its weight type, which MatMuls stayed fp32 and each step's
    figures; the outputs spare export's validation scoring DST again.

    LIGHT is the plain fp32 graph with a cut word-embedding table (`vigil.export.table`):
    every trial quantizes it before TABLE (initializer name, .npy file) is put back, and
    calibration runs once on a copy that reads the full table in place. Sensitivity of a
    layer is the validation error of its scores with only that layer quantized. Each step
    records both verdicts of `validate.check` and passes on its scores (`validate.passed`:
    int8's embeddings inform, see `validate`). When no int8 within the cap passes, DST is
    removed and the report carries the `reason`.
    """
    with tempfile.TemporaryDirectory(prefix="vigil-calibration-") as scratch:
        ranges = Path(scratch) / "ranges.json"
        raw = table[1].with_name("_calibration-fp32.onnx")  # beside the table it refers to
        refer_to(light, raw, *table)
        graphs.calibrate(raw, *calibration, ranges)
        raw.unlink()

        latest: validate.Outputs | None = None  # the last trial's outputs, for the caller when it passes

        def measure(weights: str, exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> dict[str, Any]:
            nonlocal latest
            graphs.quantize_int8(light, dst, ranges, weights=weights, exclude=tuple(exclude), only=only)
            put_back(dst, dst, *table)
            latest = validate.onnx_outputs(dst, ids, mask)
            return validate.check(reference, latest, "int8")

        steps = []
        for weights in WEIGHT_TYPES:
            steps.append({"weights": weights, "fp32_layers": [], "fp32_nodes": [], **measure(weights)})
            if validate.passed(steps[-1], "int8"):
                return {"method": METHOD, "weights": weights, "fp32_nodes": [], "steps": steps}, latest
        weights = max(steps, key=lambda step: step["validation"]["label_agreement"])["weights"]
        flops = graphs.matmul_nodes(light)
        units = layer_units(flops)
        budget = MAX_FP32_FLOP_SHARE * sum(flops.values())
        affordable = {unit: names for unit, names in units.items() if sum(flops[n] for n in names) <= budget}
        sensitivity = {
            unit: measure(weights, only=names)["validation"]["max_abs_prob_diff"] for unit, names in affordable.items()
        }
        kept: list[str] = []
        for unit in sorted(sensitivity, key=sensitivity.__getitem__, reverse=True):
            if sum(flops[n] for u in (*kept, unit) for n in units[u]) > budget:
                break
            kept.append(unit)
            nodes = [n for u in kept for n in units[u]]
            steps.append({"weights": weights, "fp32_layers": list(kept), "fp32_nodes": nodes, **measure(weights, nodes)})
            if validate.passed(steps[-1], "int8"):
                log.info("int8 passes with %s in fp32 (%d of %d MatMuls)", ", ".join(kept), len(nodes), len(flops))
                report = {
                    "method": METHOD, "weights": weights, "fp32_nodes": nodes, "steps": steps, "sensitivity": sensitivity,
                }
                return report, latest
    dst.unlink(missing_ok=True)
    reason = (
        f"int8 misses its tolerance with {' and '.join(WEIGHT_TYPES)} weights, and with {len(kept)} of "
        f"{len(units)} layers in fp32 (at most {MAX_FP32_FLOP_SHARE:.0%} of MatMul FLOPs may stay fp32)"
    )
    log.warning("WARNING: %s; the artifact has no int8 variant and CPUs run fp32", reason)
    return {"method": METHOD, "reason": reason, "steps": steps, "sensitivity": sensitivity}, None
