"""`vigil classify` end to end on the tiny stand-in artifact: every format, options and input errors."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import write_rows

from vigil.cli.main import main
from vigil.cli import streaming
from vigil.runtime import engine
from vigil.files.tables import Table
from vigil.runtime import Classifier, aggregate
from vigil.runtime.manifest import STANDIN_WARNING

TWEETS = [
    "Protesters gather downtown as police close the main square",
    "",
    "RT @someone: check this out http://t.co/abc &amp; share",
    "Manifestación en la plaza central, la policía bloquea las calles",
    "Ça chauffe devant la préfecture 🔥🔥",
    "   ",
    "a, \"quoted\" text; with separators\ttab",
    "ok " * 400,
    "مظاهرة أمام البرلمان",
    "抗议者聚集在市中心",
] * 7  # 70 tweets: more than one batch at --batch-size 16
MULTILINE = "first line\nsecond line"


@pytest.fixture(scope="module")
def clf(tiny_artifact: Path) -> Iterator[Classifier]:
    """The reference: the library itself, on the provider and variant the tests ask the command for.

    fp32, the exact variant (the tiny stand-in has no int8): the command batches
    differently, and scores must not depend on it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        classifier = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with classifier:
        yield classifier


def run(artifact: Path, *args: str | Path, input: str | bytes | None = None) -> Result:
    """`vigil classify ARTIFACT *ARGS` on the reference's provider and variant (ARGS may override)."""
    argv = ["classify", str(artifact), "--provider", "cpu", "--variant", "fp32", "--batch-size", "16", *map(str, args)]
    return CliRunner().invoke(main, argv, input=input, catch_exceptions=False)




def read_output(source: Path | str) -> list[dict[str, Any]]:
    """The rows of an output file, or of CSV text from stdout."""
    if isinstance(source, str):
        return list(csv.DictReader(io.StringIO(source)))
    if source.suffix == ".csv":
        with open(source, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    if source.suffix == ".jsonl":
        return [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(source).to_pylist()


def columns_of(rows: list[dict[str, Any]], names: tuple[str, ...] | list[str]) -> np.ndarray:
    return np.array([[float(row[name]) for name in names] for row in rows], dtype=np.float32)


def error_line(result: Result) -> str:
    """The one line `_fails_cleanly` prints."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- scores -----------------------------------------------------------------------------


@pytest.mark.parametrize("out_suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("in_suffix", [".txt", ".csv", ".jsonl", ".parquet"])
def test_scores_equal_predict_and_input_columns_are_kept(
    tiny_artifact: Path, clf: Classifier, tmp_path: Path, in_suffix: str, out_suffix: str
) -> None:
    if ".parquet" in (in_suffix, out_suffix):
        pytest.importorskip("pyarrow")
    texts = TWEETS if in_suffix == ".txt" else [*TWEETS, MULTILINE]
    rows = [{"id": i, "text": text} for i, text in enumerate(texts)]
    if in_suffix == ".csv":
        rows = [{"id": str(i), "text": text} for i, text in enumerate(texts)]
    source = write_rows(tmp_path / f"in{in_suffix}", rows)
    out = tmp_path / f"out{out_suffix}"

    result = run(tiny_artifact, source, "-o", out)

    assert result.exit_code == 0, result.stderr
    written = read_output(out)
    input_columns = ["text"] if in_suffix == ".txt" else ["id", "text"]
    assert list(written[0]) == [*input_columns, *clf.labels]
    assert [row["text"] for row in written] == texts
    if in_suffix != ".txt":
        assert [str(row["id"]) for row in written] == [str(row["id"]) for row in rows]
    np.testing.assert_allclose(columns_of(written, clf.labels), clf.predict(texts), rtol=0, atol=1e-6)


def test_stdin_to_stdout(tiny_artifact: Path, clf: Classifier) -> None:
    texts = TWEETS[:5]
    result = run(tiny_artifact, "-", input="\n".join(texts) + "\n")
    assert result.exit_code == 0, result.stderr
    written = read_output(result.stdout)
    assert [row["text"] for row in written] == texts
    np.testing.assert_allclose(columns_of(written, clf.labels), clf.predict(texts), rtol=0, atol=1e-6)


def test_format_option_overrides_the_extension(tiny_artifact: Path, clf: Classifier, tmp_path: Path) -> None:
    source = tmp_path / "tweets.data"
    source.write_text('{"body": "hello"}\n', encoding="utf-8")
    result = run(tiny_artifact, source, "--format", "jsonl", "--text-column", "body")
    assert result.exit_code == 0, result.stderr
    assert list(read_output(result.stdout)[0]) == ["body", *clf.labels]


def test_standin_warning_is_one_line(tiny_artifact: Path, tmp_path: Path) -> None:
    result = run(tiny_artifact, write_rows(tmp_path / "in.txt", [{"text": "hello"}]))
    assert result.stderr.count(STANDIN_WARNING) == 1
    assert "UserWarning" not in result.stderr


def test_a_large_input_streams(tiny_artifact: Path, clf: Classifier, tmp_path: Path) -> None:
    texts = [f"tweet number {i} about {TWEETS[i % 10][:30]}" for i in range(20_000)]
    source = tmp_path / "big.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "big.csv"
    result = run(tiny_artifact, source, "-o", out, "--batch-size", "64", "--quiet")
    assert result.exit_code == 0, result.stderr
    written = read_output(out)
    assert len(written) == 20_000
    sample = list(range(0, 20_000, 997))
    np.testing.assert_allclose(columns_of([written[i] for i in sample], clf.labels),
                               clf.predict([texts[i] for i in sample]), rtol=0, atol=1e-6)


def test_scoring_reads_only_a_few_batches_ahead(clf: Classifier) -> None:
    """An endless input still yields results: nothing waits for the end of the input."""
    read = itertools.count(1)
    endless = ((next(read), {"text": f"tweet {n}"}) for n in itertools.count(1))
    table = Table("endless", "line", ("text",), endless)
    batches = streaming.scored_records(clf, table, "text", 16)
    for expected_first in (1, 17, 33):
        records, probs = next(batches)
        assert [line for line, _ in records] == list(range(expected_first, expected_first + 16))
        assert probs.shape == (16, len(clf.labels))
    # What was scored plus the engine's read-ahead: a few batches, or, where the artifact
    # has sequence buckets, the length-grouping window being scored and the next one (the
    # prefetch reads into it while the last batches of this one run).
    ahead = 2 * engine._window_size(16) if clf.sequence_buckets else 48 + 4 * 16
    assert next(read) - 1 <= ahead
    batches.close()


# --- --labels and --thresholds ----------------------------------------------------------


@pytest.mark.parametrize("option", [None, "0.9", "post7geo10=0.2,pre7geo50=0.95"])
def test_label_columns_follow_the_thresholds(tiny_artifact: Path, clf: Classifier, tmp_path: Path,
                                             option: str | None) -> None:
    source = write_rows(tmp_path / "in.txt", [{"text": text} for text in TWEETS])
    args = ["--labels"] + (["--thresholds", option] if option else [])
    result = run(tiny_artifact, source, *args)
    assert result.exit_code == 0, result.stderr

    thresholds = dict(zip(clf.labels, clf.thresholds.tolist()))
    if option and "=" in option:
        thresholds |= {label: float(value) for label, value in (item.split("=") for item in option.split(","))}
    elif option:
        thresholds = dict.fromkeys(clf.labels, float(option))
    written = read_output(result.stdout)
    assert list(written[0]) == ["text", *clf.labels, *(f"{label}_pred" for label in clf.labels)]
    predictions = columns_of(written, [f"{label}_pred" for label in clf.labels])
    expected = clf.predict(TWEETS) >= np.array(list(thresholds.values()), dtype=np.float32)
    np.testing.assert_array_equal(predictions, expected)
    np.testing.assert_array_equal(predictions, columns_of(written, clf.labels) >= list(thresholds.values()))


@pytest.mark.parametrize(
    ("option", "exit_code", "message"),
    [
        ("abc", 1, "expected a number or label=number,label=number; got 'abc'"),
        ("post7geo10=0.3,pre7geo10", 1, "expected a number or label=number"),
        ("post7geo10=0.3,post7geo10=0.4", 1, "a label is given twice"),
        ("1.5", 1, "error: threshold for 'post7geo10' must be within [0, 1], got 1.5"),
        ("pre7geo10=-0.1", 1, "error: threshold for 'pre7geo10' must be within [0, 1], got -0.1"),
        ("nope=0.5", 1, "error: thresholds name unknown labels ['nope']"),
    ],
)
def test_bad_thresholds(tiny_artifact: Path, tmp_path: Path, option: str, exit_code: int, message: str) -> None:
    source = write_rows(tmp_path / "in.txt", [{"text": "hello"}])
    result = run(tiny_artifact, source, "--thresholds", option, "-o", tmp_path / "out.csv")
    assert result.exit_code == exit_code
    assert message in result.stderr
    assert sorted(tmp_path.iterdir()) == [source]


# --- --group-by -------------------------------------------------------------------------


@pytest.mark.parametrize("out_suffix", [".csv", ".parquet"])
def test_group_by_equals_an_independent_computation(tiny_artifact: Path, clf: Classifier, tmp_path: Path,
                                                    out_suffix: str) -> None:
    if out_suffix == ".parquet":
        pytest.importorskip("pyarrow")
    places = ["paris", "lagos", "lima", "paris", "oslo", "lagos", "paris"]
    rows = [{"place": places[i % len(places)], "text": text} for i, text in enumerate(TWEETS)]
    out = tmp_path / f"groups{out_suffix}"
    result = run(tiny_artifact, write_rows(tmp_path / "in.csv", rows), "--group-by", "place", "-o", out)
    assert result.exit_code == 0, result.stderr

    probs = clf.predict(TWEETS).astype(np.float64)
    written = read_output(out)
    per_label = itertools.chain.from_iterable((label, f"{label}_flag") for label in clf.labels)
    assert list(written[0]) == ["group", "count", *per_label]
    assert [row["group"] for row in written] == ["paris", "lagos", "lima", "oslo"]  # first seen first
    for row in written:
        members = [i for i, r in enumerate(rows) if r["place"] == row["group"]]
        mean = probs[members].mean(axis=0)
        assert int(row["count"]) == len(members)
        np.testing.assert_allclose(columns_of([row], clf.labels)[0], mean, rtol=0, atol=1e-6)
        flags = [str(row[f"{label}_flag"]) == "True" for label in clf.labels]
        assert flags == (mean.astype(np.float32) >= clf.thresholds).tolist()
    # Bit for bit the library's: the command's batches, summed in the same order.
    want = aggregate(clf.predict(TWEETS, batch_size=16), [row["place"] for row in rows], clf.labels, clf.thresholds)
    np.testing.assert_array_equal(columns_of(written, clf.labels), want.means)


def test_group_by_null_and_numbers_in_jsonl(tiny_artifact: Path, tmp_path: Path) -> None:
    rows = [{"g": 1, "text": "a"}, {"g": None, "text": "b"}, {"g": 1, "text": "c"}]
    out = tmp_path / "groups.jsonl"
    result = run(tiny_artifact, write_rows(tmp_path / "in.jsonl", rows), "--group-by", "g", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert [(row["group"], row["count"]) for row in read_output(out)] == [(1, 2), (None, 1)]


# --- input errors -----------------------------------------------------------------------


INPUT_ERRORS = {
    "missing text column": (
        "in.csv", "id,body\n1,hello\n", [],
        "{path}, line 1: no column 'text'; the columns are: 'id', 'body'"),
    "missing group column": (
        "in.csv", "id,text\n1,hello\n", ["--group-by", "place"],
        "{path}, line 1: no column 'place'; the columns are: 'id', 'text'"),
    "short CSV row": (
        "in.csv", "id,text\n1,hello\n2\n", [],
        "{path}, line 3: 1 fields, but the header has 2"),
    "null text": (
        "in.jsonl", '{"text": "a"}\n{"text": null}\n', [],
        "{path}, line 2: the value in column 'text' is empty (null), not a text"),
    "row without the text column": (
        "in.jsonl", '{"text": "a"}\n{"body": "b"}\n', [],
        "{path}, line 2: no column 'text'; the row has: 'body'"),
    "number as text": (
        "in.jsonl", '{"text": "a"}\n\n{"text": 5}\n', [],
        "{path}, line 3: the value in column 'text' is an int, not a text"),
    "malformed JSON": (
        "in.jsonl", '{"text": "a"}\n{"text": "b",}\n', [],
        "{path}, line 2: malformed JSON: Expecting property name enclosed in double quotes at column 14"),
    "list as group": (
        "in.jsonl", '{"text": "a", "g": [1]}\n', ["--group-by", "g"],
        "{path}, line 1: the value in column 'g' is a list, which cannot name a group"),
    "bad UTF-8 in text": (
        "in.txt", b"fine\nbad \xc3\x28 byte\n", [],
        "{path}, line 2: not valid UTF-8 (byte 0xc3 at byte offset 9)"),
    "bad UTF-8 in CSV": (
        "in.csv", b"id,text\n1,\xff\n", [],
        "{path}, line 2: not valid UTF-8 (byte 0xff at byte offset 10)"),
    "column named like a label": (
        "in.csv", "id,post7geo10,text\n1,x,y\n", [],
        "{path} already has the columns 'post7geo10', which the scores would overwrite"),
}


@pytest.mark.parametrize(("name", "content", "args", "message"), INPUT_ERRORS.values(), ids=INPUT_ERRORS)
def test_input_errors_name_file_line_and_reason(
    tiny_artifact: Path, tmp_path: Path, name: str, content: str | bytes, args: list[str], message: str
) -> None:
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content, encoding="utf-8")
    result = run(tiny_artifact, source, *args, "-o", tmp_path / "out.csv")
    assert result.exit_code == 1
    assert error_line(result).startswith("error: " + message.format(path=source))
    assert sorted(tmp_path.iterdir()) == [source]  # no output, no temporary file


def test_parquet_null_text_names_the_row(tiny_artifact: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    source = write_rows(tmp_path / "in.parquet", [{"text": "a"}, {"text": None}])
    result = run(tiny_artifact, source, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert error_line(result) == f"error: {source}, row 2: the value in column 'text' is empty (null), not a text"
    assert sorted(tmp_path.iterdir()) == [source]


def test_an_error_deep_in_the_input_keeps_the_old_output(tiny_artifact: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(1000))
                      + "{broken\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    result = run(tiny_artifact, source, "-o", out)
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: {source}, line 1001: malformed JSON")
    assert out.read_text() == "previous results\n"
    assert sorted(tmp_path.iterdir()) == [source, out]


def test_parquet_without_pyarrow_says_how_to_install(tiny_artifact: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.parquet"
    source.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = run(tiny_artifact, source)
    assert result.exit_code == 1
    assert error_line(result) == (
        "error: reading Parquet needs pyarrow, which is not installed: pip install 'vigil[files]'"
    )


def test_unknown_output_extension(tiny_artifact: Path, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.txt", [{"text": "hello"}])
    result = run(tiny_artifact, source, "-o", tmp_path / "out.xlsx")
    assert result.exit_code == 1
    assert "the extension must be one of .csv, .jsonl, .parquet" in result.stderr


def test_labels_and_group_by_do_not_mix(tiny_artifact: Path, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.csv", [{"g": "x", "text": "hello"}])
    result = run(tiny_artifact, source, "--group-by", "g", "--labels")
    assert result.exit_code == 1
    assert "each group gets <label>_flag columns" in result.stderr


def test_progress_counts_towards_the_known_total(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    batches = [([(1, {})] * 2, np.zeros((2, 6))), ([(3, {})], np.zeros((1, 6)))]
    assert len(list(streaming.with_progress(iter(batches), 3, quiet=False))) == 2
    assert "3/3" in stderr.getvalue()
    stderr.truncate(0)
    list(streaming.with_progress(iter(batches), 3, quiet=True))
    assert stderr.getvalue() == ""
