"""Per-group scores over a scored Ray Dataset: the authors' mean-then-threshold rule, at scale.

Each block is reduced where it lies, by a `vigil.runtime.GroupAccumulator`, to one row per group
(count and float64 sum per label); only those totals travel to the driver, whose accumulator adds
them up in block order, so rounding, thresholds and first-seen group order are the library's.

Float64 sums are added in another association than a sequential pass (block by block), so a mean
can differ from local `vigil classify --group-by` only where a float64 rounding difference
(relative 1e-16 per term) crosses a float32 rounding boundary; in practice the float32 means are
identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vigil.runtime import GroupAccumulator, GroupScores, GroupTotals

__all__ = ["group_scores"]

_COUNT = "count"


def group_scores(ds: Any, group_column: str, labels: Sequence[str], thresholds: np.ndarray) -> GroupScores:
    """Count, mean probability per label and flag (mean >= threshold) per value of GROUP_COLUMN.

    DS is a scored Dataset (see `score_dataset`) whose order is preserved
    (`DataContext.execution_options.preserve_order`), so groups come in order of first appearance.
    """
    partials = ds.map_batches(
        _partial_sums, fn_kwargs={"group_column": group_column, "labels": list(labels)},
        batch_size=None, batch_format="pyarrow",
    )
    accumulator = GroupAccumulator(labels)
    for batch in partials.iter_batches(batch_size=None, batch_format="pyarrow"):
        sums = np.stack([batch.column(_sum(label)).to_numpy() for label in labels], axis=1)
        groups = tuple(batch.column("group").to_pylist())
        accumulator.add_totals(GroupTotals(groups, batch.column(_COUNT).to_numpy(), sums))
    return accumulator.result(thresholds)


def _partial_sums(batch: Any, *, group_column: str, labels: list[str]) -> Any:
    """One row per group of a pyarrow block: the group, its row count and float64 sum per label."""
    import pyarrow as pa

    accumulator = GroupAccumulator(labels)
    keys = batch.column(group_column).to_pylist()  # Python values, as local classify groups them
    accumulator.add(keys, np.stack([batch.column(label).to_numpy() for label in labels], axis=1))
    totals = accumulator.totals()
    columns = {
        "group": pa.array(list(totals.groups), type=batch.schema.field(group_column).type),
        _COUNT: pa.array(totals.counts),
    }
    for label, sums in zip(labels, totals.sums.T):
        columns[_sum(label)] = pa.array(sums)
    return pa.table(columns)


def _sum(label: str) -> str:
    return f"sum:{label}"
