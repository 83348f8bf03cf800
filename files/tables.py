"""Tabular files in and out of `vigil classify`: plain text, CSV, JSONL and Parquet, streamed.

Reading. `open_table` returns a `Table` whose `records` yield one `(line, row)` at a time:
`row` maps column names to values, and `line` is where a user finds the row: the 1-based
physical line in an editor (for CSV, the line where the record starts, the header being
line 1), or for Parquet, which has no lines, the 1-based row. Nothing holds a whole file, so
memory stays bounded whatever its size. Bad input raises `InputError` naming the file, the
line and the reason, which the command line prints as one line.

Lines are split on b"\\n" only and decoded one by one: an invalid UTF-8 byte is reported with
its line and byte offset, and a U+2028 inside a tweet does not split it (`str.splitlines`
would).

Writing. `open_writer` yields a `TableWriter` for CSV (also on stdout), JSONL or Parquet.
A file is written under a temporary name next to it and renamed into place only when the
whole input has been written (`vigil.files.atomic`), so an error deep in a large input never
leaves output that looks complete.

pyarrow (the `files` extra) is imported only for Parquet.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from vigil.runtime.errors import InputError, MissingDependencyError

from .atomic import renamed_on_success

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "STDIO",
    "Record",
    "Table",
    "TableWriter",
    "format_of",
    "open_table",
    "open_writer",
]

INPUT_FORMATS = ("txt", "csv", "jsonl", "parquet")
OUTPUT_FORMATS = ("csv", "jsonl", "parquet")
STDIO = "-"
_SUFFIXES = {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_PARQUET_BATCH_ROWS = 4096  # rows decoded at a time from a Parquet input
_ROW_GROUP_ROWS = 65536  # rows per row group of a Parquet output
_FIXED_SIZE_LIST = re.compile(r"(\w+)\[(\d+)\]")  # "float32[768]"

Record = tuple[int, dict[str, Any]]
"""One row of an input and the line (or, for Parquet, the row number) where it is."""


def format_of(path: str | os.PathLike[str]) -> str | None:
    """The format a file name's extension announces, or None for an unknown extension."""
    return _SUFFIXES.get(Path(path).suffix.lower())


# ---------------------------------------------------------------------------------------
# Reading


@dataclass
class Table:
    """An open input: its columns, known before the first row is scored, and its records.

    `columns` is None only for a JSONL input with no rows, whose columns cannot be known;
    `columns_at` says where they were read ("line 1" for a CSV header). Use the table as a
    context manager so that the file is closed.
    """

    name: str
    unit: str  # "line", or "row" for Parquet
    columns: tuple[str, ...] | None
    records: Iterator[Record]
    columns_at: str = ""
    total: int | None = None  # number of rows, where the format says so up front
    arrow_schema: Any = None  # a Parquet input's pyarrow schema, so Parquet output keeps its types
    close: Callable[[], None] = lambda: None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def error(self, line: int, reason: str) -> InputError:
        """An InputError that names this file and LINE."""
        return InputError(f"{self.name}, {self.unit} {line}: {reason}")

    def require(self, *columns: str) -> None:
        """Fail before anything is scored if the input lacks one of COLUMNS."""
        if self.columns is None:
            return
        for column in columns:
            if column not in self.columns:
                where = f"{self.name}, {self.columns_at}" if self.columns_at else self.name
                raise InputError(f"{where}: no column {column!r}; the columns are: {_listed(self.columns)}")

    def text(self, line: int, row: dict[str, Any], column: str) -> str:
        """The text to score in ROW; an empty string is a text, a missing or null value is not."""
        value = self._cell(line, row, column)
        if not isinstance(value, str):
            raise self.error(line, f"the value in column {column!r} is {_kind(value)}, not a text")
        return value

    def key(self, line: int, row: dict[str, Any], column: str) -> Hashable:
        """The value of ROW's group column (null is a group of its own)."""
        value = self._cell(line, row, column)
        if not isinstance(value, Hashable):
            raise self.error(line, f"the value in column {column!r} is {_kind(value)}, which cannot name a group")
        return value

    def _cell(self, line: int, row: dict[str, Any], column: str) -> Any:
        try:
            return row[column]
        except KeyError:
            raise self.error(line, f"no column {column!r}; the row has: {_listed(row)}") from None


def open_table(source: str, fmt: str, text_column: str = "text") -> Table:
    """Open SOURCE (a path, or "-" for stdin) as a table of format FMT.

    A plain-text input has one column, named TEXT_COLUMN, holding each line. CSV, JSONL and
    Parquet columns are read from the file; its header, first row or schema is read here, so
    an unusable input fails before any scoring starts.
    """
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"fmt must be one of {INPUT_FORMATS}, got {fmt!r}")
    if fmt == "parquet":
        return _open_parquet(source)
    name = "<stdin>" if source == STDIO else source
    stream, close = (sys.stdin.buffer, lambda: None) if source == STDIO else _opened(source)
    try:
        lines = _decoded_lines(stream, name)
        if fmt == "txt":
            return Table(name, "line", (text_column,), _text_records(lines, text_column), close=close)
        if fmt == "csv":
            return _csv_table(name, lines, close)
        return _jsonl_table(name, lines, close)
    except BaseException:
        close()
        raise


def _opened(path: str) -> tuple[IO[bytes], Callable[[], None]]:
    stream = open(path, "rb")  # noqa: SIM115  (the Table closes it)
    return stream, stream.close


def _decoded_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line with its line ending) of a UTF-8 stream; a leading BOM is dropped."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte, at = raw[exc.start], offset + exc.start
            reason = f"not valid UTF-8 (byte 0x{byte:02x} at byte offset {at})"
            raise InputError(f"{name}, line {number}: {reason}") from None
        offset += len(raw)
        yield number, line.removeprefix("\ufeff") if number == 1 else line


def _text_records(lines: Iterator[tuple[int, str]], column: str) -> Iterator[Record]:
    """Every line, blank ones included, so that output row N is input line N."""
    for number, line in lines:
        yield number, {column: line.removesuffix("\n").removesuffix("\r")}


def _csv_table(name: str, lines: Iterator[tuple[int, str]], close: Callable[[], None]) -> Table:
    reader = csv.reader((line for _, line in lines), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{name}, line {reader.line_num}: malformed CSV header: {exc}") from None
    if not header:
        raise InputError(f"{name}, line 1: no CSV header (the first line names the columns)")
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise InputError(f"{name}, line 1: the CSV header repeats the columns {_listed(duplicates)}")
    table = Table(name, "line", tuple(header), iter(()), columns_at="line 1", close=close)
    table.records = _csv_records(table, reader, header)
    return table


def _csv_records(table: Table, reader: Any, header: list[str]) -> Iterator[Record]:
    """Rows as dicts; each needs as many fields as the header (blank lines are skipped)."""
    start = reader.line_num + 1
    try:
        for fields in reader:
            if fields and len(fields) != len(header):
                raise table.error(start, f"{len(fields)} fields, but the header has {len(header)}")
            if fields:
                yield start, dict(zip(header, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise table.error(start, f"malformed CSV: {exc}") from None


def _jsonl_table(name: str, lines: Iterator[tuple[int, str]], close: Callable[[], None]) -> Table:
    """A JSONL table; its columns are its first row's keys (later rows may have others)."""
    table = Table(name, "line", None, iter(()), close=close)
    records = _jsonl_records(table, lines)
    first = next(records, None)
    if first is not None:
        table.columns = tuple(first[1])
        table.columns_at = f"line {first[0]}"
        table.records = itertools.chain([first], records)
    return table


def _jsonl_records(table: Table, lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
    """One JSON object per line; blank lines are skipped."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line.removesuffix("\n"))
        except json.JSONDecodeError as exc:
            raise table.error(number, f"malformed JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(row, dict):
            raise table.error(number, f"expected a JSON object, got {_kind(row)}")
        yield number, row


def _open_parquet(source: str) -> Table:
    if source == STDIO:
        raise InputError("Parquet cannot be read from stdin: it needs a file it can seek in")
    pa, pq = _pyarrow("reading Parquet")
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source} is not a readable Parquet file: {exc}") from None
    schema = parquet.schema_arrow
    table = Table(source, "row", tuple(schema.names), iter(()), columns_at="schema",
                  total=parquet.metadata.num_rows, arrow_schema=schema, close=parquet.close)
    table.records = _parquet_records(table, parquet, pa)
    return table


def _parquet_records(table: Table, parquet: Any, pa: Any) -> Iterator[Record]:
    """Rows decoded one record batch at a time."""
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError) as exc:
        raise table.error(number + 1, f"cannot be read: {exc}") from None


# ---------------------------------------------------------------------------------------
# Writing


class TableWriter(Protocol):
    """What every writer does: take rows (dicts) batch after batch, then finish the file."""

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def finish(self) -> None: ...


@contextmanager
def open_writer(
    path: Path | None,
    columns: Sequence[str],
    types: Mapping[str, str],
    arrow_schema: Any = None,
) -> Iterator[TableWriter]:
    """A writer for PATH (CSV, JSONL or Parquet, by extension), or CSV on stdout when PATH is None.

    COLUMNS is the output's column order (a CSV header). Rows may lack a column (an empty
    cell) but not have one that is not in COLUMNS. TYPES gives the Parquet type alias of
    computed columns ("float32", ..., or "float32[768]" for a fixed-size list of 768
    float32, an embedding); other Parquet columns keep ARROW_SCHEMA's types, or take those
    of the first batch of rows.

    The file appears at PATH only if the `with` block ends without an exception.
    """
    if path is None:
        with _stdout_text() as stream:
            writer = _CsvWriter(stream, columns)
            yield writer
            writer.finish()
        return
    fmt = format_of(path)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"the extension of {path} names no output format; use one of {OUTPUT_FORMATS}")
    with renamed_on_success(path) as partial:
        if fmt == "parquet":
            writer = _ParquetWriter(partial, columns, types, arrow_schema)
            try:
                yield writer
                writer.finish()
            finally:
                writer.close()
            return
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            writer = _CsvWriter(stream, columns) if fmt == "csv" else _JsonlWriter(stream)
            yield writer
            writer.finish()


@contextmanager
def _stdout_text() -> Iterator[IO[str]]:
    """Stdout as UTF-8 text whatever the locale (tweets are full of emoji), left open after."""
    sys.stdout.flush()
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        yield stream
    finally:
        stream.flush()
        stream.detach()


def _check_columns(rows: Sequence[Mapping[str, Any]], columns: frozenset[str]) -> None:
    """Refuse rows with a column the output has no place for, rather than drop it silently."""
    extra = set().union(*rows) - columns
    if extra:
        raise InputError(
            f"some rows have columns {_listed(sorted(extra))} that the first row lacks; "
            "CSV and Parquet output need one set of columns: write .jsonl instead"
        )


class _CsvWriter:
    """CSV with a header; the header is written with the first rows, so an input that fails
    at once leaves nothing on stdout."""

    def __init__(self, stream: IO[str], columns: Sequence[str]) -> None:
        self._columns = frozenset(columns)
        self._writer = csv.DictWriter(stream, fieldnames=list(columns), lineterminator="\n")
        self._started = False

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        _check_columns(rows, self._columns)
        if not self._started:
            self._writer.writeheader()
            self._started = True
        self._writer.writerows(rows)

    def finish(self) -> None:
        self.write([])  # an input without rows still gets its header


class _JsonlWriter:
    """One JSON object per line, UTF-8 as is; values JSON lacks (dates from Parquet) as strings."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._stream.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)

    def finish(self) -> None:
        """Nothing to add: a JSONL file is complete after its last line."""


class _ParquetWriter:
    """Parquet with row groups of about `_ROW_GROUP_ROWS` rows; the schema is fixed by the first rows.

    Batches are gathered into large row groups: a row group per batch of 64 would make files
    slow to read, and their footers (kept in memory until the file is closed) grow with
    the input.
    """

    def __init__(self, path: Path, columns: Sequence[str], types: Mapping[str, str], arrow_schema: Any) -> None:
        self._pa, self._pq = _pyarrow("writing Parquet")
        self._path = path
        self._columns = list(columns)
        self._types = dict(types)
        self._input_schema = arrow_schema
        self._schema: Any = None
        self._writer: Any = None
        self._buffered: list[Any] = []
        self._buffered_rows = 0

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        _check_columns(rows, frozenset(self._columns))
        if self._schema is None:
            self._schema = self._schema_for(rows)
        try:
            self._buffered.append(self._pa.Table.from_pylist(list(rows), schema=self._schema))
        except (self._pa.ArrowInvalid, self._pa.ArrowTypeError) as exc:
            raise InputError(
                f"a column changes type between rows ({exc}); Parquet needs one type per column: "
                "write .jsonl instead"
            ) from None
        self._buffered_rows += len(rows)
        if self._buffered_rows >= _ROW_GROUP_ROWS:
            self._flush()

    def finish(self) -> None:
        if self._schema is None:  # an input without rows still gets a file with its schema
            self._schema = self._schema_for([])
        if self._buffered_rows or self._writer is None:
            self._flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        if self._writer is None:
            self._writer = self._pq.ParquetWriter(self._path, self._schema)
        if self._buffered:
            self._writer.write_table(self._pa.concat_tables(self._buffered), row_group_size=_ROW_GROUP_ROWS)
        self._buffered, self._buffered_rows = [], 0

    def _schema_for(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        """TYPES for computed columns; the input's types, or those of ROWS, for the others."""
        pa = self._pa
        known = self._input_schema if self._input_schema is not None else pa.Table.from_pylist(list(rows)).schema
        fields = []
        for name in self._columns:
            if name in self._types:
                fields.append(pa.field(name, _arrow_type(pa, self._types[name])))
            elif name in known.names:
                fields.append(known.field(name))
            else:
                fields.append(pa.field(name, pa.string()))
        return pa.schema(fields)


# ---------------------------------------------------------------------------------------
# Helpers


def _arrow_type(pa: Any, alias: str) -> Any:
    """pyarrow's type for ALIAS: one of its own aliases, or "ALIAS[N]", a fixed-size list of N."""
    match = _FIXED_SIZE_LIST.fullmatch(alias)
    if match is None:
        return pa.type_for_alias(alias)
    return pa.list_(pa.type_for_alias(match.group(1)), int(match.group(2)))


def _pyarrow(purpose: str) -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or a one-line error with the install hint."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ModuleNotFoundError:
        raise MissingDependencyError("pyarrow", "files", purpose) from None
    return pyarrow, pyarrow.parquet


def _kind(value: Any) -> str:
    """How an error message names an unacceptable value."""
    if value is None:
        return "empty (null)"
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _listed(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names) or "(none)"
