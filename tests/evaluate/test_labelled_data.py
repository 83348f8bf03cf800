"""read_labelled: label columns by name, 0/1 values in every format, groups, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import write_rows

pytest.importorskip("sklearn")

from vigil.evaluate import read_labelled
from vigil.runtime.errors import InputError

LABELS = ("post7geo10", "pre7geo50")




@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize(("one", "zero"), [(1, 0), (True, False), (1.0, 0.0)])
def test_zero_one_in_every_format(tmp_path: Path, suffix: str, one: Any, zero: Any) -> None:
    rows = [{"text": "a", "post7geo10": one, "pre7geo50": zero}, {"text": "b", "post7geo10": zero, "pre7geo50": one}]
    data = read_labelled(write_rows(tmp_path / f"d{suffix}", rows), LABELS)
    assert data.texts == ["a", "b"]
    assert data.truth.tolist() == [[1, 0], [0, 1]]
    assert data.truth.dtype == np.int8
    assert data.columns == LABELS and data.groups is None


def test_label_true_columns_and_the_text_column_option(tmp_path: Path) -> None:
    rows = [{"tweet": "a", "post7geo10_true": 1, "pre7geo50": 0}]
    data = read_labelled(write_rows(tmp_path / "d.jsonl", rows), LABELS, text_column="tweet")
    assert data.columns == ("post7geo10_true", "pre7geo50")
    assert data.truth.tolist() == [[1, 0]]


def test_label_true_wins_over_a_score_column(tmp_path: Path) -> None:
    """A file that went through `vigil classify` has scores in <label>: <label>_true holds the truth."""
    rows = [{"text": "a", "post7geo10": 0.93, "post7geo10_true": 0, "pre7geo50": 0.1, "pre7geo50_true": 1}]
    data = read_labelled(write_rows(tmp_path / "d.csv", rows), LABELS)
    assert data.columns == ("post7geo10_true", "pre7geo50_true")
    assert data.truth.tolist() == [[0, 1]]


def test_groups_and_their_truth(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "place": "Lyon", "post7geo10": 1, "pre7geo50": 0},
        {"text": "b", "place": "Oslo", "post7geo10": 0, "pre7geo50": 0},
        {"text": "c", "place": "Lyon", "post7geo10": 1, "pre7geo50": 0},
    ]
    data = read_labelled(write_rows(tmp_path / "d.jsonl", rows), LABELS, group_by="place")
    assert data.groups == ["Lyon", "Oslo", "Lyon"]
    assert data.group_truth(["Oslo", "Lyon"]).tolist() == [[0, 0], [1, 0]]


def test_data_read_for_other_labels_are_refused(tmp_path: Path) -> None:
    data = read_labelled(write_rows(tmp_path / "d.jsonl", [{"text": "a", "post7geo10": 1, "pre7geo50": 0}]), LABELS)
    data.require_labels(LABELS)
    with pytest.raises(ValueError, match=r"read for the labels \['post7geo10', 'pre7geo50'\], not \['pre7geo50'"):
        data.require_labels(LABELS[::-1])


def test_a_group_whose_rows_disagree_is_named(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "place": "Lyon", "post7geo10": 1, "pre7geo50": 0},
        {"text": "b", "place": "Oslo", "post7geo10": 0, "pre7geo50": 0},
        {"text": "c", "place": "Lyon", "post7geo10": 1, "pre7geo50": 1},
    ]
    path = write_rows(tmp_path / "d.csv", rows)
    with pytest.raises(InputError) as caught:
        read_labelled(path, LABELS, group_by="place")
    assert str(caught.value) == (
        f"{path}, line 4: group 'Lyon' has pre7geo50 = 1 here but 0 at line 2; "
        "places are labelled per place, so the rows of a group must agree"
    )


@pytest.mark.parametrize(("suffix", "value", "shown"), [
    (".csv", "2", "'2'"),
    (".csv", "", "''"),
    (".csv", "yes", "'yes'"),
    (".jsonl", 0.5, "0.5"),
    (".jsonl", None, "None"),
    (".jsonl", [1], "[1]"),
])
def test_a_value_that_is_not_0_or_1_is_named_with_its_line(tmp_path: Path, suffix: str, value: Any, shown: str) -> None:
    rows = [{"text": "a", "post7geo10": 1, "pre7geo50": 0}, {"text": "b", "post7geo10": value, "pre7geo50": 0}]
    path = write_rows(tmp_path / f"d{suffix}", rows)
    line = 3 if suffix == ".csv" else 2  # a CSV's header is line 1
    with pytest.raises(InputError) as caught:
        read_labelled(path, LABELS)
    assert str(caught.value) == f"{path}, line {line}: column 'post7geo10' must be 0 or 1, got {shown}"


def test_a_missing_label_column_names_both_spellings(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.csv", [{"text": "a", "post7geo10": 1}])
    with pytest.raises(InputError) as caught:
        read_labelled(path, LABELS)
    assert str(caught.value) == (
        f"{path}: no column 'pre7geo50' or 'pre7geo50_true' for the label 'pre7geo50'; "
        "the columns are: 'text', 'post7geo10'"
    )


def test_a_missing_text_column(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.csv", [{"tweet": "a", "post7geo10": 1, "pre7geo50": 0}])
    with pytest.raises(InputError, match=rf"^{path}, line 1: no column 'text'; the columns are: 'tweet', "):
        read_labelled(path, LABELS)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("d.csv", "text,post7geo10,pre7geo50\n", "no rows to evaluate"),
    ("d.jsonl", "", "no rows to evaluate"),
    ("d.jsonl", "\n\n", "no rows to evaluate"),
    ("d.csv", "", "line 1: no CSV header"),
])
def test_an_empty_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{path}(: |, ){message}"):
        read_labelled(path, LABELS)


def test_only_table_formats(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("a tweet\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.txt: labelled data must be \.csv, \.jsonl or \.parquet$"):
        read_labelled(path, LABELS)
