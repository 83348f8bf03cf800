"""`.npy` files written a batch of rows at a time, whatever the final row count.

NumPy's format puts the shape in the header, before the data, but a streamed input's row
count is known only at its end. The header is therefore written for zero rows first and
rewritten in place once the last row is in: NumPy pads every header with room for any row
count (`numpy.lib.format.GROWTH_AXIS_MAX_DIGITS`), so it keeps its length, and a reader
(`numpy.load`, memory-mapped or not) sees an ordinary .npy file. Like every vigil output,
the file is built under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from .atomic import renamed_on_success

__all__ = ["NpyWriter", "open_npy_writer"]


@contextmanager
def open_npy_writer(path: Path, width: int) -> Iterator[NpyWriter]:
    """A writer of float32 rows of WIDTH values into PATH, which appears only if the block succeeds."""
    with renamed_on_success(path) as partial, open(partial, "wb") as stream:
        writer = NpyWriter(stream, width)
        yield writer
        writer.finish()


class NpyWriter:
    """Appends float32 rows to a .npy stream; `finish` writes the row count into the header."""

    def __init__(self, stream: IO[bytes], width: int) -> None:
        self._stream = stream
        self._width = width
        self._rows = 0
        self._write_header()
        self._data_starts = stream.tell()

    def write(self, rows: np.ndarray) -> None:
        """Append ROWS, [n, width], as little-endian float32."""
        if rows.ndim != 2 or rows.shape[1] != self._width:
            raise ValueError(f"rows must have shape [n, {self._width}], got {rows.shape}")
        self._stream.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self._rows += len(rows)

    def finish(self) -> None:
        """Rewrite the header with the final row count."""
        self._stream.seek(0)
        self._write_header()
        if self._stream.tell() != self._data_starts:  # NumPy's padding promises it never happens
            raise RuntimeError("the .npy header changed length; the file would be corrupt")
        self._stream.seek(0, 2)

    def _write_header(self) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": (self._rows, self._width)}
        np.lib.format.write_array_header_1_0(self._stream, header)
