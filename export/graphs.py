"""From a PyTorch classifier to the four ONNX variants of an artifact.

- `export_fp32`: the plain TorchScript export, inputs [batch, sequence] int64, outputs
  `logits` [batch, N] fp32 and then `pooled` [batch, hidden] fp32, the BERT pooler output
  the classifier head reads (smaller-LaBSE's sentence embedding, before L2 normalisation):
  the graph computes it anyway, so one pass gives scores and embeddings. The sequence axis is symbolic, so that the runtime runs each batch at
  its sequence bucket with one graph (one file, one load) instead of one graph per bucket;
  only the standard fp16 graph, for TensorRT and Triton, is fixed to [batch, 32]
  (`fix_sequence_axis`). TorchScript (`dynamo=False`) on an eager-attention model is the
  combination whose graph ONNX Runtime's BERT fusions recognise completely.
- `fuse`: ONNX Runtime's BERT fusions (EmbedLayerNormalization, Attention,
  SkipLayerNormalization, BiasGelu), in fp32 for the CPU; `fused_to_fp16` makes the fp16
  copy for the CUDA provider, which binds one fixed shape (and one CUDA graph) per batch
  and sequence bucket.
- `to_fp16_standard`: fp16 with standard operators only, for TensorRT (which cannot parse
  the fused contrib operators) and any other ONNX consumer.
- `quantize_int8`: static, calibrated QDQ int8 for CPUs. Activation ranges are measured
  once at export on a calibration sample, so a tweet's int8 score never depends on its
  batch-mates (dynamic quantization measures each batch's range at run time). The quantizer
  reads the plain standard-operator graph (it cannot infer types through fused contrib ops);
  ONNX Runtime folds the QDQ pairs into integer kernels when it loads the graph.

Every fp16 graph keeps fp32 inputs and outputs, so callers never see half precision.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from vigil.runtime.manifest import INPUT_NAMES

from . import validate
from .errors import ExportError

__all__ = [
    "EXPECTED_FUSIONS",
    "FP16_STANDARD_KEEP_FP32",
    "OPSET",
    "OUTPUT_NAME",
    "POOLED_NAME",
    "calibrate",
    "export_fp32",
    "fix_sequence_axis",
    "fuse",
    "fused_to_fp16",
    "matmul_nodes",
    "quantize_int8",
    "set_weights_apart",
    "to_fp16_standard",
    "weights_file",
]

log = logging.getLogger(__name__)

_REDUCTIONS = ("ReduceMin", "ReduceMax")  # what calibration measures of each tensor, in this order

OUTPUT_NAME = "logits"
# Output 1: logits stay output 0, the runtime's contract since the first artifact.
POOLED_NAME = "pooled"
# 17 has LayerNormalization as one standard operator, which TensorRT runs precision-safely.
OPSET = 17
EXPECTED_FUSIONS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu")
# Kept in fp32 in the standard fp16 graph: LayerNormalization's variance and its 1e-12
# epsilon do not survive fp16 (the epsilon underflows to zero, large activations overflow).
FP16_STANDARD_KEEP_FP32 = ("LayerNormalization",)


def export_fp32(model, path: Path, sequence_length: int, opset: int = OPSET) -> None:
    """Trace MODEL to ONNX with symbolic batch and sequence axes (SEQUENCE_LENGTH: the trace's),
    returning its logits and its pooler output."""
    import torch

    ids = torch.ones((2, sequence_length), dtype=torch.int64)
    mask = torch.ones((2, sequence_length), dtype=torch.int64)
    mask[1, sequence_length // 2 :] = 0
    input_axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarnings about Python control flow on shapes are expected: BERT's only
        # shape-dependent step slices its position and token-type buffers, which traces
        # to a Slice by the input's length.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _with_pooled(model),
            (ids, mask),
            str(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME, POOLED_NAME],
            dynamic_axes={
                **dict.fromkeys(INPUT_NAMES, input_axes),
                **dict.fromkeys((OUTPUT_NAME, POOLED_NAME), {0: "batch"}),
            },
            opset_version=opset,
            do_constant_folding=True,
        )


def _with_pooled(model):
    """MODEL (BertForSequenceClassification, eval mode) returning (logits, pooler output).

    The head is the model's own, applied as its forward applies it (dropout, an identity in
    eval mode, then the classifier): export validates these logits against the model's.
    """
    import torch

    class LogitsAndPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            pooled = self.model.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return self.model.classifier(self.model.dropout(pooled)), pooled

    return LogitsAndPooled().eval()


def fix_sequence_axis(model, sequence_length: int) -> None:
    """Make the inputs of MODEL (an onnx.ModelProto) [batch, SEQUENCE_LENGTH]: TensorRT
    and Triton consumers of the standard fp16 graph want the fixed shape."""
    for graph_input in model.graph.input:
        graph_input.type.tensor_type.shape.dim[1].dim_value = sequence_length


def weights_file(path: Path) -> Path:
    """PATH.data: where the graph PATH keeps its weights when they lie apart (`set_weights_apart`,
    `fuse`; ONNX Runtime's save names its data file so)."""
    return path.with_name(path.name + ".data")


def set_weights_apart(path: Path) -> None:
    """Rewrite PATH with its weights in `weights_file(PATH)` beside it (ONNX external data): the
    graph alone is then a few hundred kilobytes, which `fuse` loads without the weights."""
    import onnx

    model = onnx.load(str(path))
    data = weights_file(path)
    data.unlink(missing_ok=True)  # ONNX appends to an existing data file
    onnx.save(model, str(path), save_as_external_data=True, location=data.name)


def fuse(src: Path, dst: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Apply ONNX Runtime's BERT fusions to SRC, save the fp32 result to DST (new weights in
    DST.data), count what fused.

    SRC keeps its weights apart (`set_weights_apart`) and the fusions load the graph without
    them: they read the few weights they merge (each attention's Q, K and V) from SRC.data,
    and the shape inference they run several times copies a graph of kilobytes instead of
    one with 340 MB of weights (full-size model: 2.5 s and 0.5 GiB instead of 8 s and
    2.7 GiB; the fp32 variant made from either is byte-identical). DST lies in SRC's folder
    and refers to SRC.data for every weight the fusions leave as it was.

    The fusions run once: at opt_level 0 (Python fusions only; ONNX Runtime optimises the
    rest for its provider at load time) their result does not depend on the target device.
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    src, dst = src.resolve(), dst.resolve()  # before the working folder changes
    if dst.parent != src.parent:
        raise ExportError(f"{dst} must lie beside {src.name}, whose weights it refers to")
    graph = onnx.load(str(src), load_external_data=False)
    # ONNX reads a lone tensor's external data relative to the working folder.
    with _in_folder(src.parent), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(graph, model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
        stats = model.get_fused_operator_statistics()
        model.save_model_to_file(str(dst), use_external_data_format=True)
    fused = {op: int(stats.get(op, 0)) for op in EXPECTED_FUSIONS}
    missing = [op for op, count in fused.items() if count == 0]
    if missing:
        log.warning("these BERT fusions did not happen: %s", ", ".join(missing))
    return fused


@contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Work in FOLDER for a while (`contextlib.chdir` needs Python 3.11). It changes the whole
    process's folder: export runs `fuse` in a process of its own."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def fused_to_fp16(src: Path, dst: Path) -> None:
    """fp16 copy of the fused graph SRC for the CUDA provider, which binds one fixed shape (and
    one CUDA graph) per batch and sequence bucket.

    It keeps fp32 inputs and outputs and the symbolic sequence axis; the CUDA provider's
    SkipLayerNormalization and EmbedLayerNormalization accumulate in fp32. A pass of its own
    (not a tail of `fuse`), so that the two passes' copies of the model never coexist.
    """
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))


def to_fp16_standard(src: Path, dst: Path, sequence_length: int) -> None:
    """Convert to fp16 with standard operators only, fp32 inputs and outputs, and the
    static [batch, SEQUENCE_LENGTH] inputs the design card promises TensorRT and Triton."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns for each constant clipped to fp16's range
        model.convert_float_to_float16(
            keep_io_types=True,
            op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_STANDARD_KEEP_FP32),
        )
    # The converter appends its Cast nodes at the end; ONNX (and TensorRT's parser)
    # require topological order.
    model.topological_sort()
    fix_sequence_axis(model.model, sequence_length)
    model.save_model_to_file(str(dst))


def calibrate(src: Path, ids, mask, ranges: Path) -> None:
    """Measure the MinMax range of every MatMul input and output of SRC on IDS/MASK into RANGES,
    the JSON calibration cache `quantize_int8` reads.

    Calibration is its own step, on the graph with its full word-embedding table: the
    quantization runs on the light graph (see `vigil.export.table`), which cannot score
    real tweets. The ranges are exactly those of ONNX Runtime's MinMax calibrator (a test
    holds them equal): the same tensors, each reduced to its minimum and maximum inside the
    graph, run unoptimised. It is done here because that calibrator loads every weight and
    writes it out again for its augmented graph (7 of its 15 s on the full-size model); this
    augmented graph lies beside SRC and reads SRC's weights in place. Each batch holds 16
    tweets of similar length, cut to its longest: padded positions are masked out of every
    score, so their activations have no business widening a range (and skipping them saves
    a quarter of the positions).
    """
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    session, tensors = _range_session(src)
    outputs = [_range_name(name, reduce) for name in tensors for reduce in _REDUCTIONS]
    lowest, highest = np.full(len(tensors), np.inf, np.float32), np.full(len(tensors), -np.inf, np.float32)
    for rows, width in validate.by_length(mask, batch_size=16):
        found = session.run(outputs, {INPUT_NAMES[0]: ids[rows, :width], INPUT_NAMES[1]: mask[rows, :width]})
        lowest, highest = np.fmin(lowest, found[0::2]), np.fmax(highest, found[1::2])
    pairs = {name: (lowest[i : i + 1], highest[i : i + 1]) for i, name in enumerate(tensors)}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, pairs), ranges)


def _range_session(src: Path) -> tuple[Any, list[str]]:
    """A session of SRC (fp32) that also outputs the minimum and maximum (`_range_name`) of
    each tensor `_matmul_activations` names, with those names. Unoptimised, as ONNX Runtime's
    calibrator runs it, and on one thread: export runs it beside a conversion pass, which
    takes the other core. Its graph is written beside SRC so that it reads SRC's weights
    in place, and removed once loaded."""
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(src), load_external_data=False))
    tensors = _matmul_activations(model)
    for name in tensors:
        for reduce in _REDUCTIONS:
            output = _range_name(name, reduce)
            model.graph.node.append(onnx.helper.make_node(reduce, [name], [output], keepdims=0))
            model.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, []))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    augmented = src.with_name(f"{src.stem}-augmented.onnx")
    onnx.save(model, str(augmented))
    try:
        return ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"]), tensors
    finally:
        augmented.unlink()


def _range_name(tensor: str, reduce: str) -> str:
    """The `_range_session` output that holds TENSOR's REDUCE ("ReduceMin" or "ReduceMax")."""
    return f"{tensor}/{reduce}"


def _matmul_activations(model) -> list[str]:
    """The fp32 tensors, other than weights, that MODEL's MatMuls read or write: what the
    quantizer asks ranges for (ONNX Runtime's calibrator selects the same)."""
    import onnx

    floats = {
        info.name
        for info in (*model.graph.value_info, *model.graph.output, *model.graph.input)
        if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    weights = {init.name for init in model.graph.initializer}
    names = (name for node in model.graph.node if node.op_type == "MatMul" for name in (*node.input, *node.output))
    return sorted({name for name in names if name in floats and name not in weights})


def quantize_int8(
    src: Path,
    dst: Path,
    ranges: Path,
    *,
    weights: str = "int8",
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> None:
    """Static QDQ int8 of SRC's weight MatMuls, with the activation ranges RANGES (`calibrate`).

    EXCLUDE names MatMul nodes kept in fp32 (the accuracy-aware fallback); ONLY, when given,
    quantizes just those nodes (to measure one layer's sensitivity). Weights are per-channel
    WEIGHTS ("int8", symmetric, or "uint8"), activations asymmetric uint8 with MinMax ranges.

    Only what a weight MatMul reads is rounded to 8 bits, and only on its way into that
    MatMul (see `_bypass_rounding`): the QDQ quantizer would also quantize the attention's
    activation-by-activation MatMuls (its `MatMulConstBOnly` applies to QOperator only) and
    every MatMul's output. Left as is, a MatMul output feeds fp32 ops, and ONNX Runtime
    turns each DequantizeLinear -> MatMul into one MatMulIntegerToFloat kernel.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    with _without_preprocessing_advice():
        quantize_static(
            str(src),
            str(dst),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type={"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[weights],
            nodes_to_exclude=list(exclude),
            nodes_to_quantize=list(only) if only is not None else list(matmul_nodes(src)),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "MatMulConstBOnly": True,
                "OpTypesToExcludeOutputQuantization": ["MatMul"],
            },
            calibration_cache_path=ranges,
        )
    _bypass_rounding(dst)


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Silence ONNX Runtime's advice, logged twice per quantization, to pre-process the graph
    first: vigil quantizes the plain graph on purpose (its optimisations would fuse what the
    quantizer must see), so the advice would only mislead an export's reader."""

    def not_advice(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider")

    root = logging.getLogger()
    root.addFilter(not_advice)
    try:
        yield
    finally:
        root.removeFilter(not_advice)


def _bypass_rounding(path: Path) -> None:
    """Give every consumer of a quantized activation other than its MatMul the fp32 original.

    The QDQ quantizer routes all readers of a quantized tensor through its rounded copy, so
    a LayerNorm output that feeds the next layer's MatMuls would also reach the residual
    Add and SkipLayerNorm rounded to 8 bits. Rewired, the residual stream stays fp32 (on the
    full-size stand-in: max |dp| 0.030 instead of 0.062, agreement 99.8 % instead of 99.2 %)
    at no cost in speed.
    """
    import onnx

    model = onnx.load(str(path))
    producers = {output: node for node in model.graph.node for output in node.output}
    originals = {
        node.output[0]: producers[node.input[0]].input[0]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[0] in producers
        and producers[node.input[0]].op_type == "QuantizeLinear"
    }
    for node in model.graph.node:
        if node.op_type != "MatMul":
            for i, name in enumerate(node.input):
                node.input[i] = originals.get(name, name)
    onnx.save(model, str(path))


def matmul_nodes(path: Path) -> dict[str, int]:
    """Names of SRC's MatMuls with a constant weight, and each one's FLOPs per token."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name: init.dims for init in model.graph.initializer}
    return {
        node.name: int(weights[node.input[1]][0] * weights[node.input[1]][1])
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in weights and len(weights[node.input[1]]) == 2
    }
