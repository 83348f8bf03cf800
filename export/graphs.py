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
  SkipLayerNormalization, BiasGelu), in fp32 for the CPU and in fp16 for the CUDA
  provider, which binds one fixed shape (and one CUDA graph) per batch and sequence bucket.
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
import warnings
from collections.abc import Sequence
from pathlib import Path

from vigil.runtime.manifest import INPUT_NAMES

__all__ = [
    "EXPECTED_FUSIONS",
    "FP16_STANDARD_KEEP_FP32",
    "OPSET",
    "OUTPUT_NAME",
    "POOLED_NAME",
    "export_fp32",
    "fix_sequence_axis",
    "fuse",
    "matmul_nodes",
    "quantize_int8",
    "to_fp16_standard",
]

log = logging.getLogger(__name__)

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


def fuse(src: Path, fp32_dst: Path, fp16_dst: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Apply ONNX Runtime's BERT fusions, save fp32 and fp16 copies, count what fused.

    The fusions run once: at opt_level 0 (Python fusions only; ONNX Runtime optimises the
    rest for its provider at load time) their result does not depend on the target device.
    The fp16 copy keeps fp32 inputs and outputs and the symbolic sequence axis; the CUDA
    provider's SkipLayerNormalization and EmbedLayerNormalization accumulate in fp32.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
        stats = model.get_fused_operator_statistics()
        model.save_model_to_file(str(fp32_dst))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(fp16_dst))
    fused = {op: int(stats.get(op, 0)) for op in EXPECTED_FUSIONS}
    missing = [op for op, count in fused.items() if count == 0]
    if missing:
        log.warning("these BERT fusions did not happen: %s", ", ".join(missing))
    return fused


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


def quantize_int8(
    src: Path,
    dst: Path,
    ids,
    mask,
    *,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    cache: Path | None = None,
) -> None:
    """Static QDQ int8 of SRC's weight MatMuls, activation ranges calibrated on IDS/MASK.

    EXCLUDE names MatMul nodes kept in fp32 (the accuracy-aware fallback); ONLY, when given,
    quantizes just those nodes (to measure one layer's sensitivity). Weights are
    per-channel symmetric int8, activations asymmetric uint8 with MinMax ranges. CACHE, a
    JSON file, keeps the calibrated ranges for later calls (they cover every MatMul input,
    whatever EXCLUDE and ONLY say).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(src),
        str(dst),
        _Calibration(ids, mask),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude),
        nodes_to_quantize=list(only) if only is not None else None,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"MatMulConstBOnly": True, "CalibStridedMinMax": 1},
        calibration_cache_path=cache,
    )


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


class _Calibration:
    """Feeds the calibration tweets to the quantizer, 64 at a time.

    With `CalibStridedMinMax` ONNX Runtime reads one batch per range and folds its minima
    and maxima into the running ranges (exactly the same ranges), so it holds one batch's
    activations at a time instead of all of them (about 2 GB for the full-size model).
    """

    def __init__(self, ids, mask, batch_size: int = 64) -> None:
        self._batches = [
            {INPUT_NAMES[0]: ids[i : i + batch_size], INPUT_NAMES[1]: mask[i : i + batch_size]}
            for i in range(0, len(ids), batch_size)
        ]
        self._pending = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending = iter(self._batches[start_index:end_index])

    def get_next(self):
        return next(self._pending, None)
