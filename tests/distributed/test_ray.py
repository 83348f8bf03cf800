"""vigil on Ray Data: the actor's scores, group scores and `vigil classify --ray` against local classify."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from vigil.cli.main import main
from vigil.files.atomic import renamed_on_success
from vigil.distributed import Scorer, group_scores, score_dataset
from vigil.runtime import Classifier, aggregate

TWEETS = [
    "Crowds march to the town hall as shops close early",
    "",
    "RT @user: road closed near the station http://t.co/x &amp; more",
    "La policía corta el tráfico frente al congreso",
    "Grève générale: la ville est à l'arrêt 🚧",
    "تجمع كبير في الساحة الرئيسية",
    "市中心今天有很多人",
]
PLACES = ["paris", "lima", None, "cairo"]


@pytest.fixture(scope="module")
def clf(tiny_artifact: Path) -> Iterator[Classifier]:
    """The reference, on fp32, the exact variant (the tiny stand-in has no int8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    with classifier:
        yield classifier


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet files of unequal size (and a non-Parquet file Ray must not read) in a folder tree."""
    folder = tmp_path_factory.mktemp("partitioned")
    (folder / "day=2").mkdir()
    rows = [{"id": i, "text": f"{TWEETS[i % len(TWEETS)]} {i}", "place": PLACES[i % len(PLACES)],
             "score_in": i / 7} for i in range(90)]
    for name, part in [("day=1.parquet", rows[:17]), ("day=2/a.parquet", rows[17:60]), ("day=2/b.parquet", rows[60:])]:
        pq.write_table(pa.Table.from_pylist(part), folder / name)
    (folder / "README.txt").write_text("not Parquet", encoding="utf-8")
    return folder


def run(artifact: Path, *args: str | Path) -> Result:
    argv = ["classify", str(artifact), "--provider", "cpu", "--variant", "fp32", "--batch-size", "16", "-q",
            *map(str, args)]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def local_input(partitioned: Path, tmp_path: Path) -> Path:
    """The partitioned input as one file, in the order `--ray` reads its files (path order)."""
    files = sorted(partitioned.rglob("*.parquet"))
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in files]), whole)
    return whole


def error_line(result: Result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error: ", "Error: "))]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- the actor, without Ray -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "pandas"])
def test_scorer_adds_a_float32_column_per_label_and_keeps_the_batch(tiny_artifact: Path, clf: Classifier,
                                                                    kind: str) -> None:
    scorer = Scorer(tiny_artifact, provider="cpu", variant="fp32", labels=True, model_batch_size=3)
    batch: Any = {"id": np.arange(len(TWEETS)), "text": np.array(TWEETS, dtype=object)}
    if kind == "pandas":
        batch = pd.DataFrame(batch)

    scored = scorer(batch)

    assert list(scored.keys()) == ["id", "text", *clf.labels, *(f"{label}_pred" for label in clf.labels)]
    assert list(scored["id"]) == list(range(len(TWEETS)))
    probs = np.stack([np.asarray(scored[label]) for label in clf.labels], axis=1)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, clf.predict(TWEETS), rtol=0, atol=1e-6)
    decisions = np.stack([np.asarray(scored[f"{label}_pred"]) for label in clf.labels], axis=1)
    np.testing.assert_array_equal(decisions, clf.decide(probs).astype(np.int8))


def test_scorer_names_the_row_that_is_not_a_text(tiny_artifact: Path) -> None:
    scorer = Scorer(tiny_artifact, provider="cpu", variant="fp32")
    with pytest.raises(ValueError, match=r"column 'text': text 1 is NoneType, not str"):
        scorer({"text": np.array(["fine", None], dtype=object)})


# --- on the cluster ---------------------------------------------------------------------


def test_score_dataset_equals_predict(ray_cluster: Any, tiny_artifact: Path, clf: Classifier) -> None:
    texts = [f"{TWEETS[i % len(TWEETS)]} {i}" for i in range(40)]
    ds = ray_cluster.data.from_items([{"n": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=4)

    rows = score_dataset(ds, tiny_artifact, batch_size=8, actors=1, cpus_per_actor=0.5, threads=1,
                         provider="cpu", variant="fp32").take_all()

    by_n = sorted(rows, key=lambda row: row["n"])
    assert [row["text"] for row in by_n] == texts
    probs = np.array([[row[label] for label in clf.labels] for row in by_n], dtype=np.float32)
    np.testing.assert_allclose(probs, clf.predict(texts), rtol=0, atol=1e-6)


def test_group_scores_across_blocks_equal_aggregate(ray_cluster: Any) -> None:
    rng = np.random.default_rng(0)
    labels = ("a", "b", "c")
    probs = rng.random((500, 3), dtype=np.float32)
    groups = rng.choice(["x", "y", "z", "w"], size=500).tolist()
    groups[7] = None
    thresholds = np.array([0.4, 0.5, 0.6], dtype=np.float32)
    table = pa.table({"g": groups, **{label: probs[:, i] for i, label in enumerate(labels)}})
    ray_cluster.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray_cluster.data.from_arrow([table.slice(start, 100) for start in range(0, 500, 100)])

    got = group_scores(ds, "g", labels, thresholds)

    want = aggregate(probs, groups, labels, thresholds)
    assert got.groups == want.groups
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.means, want.means)
    np.testing.assert_array_equal(got.flags, want.flags)


def test_classify_on_ray_equals_local_row_for_row(ray_cluster: Any, tiny_artifact: Path, clf: Classifier,
                                                  partitioned: Path, tmp_path: Path) -> None:
    local = run(tiny_artifact, local_input(partitioned, tmp_path), "-o", tmp_path / "local.parquet", "--labels")
    assert local.exit_code == 0, local.stderr

    result = run(tiny_artifact, partitioned, "-o", tmp_path / "out", "--labels", "--ray")

    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial left
    want = pq.read_table(tmp_path / "local.parquet").to_pandas()
    got = pq.read_table(tmp_path / "out").to_pandas()
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) == 90
    for column in ["id", "text", "place", "score_in", *(f"{label}_pred" for label in clf.labels)]:
        assert got[column].tolist() == want[column].tolist(), column
    for label in clf.labels:
        assert got[label].dtype == np.float32
        np.testing.assert_allclose(got[label], want[label], rtol=0, atol=1e-5)


def test_classify_on_ray_group_by_equals_local(ray_cluster: Any, tiny_artifact: Path, partitioned: Path,
                                               tmp_path: Path) -> None:
    local = run(tiny_artifact, local_input(partitioned, tmp_path), "-o", tmp_path / "local.parquet",
                "--group-by", "place")
    assert local.exit_code == 0, local.stderr

    result = run(tiny_artifact, partitioned, "-o", tmp_path / "out", "--group-by", "place", "--ray")

    assert result.exit_code == 0, result.stderr
    want = pq.read_table(tmp_path / "local.parquet").to_pylist()
    assert pq.read_table(tmp_path / "out").to_pylist() == want
    assert [row["group"] for row in want] == PLACES


# --- bad input: a clear error and nothing written ---------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_input_is_refused_and_nothing_is_written(tiny_artifact: Path, partitioned: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.csv").write_text("text\nhello\n", encoding="utf-8")
    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "no_text.parquet")
    pq.write_table(pa.table({"text": ["a", "b", None, "d"]}), tmp_path / "null.parquet", row_group_size=2)
    cases = {
        tmp_path / "missing": "'INPUT': Path",
        empty: f"{empty}: the directory holds no Parquet files (*.parquet)",
        tmp_path / "no_text.parquet": "no column 'text'; the columns are: 'body'",
        tmp_path / "null.parquet": f"{tmp_path / 'null.parquet'}, row 3: the value in column 'text' is empty (null)",
    }
    for source, message in cases.items():
        result = run(tiny_artifact, source, "-o", tmp_path / "out", "--ray")
        assert result.exit_code != 0 and message in error_line(result), (source, result.stderr)

    address = f"127.0.0.1:{_closed_port()}"
    result = run(tiny_artifact, partitioned, "-o", tmp_path / "out", "--ray", address)
    assert result.exit_code == 1
    assert f"cannot reach the Ray cluster at {address}" in error_line(result)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "no_text.parquet", "null.parquet"]


def test_a_failed_write_leaves_no_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), renamed_on_success(tmp_path / "out", directory=True) as partial:
        (partial / "part-0.parquet").write_bytes(b"half")
        raise RuntimeError("a task failed")
    assert list(tmp_path.iterdir()) == []
