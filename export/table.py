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

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ExportError

__all__ = ["light_table", "put_back", "refer_to", "table_name", "to_float16"]


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

    The table takes the stand-in's element type; to fp16 it is converted as ONNX Runtime's
    fp16 converter converts (`to_float16`), so its values are exactly those the conversion
    pass would have made.
    """
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(src))
    found, full = _stand_in(model, src, name, table)
    dtype = np.dtype(tensor_dtype_to_np_dtype(found.data_type))
    header = onnx.TensorProto(name=name, dims=full.shape, data_type=found.data_type)
    model.graph.initializer.remove(found)
    _write_with_initializer(model, header, full.size * dtype.itemsize, _blocks(full, dtype), dst)


def _blocks(full: np.memmap, dtype: np.dtype, rows: int = 8192) -> Iterator[np.ndarray]:
    """The rows of FULL (the memory-mapped table) in DTYPE, ROWS at a time, read from its file:
    a whole converted copy, or the mapped pages, would count against the pass's memory."""
    width = full.shape[1]
    with open(full.filename, "rb") as file:
        file.seek(full.offset)
        while block := file.read(rows * width * full.itemsize):
            values = np.frombuffer(block, dtype=full.dtype).reshape(-1, width)
            yield to_float16(values) if dtype == np.float16 else values.astype(dtype, copy=False)


def refer_to(src: Path, dst: Path, name: str, table: Path) -> None:
    """Write SRC (fp32) to DST with the initializer NAME read in place from TABLE (a .npy file),
    as ONNX external data.

    For scratch graphs that are only run, such as the calibration's: no copy of the table is
    written, and ONNX's shape inference, which writes out the whole model it infers, skips
    it (5 s on the full-size model). Where SRC keeps its other weights in external data
    (`graphs.set_weights_apart`), DST refers to them where they lie as well. DST must lie in
    the folder of TABLE and of SRC: external data is named by a path relative to the model.
    """
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    found, full = _stand_in(model, src, name, table)
    if found.data_type != onnx.TensorProto.FLOAT or full.dtype != np.float32:
        raise ExportError(f"{src.name}: only an fp32 table can be referred to in place")
    for beside in (table, src):
        if dst.parent.resolve() != beside.parent.resolve():
            raise ExportError(f"{dst} must lie beside {beside.name}, which it refers to")
    header = onnx.TensorProto(name=name, dims=full.shape, data_type=found.data_type)
    header.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", table.name), ("offset", str(full.offset)), ("length", str(full.nbytes))):
        entry = header.external_data.add()
        entry.key, entry.value = key, value
    model.graph.initializer.remove(found)
    model.graph.initializer.append(header)
    onnx.save(model, str(dst))


def _stand_in(model, src: Path, name: str, table: Path):
    """MODEL's initializer NAME, which stands in for TABLE, and TABLE memory-mapped (its rows
    are read from the file as they lie in it, so it must be in C order)."""
    found = [init for init in model.graph.initializer if init.name == name]
    full = np.load(table, mmap_mode="r")
    if not full.flags.c_contiguous:
        raise ExportError(f"{table.name} is not in C order")
    if len(found) != 1 or list(found[0].dims[1:]) != list(full.shape[1:]):
        raise ExportError(f"{src.name} has no word-embedding table {name!r} of width {full.shape[1]} to fill in")
    return found[0], full


def to_float16(values: np.ndarray) -> np.ndarray:
    """VALUES (fp32) in fp16 exactly as ONNX Runtime's `convert_np_to_float16` makes them.

    Like it, nonzero magnitudes below fp16's smallest subnormal become that subnormal and
    finite ones above its largest finite value become that value, so that no weight changes
    sign or finiteness. Its own function spends 15 s on the full-size table (twice per
    export) gathering figures for a debug message; this is the same arithmetic, once.
    """
    tiny, huge = np.float32(5.96e-08), np.float32(65504.0)
    clamped = np.array(values, dtype=np.float32)
    magnitude = np.abs(clamped)
    for outside, bound in (((magnitude > 0) & (magnitude < tiny), tiny), ((magnitude > huge) & (magnitude < np.inf), huge)):
        clamped[outside] = np.copysign(bound, clamped[outside])
    return clamped.astype(np.float16)


def _write_with_initializer(model, header, nbytes: int, blocks: Iterable[np.ndarray], dst: Path) -> None:
    """Write MODEL to DST, followed by one more initializer: HEADER with BLOCKS (NBYTES in all)
    as its raw data.

    Protobuf merges concatenated messages (a repeated field appends), so every ONNX reader
    reads the two parts as one model whose last initializer is the table. Written this way
    the table's bytes go straight from the arrays to the file: serializing an 876 MB model
    whole took 2.8 GB of transient memory on top of the model itself.
    """
    graph_field = _field_number("ModelProto", "graph")
    initializer_field = _field_number("GraphProto", "initializer")
    raw_data_field = _field_number("TensorProto", "raw_data")
    meta = header.SerializeToString() + _length_delimited(raw_data_field, nbytes)
    tensor = _length_delimited(initializer_field, len(meta) + nbytes)
    with open(dst, "wb") as out:
        out.write(model.SerializeToString())
        out.write(_length_delimited(graph_field, len(tensor) + len(meta) + nbytes))
        out.write(tensor)
        out.write(meta)
        written = sum(out.write(memoryview(np.ascontiguousarray(block)).cast("B")) for block in blocks)
    if written != nbytes:
        raise ExportError(f"{dst.name}: wrote {written} bytes of the table, {nbytes} expected")


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
