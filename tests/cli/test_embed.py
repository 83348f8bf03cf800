"""`vigil embed` end to end on the tiny stand-in artifact: .npy and Parquet, input columns kept,
and refusals that leave no output behind."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import write_rows

from vigil.cli.main import main
from vigil.runtime import Classifier

TWEETS = [
    "Protesters gather downtown as police close the main square",
    "",
    "RT @someone: check this out http://t.co/abc &amp; share",
    "Manifestación en la plaza central, la policía bloquea las calles",
    "ok " * 400,
    "抗议者聚集在市中心",
] * 12  # 72 tweets: several batches at --batch-size 16


@pytest.fixture(scope="module")
def clf(tiny_artifact: Path) -> Iterator[Classifier]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        classifier = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with classifier:
        yield classifier


def run(artifact: Path, *args: str | Path, input: str | None = None) -> Result:
    argv = ["embed", str(artifact), "--provider", "cpu", "--variant", "fp32", "--batch-size", "16", *map(str, args)]
    return CliRunner().invoke(main, argv, input=input, catch_exceptions=False)


def error_line(result: Result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("in_suffix", [".txt", ".csv", ".jsonl", ".parquet"])
def test_npy_holds_the_embeddings_in_input_order(
    tiny_artifact: Path, clf: Classifier, tmp_path: Path, in_suffix: str
) -> None:
    if in_suffix == ".parquet":
        pytest.importorskip("pyarrow")
    source = write_rows(tmp_path / f"in{in_suffix}", [{"id": str(i), "text": t} for i, t in enumerate(TWEETS)])
    result = run(tiny_artifact, source, "-o", tmp_path / "out.npy")
    assert result.exit_code == 0, result.stderr
    written = np.load(tmp_path / "out.npy")
    assert written.dtype == np.float32 and written.shape == (len(TWEETS), clf.embedding_width)
    np.testing.assert_allclose(written, clf.embed(TWEETS), rtol=0, atol=1e-6)


def test_parquet_keeps_the_input_columns_and_adds_a_fixed_size_list(
    tiny_artifact: Path, clf: Classifier, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"id": i, "place": f"p{i % 3}", "text": text} for i, text in enumerate(TWEETS)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(
        [("id", pa.int16()), ("place", pa.string()), ("text", pa.string())])), source)
    out = tmp_path / "out.parquet"
    result = run(tiny_artifact, source, "-o", out, "--raw")
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(out)
    assert table.schema.names == ["id", "place", "text", "embedding"]
    assert table.schema.field("id").type == pa.int16()  # the input's own types
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), clf.embedding_width)
    assert table.column("id").to_pylist() == list(range(len(TWEETS)))
    assert table.column("text").to_pylist() == TWEETS
    embeddings = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(embeddings, clf.embed(TWEETS, normalize=False), rtol=0, atol=1e-6)


def test_stdin_to_npy(tiny_artifact: Path, clf: Classifier, tmp_path: Path) -> None:
    result = run(tiny_artifact, "-", "-o", tmp_path / "out.npy", input="\n".join(TWEETS[:5]) + "\n")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), clf.embed(TWEETS[:5]), rtol=0, atol=1e-6)


def test_an_empty_input_is_an_empty_matrix(tiny_artifact: Path, clf: Classifier, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("", encoding="utf-8")
    assert run(tiny_artifact, source, "-o", tmp_path / "out.npy").exit_code == 0
    assert np.load(tmp_path / "out.npy").shape == (0, clf.embedding_width)


def test_a_large_input_streams_into_npy(tiny_artifact: Path, clf: Classifier, tmp_path: Path) -> None:
    texts = [f"tweet number {i} about {TWEETS[i % 6][:30]}" for i in range(10_000)]
    source = tmp_path / "big.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = run(tiny_artifact, source, "-o", tmp_path / "big.npy", "--batch-size", "64", "--quiet")
    assert result.exit_code == 0, result.stderr
    written = np.load(tmp_path / "big.npy", mmap_mode="r")
    assert written.shape == (10_000, clf.embedding_width)
    sample = list(range(0, 10_000, 997))
    np.testing.assert_allclose(written[sample], clf.embed([texts[i] for i in sample]), rtol=0, atol=1e-6)


REFUSALS = {
    "csv output": ([], "out.csv", "the extension must be one of .npy, .parquet"),
    "no output": ([], None, "Missing option '-o'"),
    "null text": ([{"text": "a"}, {"text": None}], "out.npy", "{source}, line 2: the value in column 'text' is empty (null)"),
    "column clash": ([{"text": "a", "embedding": "x"}], "out.parquet", "already has the columns 'embedding'"),
}


@pytest.mark.parametrize(("rows", "out", "message"), REFUSALS.values(), ids=REFUSALS)
def test_refusals_are_one_line_and_leave_nothing(
    tiny_artifact: Path, tmp_path: Path, rows: list[dict], out: str | None, message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows or [{"text": "a"}]), encoding="utf-8")
    result = run(tiny_artifact, source, *(["-o", tmp_path / out] if out else []))
    assert result.exit_code == 1
    assert message.format(source=source) in error_line(result)
    assert sorted(tmp_path.iterdir()) == [source]  # no output, no temporary file


def test_an_old_artifact_is_refused_before_any_output(old_artifact: Path, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.txt", [{"text": "hello"}])
    result = run(old_artifact, source, "-o", tmp_path / "out.npy")
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: cannot embed with {old_artifact}: the artifact has no pooled output")
    assert "re-export" in error_line(result)
    assert sorted(tmp_path.iterdir()) == [source]


def test_by_default_the_cpu_embeds_with_a_variant_whose_embeddings_passed(int8_artifact: Path, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.txt", [{"text": "hello"}, {"text": "world"}])
    result = CliRunner().invoke(main, ["embed", str(int8_artifact), str(source), "-o", str(tmp_path / "out.npy"),
                                       "--provider", "cpu", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with Classifier.open(int8_artifact, provider="cpu", embeddings=True) as clf:
        np.testing.assert_allclose(np.load(tmp_path / "out.npy"), clf.embed(["hello", "world"]), rtol=0, atol=1e-6)
