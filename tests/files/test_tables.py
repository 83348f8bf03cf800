"""vigil.files.tables on its own: streamed readers that name lines, and all-or-nothing writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from vigil.files import tables
from vigil.files.tables import format_of, open_table, open_writer
from vigil.runtime.errors import InputError, VigilError


def read(path: Path, fmt: str, text_column: str = "text") -> list[tuple[int, dict]]:
    with open_table(str(path), fmt, text_column) as table:
        return list(table.records)


def test_all_is_complete() -> None:
    public = {name for name in vars(tables) if not name.startswith("_")}
    assert set(tables.__all__) <= public
    assert {"Table", "TableWriter", "open_table", "open_writer", "format_of"} <= set(tables.__all__)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("a.JSONL", "jsonl"), ("a.ndjson", "jsonl"), ("a.parquet", "parquet"),
     ("a.txt", "txt"), ("a.tsv", None), ("-", None)],
)
def test_format_of(name: str, fmt: str | None) -> None:
    assert format_of(name) == fmt


# --- plain text -----------------------------------------------------------------------


def test_text_keeps_every_line_and_its_number(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffone\r\n\ntwo\u2028still two\nlast".encode())
    assert read(path, "txt", "tweet") == [
        (1, {"tweet": "one"}), (2, {"tweet": ""}), (3, {"tweet": "two\u2028still two"}), (4, {"tweet": "last"}),
    ]


def test_invalid_utf8_names_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"ok\nalso ok\nbad \xff here\n")
    with pytest.raises(InputError, match=r"t\.txt, line 3: not valid UTF-8 \(byte 0xff at byte offset 15\)"):
        read(path, "txt")


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\nb\n")))
    with open_table("-", "txt") as table:
        assert table.name == "<stdin>"
        assert list(table.records) == [(1, {"text": "a"}), (2, {"text": "b"})]


# --- CSV --------------------------------------------------------------------------------


def test_csv_counts_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,text\n1,"two\nlines"\n\n2,plain\n3,\n', encoding="utf-8")
    with open_table(str(path), "csv") as table:
        assert table.columns == ("id", "text")
        assert list(table.records) == [
            (2, {"id": "1", "text": "two\nlines"}), (5, {"id": "2", "text": "plain"}), (6, {"id": "3", "text": ""}),
        ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"line 1: no CSV header"),
        ("a,a\n", r"line 1: the CSV header repeats the columns 'a'"),
        ("id,text\n1,x\n2\n", r"line 3: 1 fields, but the header has 2"),
        ('id,text\n1,"x\n', r"line 2: malformed CSV"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv, " + message):
        read(path, "csv")


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,body\n1,x\n", encoding="utf-8")
    with open_table(str(path), "csv") as table, pytest.raises(InputError) as info:
        table.require("text")
    assert str(info.value) == "t.csv, line 1: no column 'text'; the columns are: 'id', 'body'".replace(
        "t.csv", str(path))


# --- JSONL ------------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_takes_columns_from_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('\n{"text": "a", "n": 1}\n\n{"text": "", "extra": [1]}\n', encoding="utf-8")
    with open_table(str(path), "jsonl") as table:
        assert table.columns == ("text", "n")
        assert table.columns_at == "line 2"
        assert list(table.records) == [(2, {"text": "a", "n": 1}), (4, {"text": "", "extra": [1]})]


@pytest.mark.parametrize(
    ("line", "message"),
    [('{"text": "a"', r"line 2: malformed JSON: Expecting ',' delimiter at column 13"),
     ('["a"]', r"line 2: expected a JSON object, got a list")],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl, " + message):
        read(path, "jsonl")


def test_text_and_key_check_each_row(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": null}\n{"body": "x"}\n{"text": "x", "g": ["a"]}\n', encoding="utf-8")
    with open_table(str(path), "jsonl") as table:
        (l1, r1), (l2, r2), (l3, r3) = table.records
        with pytest.raises(InputError, match=r"line 1: the value in column 'text' is empty \(null\), not a text"):
            table.text(l1, r1, "text")
        with pytest.raises(InputError, match=r"line 2: no column 'text'; the row has: 'body'"):
            table.text(l2, r2, "text")
        with pytest.raises(InputError, match=r"line 3: the value in column 'g' is a list, which cannot name a group"):
            table.key(l3, r3, "g")
        assert table.key(l1, r1, "text") is None  # null is a group of its own


# --- Parquet ----------------------------------------------------------------------------


def test_parquet_streams_record_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(tables, "_PARQUET_BATCH_ROWS", 3)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(10)], "n": list(range(10))}), path, row_group_size=4)
    with open_table(str(path), "parquet") as table:
        assert (table.unit, table.columns, table.total) == ("row", ("text", "n"), 10)
        assert list(table.records) == [(i + 1, {"text": f"t{i}", "n": i}) for i in range(10)]


def test_not_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    path.write_text("text\nhello\n")
    with pytest.raises(InputError, match=r"t\.parquet is not a readable Parquet file"):
        read(path, "parquet")


def test_parquet_without_pyarrow_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import raises ModuleNotFoundError
    with pytest.raises(VigilError, match=r"reading Parquet needs pyarrow.*pip install 'vigil\[files\]'"):
        read(tmp_path / "t.parquet", "parquet")


# --- writers ----------------------------------------------------------------------------

ROWS = [{"id": "1", "text": "a,\"b\"\n", "score": 0.25}, {"id": "2", "text": "é 🙂", "score": 1.0}]
COLUMNS = ["id", "text", "score"]


def write(path: Path | None, rows: list[dict], columns: list[str] = COLUMNS, batches: int = 2) -> None:
    with open_writer(path, columns, {"score": "float32"}) as writer:
        for i in range(batches):
            writer.write(rows[i::batches])


def test_csv_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write(path, ROWS, batches=1)
    with open(path, encoding="utf-8", newline="") as f:
        assert list(csv.DictReader(f)) == [{k: str(v) for k, v in row.items()} for row in ROWS]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_jsonl_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write(path, ROWS)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == ROWS


def test_parquet_writer_types(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    write(path, ROWS)
    table = pq.read_table(path)
    assert table.schema == pa.schema([("id", pa.string()), ("text", pa.string()), ("score", pa.float32())])
    assert table.to_pylist() == ROWS


def test_parquet_writer_fixed_size_lists(tmp_path: Path) -> None:
    """"float32[3]" is a fixed-size list of three float32 (an embedding), from arrays or lists."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    with open_writer(path, ["id", "embedding"], {"embedding": "float32[3]"}) as writer:
        writer.write([{"id": "a", "embedding": np.array([0.5, 0.25, 1.0], dtype=np.float32)}])
        writer.write([{"id": "b", "embedding": [1.0, 2.0, 3.0]}])
    table = pq.read_table(path)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 3)
    assert table.column("embedding").to_pylist() == [[0.5, 0.25, 1.0], [1.0, 2.0, 3.0]]


def test_parquet_writer_keeps_the_input_schema(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    schema = pa.schema([("id", pa.int16()), ("text", pa.large_string())])
    path = tmp_path / "out.parquet"
    with open_writer(path, ["id", "text", "score"], {"score": "float32"}, schema) as writer:
        writer.write([{"id": None, "text": "a", "score": 0.5}])  # a null first would infer type null
        writer.write([{"id": 7, "text": "b", "score": 0.5}])
    assert pq.read_schema(path).field("id").type == pa.int16()
    assert pq.read_table(path).column("id").to_pylist() == [None, 7]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_empty_output_is_still_a_valid_file(tmp_path: Path, suffix: str) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"out.{suffix}"
    write(path, [], batches=0)
    if suffix == "csv":
        assert path.read_text() == "id,text,score\n"
    elif suffix == "jsonl":
        assert path.read_text() == ""
    else:
        import pyarrow.parquet as pq

        assert pq.read_schema(path).names == COLUMNS


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_a_failure_leaves_no_file(tmp_path: Path, suffix: str) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"out.{suffix}"
    with pytest.raises(InputError, match="boom"), open_writer(path, COLUMNS, {"score": "float32"}) as writer:
        writer.write(ROWS)
        raise InputError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_column_not_in_the_header_is_refused(tmp_path: Path, suffix: str) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    rows = [{"id": "1", "text": "a", "score": 0.5}, {"id": "2", "text": "b", "score": 0.5, "geo": "x"}]
    with pytest.raises(InputError, match=r"columns 'geo' that the first row lacks.*write \.jsonl instead"):
        write(tmp_path / f"out.{suffix}", rows)
    assert list(tmp_path.iterdir()) == []


def test_parquet_refuses_a_column_that_changes_type(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    rows = [{"id": 1, "text": "a", "score": 0.5}, {"id": "two", "text": "b", "score": 0.5}]
    with pytest.raises(InputError, match=r"a column changes type between rows"):
        write(tmp_path / "out.parquet", rows)


def test_unknown_output_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"out\.txt names no output format"), open_writer(tmp_path / "out.txt", [], {}):
        pass


def test_stdout_is_utf8_csv(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    write(None, ROWS)
    out = capfdbinary.readouterr().out.decode("utf-8")
    assert out.startswith("id,text,score\n1,\"a,\"\"b\"\"\n\",0.25\n")
    assert "é 🙂" in out


def test_parquet_gathers_batches_into_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(tables, "_ROW_GROUP_ROWS", 4)
    path = tmp_path / "out.parquet"
    rows = [{"id": str(i), "text": "t", "score": 0.5} for i in range(10)]
    write(path, rows, batches=5)  # 5 batches of 2 rows
    metadata = pq.ParquetFile(path).metadata
    assert (metadata.num_rows, metadata.num_row_groups) == (10, 3)
    assert sorted(row["id"] for row in pq.read_table(path).to_pylist()) == [str(i) for i in range(10)]
