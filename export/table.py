"""The word-embedding table, kept out of the memory-hungry ONNX passes.

smaller-LaBSE's vocabulary table is 173,347 x 768 fp32: 532 MB, 61 % of the model. The
passes that rewrite a graph (BERT fusions, fp16 conversion, quantization) each hold several
copies of the model, yet they only carry this table along: the one check that reads it
(EmbedLayerNormalization's fusion) wants it wider than the position table, nothing more. So
the PyTorch export writes the graph with only the table's first rows (`light_table`), the
passes run on that light graph, and `put_back` writes the full table into each finished
file, converted exactly as the pass converted the stand-in rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ExportError

__all__ = ["light_table", "put_back", "table_name"]


@contextmanager
def light_table(model) -> Iterator[np.ndarray]:
    """MODEL (a BertForSequenceClassification) with its word-embedding table cut to its first
    rows, one more than the position table has; yields the full table.

    The full table is restored on exit. A graph traced meanwhile indexes the cut table, so it
    is only good for graph passes until `put_back` has run.
    """
    import torch

    embeddings = model.bert.embeddings.word_embeddings
    full = embeddings.weight
    rows = min(full.shape[0], model.config.max_position_embeddings + 1)
    embeddings.weight = torch.nn.Parameter(full.detach()[:rows].clone(), requires_grad=False)
    try:
        yield full.detach().numpy()
    finally:
        embeddings.weight = full


def table_name(path: Path) -> str:
    """Name of the initializer PATH's graph gathers token embeddings from (by `input_ids`)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    ids = model.graph.input[0].name
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == ids and node.input[0] in initializers:
            return node.input[0]
    raise ExportError(f"{path.name} has no Gather of an initializer by {ids}: no word-embedding table to set aside")


def put_back(src: Path, dst: Path, name: str, table: Path) -> None:
    """Write SRC to DST with the initializer NAME replaced by the full TABLE (a .npy file).

    The table takes the stand-in's element type; to fp16 it is converted by ONNX Runtime's
    own fp16 converter, so its values are exactly those the conversion pass would have made.
    """
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype
    from onnxruntime.transformers.float16 import convert_np_to_float16

    model = onnx.load(str(src))
    found = [init for init in model.graph.initializer if init.name == name]
    full = np.load(table, mmap_mode="r")
    if len(found) != 1 or list(found[0].dims[1:]) != list(full.shape[1:]):
        raise ExportError(f"{src.name} has no word-embedding table {name!r} of width {full.shape[1]} to fill in")
    dtype = tensor_dtype_to_np_dtype(found[0].data_type)
    values = convert_np_to_float16(np.asarray(full)) if dtype == np.float16 else np.asarray(full, dtype=dtype)
    header = onnx.TensorProto(name=name, dims=values.shape, data_type=found[0].data_type)
    model.graph.initializer.remove(found[0])
    _write_with_initializer(model, header, np.ascontiguousarray(values), dst)


def _write_with_initializer(model, header, values: np.ndarray, dst: Path) -> None:
    """Write MODEL to DST, followed by one more initializer: HEADER with VALUES as its raw data.

    Protobuf merges concatenated messages (a repeated field appends), so every ONNX reader
    reads the two parts as one model whose last initializer is the table. Written this way
    the table's bytes go straight from the array to the file: serializing an 876 MB model
    whole took 2.8 GB of transient memory on top of the model itself.
    """
    graph_field = _field_number("ModelProto", "graph")
    initializer_field = _field_number("GraphProto", "initializer")
    raw_data_field = _field_number("TensorProto", "raw_data")
    meta = header.SerializeToString() + _length_delimited(raw_data_field, values.nbytes)
    tensor = _length_delimited(initializer_field, len(meta) + values.nbytes)
    with open(dst, "wb") as out:
        out.write(model.SerializeToString())
        out.write(_length_delimited(graph_field, len(tensor) + len(meta) + values.nbytes))
        out.write(tensor)
        out.write(meta)
        out.write(memoryview(values).cast("B"))


def _field_number(message: str, field: str) -> int:
    import onnx

    return getattr(onnx, message).DESCRIPTOR.fields_by_name[field].number


def _length_delimited(field: int, length: int) -> bytes:
    """The key and length of a length-delimited protobuf field (wire type 2), as varints."""
    encoded = bytearray()
    for number in (field << 3 | 2, length):
        while True:
            number, low = number >> 7, number & 0x7F
            encoded.append(low | (0x80 if number else 0))
            if not number:
                break
    return bytes(encoded)
