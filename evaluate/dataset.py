"""Labelled data: tweets with their true 0/1 labels, read from CSV, JSONL or Parquet.

A file holds a text column and one 0/1 column per label of the artifact. The authors' files
name a label's column `<label>` or `<label>_true`; where both exist `<label>_true` wins,
because a file that went through `vigil classify` holds scores in `<label>`. A label value
is 0 or 1 as a number or a boolean, or text that spells one (as pandas writes them: "1",
"1.0", "True"); anything else is an error naming the file, the line, the column and the
value. Reading goes through `vigil.files.tables`, so bad input reads the same as for
`vigil classify`.

The whole file is held in memory: the metrics (ROC-AUC ranks every score) need all of its
scores at once anyway.

Groups: the authors label places, not tweets, so the rows of one group must carry the same
labels; a group whose rows disagree is an error that names the group and both lines.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.files import tables
from vigil.files.tables import Table
from vigil.runtime.errors import InputError

__all__ = ["FORMATS", "LabelledData", "read_labelled"]

FORMATS = ("csv", "jsonl", "parquet")
# 0 == 0.0 == False and 1 == 1.0 == True, so numbers and booleans match the first two keys.
_BINARY: dict[Any, int] = {0: 0, 1: 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


@dataclass(frozen=True)
class LabelledData:
    """Texts, their true labels and, with `group_by`, the group of each row.

    Attributes:
        path: The file read.
        labels: The artifact's labels, the columns of `truth`.
        columns: The file's column read for each label.
        texts: The n texts, in file order.
        truth: int8 [n, n_labels], 1 where the label is true.
        group_by: The group column, or None.
        groups: The n group keys, or None without `group_by`.
    """

    path: Path
    labels: tuple[str, ...]
    columns: tuple[str, ...]
    texts: list[str]
    truth: np.ndarray
    group_by: str | None = None
    groups: list[Hashable] | None = None

    def require_labels(self, labels: Sequence[str]) -> None:
        """Refuse a classifier whose LABELS are not those these data were read for."""
        if tuple(labels) != self.labels:
            raise ValueError(f"these data were read for the labels {list(self.labels)}, not {list(labels)}")

    def group_truth(self, groups: Sequence[Hashable]) -> np.ndarray:
        """int8 [len(groups), n_labels]: the labels of each of GROUPS (its rows all agree)."""
        if self.groups is None:
            raise ValueError("these data were read without group_by")
        first_row: dict[Hashable, int] = {}
        for row, group in enumerate(self.groups):
            first_row.setdefault(group, row)
        return self.truth[[first_row[group] for group in groups]]


def read_labelled(
    path: str | os.PathLike[str],
    labels: Sequence[str],
    *,
    text_column: str = "text",
    group_by: str | None = None,
) -> LabelledData:
    """Read PATH's texts and, for each of LABELS, its 0/1 column.

    Raises:
        InputError: The file's format is not one of FORMATS; it has no rows; it lacks the
            text, group or a label column; a label value is not 0 or 1; or, with GROUP_BY,
            two rows of one group disagree on a label.
    """
    path = Path(path)
    fmt = tables.format_of(path)
    if fmt not in FORMATS:
        raise InputError(f"{path}: labelled data must be .csv, .jsonl or .parquet")
    with tables.open_table(str(path), fmt, text_column) as table:
        if table.columns is None:  # a JSONL file without rows
            raise _no_rows(table)
        table.require(text_column, *([group_by] if group_by else []))
        columns = _label_columns(table.name, table.columns, labels)
        texts, truth, groups = _read_rows(table, columns, text_column, group_by)
    if not texts:
        raise _no_rows(table)
    return LabelledData(
        path=path,
        labels=tuple(labels),
        columns=columns,
        texts=texts,
        truth=np.array(truth, dtype=np.int8),
        group_by=group_by,
        groups=groups if group_by else None,
    )


def _label_columns(name: str, columns: tuple[str, ...], labels: Sequence[str]) -> tuple[str, ...]:
    """The column of each label: `<label>_true` if the file has it, else `<label>`."""
    chosen = []
    for label in labels:
        found = [column for column in (f"{label}_true", label) if column in columns]
        if not found:
            raise InputError(
                f"{name}: no column {label!r} or '{label}_true' for the label {label!r}; "
                f"the columns are: {', '.join(map(repr, columns))}"
            )
        chosen.append(found[0])
    return tuple(chosen)


def _read_rows(
    table: Table, columns: tuple[str, ...], text_column: str, group_by: str | None
) -> tuple[list[str], list[tuple[int, ...]], list[Hashable]]:
    """Every row's text, label values and group key, checking that each group's rows agree."""
    texts: list[str] = []
    truth: list[tuple[int, ...]] = []
    groups: list[Hashable] = []
    first_seen: dict[Hashable, tuple[int, tuple[int, ...]]] = {}  # group -> its first line, labels
    for line, row in table.records:
        texts.append(table.text(line, row, text_column))
        values = tuple(_binary(table, line, row, column) for column in columns)
        truth.append(values)
        if group_by:
            group = table.key(line, row, group_by)
            first_line, first_values = first_seen.setdefault(group, (line, values))
            if values != first_values:
                raise _disagreement(table, line, group, columns, values, first_line, first_values)
            groups.append(group)
    return texts, truth, groups


def _binary(table: Table, line: int, row: dict[str, Any], column: str) -> int:
    value = row.get(column)
    try:
        return _BINARY[value.strip().lower() if isinstance(value, str) else value]
    except (KeyError, TypeError):  # TypeError: an unhashable value, e.g. a JSON list
        raise table.error(line, f"column {column!r} must be 0 or 1, got {value!r}") from None


def _disagreement(
    table: Table,
    line: int,
    group: Hashable,
    columns: tuple[str, ...],
    values: tuple[int, ...],
    first_line: int,
    first_values: tuple[int, ...],
) -> InputError:
    column, here, there = next(
        (column, a, b) for column, a, b in zip(columns, values, first_values) if a != b
    )
    return table.error(
        line,
        f"group {group!r} has {column} = {here} here but {there} at {table.unit} {first_line}; "
        "places are labelled per place, so the rows of a group must agree",
    )


def _no_rows(table: Table) -> InputError:
    return InputError(f"{table.name}: no rows to evaluate")
